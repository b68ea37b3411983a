"""Writing one batch of source records: resolve references, then upsert.

Each ``write_*`` function takes the records of one kind and returns how many rows it
wrote plus the records it had to skip (with a reason). Records whose references point
at nothing (an opportunity that is not in the database) are skipped, never guessed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, func, literal, select, update

from ..db.ownership import LIFECYCLE_STATUS, WAITING, kept, synced_columns
from ..db.schema import (
    accounts,
    activities,
    activity_people,
    activity_sources,
    agreements,
    campaign_members,
    campaigns,
    cases,
    leads,
    opportunities,
    opportunity_people,
    outbound_changes,
    people,
    stage_history,
    stages,
)
from ..db.upsert import insert_ignore, lookup, upsert
from ..funnel import place_deals, renumber
from ..identity import Resolver, domain_of, normalise_email
from ..lifecycle_status import FROM_SALESFORCE, TARGETS, StatusMap, move_stage
from ..matching import MATCHED_LINK, SOURCE_LINK, Matcher, follow_activities, rematch_opportunities
from ..sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    CampaignRecord,
    Deleted,
    LeadRecord,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Skipped,
    StageRecord,
)
from .alert_writer import asks_question, rule_alerts, write_rule_alerts
from .twins import PARTNERS, SALESFORCE, Seeker, find_twins, partner_of

log = logging.getLogger(__name__)
SENDER_ROLES = ("from", "organizer")


KNOWN_LIMIT = 500_000  # upstream ids remembered per table before the memo starts over


@dataclass
class WriteContext:
    """What one run remembers between batches; :meth:`forget` after a rollback."""

    resolver: Resolver
    matcher: Matcher = field(default_factory=Matcher)
    # (table, key column) -> upstream id -> row id; rows never change their upstream id
    known: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    # deals written in this transaction -> whether their window may have changed (True)
    # or only their members (False); see rematch_touched
    touched: dict[int, bool] = field(default_factory=dict)
    # sources found in activity_sources that may share an activity with this run's
    partners_met: set[str] = field(default_factory=set)
    # (kind, Salesforce status) that no lifecycle stage maps to: said once per run
    unmapped: set[tuple[str, str]] = field(default_factory=set)

    def forget(self) -> None:
        """Drop everything cached: after a rollback, cached row ids may not exist."""
        self.resolver.forget()
        self.matcher.invalidate()
        self.known.clear()
        self.touched.clear()
        self.partners_met.clear()

    def touch(self, opportunity_ids, window: bool) -> None:  # noqa: ANN001
        for opp_id in opportunity_ids:
            if opp_id is not None:
                self.touched[opp_id] = self.touched.get(opp_id, False) or window


@dataclass
class WriteResult:
    written: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped.append(Skipped(reason, where))


def _known_ids(conn: Connection, ctx: WriteContext, table, column: str, refs) -> dict[str, int]:  # noqa: ANN001
    """Row id per upstream id in ``column``, remembered for the run (tasks repeat deals)."""
    memo = ctx.known.setdefault((table.name, column), {})
    wanted = {r for r in refs if r}
    missing = [r for r in wanted if r not in memo]
    if missing:
        if len(memo) + len(missing) > KNOWN_LIMIT:
            memo.clear()
            missing = list(wanted)
        if column == "source_id":
            found = lookup(
                conn, table, ("source", "source_id"), [("salesforce", r) for r in missing]
            )
            memo.update({k[1]: v for k, v in found.items()})
        else:
            memo.update(lookup(conn, table, column, missing))
    return {r: memo[r] for r in wanted if r in memo}


def _ids(conn: Connection, ctx: WriteContext, table, refs) -> dict[str, int]:  # noqa: ANN001
    """Row id per Salesforce id of rows that Salesforce created (source 'salesforce')."""
    return _known_ids(conn, ctx, table, "source_id", refs)


def _people_by_sfid(conn: Connection, ctx: WriteContext, refs) -> dict[str, int]:  # noqa: ANN001
    return _known_ids(conn, ctx, people, "salesforce_id", refs)


def write_stages(
    conn: Connection, ctx: WriteContext, records: Sequence[StageRecord]
) -> WriteResult:
    """Stages; a workflow stage of the same name keeps what the workflow says of it, and
    the funnel is numbered again (:func:`oppkit.funnel.renumber`)."""
    rows = [
        {
            "name": r.name,
            "status": r.status,
            "sort_order": r.sort_order,
            "source_order": r.sort_order,
            "probability": r.probability,
            "is_active": r.is_active,
            "source": r.source,
        }
        for r in records
    ]
    upsert(
        conn, stages, rows, ["name"], synced_columns("stages", [k for k in rows[0] if k != "name"])
    )
    renumber(conn)
    ctx.matcher.invalidate()
    return WriteResult(written=len(rows))


def _merge_upstream(
    conn: Connection,
    table,  # noqa: ANN001
    natural: str,
    items: list[tuple[dict, str | None]],
    by_sfid: dict[str, int],
    by_natural: dict[str, int],
) -> list[int]:
    """Write upstream rows onto the rows already known by their id or natural key.

    ``items`` are (values, natural key value). A row known by its Salesforce id (or else
    its natural key: an email, a domain) is updated in place; a new one is inserted and
    takes the natural key only if no other row holds it. Returns the positions of items
    deferred because an earlier item of this batch claims the same new natural key (the
    caller writes them again, when they merge onto that row).
    """
    updates: dict[tuple[str, ...], list[dict]] = {}
    inserts, claimed, deferred = [], set(), []
    for position, (values, key) in enumerate(items):
        existing = by_sfid.get(values["source_id"]) or (by_natural.get(key) if key else None)
        if existing:
            if key and by_natural.get(key) in (None, existing):
                values[natural] = key
            updates.setdefault(tuple(values), []).append({**values, "_id": existing})
        elif key and key in claimed:
            deferred.append(position)
        else:
            claimed.add(key)
            values[natural] = key if key not in by_natural else None
            inserts.append(values)
    for rows in updates.values():  # SET takes the columns of the rows' keys
        conn.execute(update(table).where(table.c.id == bindparam("_id")), rows)
    if inserts:
        update_columns = [k for k in inserts[0] if k != "source"]
        upsert(conn, table, inserts, ["source", "source_id"], update_columns)
    return deferred


def _latest_by_key(records):  # noqa: ANN001, ANN202
    """One record per (source, source_id), the last one seen (a page may repeat a row)."""
    return list({(r.source, r.source_id): r for r in records}.values())


def write_accounts(
    conn: Connection, ctx: WriteContext, records: Sequence[AccountRecord]
) -> WriteResult:
    """Upstream accounts; an account first seen by its email domain is merged, not doubled."""
    records = _latest_by_key(records)
    owners = _people_by_sfid(conn, ctx, [r.owner_ref for r in records])
    by_sfid = lookup(conn, accounts, "salesforce_id", [r.source_id for r in records])
    by_domain = lookup(conn, accounts, "domain", [r.domain for r in records if r.domain])
    items = [
        (
            {
                "name": r.name,
                "owner_id": owners.get(r.owner_ref),
                "industry": r.industry,
                "account_type": r.account_type,
                "salesforce_id": r.source_id if r.source == "salesforce" else None,
                "source_modstamp": r.updated_at,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            },
            r.domain,
        )
        for r in records
    ]
    deferred = _merge_upstream(conn, accounts, "domain", items, by_sfid, by_domain)
    ctx.resolver.by_domain.clear()
    if deferred:
        write_accounts(conn, ctx, [records[i] for i in deferred])
    follow_statuses(conn, ctx, "account", records)
    return WriteResult(written=len(records))


def write_people(
    conn: Connection, ctx: WriteContext, records: Sequence[PersonRecord]
) -> WriteResult:
    """Contacts and users; merged with the person already known by the same email."""
    result = WriteResult()
    records = _latest_by_key(records)
    rules = ctx.resolver.rules
    account_ids = _ids(conn, ctx, accounts, [r.account_ref for r in records])
    emails = [normalise_email(r.email) for r in records]
    by_sfid = lookup(conn, people, "salesforce_id", [r.source_id for r in records])
    by_email = lookup(conn, people, "email", [e for e in emails if e])
    domain_accounts = ctx.resolver.accounts_for_domains(conn, {domain_of(e) for e in emails if e})
    items = []
    for r, email in zip(records, emails, strict=True):
        if r.email and not email:
            result.skip(f"unusable email {r.email!r}; kept without it", f"{r.source} {r.source_id}")
        domain = domain_of(email) if email else None
        values = {
            "name": r.name,
            "title": r.title,
            "account_id": account_ids.get(r.account_ref) or domain_accounts.get(domain),
            "is_internal": r.is_user or (domain is not None and rules.is_internal(domain)),
            "salesforce_id": r.source_id if r.source == "salesforce" else None,
            "source_modstamp": r.updated_at,
            "source": r.source,
            "source_id": r.source_id,
            "is_deleted": r.is_deleted,
        }
        items.append((values, email))
    deferred = _merge_upstream(conn, people, "email", items, by_sfid, by_email)
    ctx.resolver.by_email.clear()
    result.written = len(records)
    if deferred:
        write_people(conn, ctx, [records[i] for i in deferred])
    follow_statuses(conn, ctx, "contact", records)
    return result


def follow_statuses(
    conn: Connection, ctx: WriteContext, kind: str, records: Sequence[AccountRecord | PersonRecord]
) -> None:
    """Salesforce's lifecycle status of these contacts or accounts, read into their stage.

    Only a status Salesforce changed since the last sync (``source_status``) moves a
    stage, so a stage set in oppkit and not pushed (write-back off) stays. It moves to the
    stage the status maps to (``lifecycle_stages.external_status``; none when the stage
    maps to it already) with a lifecycle_history row (reason ``salesforce``), except a
    locked stage (the manual lock wins) and one whose own change waits to be pushed. A
    status no stage maps to is logged once per run.
    """
    said = {
        r.source_id: r.external_status
        for r in records
        if r.source == "salesforce" and r.external_status is not None and not r.is_deleted
    }
    if not said:
        return
    table, key = TARGETS[kind]
    known = lookup(conn, table, "salesforce_id", said, "id", "lifecycle_stage", "stage_locked",
                   "source_status")  # fmt: skip
    changed = {sfid: row for sfid, row in known.items() if row[3] != said[sfid]}
    if not changed:
        return
    conn.execute(
        update(table).where(table.c.id == bindparam("_id")).values(source_status=bindparam("_s")),
        [{"_id": row[0], "_s": said[sfid]} for sfid, row in changed.items()],
    )
    ids = [row[0] for row in changed.values()]
    waiting = set(
        conn.scalars(
            select(outbound_changes.c[key]).where(
                outbound_changes.c[key].in_(ids),
                outbound_changes.c.field == LIFECYCLE_STATUS,
                outbound_changes.c.status.in_(WAITING),
            )
        )
    )
    statuses = StatusMap.load(conn, kind)
    for sfid, (row_id, stage, locked, _) in changed.items():
        status = said[sfid]
        if not statuses.maps(status):
            if (kind, status) not in ctx.unmapped:
                ctx.unmapped.add((kind, status))
                log.warning("no %s lifecycle stage maps to the Salesforce status %r; "
                            "left as it is", kind, status)  # fmt: skip
            continue
        new = statuses.stage_for(status, stage)
        if new is not None and not locked and row_id not in waiting:
            move_stage(conn, kind, row_id, stage, new, reason=FROM_SALESFORCE)


def write_campaigns(
    conn: Connection, ctx: WriteContext, records: Sequence[CampaignRecord]
) -> WriteResult:
    """Campaigns, then each one's parent (which may come in the same batch)."""
    rows = [_columns_of(r, campaigns) for r in records]
    upsert(
        conn,
        campaigns,
        rows,
        ["source", "source_id"],
        synced_columns("campaigns", [k for k in rows[0] if k not in ("source", "source_id")]),
    )
    children = [r for r in records if r.parent_ref]
    parents = _ids(conn, ctx, campaigns, [r.parent_ref for r in children])
    own = _ids(conn, ctx, campaigns, [r.source_id for r in records])
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == bindparam("row_id"))
        .values(parent_id=bindparam("parent")),
        [
            {"row_id": own[r.source_id], "parent": parents.get(r.parent_ref or "")}
            for r in records
            if r.source_id in own
        ],
    )
    return WriteResult(written=len(rows))


