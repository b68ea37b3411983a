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
from ..scope import ScopeLike, as_list, scope_of, to_utc

__all__ = ["TIMELINE_COLUMNS", "participants", "timeline"]

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
