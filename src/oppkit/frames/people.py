"""People frames: people, the people a deal is missing, and accounts.

Example::

    from oppkit.frames import people
    people.people(kit, account="acme-robotics.example")
    people.suggested_people(kit, "Acme pilot").head(3)
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)

from ..db import schema as db
from ..scope import Scope, ScopeLike, scope_of

__all__ = ["accounts", "people", "people_where", "suggested_people"]


def people(
    scope: ScopeLike, *, account: Any = None, opportunity: Any = None, internal: bool | None = None
) -> pd.DataFrame:
    """People keyed by email, with account and whether they are one of us.

    With ``opportunity``, its members (with their role) are returned.
    """
    scope = scope_of(scope)
    stmt = _people_select(scope)
    if account is not None:
        stmt = stmt.where(db.people.c.account_id.in_(scope.account_ids(account)))
    if internal is not None:
        stmt = stmt.where(db.people.c.is_internal.is_(true() if internal else false()))
    if opportunity is not None:
        ids = scope.opportunity_ids(opportunity)
        visible = select(db.opportunities.c.id).where(
            db.opportunities.c.id.in_(ids), scope.visible()
        )
        stmt = stmt.add_columns(
            db.opportunity_people.c.role, db.opportunity_people.c.kind.label("membership")
        ).join(
            db.opportunity_people,
            and_(
                db.opportunity_people.c.person_id == db.people.c.id,
                db.opportunity_people.c.opportunity_id.in_(visible),
                db.opportunity_people.c.is_deleted.is_(False),
            ),
        )
    return _people_frame(scope, stmt)


def people_where(scope: ScopeLike, *conditions: ColumnElement[bool]) -> pd.DataFrame:
    """The :func:`people` frame of the people meeting SQL ``conditions`` on ``people``
    (and their ``accounts``), with the same columns and privacy: for features that choose
    people their own way (:mod:`oppkit.people_filter`).
    """
    scope = scope_of(scope)
    return _people_frame(scope, _people_select(scope).where(*conditions))


def _people_select(scope: Scope) -> Select:
    return (
        select(
            db.people.c.id,
            db.people.c.email,
            db.people.c.name,
            db.people.c.title,
            db.accounts.c.name.label("account"),
            db.people.c.account_id,
            db.people.c.is_internal,
            db.people.c.lifecycle_stage,
            db.lifecycle_stages.c.category.label("lifecycle_category"),
            db.people.c.stage_locked,
            db.people.c.source,
            db.people.c.source_id,
        )
        .select_from(
            db.people.outerjoin(db.accounts, db.accounts.c.id == db.people.c.account_id).outerjoin(
                db.lifecycle_stages,
                and_(
                    db.lifecycle_stages.c.kind == "contact",
                    db.lifecycle_stages.c.name == db.people.c.lifecycle_stage,
                ),
            )
        )
        .where(db.people.c.is_deleted.is_(False), db.people.c.id.not_in(scope.hidden_people()))
        .order_by(db.people.c.email)
    )


def _people_frame(scope: Scope, stmt: Select) -> pd.DataFrame:
    df = scope.frame(stmt, "people")
    for column in ("is_internal", "stage_locked"):
        df[column] = df[column].astype(bool)
    return df


def suggested_people(scope: ScopeLike, opportunity: Any) -> pd.DataFrame:
    """External people on the deal's threads who are not members yet, most engaged first.

    A thread counts when it holds an activity of this opportunity or one where a member
    took part. ``messages`` is how many of those activities the person was on,
    ``sent`` how many they sent.

    >>> kit.suggested_people("Acme pilot").head(3)
    """
    scope = scope_of(scope)
    ids = scope.opportunity_ids(opportunity)
    visible = select(db.opportunities.c.id).where(db.opportunities.c.id.in_(ids), scope.visible())
    members = select(db.opportunity_people.c.person_id).where(
        db.opportunity_people.c.opportunity_id.in_(visible),
        db.opportunity_people.c.is_deleted.is_(False),
    )
    member_activities = select(db.activity_people.c.activity_id).where(
        db.activity_people.c.person_id.in_(members)
    )
    threads = select(db.activities.c.thread_id).where(
        db.activities.c.thread_id.is_not(None),
        or_(db.activities.c.opportunity_id.in_(visible), db.activities.c.id.in_(member_activities)),
        scope.visible_activity(),  # a member's thread on a deal this user may not see stays out
    )
    on_threads = select(db.activities.c.id).where(
        db.activities.c.is_deleted.is_(False),
        or_(db.activities.c.opportunity_id.in_(visible), db.activities.c.thread_id.in_(threads)),
        scope.visible_activity(),
    )
    stmt = (
        select(
            db.people.c.id,
            db.people.c.email,
            db.people.c.name,
            db.people.c.title,
            db.accounts.c.name.label("account"),
            func.count(func.distinct(db.activity_people.c.activity_id)).label("messages"),
            func.count(
                func.distinct(
                    case(
                        (
                            db.activity_people.c.role.in_(("from", "organizer")),
                            db.activity_people.c.activity_id,
                        )
                    )
                )
            ).label("sent"),
            func.max(db.activities.c.occurred_at).label("last_seen"),
        )
        .select_from(
            db.activity_people.join(db.people, db.people.c.id == db.activity_people.c.person_id)
            .join(db.activities, db.activities.c.id == db.activity_people.c.activity_id)
            .outerjoin(db.accounts, db.accounts.c.id == db.people.c.account_id)
        )
        .where(
            db.activity_people.c.activity_id.in_(on_threads),
            db.people.c.is_internal.is_(False),
            db.people.c.is_deleted.is_(False),
            db.people.c.id.not_in(members),
            db.activities.c.is_auto.is_(False),
        )
        .group_by(
            db.people.c.id,
            db.people.c.email,
            db.people.c.name,
            db.people.c.title,
            db.accounts.c.name,
        )
        .order_by(
            literal_column("messages").desc(), literal_column("sent").desc(), db.people.c.email
        )
    )
    df = scope.frame(stmt, "people")
    df["last_seen"] = pd.to_datetime(df["last_seen"], utc=True)
    return df


def accounts(scope: ScopeLike) -> pd.DataFrame:
    """Customer organisations with their domain, owner, lifecycle stage and counts."""
    scope = scope_of(scope)
    owner_p = db.people.alias("owner")
    n_people = (
        select(func.count()).where(db.people.c.account_id == db.accounts.c.id).scalar_subquery()
    )
    stmt = (
        select(
            db.accounts.c.id,
            db.accounts.c.name,
            db.accounts.c.domain,
            owner_p.c.name.label("owner"),
            db.accounts.c.industry,
            db.accounts.c.lifecycle_stage,
            db.lifecycle_stages.c.category.label("lifecycle_category"),
            db.accounts.c.stage_locked,
            n_people.label("people"),
            db.accounts.c.source,
            db.accounts.c.source_id,
        )
        .select_from(
            db.accounts.outerjoin(owner_p, owner_p.c.id == db.accounts.c.owner_id).outerjoin(
                db.lifecycle_stages,
                and_(
                    db.lifecycle_stages.c.kind == "account",
                    db.lifecycle_stages.c.name == db.accounts.c.lifecycle_stage,
                ),
            )
        )
        .where(db.accounts.c.is_deleted.is_(False))
        .order_by(db.accounts.c.name)
    )
    df = scope.frame(stmt, "accounts")
    df["stage_locked"] = df["stage_locked"].astype(bool)
    return df
