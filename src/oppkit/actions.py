"""The few writes a person makes from a notebook: notes, tasks, members, privacy.

Why a module of plain functions: the Kit reads; these write, each in one transaction,
with the same visibility rules as the Kit (a private deal the user may not see is not
found). The widgets, the CLI and a notebook cell all call the same functions.

Example::

    kit = oppkit.connect(user="ava.patel@northwind.example")
    oppkit.actions.add_note(kit, "Acme pilot", "Call went well; pricing next week.")
    task = oppkit.actions.add_task(kit, "Acme pilot", "Send the pricing sheet", due="2026-12-04")
    oppkit.actions.set_alert_status(kit, task, "done")
    oppkit.actions.add_member(kit, "Acme pilot", "mei.tanaka@acme-robotics.example")
    oppkit.actions.remove_member(kit, "Acme pilot", "mei.tanaka@acme-robotics.example")
    oppkit.actions.set_private(kit, "Acme pilot", True)     # only the owner may
    oppkit.actions.link_activity(kit, 4711, "Acme pilot")  # matching was not sure
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from .db.engine import write_transaction
from .db.schema import (
    activities,
    activity_people,
    activity_sources,
    alerts,
    opportunities,
    opportunity_people,
)
from .errors import OppkitError
from .matching import PERSON_LINK, SOURCE_LINK, follow_activities, rematch_opportunities
from .scope import NotFoundError, Scope, ScopeLike, scope_of, to_utc

SOURCE = "oppkit"
ALERT_STATUSES = ("open", "done", "dismissed")


class NotAllowed(OppkitError):
    """The Kit's user may not do this (e.g. change the privacy of someone else's deal)."""

    exit_code = 2


def add_note(kit: ScopeLike, opportunity: Any, text: str, *, by: str | None = None) -> int:
    """A note on the deal's timeline (kind ``note``, source ``oppkit``); its activity id.

    The first line becomes the subject. ``by`` (an email) defaults to the Kit's user.

    >>> add_note(kit, "Acme pilot", "Bob wants the pilot to start in March.")
    """
    text = (text or "").strip()
    if not text:
        raise OppkitError("a note needs some text")
    opportunity_id = scope_of(kit).opportunity_id(opportunity)
    by_id = scope_of(kit).acting_person_id(by)
    now, note_id = datetime.now(UTC), f"note:{uuid.uuid4().hex}"
    with write_transaction(kit.engine) as conn:
        account_id = conn.scalar(
            select(opportunities.c.account_id).where(opportunities.c.id == opportunity_id)
        )
        activity_id = conn.execute(
            insert(activities)
            .values(
                kind="note",
                subject=text.splitlines()[0][:200],
                snippet=text,
                occurred_at=now,
                direction="internal",
                account_id=account_id,
                opportunity_id=opportunity_id,
                opportunity_link=SOURCE_LINK,  # written on the deal: never matched again
                sender_id=by_id,
                owner_id=by_id,
                source=SOURCE,
                source_id=note_id,
                created_at=now,
                updated_at=now,
            )
            .returning(activities.c.id)
        ).scalar_one()
        conn.execute(
            insert(activity_sources).values(
                source=SOURCE, source_id=note_id, activity_id=activity_id
            )
        )
        if by_id is not None:
            conn.execute(
                insert(activity_people).values(
                    activity_id=activity_id, person_id=by_id, role="from"
                )
            )
    return activity_id


def add_task(
    kit: ScopeLike, opportunity: Any, text: str, *, due: Any = None, kind: str = "task"
) -> int:
    """A task (or alert, ``kind="alert"``) entered by hand on the deal; its alert id.

    >>> add_task(kit, "Acme pilot", "Send the pricing sheet", due="2026-12-04")
    """
    text = (text or "").strip()
    if not text:
        raise OppkitError("a task needs some text")
    opportunity_id = scope_of(kit).opportunity_id(opportunity)
    with write_transaction(kit.engine) as conn:
        return conn.execute(
            insert(alerts)
            .values(
                kind=kind,
                text=text,
                due_at=None if due is None or due == "" else to_utc(due),
                status="open",
                opportunity_id=opportunity_id,
                rule="manual",
                source=SOURCE,
                source_id=f"{kind}:{uuid.uuid4().hex}",
            )
            .returning(alerts.c.id)
        ).scalar_one()


def set_alert_status(kit: ScopeLike, alert_id: int, status: str = "done") -> None:
    """Mark an alert or task ``done``, ``dismissed`` or ``open`` again.

    >>> set_alert_status(kit, 42, "done")
    """
    if status not in ALERT_STATUSES:
        raise OppkitError(f"status must be one of {', '.join(ALERT_STATUSES)}")
    with kit.engine.connect() as conn:
        opportunity_id = conn.scalar(select(alerts.c.opportunity_id).where(alerts.c.id == alert_id))
    if opportunity_id is not None:
        scope_of(kit).opportunity_id(opportunity_id)  # not found when the user may not see the deal
    with write_transaction(kit.engine) as conn:
        done = conn.execute(
            update(alerts)
            .where(alerts.c.id == int(alert_id), alerts.c.is_deleted.is_(False))
            .values(status=status, updated_at=datetime.now(UTC))
        ).rowcount
    if not done:
        raise NotFoundError(f"no alert with id {alert_id}")


def add_member(kit: ScopeLike, opportunity: Any, person: Any, *, role: str | None = None) -> int:
    """Make a person (an email or id) a member of the deal; the membership row's id.

    Adding someone who is already a member changes nothing and returns their row.
    The account's activities within the deal's window are matched again
    (:mod:`oppkit.matching`): the new member's mail may now point at this deal.

    >>> add_member(kit, "Acme pilot", "mei.tanaka@acme-robotics.example", role="Buyer")
    """
    opportunity_id = scope_of(kit).opportunity_id(opportunity)
    person_id = scope_of(kit).person_ids(person)[0]
    with write_transaction(kit.engine) as conn:
        existing = conn.scalar(
            select(opportunity_people.c.id).where(
                opportunity_people.c.opportunity_id == opportunity_id,
                opportunity_people.c.person_id == person_id,
                opportunity_people.c.kind == "member",
                opportunity_people.c.is_deleted.is_(False),
            )
        )
        if existing is not None:
            return existing
        member_id = conn.execute(
            insert(opportunity_people)
            .values(
                opportunity_id=opportunity_id,
                person_id=person_id,
                kind="member",
                role=role,
                source=SOURCE,
                source_id=f"member:{uuid.uuid4().hex}",
            )
            .returning(opportunity_people.c.id)
        ).scalar_one()
        rematch_opportunities(conn, [opportunity_id], members_only=True)
    return member_id


def _owned_deal(kit: ScopeLike, opportunity: Any, what: str) -> int:
    """The deal's id when the scope's user owns it; :class:`NotAllowed` otherwise."""
    scope = scope_of(kit)
    opportunity_id = scope.opportunity_id(opportunity)
    if scope.user_id is None or _owner_of(scope, opportunity_id) != scope.user_id:
        raise NotAllowed(f"only the deal's owner can {what}")
    return opportunity_id


def _owner_of(scope: Scope, opportunity_id: int) -> int | None:
    with scope.engine.connect() as conn:
        return conn.scalar(
            select(opportunities.c.owner_id).where(opportunities.c.id == opportunity_id)
        )


def _memberships(opportunity_id: int, person_id: int, kind: str):  # noqa: ANN202
    return (
        opportunity_people.c.opportunity_id == opportunity_id,
        opportunity_people.c.person_id == person_id,
        opportunity_people.c.kind == kind,
        opportunity_people.c.is_deleted.is_(False),
    )


def remove_member(kit: ScopeLike, opportunity: Any, person: Any) -> int:
    """Take a person off the deal (owner only); how many memberships were removed.

    On a private deal this withdraws their access at once: they no longer see it
    anywhere, and their following of it ends too, so no digest (even one due now)
    carries it. The deal's owner cannot be removed.

    >>> remove_member(kit, "Acme pilot", "mei.tanaka@acme-robotics.example")
    """
    opportunity_id = _owned_deal(kit, opportunity, "remove its members")
    person_id = scope_of(kit).person_ids(person)[0]
    if person_id == scope_of(kit).user_id:
        raise NotAllowed("the owner cannot remove themselves from their deal")
    with write_transaction(kit.engine) as conn:
        removed = conn.execute(
            update(opportunity_people)
            .where(*_memberships(opportunity_id, person_id, "member"))
            .values(is_deleted=True)
        ).rowcount
        private = conn.scalar(
            select(opportunities.c.is_private).where(opportunities.c.id == opportunity_id)
        )
        if private:
            conn.execute(
                update(opportunity_people)
                .where(*_memberships(opportunity_id, person_id, "follower"))
                .values(is_deleted=True)
            )
    return removed


def set_member_role(kit: ScopeLike, opportunity: Any, person: Any, role: str | None) -> None:
    """Change a member's role on the deal (owner only), e.g. "Decision maker".

    >>> set_member_role(kit, "Acme pilot", "mei.tanaka@acme-robotics.example", "Buyer")
    """
    opportunity_id = _owned_deal(kit, opportunity, "change its members' roles")
    person_id = scope_of(kit).person_ids(person)[0]
    with write_transaction(kit.engine) as conn:
        changed = conn.execute(
            update(opportunity_people)
            .where(*_memberships(opportunity_id, person_id, "member"))
            .values(role=role or None)
        ).rowcount
    if not changed:
        raise NotFoundError(f"{person!r} is not a member of this deal")


def is_owner(kit: ScopeLike, opportunity: Any) -> bool:
    """Whether the Kit's user owns the deal (only the owner edits its settings)."""
    scope = scope_of(kit)
    opportunity_id = scope.opportunity_id(opportunity)
    return scope.user_id is not None and _owner_of(scope, opportunity_id) == scope.user_id


