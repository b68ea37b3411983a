"""Stage actions: what a workflow stage lets a person do from a meeting or call on a deal.

Why: after a meeting or a call, what comes next depends on where the deal stands (a
follow-up call in qualification, a summary letter after a discovery meeting). The
workflow file lists those actions under each stage (``[[stages.actions]]``, see
:mod:`oppkit.workflow.definition`); from a meeting or call linked to a deal,
:func:`stage_actions` lists the actions of the deal's current stage and of the stages it
stood in before (``stage_history``, newest first), and :func:`perform_stage_action`
records what was done on the deal's timeline, in one transaction:

* an ``activity`` action adds an activity of its ``activity_kind`` (source ``oppkit``),
  titled from its ``subject`` template (its optional ``template`` is the text); a task,
  call or meeting is planned (``is_planned``) at ``due`` (default: now), a note is done
  now;
* a ``letter`` action adds an activity of kind ``letter`` (outbound): its subject and
  text rendered from the templates, the snippet one line of the text. oppkit records the
  letter; it does not post or mail it (messages oppkit sends are a transition's
  communications).

Templates are ``str.format`` over the deal's values
(:func:`oppkit.workflow.engine.opportunity_values`: ``{name}``, ``{account}``,
``{amount:,.0f}``, ``{contact_name}``, ``{owner}``...), the meeting's or call's
``{activity_subject}``, ``{activity_date}`` (a date) and ``{activity_kind}``, ``{action}``,
``{by}`` (who performs it, else the deal's owner) and any keyword given to
:func:`perform_stage_action`. Text is stored as rendered (raw); whatever shows it as HTML
escapes it.

What links the new activity to the meeting or call it came from (and keeps a letter's
full text): one ``links`` row on the deal, kind ``stage_action``, reference
``activity:<new id>``, whose ``data`` holds ``activity_id`` (the new one),
``from_activity_id``, ``stage``, ``action``, ``kind`` and, for a letter, ``text`` (the
whole letter, line breaks kept). ``kit.workflow.links(deal)`` reads them back. The
meeting's own row is not touched (its columns belong to the source it came from). When
that meeting or call is an interaction plan (a row of ``interactions``), the new activity
is also one of the plan's items (``plan_items``).

Privacy: an activity on a private deal the user may not see is not found
(:class:`~oppkit.scope.NotFoundError`), like every other lookup.

Example::

    kit = oppkit.connect(user="ava.patel@northwind.example")
    meeting = kit.timeline(opportunity="Acme pilot", kind="meeting").iloc[0]
    kit.stage_actions(meeting)            # stage, name, kind, activity_kind, subject, from_stage
    kit.perform_stage_action(meeting, "Schedule follow-up call", due="2026-12-04 15:00")
    kit.perform_stage_action(meeting, "Send meeting summary letter", next_steps="A pilot.")
    kit.workflow.links("Acme pilot")      # kind stage_action: what was done, from which meeting
"""

from __future__ import annotations

import numbers
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, insert, or_, select

from .db.engine import write_transaction
from .db.schema import (
    activities,
    activity_people,
    activity_sources,
    interactions,
    links,
    opportunities,
    people,
    plan_items,
    stage_arrivals,
    stage_history,
    stages,
    steps,
)
from .db.schema import stage_actions as action_table
from .matching import SOURCE_LINK
from .scope import NotFoundError, Scope, ScopeLike, scope_of, to_utc
from .workflow.communications import render
from .workflow.engine import opportunity_values
from .workflow.model import WorkflowError

__all__ = [
    "ACTION_COLUMNS",
    "LINK_KIND",
    "STARTS_FROM",
    "StageActionRefused",
    "perform_stage_action",
    "stage_actions",
]

SOURCE = "oppkit"
LINK_KIND = "stage_action"  # links.kind of the row that records a performed action
STARTS_FROM = ("meeting", "call")  # the activities stage actions start from
PLANNED_KINDS = ("task", "call", "meeting")  # an activity action of these kinds is planned
ACTION_COLUMNS = ["stage", "name", "kind", "activity_kind", "subject", "from_stage"]
SNIPPET_LIMIT = 300


class StageActionRefused(WorkflowError):
    """The activity is no meeting or call on a deal, or the deal has no such action."""


@dataclass(frozen=True)
class _Origin:
    id: int
    kind: str
    subject: str | None
    occurred_at: datetime
    opportunity_id: int
    account_id: int | None
    stage: str | None


def _activity_id(ref: Any) -> int:
    """An activity given by id, or as a row of a frame (a Series, a one-row frame)."""
    if isinstance(ref, pd.DataFrame):
        if len(ref) != 1:
            raise NotFoundError(f"give one activity, not {len(ref)} rows")
        ref = ref.iloc[0]
    if isinstance(ref, (pd.Series, dict)):
        ref = ref.get("id")
    elif hasattr(ref, "_fields") and "id" in ref._fields:  # a row of itertuples()
        ref = ref.id
    if isinstance(ref, bool) or not isinstance(ref, numbers.Integral):
        raise NotFoundError(f"no activity matches {ref!r} (give its id)")
    return int(ref)


