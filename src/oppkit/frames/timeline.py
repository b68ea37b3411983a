"""The timeline frame: every touch point, newest first, as one user sees it.

Example::

    from oppkit.frames.timeline import timeline
    timeline(kit, account="acme-robotics.example", kind="email").head()
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import case, func, or_, select

from ..db import schema as db
from ..matching import possible_deals as _possible
from ..scope import ScopeLike, as_list, scope_of, to_utc

__all__ = ["TIMELINE_COLUMNS", "participants", "possible_deals", "timeline"]

TIMELINE_COLUMNS = [
    "id", "occurred_at", "kind", "subject", "snippet", "direction", "sender", "sender_name",
    "thread_id", "account", "account_id", "opportunity", "opportunity_id", "duration_minutes",
    "is_planned", "status", "is_auto", "source", "source_id", "sources",
]  # fmt: skip


def timeline(
    scope: ScopeLike,
    *,
    opportunity: Any = None,
    account: Any = None,
    person: Any = None,
    kind: str | list[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Every touch point, newest first; filter by opportunity, account or person.

    ``opportunity`` is an id or name, ``account`` an id, name or email domain,
    ``person`` an email; each may also be a list.

    >>> kit.timeline(account="acme-robotics.example", kind="email").head()
    """
    scope = scope_of(scope)
    sender = db.people.alias("sender")
    # every source that still reports it (a calendar and Salesforce: one row, two sources)
    sources = (
        select(func.aggregate_strings(db.activity_sources.c.source, ","))
        .where(
            db.activity_sources.c.activity_id == db.activities.c.id,
            db.activity_sources.c.is_deleted.is_(False),
        )
        .scalar_subquery()
    )
    stmt = (
        select(
            db.activities.c.id,
            db.activities.c.occurred_at,
            db.activities.c.kind,
            db.activities.c.subject,
            db.activities.c.snippet,
            db.activities.c.direction,
            sender.c.email,
            sender.c.name,
            db.activities.c.thread_id,
            db.accounts.c.name,
            db.activities.c.account_id,
            case((db.opportunities.c.id.is_(None), None), else_=db.opportunities.c.name),
            db.activities.c.opportunity_id,
            db.activities.c.duration_minutes,
            db.activities.c.is_planned,
            db.activities.c.status,
            db.activities.c.is_auto,
            db.activities.c.source,
            db.activities.c.source_id,
            sources,
        )
        .select_from(
            db.activities.outerjoin(db.accounts, db.accounts.c.id == db.activities.c.account_id)
            .outerjoin(db.opportunities, db.opportunities.c.id == db.activities.c.opportunity_id)
            .outerjoin(sender, sender.c.id == db.activities.c.sender_id)
        )
        .where(
            db.activities.c.is_deleted.is_(False),
            or_(db.activities.c.opportunity_id.is_(None), scope.visible()),
        )
        .order_by(db.activities.c.occurred_at.desc(), db.activities.c.id.desc())
    )
    if opportunity is not None:
        stmt = stmt.where(db.activities.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if account is not None:
        stmt = stmt.where(db.activities.c.account_id.in_(scope.account_ids(account)))
    if person is not None:
        ids = scope.person_ids(person)
        stmt = stmt.where(
            db.activities.c.id.in_(
                select(db.activity_people.c.activity_id).where(
                    db.activity_people.c.person_id.in_(ids)
                )
            )
        )
    if kind is not None:
        stmt = stmt.where(db.activities.c.kind.in_(as_list(kind)))
    if since is not None:
        stmt = stmt.where(db.activities.c.occurred_at >= to_utc(since))
    if until is not None:
        stmt = stmt.where(db.activities.c.occurred_at < to_utc(until))
    if limit is not None:
        stmt = stmt.limit(limit)
    df = scope.frame(stmt, "timeline", TIMELINE_COLUMNS)
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    for column in ("is_planned", "is_auto"):
        df[column] = df[column].astype(bool)
    for column in ("account_id", "opportunity_id"):
        df[column] = df[column].astype("Int64")
    df["duration_minutes"] = df["duration_minutes"].astype("Float64")
    df["sources"] = [
        ",".join(sorted(set(found.split(",")))) if isinstance(found, str) else source
        for found, source in zip(df["sources"], df["source"], strict=True)
    ]
    return df


def participants(scope: ScopeLike, activity_ids: list[int]) -> pd.DataFrame:
    """Who took part in these activities (one row per person and activity, any role).

    Activities of a deal the scope may not see contribute nobody.

    >>> participants(kit, kit.timeline(limit=50)["id"].tolist())
    """
    scope = scope_of(scope)
    shown = select(db.activities.c.id).where(
        db.activities.c.id.in_([int(i) for i in activity_ids]),
        or_(
            db.activities.c.opportunity_id.is_(None),
            db.activities.c.opportunity_id.in_(scope.visible_opportunities()),
        ),
    )
    stmt = (
        select(db.activity_people.c.activity_id, db.people.c.email, db.people.c.name)
        .join(db.people, db.people.c.id == db.activity_people.c.person_id)
        .where(db.activity_people.c.activity_id.in_(shown))
    )
    return scope.frame(stmt, "participants", ["activity_id", "email", "name"])


POSSIBLE_COLUMNS = [
    "activity_id", "occurred_at", "kind", "subject", "account", "account_id",
    "opportunity", "opportunity_id",
]  # fmt: skip


def possible_deals(scope: ScopeLike, *, account: Any = None) -> pd.DataFrame:
    """Activities matching left on their account because two or more deals were possible,
    one row per (activity, deal it may belong to), newest first.

    Settle one with ``oppkit.actions.link_activity(kit, activity_id, deal)`` (or
    ``kit.link_activity``). An activity shows only when the user may see every deal it
    may belong to: a choice between a visible and a private deal would reveal the latter.

    >>> kit.possible_deals(account="acme-robotics.example")
    """
    scope = scope_of(scope)
    stmt = select(db.activities.c.id).where(
        db.activities.c.is_deleted.is_(False),
        db.activities.c.opportunity_id.is_(None),
        db.activities.c.opportunity_link.is_(None),
        db.activities.c.account_id.is_not(None),
    )
    if account is not None:
        stmt = stmt.where(db.activities.c.account_id.in_(scope.account_ids(account)))
    with scope.engine.connect() as conn:
        found = _possible(conn, conn.scalars(stmt).all())
        visible = set(
            conn.scalars(
                select(db.opportunities.c.id).where(
                    db.opportunities.c.id.in_({d for deals in found.values() for d in deals}),
                    scope.visible(),
                )
            )
        ) if found else set()  # fmt: skip
    pairs = [
        (activity_id, deal_id)
        for activity_id, deals in found.items()
        if set(deals) <= visible
        for deal_id in deals
    ]
    pairs_frame = pd.DataFrame(pairs, columns=["activity_id", "opportunity_id"])
    stmt = (
        select(
            db.activities.c.id, db.activities.c.occurred_at, db.activities.c.kind,
            db.activities.c.subject, db.accounts.c.name, db.activities.c.account_id,
        )
        .select_from(
            db.activities.outerjoin(db.accounts, db.accounts.c.id == db.activities.c.account_id)
        )
        .where(db.activities.c.id.in_(pairs_frame["activity_id"].unique().tolist()))
    )  # fmt: skip
    rows = scope.frame(
        stmt, "possible_deals",
        ["activity_id", "occurred_at", "kind", "subject", "account", "account_id"],
    )  # fmt: skip
    names = scope.frame(
        select(db.opportunities.c.id, db.opportunities.c.name).where(
            db.opportunities.c.id.in_(pairs_frame["opportunity_id"].unique().tolist())
        ),
        "possible_deals", ["opportunity_id", "opportunity"],
    )  # fmt: skip
    df = rows.merge(pairs_frame, on="activity_id").merge(names, on="opportunity_id")
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    df = df.sort_values(
        ["occurred_at", "activity_id", "opportunity"], ascending=[False, True, True]
    )
    return scope.tag(df[POSSIBLE_COLUMNS].reset_index(drop=True), "possible_deals")