def write_leads(conn: Connection, ctx: WriteContext, records: Sequence[LeadRecord]) -> WriteResult:
    """Leads; a converted one names the account, contact and deal it became."""
    owners = _people_by_sfid(conn, ctx, [r.owner_ref for r in records])
    account_ids = _ids(conn, ctx, accounts, [r.converted_account_ref for r in records])
    contacts = _people_by_sfid(conn, ctx, [r.converted_contact_ref for r in records])
    deals = _ids(conn, ctx, opportunities, [r.converted_opportunity_ref for r in records])
    rows = []
    for r in records:
        row = _columns_of(r, leads)
        row.update(
            email=normalise_email(r.email),
            owner_id=owners.get(r.owner_ref),
            converted_account_id=account_ids.get(r.converted_account_ref),
            converted_person_id=contacts.get(r.converted_contact_ref),
            converted_opportunity_id=deals.get(r.converted_opportunity_ref),
        )
        rows.append(row)
    upsert(
        conn,
        leads,
        rows,
        ["source", "source_id"],
        synced_columns("leads", [k for k in rows[0] if k not in ("source", "source_id")]),
    )
    return WriteResult(written=len(rows))


@lru_cache(maxsize=64)
def _shared_fields(record_type: type, table: Table) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type) if f.name in table.c)