def _action_ref(action: Any) -> tuple[str | None, str]:
    """(stage or None, name): an action given by name, or as a row of the actions frame."""
    if isinstance(action, str):
        return None, action.strip()
    if isinstance(action, (pd.Series, dict)):
        return action.get("stage"), str(action.get("name"))
    if hasattr(action, "_fields"):
        return getattr(action, "stage", None), str(action.name)
    raise StageActionRefused(f"give a stage action by its name, not {action!r}")


def _origin(conn: Connection, scope: Scope, activity_id: int) -> _Origin:
    """The meeting or call, on a deal this user may see; else not found or refused.

    One query: the activity with its deal, found only when that deal may be seen (an
    activity on a deal this user may not see, or a deleted one, is no different from an
    id nobody has: not even its kind shows)."""
    row = conn.execute(
        select(
            activities.c.id,
            activities.c.kind,
            activities.c.subject,
            activities.c.occurred_at,
            activities.c.opportunity_id,
            opportunities.c.account_id,
            opportunities.c.stage,
        )  # fmt: skip
        .select_from(
            activities.outerjoin(opportunities, opportunities.c.id == activities.c.opportunity_id)
        )
        .where(
            activities.c.id == activity_id,
            activities.c.is_deleted.is_(False),
            or_(
                activities.c.opportunity_id.is_(None),
                and_(opportunities.c.is_deleted.is_(False), scope.visible()),
            ),
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no activity with id {activity_id}")
    if row.kind not in STARTS_FROM:
        raise StageActionRefused(
            f"activity {activity_id} is {'an' if row.kind[:1] in 'aeiou' else 'a'} {row.kind}: "
            "stage actions start from a meeting or a call"
        )
    if row.opportunity_id is None:
        raise StageActionRefused(
            f"activity {activity_id} is on no deal: link it to one first (kit.link_activity)"
        )
    return _Origin(*row)


def _stage_order(conn: Connection, origin: _Origin) -> dict[str, str]:
    """Stage name -> "current" or "previous", current first, then newest first.

    A Salesforce stage counts as the workflow stage it arrives at (``stage_arrivals``)
    and as itself, so actions of either apply.
    """
    names: list[str | None] = [origin.stage]
    for old, new in conn.execute(
        select(stage_history.c.old_value, stage_history.c.new_value)
        .where(
            stage_history.c.opportunity_id == origin.opportunity_id,
            stage_history.c.field == "stage",
            stage_history.c.is_deleted.is_(False),
        )
        .order_by(stage_history.c.changed_at.desc(), stage_history.c.id.desc())
    ):
        names += [new, old]
    given = [n for n in dict.fromkeys(names) if n]
    arrives = dict(
        conn.execute(
            select(stage_arrivals.c.stage_name, stages.c.name)
            .join(steps, steps.c.id == stage_arrivals.c.step_id)
            .join(stages, stages.c.id == steps.c.stage_id)
            .where(stage_arrivals.c.stage_name.in_(given))
        ).all()
    )
    order: dict[str, str] = {}
    for name in given:
        where = "current" if name == origin.stage else "previous"
        for key in (arrives.get(name, name), name):
            order.setdefault(key, where)
    return order


def _listed(conn: Connection, origin: _Origin) -> list[tuple[Any, str]]:
    """(stage_actions row, from_stage) for the deal, in the order they are shown."""
    order = _stage_order(conn, origin)
    rows = conn.execute(
        select(action_table)
        .where(action_table.c.stage_name.in_(list(order)))
        .order_by(action_table.c.sort_order, action_table.c.id)
    ).all()
    position = {name: i for i, name in enumerate(order)}
    rows = sorted(rows, key=lambda r: position[r.stage_name])  # stable: file order within
    return [(r, order[r.stage_name]) for r in rows]


def stage_actions(scope: ScopeLike, activity: Any) -> pd.DataFrame:
    """The stage actions a meeting or call on a deal offers: its current stage's first, then
    those of the stages it stood in before (newest first).

    ``activity`` is an activity id or a row of ``kit.timeline()``. Columns: stage, name,
    kind (activity / letter), activity_kind, subject (the template), from_stage (current
    / previous). Raises :class:`NotFoundError` for an activity the user may not see and
    :class:`StageActionRefused` for one that is no meeting or call, or on no deal.

    >>> kit.stage_actions(4711)
    """
    scope = scope_of(scope)
    activity_id = _activity_id(activity)
    with scope.engine.connect() as conn:
        listed = _listed(conn, _origin(conn, scope, activity_id))
    df = pd.DataFrame(
        [(r.stage_name, r.name, r.kind, r.activity_kind, r.subject, where) for r, where in listed],
        columns=ACTION_COLUMNS,
    )
    return scope.tag(df, "stage_actions")


def perform_stage_action(
    scope: ScopeLike, activity: Any, action: Any, *, by: str | None = None, due: Any = None,
    **values: Any,
) -> int:  # fmt: skip
    """Do one of the meeting's or call's stage actions; the new activity's id.

    ``action`` is a name (the current stage's first when stages share one) or a row of
    :func:`stage_actions`. ``by`` (an email) defaults to the scope's user; ``due`` is when
    a planned task, call or meeting is to happen (default now); other keywords fill the
    templates' placeholders (``next_steps="..."``). See the module docs for what is
    recorded.

    >>> kit.perform_stage_action(4711, "Schedule follow-up call", due="2026-12-04 15:00")
    """
    scope = scope_of(scope)
    activity_id = _activity_id(activity)
    want_stage, want_name = _action_ref(action)
    by_id = scope.acting_person_id(by)
    when = _due(due)
    with write_transaction(scope.engine) as conn:
        origin = _origin(conn, scope, activity_id)
        listed = _listed(conn, origin)
        matches = [
            r for r, _where in listed if want_stage is None or r.stage_name == want_stage
        ]  # fmt: skip
        chosen = next((r for r in matches if r.name == want_name), None) or next(
            (r for r in matches if r.name.casefold() == want_name.casefold()), None
        )
        if chosen is None:
            names = ", ".join(dict.fromkeys(repr(r.name) for r, _where in listed)) or "none"
            raise StageActionRefused(
                f"no stage action {want_name!r} for this {origin.kind}'s deal (stage "
                f"{origin.stage!r}; its actions: {names})"
            )
        if when is not None and not _planned(chosen):
            raise StageActionRefused(
                f"{chosen.name!r} makes a {chosen.activity_kind or chosen.kind}, which has no due"
            )
        new_id = _record(conn, origin, chosen, by_id, when, values)
    return new_id


def _planned(action: Any) -> bool:
    return action.kind == "activity" and action.activity_kind in PLANNED_KINDS


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _record(
    conn: Connection, origin: _Origin, action: Any, by_id: int | None,
    due: datetime | None, values: dict[str, Any],
) -> int:  # fmt: skip
    """The new activity, its people, its link to the origin (and its plan); its id."""
    context = opportunity_values(conn, origin.opportunity_id)
    by_name = conn.scalar(select(people.c.name).where(people.c.id == by_id)) if by_id else None
    context.update(
        activity_subject=origin.subject,
        activity_date=_day(origin.occurred_at),
        activity_kind=origin.kind,
        action=action.name,
        by=by_name or context.get("owner"),
    )
    context.update(values)
    subject = _one_line(render(action.subject, context)) if action.subject else action.name
    text = render(action.template, context) if action.template else None
    now = datetime.now(UTC)
    letter = action.kind == "letter"
    kind = "letter" if letter else action.activity_kind
    planned = _planned(action)
    source_id = f"stage-action:{uuid.uuid4().hex}"
    new_id = conn.execute(
        insert(activities)
        .values(
            kind=kind,
            subject=subject,
            snippet=_one_line(text)[:SNIPPET_LIMIT] if text else None,
            occurred_at=due or now,
            direction="outbound" if letter else ("internal" if kind in ("task", "note") else None),
            account_id=origin.account_id,
            opportunity_id=origin.opportunity_id,
            opportunity_link=SOURCE_LINK,  # made on the deal: never matched again
            sender_id=by_id,
            owner_id=by_id,
            is_planned=planned,
            source=SOURCE,
            source_id=source_id,
            created_at=now,
            updated_at=now,
        )  # fmt: skip
        .returning(activities.c.id)
    ).scalar_one()
    conn.execute(insert(activity_sources).values(source=SOURCE, source_id=source_id,
                                                 activity_id=new_id))  # fmt: skip
    if by_id is not None:
        conn.execute(insert(activity_people).values(activity_id=new_id, person_id=by_id,
                                                     role="from"))  # fmt: skip
    contact = context.get("contact_email")
    if letter and contact:
        to_id = conn.scalar(select(people.c.id).where(people.c.email == contact))
        if to_id is not None and to_id != by_id:
            conn.execute(insert(activity_people).values(activity_id=new_id, person_id=to_id,
                                                        role="to"))  # fmt: skip
    data = {
        "activity_id": new_id, "from_activity_id": origin.id, "stage": action.stage_name,
        "action": action.name, "kind": kind, "subject": subject,
    }  # fmt: skip
    if text is not None:
        data["text"] = text
    conn.execute(
        insert(links).values(
            opportunity_id=origin.opportunity_id,
            kind=LINK_KIND,
            reference=f"activity:{new_id}",
            data=data,
            created_at=now,
        )  # fmt: skip
    )
    plan = conn.scalar(select(interactions.c.id).where(interactions.c.activity_id == origin.id))
    if plan is not None:
        conn.execute(insert(plan_items).values(interaction_id=plan, activity_id=new_id))
    return new_id


def _due(due: Any) -> datetime | None:
    if due is None or due == "":
        return None
    try:
        return to_utc(due)
    except (TypeError, ValueError) as exc:
        raise StageActionRefused(f"due: {due!r} is not a date or a time") from exc


def _day(when: datetime | date | None) -> date | None:
    if not isinstance(when, datetime):
        return when
    return (when if when.tzinfo is None else when.astimezone(UTC)).date()  # stored in UTC
