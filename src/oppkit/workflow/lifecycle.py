"""Contact and account lifecycle: stages moved by rules on timeline events, or by hand.

Why: "who is engaged, who bounced, which accounts are customers" should follow from
what happened, without anyone updating a field, and a person's judgement must win over
a rule: a stage set by hand whose definition says ``locks = true`` is never changed by
rules again (until someone sets another stage by hand).

Events (read from activities, each activity once: a cursor in ``sync_state``):

- ``email_sent``: an outbound, non-automatic email -> its external recipients
- ``reply_received``: an inbound email that is no bounce or auto-reply -> its sender
- ``unsubscribe``: an inbound email whose subject or text starts with "unsubscribe", or
  an activity with status ``unsubscribed`` -> its sender / external participants
- ``bounce``: an email with status ``bounce`` -> the external addresses it names
- ``meeting_booked``: a meeting (planned or held) -> its external attendees
- ``opportunity_opened`` / ``opportunity_won``: an account with an open / a won deal
  (and, for ``opportunity_won``, the deal's external members)

A person's event also counts for their account. Rules only move forward in the order
the stages are defined, so re-running :meth:`Lifecycle.apply_rules` changes nothing.

The cursor remembers the rules it was computed under (and each kind's stage order). A
rule added or changed since -- rules loaded after a run without any, a rule moving to
another stage, the stages of its kind reordered -- is applied to every past event too,
once; rules that did not change are not run over old events again. A stage set by hand
that locks still wins.

Salesforce: each stage may map to a Salesforce status (``external_status``). Where the
team names the field that holds it (``[salesforce] contact_status_field`` /
``account_status_field``, or ``OPPKIT_SF_CONTACT_STATUS_FIELD`` /
``OPPKIT_SF_ACCOUNT_STATUS_FIELD``), the Salesforce sync reads it back: a status changed
in Salesforce moves the stage to the one it maps to (history reason ``salesforce``),
except a locked one -- the manual lock wins locally. The other way, a stage changed here
(by hand or by a rule) of a Salesforce Contact or Account is queued for Salesforce in
``outbound_changes`` with write-back on (:class:`oppkit.writeback.StatusQueue`), pushed by
the Salesforce agent before it pulls; a conflict (someone changed the status there
meanwhile) is shown in ``kit.changes()`` and settled with :meth:`Lifecycle.resolve_conflict`.
With write-back off the change stays local and is *not* refused, unlike a deal's
Salesforce fields: the lifecycle stage is oppkit's own (``db.ownership.OPPKIT_OWNED``);
only pushing its status to Salesforce is the team's opt-in. A stage changed here is not
undone by the next sync either way: only a status that changes in Salesforce moves it.

Example::

    kit.lifecycle.apply_rules()                       # DataFrame of what moved
    kit.lifecycle.set("hank@globex.example", "Unsubscribed", by="ava.patel@northwind.example")
    kit.people()[["email", "lifecycle_stage", "lifecycle_category"]]
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, or_, select, true, update

from ..db.engine import write_transaction
from ..db.ownership import LIFECYCLE_STATUS
from ..db.schema import (
    accounts,
    activities,
    activity_people,
    lifecycle_history,
    lifecycle_rules,
    lifecycle_stages,
    opportunities,
    opportunity_people,
    outbound_changes,
    people,
    stages,
    sync_state,
)
from ..identity import normalise_email
from ..lifecycle_status import FROM_SALESFORCE, TARGETS, StatusMap, move_stage
from ..scope import ScopeLike, scope_of
from ..writeback import StatusQueue, settle_conflict
from .model import LIFECYCLE_KINDS, WorkflowError

CURSOR = {"agent": "lifecycle", "source": "oppkit", "object": "activities"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TABLES = TARGETS
RECIPIENT_ROLES = ("to", "cc", "bcc")


def _events(
    conn: Connection, after: int, up_to: int | None = None
) -> tuple[list[tuple[str, int, str, int]], int]:
    """(kind, id, event, activity_id) for activities after id ``after`` (and up to id
    ``up_to``), oldest first; and the newest id read."""
    rows = conn.execute(
        select(activities.c.id, activities.c.kind, activities.c.direction, activities.c.is_auto,
               activities.c.status, activities.c.subject, activities.c.snippet,
               activities.c.account_id)
        .where(activities.c.id > after, activities.c.is_deleted.is_(False),
               activities.c.id <= up_to if up_to is not None else true())
        .order_by(activities.c.occurred_at, activities.c.id)
    ).all()  # fmt: skip
    if not rows:
        return [], after
    last = max(r.id for r in rows)
    parts: dict[int, list[tuple[int, str, int | None]]] = {}
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 500):
        for a_id, p_id, role, account_id in conn.execute(
            select(activity_people.c.activity_id, people.c.id, activity_people.c.role,
                   people.c.account_id)
            .join(people, people.c.id == activity_people.c.person_id)
            .where(activity_people.c.activity_id.in_(ids[start:start + 500]),
                   people.c.is_internal.is_(False), people.c.is_deleted.is_(False))
        ):  # fmt: skip
            parts.setdefault(a_id, []).append((p_id, role, account_id))
    events: list[tuple[str, int, str, int]] = []
    for r in rows:
        who = parts.get(r.id, [])
        text = f"{r.subject or ''}\n{r.snippet or ''}".strip().lower()
        found: list[tuple[int, int | None]] = []
        event = None
        if r.status == "unsubscribed":
            event, found = "unsubscribe", [(p, a) for p, _, a in who]
        elif r.kind == "email" and r.status == "bounce":
            named = {normalise_email(e) for e in _EMAIL.findall(f"{r.subject} {r.snippet}")}
            named.discard(None)
            found = [(p, a) for p, role, a in who if role != "from"]
            if named:
                found += list(conn.execute(
                    select(people.c.id, people.c.account_id).where(
                        people.c.email.in_(named), people.c.is_internal.is_(False))
                ).all())  # fmt: skip
            event = "bounce"
        elif r.kind == "email" and not r.is_auto and r.direction == "outbound":
            event, found = "email_sent", [(p, a) for p, role, a in who if role in RECIPIENT_ROLES]
        elif r.kind == "email" and not r.is_auto and r.direction == "inbound":
            event = "unsubscribe" if text.startswith("unsubscribe") else "reply_received"
            found = [(p, a) for p, role, a in who if role == "from"]
        elif r.kind == "meeting" and (r.status or "").lower() not in ("cancelled", "canceled"):
            event, found = "meeting_booked", [(p, a) for p, _, a in who]
        if event is None:
            continue
        for person_id, account_id in dict(found).items():
            events.append(("contact", person_id, event, r.id))
            if account_id or r.account_id:
                events.append(("account", account_id or r.account_id, event, r.id))
    return events, last


def _deal_events(conn: Connection) -> list[tuple[str, int, str, None]]:
    """Accounts with open or won deals, and the external members of won deals."""
    status = select(stages.c.status).where(stages.c.name == opportunities.c.stage).scalar_subquery()
    rows = conn.execute(
        select(opportunities.c.id, opportunities.c.account_id, status.label("status")).where(
            opportunities.c.is_deleted.is_(False)
        )
    ).all()
    events: list[tuple[str, int, str, None]] = []
    won = [r.id for r in rows if r.status == "won"]
    for r in rows:
        if r.account_id and r.status in (None, "open"):
            events.append(("account", r.account_id, "opportunity_opened", None))
    for r in rows:
        if r.account_id and r.status == "won":
            events.append(("account", r.account_id, "opportunity_won", None))
    if won:
        for (person_id,) in conn.execute(
            select(opportunity_people.c.person_id)
            .distinct()
            .join(people, people.c.id == opportunity_people.c.person_id)
            .where(opportunity_people.c.opportunity_id.in_(won),
                   opportunity_people.c.kind == "member",
                   opportunity_people.c.is_deleted.is_(False), people.c.is_internal.is_(False))
        ):  # fmt: skip
            events.append(("contact", person_id, "opportunity_won", None))
    return events


class Lifecycle:
    """``kit.lifecycle``: lifecycle stages of contacts and accounts, by rule or by hand."""

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)
        self.engine = self.scope.engine

    def stages(self, kind: str | None = None) -> pd.DataFrame:
        """The lifecycle stages in order: kind, name, category, external_status, locks."""
        stmt = select(
            lifecycle_stages.c.kind, lifecycle_stages.c.name, lifecycle_stages.c.category,
            lifecycle_stages.c.external_status, lifecycle_stages.c.locks,
        ).order_by(lifecycle_stages.c.kind.desc(), lifecycle_stages.c.sort_order)  # fmt: skip
        if kind is not None:
            stmt = stmt.where(lifecycle_stages.c.kind == kind)
        return self.scope.frame(stmt, "lifecycle_stages")

    def _target(self, ref: Any, kind: str | None) -> tuple[str, int]:
        if kind is None:
            kind = "contact" if isinstance(ref, str) and "@" in ref else "account"
        if kind not in LIFECYCLE_KINDS:
            raise WorkflowError(f"kind must be one of {', '.join(LIFECYCLE_KINDS)}")
        ids = self.scope.person_ids(ref) if kind == "contact" else self.scope.account_ids(ref)
        return kind, ids[0]

    def set(
        self, person_or_account: Any, stage: str, *, by: str | None = None, kind: str | None = None
    ) -> None:
        """Set a stage by hand (an email means a contact, else an account).

        When the stage ``locks``, automatic rules leave the contact or account alone. With
        write-back on, the status the stage maps to is queued for the Salesforce Contact
        or Account; off, the stage changes here only (never refused).

        >>> kit.lifecycle.set("acme-robotics.example", "Churned", by="ava.patel@northwind.example")
        """
        kind, target_id = self._target(person_or_account, kind)
        by_id = self.scope.acting_person_id(by)
        table, _ = _TABLES[kind]
        with write_transaction(self.engine) as conn:
            locks = conn.scalar(
                select(lifecycle_stages.c.locks).where(
                    lifecycle_stages.c.kind == kind, lifecycle_stages.c.name == stage
                )
            )
            if locks is None:
                known = conn.scalars(
                    select(lifecycle_stages.c.name)
                    .where(lifecycle_stages.c.kind == kind)
                    .order_by(lifecycle_stages.c.sort_order)
                ).all()
                raise WorkflowError(
                    f"no {kind} lifecycle stage {stage!r} (known: {', '.join(known) or 'none'})"
                )
            old = conn.scalar(select(table.c.lifecycle_stage).where(table.c.id == target_id))
            move_stage(conn, kind, target_id, old, stage, reason="manual", by_id=by_id,
                       locked=bool(locks))  # fmt: skip
            if old != stage:
                StatusQueue(conn).queue(kind, target_id, stage, origin="edit", by_id=by_id)

    def resolve_conflict(
        self, person_or_account: Any, keep: str, *, by: str | None = None, kind: str | None = None
    ) -> None:
        """Settle a conflict on the Salesforce status of a contact or account (someone
        changed it in Salesforce while a change from here waited): ``keep="mine"`` pushes
        this stage's status again, over theirs; ``keep="theirs"`` drops it and moves the
        stage to the one their status maps to (unless it is locked).

        >>> kit.lifecycle.resolve_conflict("jo@acme.example", keep="theirs")
        """
        kind, target_id = self._target(person_or_account, kind)
        by_id = self.scope.acting_person_id(by)
        table, key = _TABLES[kind]
        with write_transaction(self.engine) as conn:
            record = outbound_changes.c[key] == target_id
            change = settle_conflict(conn, record, LIFECYCLE_STATUS, keep, by_id=by_id, what=kind)
            if keep == "mine":
                return
            row = conn.execute(
                select(table.c.lifecycle_stage, table.c.stage_locked).where(table.c.id == target_id)
            ).one()
            new = StatusMap.load(conn, kind).stage_for(change["their_value"], row.lifecycle_stage)
            if new is not None and not row.stage_locked:
                move_stage(conn, kind, target_id, row.lifecycle_stage, new,
                           reason=FROM_SALESFORCE, by_id=by_id)  # fmt: skip

    def apply_rules(self) -> pd.DataFrame:
        """Move contacts and accounts by the rules, for events not seen before.

        A rule added or changed since the last run applies to past events too (the
        cursor keeps the rules it was computed under); a stage set by hand that locks is
        left alone. Returns what moved: kind, id, old_stage, new_stage, event,
        activity_id. Idempotent: running it again without new activities or changed
        rules changes nothing.
        """
        changes: list[dict[str, Any]] = []
        with write_transaction(self.engine) as conn:
            push = StatusQueue(conn)  # write-back: the statuses of the stages moved
            rank = {
                (k, n): o
                for k, n, o in conn.execute(
                    select(lifecycle_stages.c.kind, lifecycle_stages.c.name, lifecycle_stages.c.sort_order)
                )
            }  # fmt: skip
            rules = {
                (k, e): s
                for k, e, s in conn.execute(
                    select(lifecycle_rules.c.kind, lifecycle_rules.c.event, lifecycle_rules.c.stage)
                )
            }
            state = conn.execute(
                select(sync_state.c.id, sync_state.c.cursor).where(
                    *[sync_state.c[k] == v for k, v in CURSOR.items()]
                )
            ).first()
            cursor = (state.cursor or {}) if state else {}
            after = int(cursor.get("activity_id", 0))
            # what the cursor is computed under: the rules and each kind's stage order. A
            # rule it did not know, or one of a kind whose order changed, has not seen the
            # events before the cursor yet (a cursor that kept no rules knew none).
            applied = sorted([k, e, s] for (k, e), s in rules.items())
            order = {kind: [n for (k, n), _ in sorted(rank.items(), key=lambda i: i[1])
                            if k == kind] for kind in LIFECYCLE_KINDS}  # fmt: skip
            known = {tuple(r) for r in cursor.get("rules", [])}
            was = cursor.get("stages", {})
            fresh = {(k, e) for k, e, s in applied
                     if (k, e, s) not in known or was.get(k) != order[k]}  # fmt: skip
            events, last = _events(conn, after)
            if fresh and after:
                past, _ = _events(conn, 0, up_to=after)
                events = [ev for ev in past if (ev[0], ev[2]) in fresh] + events
            events += _deal_events(conn)
            current: dict[tuple[str, int], tuple[str | None, bool]] = {}
            for kind, target_id, event, activity_id in events:
                stage = rules.get((kind, event))
                if stage is None or (kind, stage) not in rank:
                    continue
                table, _ = _TABLES[kind]
                if (kind, target_id) not in current:
                    row = conn.execute(
                        select(table.c.lifecycle_stage, table.c.stage_locked).where(
                            table.c.id == target_id
                        )
                    ).first()
                    if row is None:
                        continue
                    current[(kind, target_id)] = (row.lifecycle_stage, bool(row.stage_locked))
                old, locked = current[(kind, target_id)]
                if locked or rank[(kind, stage)] <= rank.get((kind, old), 0):
                    continue
                move_stage(conn, kind, target_id, old, stage, reason=event,
                           activity_id=activity_id)  # fmt: skip
                push.queue(kind, target_id, stage, origin="rule")
                current[(kind, target_id)] = (stage, False)
                changes.append({"kind": kind, "id": target_id, "old_stage": old,
                                "new_stage": stage, "event": event, "activity_id": activity_id})  # fmt: skip
            now = datetime.now(UTC)
            position = {"activity_id": last, "rules": applied, "stages": order}
            if state is None:
                conn.execute(insert(sync_state).values(**CURSOR, cursor=position, last_run_at=now))
            else:
                conn.execute(
                    update(sync_state).where(sync_state.c.id == state.id)
                    .values(cursor=position, last_run_at=now)
                )  # fmt: skip
        columns = ["kind", "id", "old_stage", "new_stage", "event", "activity_id"]
        df = pd.DataFrame(changes, columns=columns)
        df["activity_id"] = df["activity_id"].astype("Int64")
        return df

    def history(self, person_or_account: Any = None, *, kind: str | None = None) -> pd.DataFrame:
        """Every lifecycle change, newest first: who, from, to, why (manual or the event)."""
        by = people.alias("by")
        who = people.alias("who")
        stmt = (
            select(
                lifecycle_history.c.kind,
                lifecycle_history.c.person_id,
                who.c.email,
                lifecycle_history.c.account_id,
                accounts.c.name.label("account"),
                lifecycle_history.c.old_stage,
                lifecycle_history.c.new_stage,
                lifecycle_history.c.reason,
                lifecycle_history.c.activity_id,
                lifecycle_history.c.changed_at,
                by.c.email.label("changed_by"),
            )  # fmt: skip
            .select_from(
                lifecycle_history.outerjoin(who, who.c.id == lifecycle_history.c.person_id)
                .outerjoin(accounts, accounts.c.id == lifecycle_history.c.account_id)
                .outerjoin(by, by.c.id == lifecycle_history.c.changed_by_id)
            )
            .where(
                # an event from an activity of a deal this user may not see is not shown
                or_(
                    lifecycle_history.c.activity_id.is_(None),
                    lifecycle_history.c.activity_id.not_in(
                        select(activities.c.id).where(
                            activities.c.opportunity_id.is_not(None),
                            activities.c.opportunity_id.not_in(self.scope.visible_opportunities()),
                        )
                    ),
                )
            )
            .order_by(lifecycle_history.c.changed_at.desc(), lifecycle_history.c.id.desc())
        )
        if person_or_account is not None:
            kind, target_id = self._target(person_or_account, kind)
            _, key = _TABLES[kind]
            stmt = stmt.where(
                lifecycle_history.c[key] == target_id, lifecycle_history.c.kind == kind
            )
        df = self.scope.frame(stmt, "lifecycle_history")
        df["changed_at"] = pd.to_datetime(df["changed_at"], utc=True)
        return df