def set_private(kit: ScopeLike, opportunity: Any, private: bool) -> None:
    """Make the deal private (owner and members only) or visible to all; owner only.

    Raises :class:`NotAllowed` unless the Kit's user (``connect(user=...)``) owns it.

    >>> set_private(oppkit.connect(user="ava.patel@northwind.example"), "Acme pilot", True)
    """
    opportunity_id = _owned_deal(kit, opportunity, "change its privacy")
    with write_transaction(kit.engine) as conn:
        conn.execute(
            update(opportunities)
            .where(opportunities.c.id == opportunity_id)
            .values(is_private=bool(private), updated_at=datetime.now(UTC))
        )


def link_activity(kit: ScopeLike, activity_id: int, opportunity: Any | None) -> None:
    """Put an activity on the deal a person knows it belongs to (None: the account only).

    Matching leaves an activity on its account when two deals remain possible
    (``kit.possible_deals()`` lists them); a person who knows settles it here. The choice
    is kept: no sync and no re-matching changes it. A deal link Salesforce owns (a
    Task's or Event's WhatId) is changed in Salesforce, not here.

    >>> link_activity(kit, 4711, "Acme Robotics — Fleet analytics expansion")
    """
    scope = scope_of(kit)
    deal_id = None if opportunity is None else scope.opportunity_id(opportunity)
    with write_transaction(kit.engine) as conn:
        row = conn.execute(
            select(activities.c.account_id, activities.c.opportunity_link).where(
                activities.c.id == int(activity_id),
                activities.c.is_deleted.is_(False),
                scope.visible_activity(),
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no activity with id {activity_id}")
        from_salesforce = conn.scalar(
            select(activity_sources.c.source).where(
                activity_sources.c.activity_id == int(activity_id),
                activity_sources.c.source == "salesforce",
            )
        )
        if row.opportunity_link == SOURCE_LINK and from_salesforce:
            raise NotAllowed(
                "Salesforce sets this activity's deal (its Related To); change it there"
            )
        account_id = row.account_id
        if deal_id is not None:
            deal_account = conn.scalar(
                select(opportunities.c.account_id).where(opportunities.c.id == deal_id)
            )
            if account_id is not None and deal_account not in (None, account_id):
                raise OppkitError("that deal is of another account than the activity")
            account_id = account_id if account_id is not None else deal_account
        conn.execute(
            update(activities)
            .where(activities.c.id == int(activity_id))
            .values(
                opportunity_id=deal_id,
                opportunity_link=PERSON_LINK,
                account_id=account_id,
                updated_at=datetime.now(UTC),
            )
        )
        follow_activities(conn, [int(activity_id)])
