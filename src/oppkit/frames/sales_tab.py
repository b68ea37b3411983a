"""An account's agreements, a deal's cases and policies, and everything linked to a deal.

Why: the Sales tab of an account shows its agreements (active ones, the inactive on
request) and each deal's linked records; these frames are what the Kit's
``kit.agreements``, ``kit.cases``, ``kit.policies`` and ``kit.links`` return. Privacy as
everywhere: a case or policy on a private deal this user may not see is not there, and
naming such a deal raises NotFoundError. Agreements belong to accounts (never private).

Example::

    agreements(kit, account="acme-robotics.example", include_inactive=True)
    links(kit, "Acme pilot")   # cases, policies, the account's agreements, invoices...
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import case, literal, or_, select

from ..db import schema as db
from ..scope import ScopeLike, scope_of

__all__ = ["LINK_COLUMNS", "agreement_status", "agreements", "cases", "links", "policies"]

LINK_COLUMNS = ["record_type", "id", "reference", "name", "status", "start_date", "end_date",
                "source", "created_at", "details"]  # fmt: skip


def agreement_status(end_date: date | None, today: date) -> str:
    """``active``, or ``inactive`` once the end date is before today."""
    return "inactive" if end_date is not None and end_date < today else "active"


def agreements(
    scope: ScopeLike, *, account: Any = None, include_inactive: bool = False,
    today: date | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Agreements of accounts: active ones (the end date not before ``today``), with
    ``include_inactive`` the ended ones too. Columns: id, account_id, account,
    agreement_type, start_date, end_date, contract_number, contract_status, status,
    days_left, description, source, source_id.

    >>> kit.agreements(account="acme-robotics.example", include_inactive=True)
    """
    scope = scope_of(scope)
    today = today or datetime.now(UTC).date()
    a = db.agreements
    stmt = (
        select(
            a.c.id,
            a.c.account_id,
            db.accounts.c.name.label("account"),
            a.c.agreement_type,
            a.c.start_date,
            a.c.end_date,
            a.c.contract_number,
            a.c.contract_status,
            a.c.description,
            a.c.source,
            a.c.source_id,
        )  # fmt: skip
        .join(db.accounts, db.accounts.c.id == a.c.account_id)
        .where(a.c.is_deleted.is_(False))
        .order_by(db.accounts.c.name, a.c.end_date, a.c.id)
    )
    if account is not None:
        stmt = stmt.where(a.c.account_id.in_(scope.account_ids(account)))
    if not include_inactive:
        stmt = stmt.where(or_(a.c.end_date.is_(None), a.c.end_date >= today))
    df = scope.frame(stmt, "agreements")
    df.insert(8, "status", [agreement_status(e, today) for e in df["end_date"]])
    df.insert(9, "days_left", pd.array([None if e is None else (e - today).days
                                        for e in df["end_date"]], dtype="Int64"))  # fmt: skip
    return df


def _deal_shown(scope: Any, column: Any) -> Any:
    return or_(column.is_(None), column.not_in(scope.hidden_opportunities()))