def _columns_of(record: Any, table: Table) -> dict[str, Any]:
    """The record's fields that are columns of ``table``, as a row (a shallow copy:
    ``dataclasses.asdict`` deep-copies every value, a fifth of an opportunity's write)."""
    return {name: getattr(record, name) for name in _shared_fields(type(record), table)}


# the columns of a deal that decide when it was live and to which account it belongs
WINDOW_COLUMNS = ("account_id", "created_at", "stage", "close_date", "is_deleted")


def write_opportunities(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityRecord]
) -> WriteResult:
    account_ids = _ids(conn, ctx, accounts, [r.account_ref for r in records])
    owners = _people_by_sfid(conn, ctx, [r.owner_ref for r in records])
    campaign_ids = _ids(conn, ctx, campaigns, [r.campaign_ref for r in records])
    rows = []
    for r in records:
        row = _columns_of(r, opportunities)
        row.update(
            account_id=account_ids.get(r.account_ref),
            owner_id=owners.get(r.owner_ref),
            campaign_id=campaign_ids.get(r.campaign_ref),
            source_modstamp=r.updated_at,
        )
        rows.append(row)
    keys = [(row["source"], row["source_id"]) for row in rows]
    before = lookup(conn, opportunities, ("source", "source_id"), keys, "id", *WINDOW_COLUMNS)
    upsert(  # privacy and the workflow step are oppkit's: set on insert, never updated
        conn,
        opportunities,
        rows,
        ["source", "source_id"],
        synced_columns("opportunities", [k for k in rows[0] if k not in ("source", "source_id")]),
    )
    # a deal whose account, stage, dates or deletion changed may change what matches it
    moved = [
        (key, before[key][0] if key in before else None)
        for key, row in zip(keys, rows, strict=True)
        if key not in before or tuple(before[key][1:]) != tuple(row[c] for c in WINDOW_COLUMNS)
    ]
    if moved:
        new = lookup(
            conn, opportunities, ("source", "source_id"), [k for k, i in moved if i is None]
        )
        ids = [i if i is not None else new.get(k) for k, i in moved]
        ctx.touch(ids, window=True)
        place_deals(conn, ids, origin="sync")  # a new stage: the workflow step follows
    ctx.matcher.invalidate()
    return WriteResult(written=len(rows))


