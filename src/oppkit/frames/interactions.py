"""The interactions frame: planned interactions and their results, as one user sees them.

An interaction is a plan (a call, a meeting, a visit... with its planned start and end,
account, assigned user, place and description) and then its result (when it happened,
how long, the result type, comments, the message it sent). Two kinds are read here:

- made in oppkit: an ``interactions`` row beside its timeline row in ``activities``
  (:mod:`oppkit.interactions` writes them);
- Salesforce Tasks and Events (activities reported by Salesforce of kind task, call,
  meeting or event), which have no ``interactions`` row: an open Task or a future
  Event is a plan, a completed Task or a past Event a result. Subject, ActivityDate or
  StartDateTime, the end (StartDateTime plus DurationInMinutes), Location and
  Description (the snippet) are mapped.

``status`` is planned, overdue (planned and its planned start has passed), done or
cancelled.

Example::

    from oppkit.frames.interactions import interactions
    interactions(kit, account="acme-robotics.example", status="overdue")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select

from ..db import schema as db
from ..scope import ScopeLike, as_list, scope_of

__all__ = ["INTERACTION_COLUMNS", "STATUSES", "interactions", "is_interaction"]

INTERACTION_COLUMNS = [
    "id", "interaction_id", "name", "interaction_type", "status", "planned_start",
    "planned_end", "account", "account_id", "opportunity", "opportunity_id", "assigned_to",
    "contact", "location", "location_comments", "description", "source_type", "reason",
    "follows", "result_at", "duration_minutes", "result_type", "result_comments",
    "result_description", "message_status", "source",
]  # fmt: skip
STATUSES = ("planned", "overdue", "done", "cancelled")
SALESFORCE = "salesforce"
SALESFORCE_KINDS = ("task", "call", "meeting", "event")  # Tasks (task, call) and Events
EVENT_KINDS = ("meeting", "event")
# an outbox row's status as the frame shows a message
MESSAGE_STATUS = {"pending": "queued", "sent": "sent", "failed": "failed"}


def from_salesforce() -> ColumnElement[bool]:
    """SQL condition: Salesforce reports the row of ``activities`` (first or as a twin)."""
    return or_(
        db.activities.c.source == SALESFORCE,
        exists().where(
            db.activity_sources.c.activity_id == db.activities.c.id,
            db.activity_sources.c.source == SALESFORCE,
            db.activity_sources.c.is_deleted.is_(False),
        ),
    )


def is_interaction() -> ColumnElement[bool]:
    """SQL condition over ``activities`` outer-joined to ``interactions``: the activity is
    an interaction (oppkit's, with its row; or a Salesforce Task or Event)."""
    return or_(
        db.interactions.c.id.is_not(None),
        and_(db.activities.c.kind.in_(SALESFORCE_KINDS), from_salesforce()),
    )


def status_of(now: datetime) -> ColumnElement[str]:
    """SQL expression: an interaction's status as of ``now`` (see the module docstring)."""
    base = case(
        (db.interactions.c.id.is_not(None), db.interactions.c.status),
        (
            db.activities.c.kind.in_(EVENT_KINDS),
            case((db.activities.c.occurred_at > now, "planned"), else_="done"),
        ),
        (db.activities.c.is_planned.is_(True), "planned"),
        else_="done",
    )
    return case((and_(base == "planned", db.activities.c.occurred_at < now), "overdue"), else_=base)


def interactions(
    scope: ScopeLike,
    *,
    account: Any = None,
    opportunity: Any = None,
    status: str | list[str] | None = None,
    assigned_to: Any = None,
    interaction_type: str | list[str] | None = None,
    source: str | None = None,
    ids: list[int] | None = None,
) -> pd.DataFrame:
    """Planned interactions and results, soonest planned first, then newest results.

    ``status``: ``"planned"`` is every plan without a result (overdue ones too: their
    ``status`` column says overdue), ``"overdue"`` only those whose planned start has
    passed, ``"done"``, ``"cancelled"``, or a list of them; None: all. ``account``,
    ``opportunity`` and ``assigned_to`` (an email) as elsewhere; ``source`` ``"oppkit"``
    (plans made here) or ``"salesforce"`` (Tasks and Events); ``ids`` limits the frame to
    these interactions (their activity ids).

    Columns: id (the activity on the timeline), interaction_id (oppkit's row; empty for a
    Salesforce Task or Event), name, interaction_type, status, planned_start (kept when a
    result moved the activity to its date), planned_end, account, opportunity,
    assigned_to, contact, location, location_comments, description, source_type, reason,
    follows (the id of the plan it follows up), result_at, duration_minutes, result_type,
    result_comments, result_description, message_status (queued, sent or failed),
    source (oppkit or salesforce). Privacy as the timeline.

    >>> kit.interactions(account="acme-robotics.example", status="overdue")
    """
    scope = scope_of(scope)
    now = datetime.now(UTC)
    status_col = status_of(now)
    owner = db.people.alias("assignee")
    contact = db.people.alias("contact")
    followed = db.interactions.alias("followed")
    who = (
        select(func.min(contact.c.email))
        .select_from(
            db.activity_people.join(contact, contact.c.id == db.activity_people.c.person_id)
        )
        .where(
            db.activity_people.c.activity_id == db.activities.c.id,
            db.activity_people.c.role == "who",
        )
        .scalar_subquery()
    )
    own = db.interactions.c.id.is_not(None)
    stmt = (
        select(
            db.activities.c.id,
            db.interactions.c.id,
            db.activities.c.subject,
            func.coalesce(db.interactions.c.interaction_type, db.activities.c.kind),
            status_col,
            func.coalesce(db.interactions.c.planned_start, db.activities.c.occurred_at),
            db.interactions.c.planned_end,
            db.accounts.c.name,
            db.activities.c.account_id,
            case((db.opportunities.c.id.is_(None), None), else_=db.opportunities.c.name),
            db.activities.c.opportunity_id,
            owner.c.email,
            who,
            db.activities.c.location,
            db.interactions.c.location_comments,
            case((own, db.interactions.c.description), else_=db.activities.c.snippet),
            db.interactions.c.source_type,
            db.interactions.c.reason,
            followed.c.activity_id,
            case(
                (own, db.interactions.c.result_at),
                (status_col == "done", db.activities.c.occurred_at),
                else_=None,
            ),
            db.activities.c.duration_minutes,
            db.interactions.c.result_type,
            db.interactions.c.result_comments,
            db.interactions.c.result_description,
            db.outbox.c.status,
            case((own, literal("oppkit")), else_=literal(SALESFORCE)),
            db.activities.c.kind,
        )
        .select_from(
            db.activities.outerjoin(
                db.interactions, db.interactions.c.activity_id == db.activities.c.id
            )
            .outerjoin(followed, followed.c.id == db.interactions.c.follows_id)
            .outerjoin(db.outbox, db.outbox.c.id == db.interactions.c.outbox_id)
            .outerjoin(db.accounts, db.accounts.c.id == db.activities.c.account_id)
            .outerjoin(db.opportunities, db.opportunities.c.id == db.activities.c.opportunity_id)
            .outerjoin(owner, owner.c.id == db.activities.c.owner_id)
        )
        .where(
            db.activities.c.is_deleted.is_(False),
            is_interaction(),
            or_(db.activities.c.opportunity_id.is_(None), scope.visible()),
        )
    )
    if account is not None:
        stmt = stmt.where(db.activities.c.account_id.in_(scope.account_ids(account)))
    if opportunity is not None:
        stmt = stmt.where(db.activities.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if assigned_to is not None:
        stmt = stmt.where(db.activities.c.owner_id.in_(scope.person_ids(assigned_to)))
    if interaction_type is not None:
        wanted = [str(t).strip().lower() for t in as_list(interaction_type)]
        kind = func.lower(func.coalesce(db.interactions.c.interaction_type, db.activities.c.kind))
        stmt = stmt.where(kind.in_(wanted))
    if source == "oppkit":
        stmt = stmt.where(own)
    elif source == SALESFORCE:
        stmt = stmt.where(db.interactions.c.id.is_(None))
    elif source is not None:
        raise ValueError("source must be oppkit or salesforce")
    if ids is not None:
        stmt = stmt.where(db.activities.c.id.in_([int(i) for i in ids]))
    if status is not None:
        stmt = stmt.where(status_col.in_(_statuses(status)))
    df = scope.frame(stmt, "interactions", [*INTERACTION_COLUMNS, "kind"])
    for column in ("planned_start", "planned_end", "result_at"):
        df[column] = pd.to_datetime(df[column], utc=True)
    # a Salesforce Event ends at its start plus its duration (EndDateTime)
    event = (df["source"] == SALESFORCE) & df["kind"].isin(EVENT_KINDS)
    minutes = pd.to_numeric(df["duration_minutes"], errors="coerce")
    ends = df["planned_start"] + pd.to_timedelta(minutes, unit="min")
    df.loc[event & minutes.notna(), "planned_end"] = ends[event & minutes.notna()]
    for column in ("interaction_id", "account_id", "opportunity_id", "follows"):
        df[column] = df[column].astype("Int64")
    df["duration_minutes"] = df["duration_minutes"].astype("Float64")
    df["message_status"] = df["message_status"].map(MESSAGE_STATUS)
    # plans first (soonest first), then results (newest first)
    open_ = df["status"].isin(("planned", "overdue"))
    order = [
        *df[open_].sort_values(["planned_start", "id"], na_position="last", kind="stable").index,
        *df[~open_]
        .sort_values(["result_at", "id"], ascending=False, na_position="last", kind="stable")
        .index,
    ]
    df = df.loc[order]
    df = df[INTERACTION_COLUMNS].reset_index(drop=True)
    return scope.tag(df, "interactions")


def _statuses(status: str | list[str]) -> list[str]:
    wanted = []
    for item in as_list(status):
        text = str(item).strip().lower()
        if text not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)} (or a list of them)")
        wanted += ["planned", "overdue"] if text == "planned" else [text]
    return list(dict.fromkeys(wanted))