def cases(
    scope: ScopeLike, *, opportunity: Any = None, account: Any = None,
    include_closed: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Cases: Salesforce Cases and informal pending cases made in oppkit (``is_formal``
    False). Columns: id, case_number, subject, status, priority, kind (``case`` or
    ``pending``), account_id, account, contact, opportunity_id, opportunity, parent_id,
    is_formal, description, source, source_id, created_at.

    >>> kit.cases(opportunity="Acme pilot")
    """
    scope = scope_of(scope)
    c, opp = db.cases, db.opportunities
    contact = case((db.people.c.id.in_(scope.hidden_people()), None), else_=db.people.c.email)
    stmt = (
        select(
            c.c.id,
            c.c.case_number,
            c.c.subject,
            c.c.status,
            c.c.priority,
            case((c.c.is_formal.is_(False), literal("pending")), else_=literal("case")).label(
                "kind"
            ),
            c.c.account_id,
            db.accounts.c.name.label("account"),
            contact.label("contact"),
            c.c.opportunity_id,
            opp.c.name.label("opportunity"),
            c.c.parent_id,
            c.c.is_formal,
            c.c.description,
            c.c.source,
            c.c.source_id,
            c.c.created_at,
        )  # fmt: skip
        .select_from(
            c.outerjoin(db.accounts, db.accounts.c.id == c.c.account_id)
            .outerjoin(db.people, db.people.c.id == c.c.person_id)
            .outerjoin(opp, opp.c.id == c.c.opportunity_id)
        )
        .where(c.c.is_deleted.is_(False), _deal_shown(scope, c.c.opportunity_id))
        .order_by(c.c.created_at, c.c.id)
    )
    if opportunity is not None:
        stmt = stmt.where(c.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if account is not None:
        stmt = stmt.where(c.c.account_id.in_(scope.account_ids(account)))
    if not include_closed:
        stmt = stmt.where(or_(c.c.status.is_(None), c.c.status.not_in(("Closed", "Formalised"))))
    df = scope.frame(stmt, "cases")
    for column in ("opportunity_id", "parent_id", "account_id"):
        df[column] = df[column].astype("Int64")
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df


def policies(scope: ScopeLike, *, opportunity: Any = None, account: Any = None) -> pd.DataFrame:
    """Policies with the deal they are linked to. Columns: id, policy_number, name,
    policy_type, status, account_id, account, opportunity_id, opportunity, start_date,
    end_date, premium, source, created_at.

    >>> kit.policies(account="acme-robotics.example")
    """
    scope = scope_of(scope)
    p, opp = db.policies, db.opportunities
    stmt = (
        select(
            p.c.id,
            p.c.policy_number,
            p.c.name,
            p.c.policy_type,
            p.c.status,
            p.c.account_id,
            db.accounts.c.name.label("account"),
            p.c.opportunity_id,
            opp.c.name.label("opportunity"),
            p.c.start_date,
            p.c.end_date,
            p.c.premium,
            p.c.source,
            p.c.created_at,
        )  # fmt: skip
        .select_from(
            p.outerjoin(db.accounts, db.accounts.c.id == p.c.account_id).outerjoin(
                opp, opp.c.id == p.c.opportunity_id
            )
        )
        .where(p.c.is_deleted.is_(False), _deal_shown(scope, p.c.opportunity_id))
        .order_by(p.c.policy_number, p.c.id)
    )
    if opportunity is not None:
        stmt = stmt.where(p.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if account is not None:
        stmt = stmt.where(p.c.account_id.in_(scope.account_ids(account)))
    df = scope.frame(stmt, "policies")
    for column in ("opportunity_id", "account_id"):
        df[column] = df[column].astype("Int64")
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df


def links(scope: ScopeLike, opportunity: Any, today: date | None = None) -> pd.DataFrame:
    """Every record linked to one deal, in one frame: its cases (``case``, ``pending
    case``), its policies (``policy``), the agreements of its account (``agreement``,
    inactive ones too) and what its workflow triggers made (their kind: ``invoice``,
    ``registration``, ``training_token``, ``account``, ``contact``...). Columns:
    :data:`LINK_COLUMNS`.

    >>> kit.links("Acme pilot")
    """
    scope = scope_of(scope)
    deal_id = scope.opportunity_id(opportunity)
    today = today or datetime.now(UTC).date()
    rows: list[tuple] = []
    with scope.engine.connect() as conn:
        account_id = conn.scalar(
            select(db.opportunities.c.account_id).where(db.opportunities.c.id == deal_id)
        )
        c = db.cases
        for r in conn.execute(
            select(c.c.id, c.c.case_number, c.c.subject, c.c.status, c.c.is_formal, c.c.source,
                   c.c.created_at)
            .where(c.c.opportunity_id == deal_id, c.c.is_deleted.is_(False))
            .order_by(c.c.id)
        ):  # fmt: skip
            kind = "case" if r.is_formal else "pending case"
            rows.append((kind, r.id, r.case_number, r.subject, r.status, None, None, r.source,
                         r.created_at, None))  # fmt: skip
        p = db.policies
        for r in conn.execute(
            select(p)
            .where(p.c.opportunity_id == deal_id, p.c.is_deleted.is_(False))
            .order_by(p.c.id)
        ):
            rows.append(("policy", r.id, r.policy_number, r.name, r.status, r.start_date,
                         r.end_date, r.source, r.created_at, None))  # fmt: skip
        a = db.agreements
        if account_id is not None:
            for r in conn.execute(
                select(a).where(a.c.account_id == account_id, a.c.is_deleted.is_(False))
                .order_by(a.c.end_date, a.c.id)
            ):  # fmt: skip
                rows.append(("agreement", r.id, r.contract_number, r.agreement_type,
                             agreement_status(r.end_date, today), r.start_date, r.end_date,
                             r.source, r.created_at, None))  # fmt: skip
        k = db.links
        for r in conn.execute(
            select(k)
            .where(k.c.opportunity_id == deal_id, k.c.transition.is_not(None))
            .order_by(k.c.id)
        ):
            rows.append((r.kind, r.id, r.reference, r.transition, None, None, None, "workflow",
                         r.created_at, r.data))  # fmt: skip
    df = pd.DataFrame(rows, columns=LINK_COLUMNS)
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return scope.tag(df, "links")