def write_members(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityMemberRecord]
) -> WriteResult:
    result = WriteResult()
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in records])
    person_ids = _people_by_sfid(conn, ctx, [r.person_ref for r in records])
    rows = []
    for r in records:
        opp, person = opp_ids.get(r.opportunity_ref), person_ids.get(r.person_ref)
        if not opp or not person:
            result.skip("member of an unknown opportunity or person", f"{r.source} {r.source_id}")
            continue
        rows.append(
            {
                "opportunity_id": opp,
                "person_id": person,
                "kind": "member",
                "role": r.role,
                "is_primary": r.is_primary,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            }
        )
    before = lookup(
        conn, opportunity_people, ("source", "source_id"),
        [(row["source"], row["source_id"]) for row in rows],
        "opportunity_id", "person_id", "is_deleted",
    )  # fmt: skip
    upsert(
        conn,
        opportunity_people,
        rows,
        ["source", "source_id"],
        ["opportunity_id", "person_id", "role", "is_primary", "is_deleted"],
    )
    for row in rows:
        old = before.get((row["source"], row["source_id"]))
        if old is None or tuple(old) != (
            row["opportunity_id"],
            row["person_id"],
            row["is_deleted"],
        ):
            ctx.touch([row["opportunity_id"], old[0] if old else None], window=False)
    ctx.matcher.invalidate()
    result.written = len(rows)
    return result


PUSH_ECHO = timedelta(minutes=30)  # Salesforce's history row of a change oppkit pushed


def _not_pushed_from_here(conn: Connection, rows: list[dict]) -> list[dict]:
    """Salesforce's history rows, less those recording a change oppkit pushed (write-back):
    that change has its row already, with who made it here and why (one change, one row)."""
    ids = sorted({row["opportunity_id"] for row in rows})
    ours: dict[tuple[int, str], list[tuple[Any, Any]]] = {}
    for start in range(0, len(ids), 500):
        for opp, field_name, new, at in conn.execute(
            select(
                stage_history.c.opportunity_id, stage_history.c.field,
                stage_history.c.new_value, stage_history.c.changed_at,
            ).where(
                stage_history.c.opportunity_id.in_(ids[start : start + 500]),
                stage_history.c.origin.in_(("edit", "transition", "conflict")),
            )
        ):  # fmt: skip
            ours.setdefault((opp, field_name), []).append((new, at))
    if not ours:
        return rows
    return [
        row
        for row in rows
        if not any(
            _same_text(row["new_value"], new) and abs(row["changed_at"] - at) <= PUSH_ECHO
            for new, at in ours.get((row["opportunity_id"], row["field"]), ())
        )
    ]


