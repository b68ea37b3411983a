"""Writing an account's agreements and cases: Salesforce Contracts and Cases.

Why apart from :mod:`oppkit.sync.writer`: they hang off accounts, contacts and deals the
same batch (or an earlier one) wrote, and nothing else refers to them, so they need none
of the writer's matching. A Contract of an account oppkit does not know (yet) is skipped
and comes with the next sync that brings the account; a Case without a known account or
deal keeps what it has (a Case's deal only ever comes from the org's own field, never a
guess; without the org's field, the deal link is oppkit's: a pending case formalised
into the Case gives it). Columns oppkit owns (:data:`oppkit.db.ownership.OPPKIT_OWNED`) are left alone.

Example::

    write_contracts(conn, ctx, [ContractRecord("salesforce", "800...", account_ref="001...")])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Table, bindparam, update

from ..config import FALLBACK_AGREEMENT_TYPE
from ..db.ownership import synced_columns
from ..db.schema import accounts, agreements, cases, opportunities, people
from ..db.upsert import lookup, upsert
from ..sources.records import CaseRecord, ContractRecord
from .writer import WriteContext, WriteResult

__all__ = ["write_cases", "write_contracts"]


def _by_source_id(conn: Connection, table: Table, refs: Iterable[str | None]) -> dict[str, int]:
    """Row id per Salesforce id of rows a Salesforce sync wrote."""
    found = lookup(conn, table, ("source", "source_id"), [("salesforce", r) for r in refs if r])
    return {key[1]: row_id for key, row_id in found.items()}


def write_contracts(
    conn: Connection, ctx: WriteContext, records: Sequence[ContractRecord]
) -> WriteResult:
    """Contracts as agreements of their accounts; without a type, the fallback type."""
    result = WriteResult()
    account_ids = _by_source_id(conn, accounts, [r.account_ref for r in records])
    rows = []
    for r in records:
        account_id = account_ids.get(r.account_ref)
        if account_id is None:
            result.skip("contract of an unknown account", f"{r.source} {r.source_id}")
            continue
        rows.append(
            {
                "source": r.source,
                "source_id": r.source_id,
                "account_id": account_id,
                "agreement_type": r.agreement_type or FALLBACK_AGREEMENT_TYPE,
                "start_date": r.start_date,
                "end_date": r.end_date,
                "contract_number": r.contract_number,
                "contract_status": r.contract_status,
                "is_deleted": r.is_deleted,
            }
        )
    if rows:
        columns = [k for k in rows[0] if k not in ("source", "source_id")]
        upsert(
            conn, agreements, rows, ["source", "source_id"], synced_columns("agreements", columns)
        )
    result.written = len(rows)
    return result


def write_cases(conn: Connection, ctx: WriteContext, records: Sequence[CaseRecord]) -> WriteResult:
    """Cases on their accounts (and deals, where the org names one), then their parents."""
    account_ids = _by_source_id(conn, accounts, [r.account_ref for r in records])
    deal_rows = lookup(
        conn, opportunities, ("source", "source_id"),
        [("salesforce", r.opportunity_ref) for r in records if r.opportunity_ref],
        "id", "account_id",
    )  # fmt: skip
    deals = {key[1]: tuple(row) for key, row in deal_rows.items()}
    contacts = lookup(
        conn, people, "salesforce_id", [r.contact_ref for r in records if r.contact_ref]
    )
    rows = []
    for r in records:
        deal_id, deal_account = deals.get(r.opportunity_ref or "", (None, None))
        rows.append(
            {
                "source": r.source,
                "source_id": r.source_id,
                "case_number": r.case_number,
                "subject": r.subject,
                "status": r.status,
                "priority": r.priority,
                "description": r.description,
                "account_id": account_ids.get(r.account_ref or "") or deal_account,
                "person_id": contacts.get(r.contact_ref),
                "opportunity_id": deal_id,
                "is_formal": True,
                "created_at": r.created_at,
                "is_deleted": r.is_deleted,
            }
        )
    for linked in (True, False):  # the deal link is Salesforce's only where the org names it
        part = [row for row, r in zip(rows, records, strict=True) if r.links_opportunity is linked]
        if not part:
            continue
        skip = {"source", "source_id", "created_at"} | (set() if linked else {"opportunity_id"})
        columns = synced_columns("cases", [k for k in part[0] if k not in skip])
        upsert(conn, cases, part, ["source", "source_id"], columns)
    children = [r for r in records if r.parent_ref]
    if children:
        own = _by_source_id(conn, cases, [r.source_id for r in children])
        parents = _by_source_id(conn, cases, [r.parent_ref for r in children])
        conn.execute(
            update(cases).where(cases.c.id == bindparam("row_id")).values(parent_id=bindparam("parent")),
            [{"row_id": own[r.source_id], "parent": parents.get(r.parent_ref or "")}
             for r in children if r.source_id in own],
        )  # fmt: skip
    return WriteResult(written=len(rows))