def _same_text(a: str | None, b: str | None) -> bool:
    """History values as text: "125000" and "125000.0" are the same amount."""
    if a == b:
        return True
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def write_changes(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityChangeRecord]
) -> WriteResult:
    result = WriteResult()
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in records])
    changed_by = _people_by_sfid(conn, ctx, [r.changed_by_ref for r in records])
    rows = []
    for r in records:
        opp = opp_ids.get(r.opportunity_ref)
        if not opp:
            result.skip("history of an unknown opportunity", f"{r.source} {r.source_id}")
            continue
        rows.append(
            {
                "opportunity_id": opp,
                "field": r.field,
                "old_value": r.old_value,
                "new_value": r.new_value,
                "changed_at": r.changed_at,
                "changed_by_id": changed_by.get(r.changed_by_ref),
                "origin": "sync",
                "source": r.source,
                "source_id": r.source_id,
            }
        )
    rows = _not_pushed_from_here(conn, rows)
    if not rows:
        return result
    before = lookup(
        conn, stage_history, ("source", "source_id"),
        [(row["source"], row["source_id"]) for row in rows], "new_value", "changed_at",
    )  # fmt: skip
    upsert(
        conn,
        stage_history,
        rows,
        ["source", "source_id"],
        ["old_value", "new_value", "changed_at", "changed_by_id"],
    )
    ctx.touch(
        [
            row["opportunity_id"]
            for row in rows
            if row["field"] == "stage"
            and before.get((row["source"], row["source_id"]))
            not in [(row["new_value"], row["changed_at"])]
        ],
        window=True,
    )  # a stage change may close (or reopen) a deal
    ctx.matcher.invalidate()
    result.written = len(rows)
    return result


def write_campaign_members(
    conn: Connection, ctx: WriteContext, records: Sequence[CampaignMemberRecord]
) -> WriteResult:
    """Contacts and leads in campaigns; one of an unknown campaign, contact or lead is
    skipped (it comes with the next sync that brings what it refers to)."""
    result = WriteResult()
    campaign_ids = _ids(conn, ctx, campaigns, [r.campaign_ref for r in records])
    person_ids = _people_by_sfid(conn, ctx, [r.contact_ref for r in records])
    lead_ids = _ids(conn, ctx, leads, [r.lead_ref for r in records])
    rows = []
    for r in records:
        campaign = campaign_ids.get(r.campaign_ref)
        person, lead = person_ids.get(r.contact_ref), lead_ids.get(r.lead_ref)
        if not campaign or not (person or lead):
            result.skip(
                "campaign member of an unknown campaign, contact or lead",
                f"{r.source} {r.source_id}",
            )
            continue
        row = _columns_of(r, campaign_members)
        row.update(campaign_id=campaign, person_id=person, lead_id=lead)
        rows.append(row)
    upsert(
        conn,
        campaign_members,
        rows,
        ["source", "source_id"],
        [k for k in rows[0] if k not in ("source", "source_id")] if rows else [],
    )
    result.written = len(rows)
    return result


# Upstream object -> (table, column holding its id): where a deletion lands. Activities
# (Task, Event) are deleted per source: see write_deletions.
DELETABLE = {
    "Account": (accounts, "salesforce_id"),
    "Contact": (people, "salesforce_id"),
    "User": (people, "salesforce_id"),
    "Opportunity": (opportunities, "source_id"),
    "OpportunityContactRole": (opportunity_people, "source_id"),
    "Campaign": (campaigns, "source_id"),
    "CampaignMember": (campaign_members, "source_id"),
    "Lead": (leads, "source_id"),
    "Contract": (agreements, "source_id"),
    "Case": (cases, "source_id"),
    "Task": (activity_sources, "source_id"),
    "Event": (activity_sources, "source_id"),
}


def write_deletions(conn: Connection, ctx: WriteContext, records: Sequence[Deleted]) -> WriteResult:
    """Mark deleted upstream records; rows stay (history keeps pointing at them) but hide.

    An activity deleted by one source stays while another source still reports it:
    only that source's ``activity_sources`` row is marked, and the activity hides when
    all of its sources are deleted (it comes back when one reports it again).
    """
    result = WriteResult()
    for object_name, table, column, window in (
        ("Opportunity", opportunities, "id", True),
        ("OpportunityContactRole", opportunity_people, "opportunity_id", False),
    ):
        keys = [(r.source, r.source_id) for r in records if r.object == object_name]
        if keys:
            found = lookup(conn, table, ("source", "source_id"), keys, column)
            ctx.touch(found.values(), window=window)
    activity_keys = []
    for r in records:
        target = DELETABLE.get(r.object)
        if target is None:
            result.skip(
                f"deletion of an unsupported object {r.object}", f"{r.source} {r.source_id}"
            )
            continue
        table, column = target
        if table is activity_sources:
            activity_keys.append((r.source, r.source_id))
            continue
        cond = table.c[column] == r.source_id
        if column == "source_id":
            cond = cond & (table.c.source == r.source)
        result.written += conn.execute(update(table).where(cond).values(is_deleted=True)).rowcount
    if activity_keys:
        found = lookup(
            conn, activity_sources, ("source", "source_id"), activity_keys, "activity_id"
        )
        if found:
            conn.execute(
                update(activity_sources)
                .where(
                    activity_sources.c.source == bindparam("_source"),
                    activity_sources.c.source_id == bindparam("_source_id"),
                )
                .values(is_deleted=True),
                [{"_source": source, "_source_id": source_id} for source, source_id in found],
            )
            _refresh_deleted(conn, set(found.values()))
        result.written += len(found)
    ctx.matcher.invalidate()
    return result


def _direction(senders: list, others: list) -> str:  # noqa: ANN001
    everyone = senders + others
    if everyone and all(p.is_internal for p in everyone):
        return "internal"
    if senders:
        return "outbound" if senders[0].is_internal else "inbound"
    return "outbound" if any(p.is_internal for p in everyone) else "inbound"


def _account_of(senders: list, others: list) -> int | None:  # noqa: ANN001
    """The customer account: the sender's if external, else the most frequent recipient's."""
    for p in senders:
        if not p.is_internal and p.account_id:
            return p.account_id
    counts = Counter(p.account_id for p in others if not p.is_internal and p.account_id)
    return counts.most_common(1)[0][0] if counts else None


# Who owns which column of an activity that Salesforce and a calendar or a mailbox both
# report (see docs/ARCHITECTURE.md, "Who owns what"). Salesforce owns the deal link and
# the account and owner of its record: its values win where it has them (a WhatId, an
# AccountId, an OwnerId). The calendar or mailbox owns everything else (kind, subject,
# body, times, direction, thread, sender, place, status) and fills the deal link and
# account only where Salesforce left them empty. Participants of both are kept.
# Salesforce owns these of an activity both sides report; opportunity_link says whose the
# deal link is (its WhatId: source; else what matching found), so it goes with the link
CRM_COLUMNS = ("account_id", "opportunity_id", "opportunity_link", "owner_id", "campaign_id")


def _partners_exist(conn: Connection, ctx: WriteContext, sources: set[str]) -> bool:
    """Does the database hold activities of a partner of ``sources`` (Salesforce for a
    calendar or mailbox; a calendar or mailbox for Salesforce)? Only then can a record
    of this batch share an activity with another source. An index seek per batch; a yes
    is remembered for the run."""
    partners = {p for s in sources for p in PARTNERS.get(s, ())}
    if not partners:
        return False
    if partners & ctx.partners_met:
        return True
    found = conn.execute(
        select(activity_sources.c.source)
        .where(activity_sources.c.source.in_(sorted(partners)))
        .limit(1)
    ).first()
    if found is not None:
        ctx.partners_met.add(found[0])
    return found is not None


def _sources_of(conn: Connection, ids: set[int]) -> dict[int, list[tuple[str, str]]]:
    """Activity id -> its sources' (source, source_id)."""
    found: dict[int, list[tuple[str, str]]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        stmt = select(
            activity_sources.c.activity_id, activity_sources.c.source, activity_sources.c.source_id
        ).where(activity_sources.c.activity_id.in_(ordered[start : start + 500]))
        for activity_id, source, source_id in conn.execute(stmt):
            found.setdefault(activity_id, []).append((source, source_id))
    return found


@lru_cache(maxsize=16)
def _update_by_id(crm: bool | None, columns: tuple[str, ...]):  # noqa: ANN202
    """UPDATE of one activity by id (parameters ``_id`` and ``v_<column>``).

    ``crm`` None: every column. Else the activity is reported by both sides and the
    writer is a Salesforce record (True) or a calendar or mailbox one (False): it
    writes only what it owns (see CRM_COLUMNS); is_deleted follows from its sources.
    """
    values = {}
    held, held_columns = kept("activities") or (None, frozenset())
    for name in columns:
        column, new = activities.c[name], bindparam(f"v_{name}")
        if crm is None:
            values[name] = new
        elif name == "is_deleted":
            continue
        elif name in CRM_COLUMNS:
            values[name] = func.coalesce(new, column) if crm else func.coalesce(column, new)
        elif not crm:
            values[name] = new
        if name in held_columns and name in values and not crm:  # a person's choice stays
            values[name] = case((held, column), else_=values[name])
    return update(activities).where(activities.c.id == bindparam("_id")).values(values)


def _refresh_deleted(conn: Connection, ids: set[int]) -> None:
    """An activity is deleted when every source that reported it has deleted it."""
    alive = (
        select(literal(1))
        .where(
            activity_sources.c.activity_id == activities.c.id,
            activity_sources.c.is_deleted.is_(False),
        )
        .exists()
    )
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        conn.execute(
            update(activities)
            .where(activities.c.id.in_(ordered[start : start + 500]))
            .values(is_deleted=~alive)
        )


def _write_rows(
    conn: Connection,
    ctx: WriteContext,
    rows: list[dict],
    crm_links: dict[tuple[str, str], tuple[int | None, int | None]],
    seekers: dict[tuple[str, str], Seeker],
) -> dict[tuple[str, str], int]:
    """Write the activity rows; returns (source, source_id) -> activity id.

    One source per activity (no other side in the database): upsert on (source,
    source_id) as ever. Otherwise a record already known goes to its activity, a new
    meeting or email joins its twin (:mod:`oppkit.sync.twins`), anything else is a new
    activity; where two sides meet, each writes only the columns it owns.
    """
    keys = [(row["source"], row["source_id"]) for row in rows]
    columns = [k for k in rows[0] if k not in ("source", "source_id")]
    if not _partners_exist(conn, ctx, {key[0] for key in keys}):
        upsert(conn, activities, rows, ["source", "source_id"], columns)
        ids = lookup(conn, activities, ("source", "source_id"), keys)
        _write_sources(conn, rows, ids)
        return ids

    targets = lookup(conn, activity_sources, ("source", "source_id"), keys, "activity_id")
    wanted = [s for key, s in seekers.items() if key not in targets]
    if wanted:
        targets.update(find_twins(conn, wanted))
    held = _sources_of(conn, set(targets.values())) if targets else {}
    fresh, own, merged, shared = [], [], [], set()
    for row, key in zip(rows, keys, strict=True):
        activity_id = targets.get(key)
        if activity_id is None:
            fresh.append(row)
            continue
        others = [k for k in held.get(activity_id, []) if k != key]
        if not others:  # its own activity, as the only source: it writes everything
            own.append(row)
            continue
        shared.add(activity_id)
        crm = key[0] == SALESFORCE
        if crm and not any(k[0] != SALESFORCE for k in others):
            crm = None  # only Salesforce reports it: all columns are Salesforce's
        elif not crm and not any(k[0] == SALESFORCE for k in others):
            crm = None
        values = {f"v_{c}": row[c] for c in columns}
        values["_id"] = activity_id
        if crm:
            values["v_opportunity_id"], values["v_account_id"] = crm_links[key]
            values["v_opportunity_link"] = SOURCE_LINK if crm_links[key][0] else None
        merged.append((crm, values))
    if fresh or own:
        upsert(conn, activities, fresh + own, ["source", "source_id"], columns)
    if fresh:
        new_keys = [(row["source"], row["source_id"]) for row in fresh]
        targets.update(lookup(conn, activities, ("source", "source_id"), new_keys))
    groups: dict[bool | None, list[dict]] = {}
    for crm, values in merged:
        groups.setdefault(crm, []).append(values)
    for crm, group in groups.items():
        conn.execute(_update_by_id(crm, tuple(columns)), group)
    _write_sources(conn, rows, targets)
    if shared:
        _refresh_deleted(conn, shared)
    return targets


def _write_sources(conn: Connection, rows: list[dict], ids: dict[tuple[str, str], int]) -> None:
    """Each record's own (source, source_id) row, with whether that source deleted it."""
    upsert(
        conn,
        activity_sources,
        [
            {
                "source": row["source"],
                "source_id": row["source_id"],
                "activity_id": ids[key],
                "is_deleted": row["is_deleted"],
            }
            for row in rows
            if (key := (row["source"], row["source_id"])) in ids
        ],
        ["source", "source_id"],
        ["is_deleted"],
    )


def write_activities(
    conn: Connection, ctx: WriteContext, records: Sequence[ActivityRecord]
) -> WriteResult:
    """Timeline rows plus who took part; one row per real-world event, whichever sources
    report it (one per (source, source_id) across mailboxes; a Salesforce Event and the
    calendar meeting it records, a logged email and the message: see _write_rows)."""
    result = WriteResult()
    records = list({(r.source, r.source_id): r for r in records}.values())
    if not records:
        return result
    named: dict[str, str | None] = {}
    normal: dict[str, str] = {}  # each address as written -> normalised ("" for none)
    for r in records:
        for p in r.participants:
            email = normal.get(p.email)
            if email is None:
                email = normal[p.email] = normalise_email(p.email) or ""
            if email and not named.get(email):
                named[email] = p.name
    persons = ctx.resolver.people_for_emails(conn, named) if named else {}
    sf = [r for r in records if r.source == SALESFORCE]
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in sf])
    sf_accounts = _ids(conn, ctx, accounts, [r.account_ref for r in sf])
    sf_campaigns = _ids(conn, ctx, campaigns, [r.campaign_ref for r in sf])
    sf_people = _people_by_sfid(conn, ctx, [x for r in sf for x in (*r.person_refs, r.owner_ref)])
    sf_people_info: dict[int, tuple] | None = None  # read once, if a record lacks its account

    rows, links, parts, crm_links, seekers = [], {}, [], {}, {}
    for r in records:
        takes_part = []  # (person_id, role, response)
        senders, others = [], []
        for p in r.participants:
            ref = persons.get(normal[p.email])
            if ref is None:
                continue
            takes_part.append((ref.id, p.role, p.response))
            (senders if p.role in SENDER_ROLES else others).append(ref)
        for who in r.person_refs:
            if sf_people.get(who):
                takes_part.append((sf_people[who], "who", None))
        owner_id = sf_people.get(r.owner_ref) if r.owner_ref else None
        if owner_id:
            takes_part.append((owner_id, "owner", None))

        account_id = sf_accounts.get(r.account_ref) or _account_of(senders, others)
        if account_id is None and takes_part:
            if sf_people_info is None:
                sf_people_info = lookup(
                    conn, people, "id", sf_people.values(), "account_id", "is_internal"
                )
            for pid, _role, _resp in takes_part:
                acc, internal = sf_people_info.get(pid, (None, True))
                if acc and not internal:
                    account_id = acc
                    break
        parts.append((takes_part, senders, others, owner_id, account_id))
    ctx.matcher.prepare(
        conn,
        {p[4] for r, p in zip(records, parts, strict=True) if not opp_ids.get(r.opportunity_ref)},
    )
    for r, (takes_part, senders, others, owner_id, account_id) in zip(records, parts, strict=True):
        opportunity_id, link = opp_ids.get(r.opportunity_ref), SOURCE_LINK
        campaign_id = sf_campaigns.get(r.campaign_ref) if r.campaign_ref else None
        if opportunity_id is None and campaign_id is not None:
            link = None  # work for a campaign on the account: never matched to a deal
        elif opportunity_id is None:
            opportunity_id = ctx.matcher.match(
                conn, account_id, r.occurred_at, [pid for pid, _, _ in takes_part], r.subject
            )
            link = MATCHED_LINK if opportunity_id is not None else None
        key = (r.source, r.source_id)
        if r.source == SALESFORCE:
            direction = "outbound" if owner_id else None
            crm_links[key] = (opp_ids.get(r.opportunity_ref), sf_accounts.get(r.account_ref))
        else:
            direction = _direction(senders, others)
        if not r.is_deleted and partner_of(r.source, r.kind):
            seekers[key] = Seeker(
                r.source, r.source_id, r.kind, r.occurred_at, r.subject,
                r.thread_id if r.kind == "meeting" else None,
                frozenset(pid for pid, _, _ in takes_part),
                senders[0].id if senders else None,
            )  # fmt: skip
        rows.append(
            {
                "kind": r.kind,
                "subject": r.subject,
                "snippet": r.snippet,
                "occurred_at": r.occurred_at,
                "duration_minutes": r.duration_minutes,
                "direction": direction,
                "thread_id": r.thread_id,
                "account_id": account_id,
                "opportunity_id": opportunity_id,
                "opportunity_link": link,
                "campaign_id": campaign_id,
                "sender_id": senders[0].id if senders else owner_id,
                "owner_id": owner_id,
                "location": r.location,
                "is_planned": r.is_planned,
                "status": r.status,
                "is_auto": r.is_auto,
                "asks_question": direction == "inbound" and not r.is_auto and asks_question(r.text),
                "attachments": [asdict(a) for a in r.attachments] or None,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            }
        )
        links[key] = takes_part
    ids = _write_rows(conn, ctx, rows, crm_links, seekers)
    ap_rows = [
        {"activity_id": ids[key], "person_id": pid, "role": role, "response": response}
        for key, parts in links.items()
        if key in ids
        for pid, role, response in dict.fromkeys(parts)
    ]
    insert_ignore(conn, activity_people, ap_rows)
    texts = {(r.source, r.source_id): r.text for r in records if r.text}  # CRM tasks: none
    write_rule_alerts(
        conn,
        (
            alert
            for row in rows
            if (key := (row["source"], row["source_id"])) in texts and key in ids
            for alert in rule_alerts(row, ids[key], texts[key])
        ),
    )
    follow_activities(conn, ids.values())  # alerts stored before their activity had a deal
    result.written = len(rows)
    return result


def rematch_touched(conn: Connection, ctx: WriteContext) -> int:
    """After a batch: match again the activities the deals written in it may affect.

    Runs in the batch's transaction, after every writer, so the deals, their members and
    their stage history are all written; the batch's own activities were matched against
    them already. Returns how many activities moved.
    """
    if not ctx.touched:
        return 0
    windows = [opp_id for opp_id, window in ctx.touched.items() if window]
    members = [opp_id for opp_id, window in ctx.touched.items() if not window]
    ctx.touched.clear()
    moved = rematch_opportunities(conn, windows, matcher=ctx.matcher)
    return moved + rematch_opportunities(conn, members, members_only=True, matcher=ctx.matcher)


__all__ = [
    "WriteContext",
    "follow_statuses",
    "WriteResult",
    "rematch_touched",
    "write_accounts",
    "write_activities",
    "write_campaign_members",
    "write_campaigns",
    "write_leads",
    "write_changes",
    "write_deletions",
    "write_members",
    "write_opportunities",
    "write_people",
    "write_stages",
]
