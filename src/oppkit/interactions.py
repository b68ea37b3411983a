"""Interactions: plan a call, meeting, visit... on an account, then record its result.

Why: the account's Sales tab is a list of what was planned with a customer and what came
of it. ``kit.interactions`` reads them as a frame (:func:`oppkit.frames.interactions`)
and makes the few writes a person does on them:

- *plan*: name, type (call, meeting, visit, email, sms, task, letter; ``[interactions]
  types`` in oppkit.toml), planned start and end, account (and deal), contact, assigned
  user, location and its comments, description, source type and reason. The plan is an
  activity on the timeline (planned: upcoming while its start is ahead, then *overdue*,
  listed in ``kit.open_tasks()`` with origin ``interaction``) and an ``interactions``
  row; it is oppkit's own: no sync touches it.
- *record a result*: when it happened, how long, the result type (one of
  ``[interactions] result_types``; :data:`oppkit.config.DEFAULT_RESULT_TYPES` without
  them), comments, a result description and optionally a message (:class:`Message`:
  email from a template or free text, or SMS). The result, the message's outbox row
  and its outbound activity on the timeline commit together; the message is sent after
  the commit with retries (:func:`oppkit.workflow.communications.deliver`; SMS through
  the sender registered for ``sms``), and ``kit.workflow.deliver()`` retries a failed one.
- *follow up*: a plan that follows another; what hangs under a plan (its follow-ups,
  the message its result sent, activities attached to it) is :meth:`Interactions.items`.

Salesforce Tasks and Events are interactions too (an open Task or a future Event is a
plan, a completed Task or a past Event a result), but their Status, Description and dates
are Salesforce's fields: recording a result on one, cancelling it or planning a follow-up
under it is refused with a message saying to do it in Salesforce. Writing Tasks back to
Salesforce is out of scope; a plan made here on a Salesforce account or deal stays
oppkit's (it is not created as a Salesforce Task) and changes none of Salesforce's fields.

Example::

    call = kit.interactions.plan("Pricing call", "call", start="2026-11-20 10:00",
                                 opportunity="Acme pilot", contact="bob@acme-robotics.example")
    kit.interactions(account="acme-robotics.example", status="planned")
    kit.interactions.record_result(call, "Reached", duration=25, comments="wants a quote",
                                   message={"template": "thank_you", "language": "de"})
    kit.interactions.follow_up(call, "Send the quote", "email", start="2026-11-22 09:00")
    kit.interactions.items(call)
"""

from __future__ import annotations

import numbers
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, insert, literal, select, update

from . import frames
from .actions import NotAllowed
from .config import (
    MessageTemplate,
    Settings,
    interaction_types,
    load_settings,
    message_templates,
    result_types,
)
from .db.engine import write_transaction
from .db.ownership import PERSON_LINK
from .db.schema import (
    accounts,
    activities,
    activity_people,
    activity_sources,
    interactions,
    opportunities,
    outbox,
    people,
    plan_items,
)
from .errors import OppkitError
from .frames.interactions import is_interaction, status_of
from .identity import normalise_email
from .matching import SOURCE_LINK
from .scope import NotFoundError, ScopeLike, scope_of, to_utc

__all__ = ["Interactions", "Message", "Recorded"]

SOURCE = "oppkit"
CHANNELS = ("email", "sms")
# an interaction's type -> the kind of its activity on the timeline
KIND_OF_TYPE = {"call": "call", "meeting": "meeting", "visit": "meeting", "email": "email",
                "sms": "sms"}  # fmt: skip
ITEM_COLUMNS = ["id", "relation", "kind", "name", "occurred_at", "status", "interaction_type",
                "opportunity_id", "source"]  # fmt: skip
_PHONE = re.compile(r"^\+?[\d ()./-]{5,30}$")


@dataclass
class Message:
    """The message a result sends (give it as this or as a dict of these keys).

    ``channel`` email or sms; ``to`` the recipient (default for email: the plan's contact,
    else the account's one person; an SMS needs a phone number); ``subject`` (email;
    default: the template's, else the plan's name); ``body`` free text, or ``template``
    the name of one of ``[interactions.templates]`` in oppkit.toml, in ``language`` where
    the template has it; ``html`` an HTML body for free text; ``as_text`` sends plain
    text only; ``attachments`` files (paths) an email carries. Subject, body and html
    are ``str.format`` templates over ``{name}``, ``{first_name}``, ``{email}``,
    ``{account}``, ``{opportunity}``, ``{interaction}``, ``{result_type}``,
    ``{comments}``, ``{planned_start}`` and ``{user}`` (in html every value is escaped).
    """

    channel: str = "email"
    to: str | None = None
    subject: str | None = None
    body: str | None = None
    template: str | None = None
    language: str | None = None
    html: str | None = None
    as_text: bool = False
    attachments: list[str] = field(default_factory=list)


@dataclass
class Recorded:
    """What :meth:`Interactions.record_result` did: the interaction (its activity id),
    and the message's outbox row, its outbound activity and how its delivery went
    (queued, sent or failed; None without a message)."""

    id: int
    message: int | None = None
    message_activity: int | None = None
    message_status: str | None = None


class Interactions:
    """``kit.interactions``: call it for the interactions frame; methods plan, record
    results and follow up (see the module docstring)."""

    def __init__(self, scope: ScopeLike, settings: Settings | None = None) -> None:
        self.scope = scope_of(scope)
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def __call__(
        self, *, account: Any = None, opportunity: Any = None,
        status: str | list[str] | None = None, assigned_to: Any = None,
        interaction_type: str | list[str] | None = None, source: str | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """The interactions frame (:func:`oppkit.frames.interactions.interactions`):
        ``status`` planned (overdue ones too), overdue, done or cancelled; ``source``
        oppkit or salesforce.

        >>> kit.interactions(account="acme-robotics.example", status="overdue")
        """
        return frames.interactions(
            self.scope, account=account, opportunity=opportunity, status=status,
            assigned_to=assigned_to, interaction_type=interaction_type, source=source,
        )  # fmt: skip

    def result_types(self) -> list[str]:
        """The result types a result may have (``[interactions] result_types``)."""
        return list(result_types(self.settings))

    def types(self) -> list[str]:
        """The types a plan may have (``[interactions] types``)."""
        return list(interaction_types(self.settings))

    def templates(self) -> dict[str, list[str]]:
        """Message templates by name, with the languages each has besides its default."""
        return {name: sorted(k for k in variants if k is not None)
                for name, variants in message_templates(self.settings).items()}  # fmt: skip

    # --- plans ----------------------------------------------------------------------

    def plan(
        self, name: str, interaction_type: str, *, start: datetime | str,
        end: datetime | str | None = None, account: Any = None, opportunity: Any = None,
        contact: str | None = None, assigned_to: str | None = None,
        location: str | None = None, location_comments: str | None = None,
        description: str | None = None, source_type: str | None = None,
        reason: str | None = None,
    ) -> int:  # fmt: skip
        """Plan an interaction; its id (the activity on the timeline).

        ``account`` or ``opportunity`` (or a ``contact`` of an account) says whose it is;
        a deal given is the plan's for good (no matching moves it). ``assigned_to``
        defaults to the Kit's user. ``start`` and ``end`` are times (naive means UTC).

        >>> kit.interactions.plan("Pricing call", "call", start="2026-11-20 10:00",
        ...                       opportunity="Acme pilot", location="Teams")
        """
        deal_id = self.scope.opportunity_id(opportunity) if opportunity is not None else None
        return self._plan(
            name, interaction_type, start=start, end=end, account=account, deal_id=deal_id,
            contact=contact, assigned_to=assigned_to, location=location,
            location_comments=location_comments, description=description,
            source_type=source_type, reason=reason, follows=None,
        )  # fmt: skip

    def follow_up(
        self, plan: Any, name: str, interaction_type: str | None = None, *,
        start: datetime | str, end: datetime | str | None = None,
        contact: str | None = None, assigned_to: str | None = None,
        location: str | None = None, location_comments: str | None = None,
        description: str | None = None, source_type: str | None = None,
        reason: str | None = None,
    ) -> int:  # fmt: skip
        """Plan an interaction that follows up ``plan`` (an id or a name): on its account
        and deal, by default of its type, with its contact and its assigned user. Its id.

        >>> kit.interactions.follow_up(call, "Send the quote", "email", start="2026-11-22")
        """
        with self.scope.engine.connect() as conn:
            row = self._find(conn, plan)
            _own(row, "plan a follow-up under")
            contact = contact or _contact_of(conn, row.id)
            if assigned_to is None and row.owner_id is not None:
                assigned_to = conn.scalar(select(people.c.email).where(people.c.id == row.owner_id))
        return self._plan(
            name, interaction_type or row.interaction_type, start=start, end=end,
            account=row.account_id, deal_id=row.opportunity_id, contact=contact,
            assigned_to=assigned_to, location=location, location_comments=location_comments,
            description=description, source_type=source_type, reason=reason,
            follows=row.interaction_id,
        )  # fmt: skip

    def _plan(
        self, name: str, interaction_type: str, *, start: Any, end: Any, account: Any,
        deal_id: int | None, contact: str | None, assigned_to: str | None,
        location: str | None, location_comments: str | None, description: str | None,
        source_type: str | None, reason: str | None, follows: int | None,
    ) -> int:  # fmt: skip
        name = " ".join(str(name or "").split())
        if not name:
            raise OppkitError("a plan needs a name")
        itype = self._type(interaction_type)
        begins = to_utc(start)
        ends = to_utc(end) if end is not None else None
        if ends is not None and ends < begins:
            raise OppkitError("a plan cannot end before it starts")
        account_id = None
        if account is not None:
            found = list(dict.fromkeys(self.scope.account_ids(account)))
            if len(found) > 1:
                raise NotFoundError(f"{len(found)} accounts match {account!r}; use the id")
            account_id = found[0]
        contact_id = self.scope.person_ids(contact)[0] if contact else None
        owner_id = self.scope.person_ids(assigned_to)[0] if assigned_to else self.scope.user_id
        now = datetime.now(UTC)
        with write_transaction(self.scope.engine) as conn:
            account_id = _account_for(conn, account_id, deal_id, contact_id)
            if owner_id is not None:
                assignee = conn.execute(
                    select(people.c.email, people.c.is_internal).where(people.c.id == owner_id)
                ).one()
                if not assignee.is_internal:
                    raise OppkitError(f"{assignee.email} is not one of our people: assign "
                                      "plans to colleagues")  # fmt: skip
            source_id = f"interaction:{uuid.uuid4().hex}"
            activity_id = conn.execute(
                insert(activities)
                .values(
                    kind=KIND_OF_TYPE.get(itype.lower(), "task"),
                    subject=name,
                    snippet=_one_line(description)[:300] or None,
                    occurred_at=begins,
                    account_id=account_id,
                    opportunity_id=deal_id,
                    # the deal a person chose, or the account only: matching leaves it
                    opportunity_link=SOURCE_LINK if deal_id is not None else PERSON_LINK,
                    owner_id=owner_id,
                    location=location,
                    is_planned=True,
                    status="planned",
                    source=SOURCE,
                    source_id=source_id,
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
                .returning(activities.c.id)
            ).scalar_one()
            conn.execute(
                insert(activity_sources).values(
                    source=SOURCE, source_id=source_id, activity_id=activity_id
                )
            )
            if contact_id is not None:
                conn.execute(
                    insert(activity_people).values(
                        activity_id=activity_id, person_id=contact_id, role="who"
                    )
                )
            conn.execute(
                insert(interactions).values(
                    activity_id=activity_id,
                    interaction_type=itype,
                    follows_id=follows,
                    source_type=source_type,
                    reason=reason,
                    planned_start=begins,
                    planned_end=ends,
                    location_comments=location_comments,
                    description=description,
                    status="planned",
                    created_by_id=self.scope.user_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        return activity_id

    def cancel(self, plan: Any) -> None:
        """Cancel a plan made in oppkit (it leaves the upcoming and overdue lists).

        >>> kit.interactions.cancel(call)
        """
        with write_transaction(self.scope.engine) as conn:
            row = self._find(conn, plan)
            _own(row, "cancel")
            _still_planned(row)
            conn.execute(
                update(interactions)
                .where(interactions.c.id == row.interaction_id)
                .values(status="cancelled", updated_at=datetime.now(UTC))
            )
            conn.execute(
                update(activities)
                .where(activities.c.id == row.id)
                .values(is_planned=False, status="cancelled", updated_at=datetime.now(UTC))
            )

    # --- results --------------------------------------------------------------------

    def record_result(
        self, plan: Any, result_type: str, *, at: datetime | str | None = None,
        duration: float | timedelta | None = None, comments: str | None = None,
        description: str | None = None, message: Message | dict | None = None,
        deliver: bool = True,
    ) -> Recorded:  # fmt: skip
        """Record what came of ``plan`` (an id or a name) and, with ``message``, send one.

        ``result_type`` is one of :meth:`result_types` (anything else is refused, listing
        them); ``at`` when it happened (default now; the activity moves to that date),
        ``duration`` in minutes (or a timedelta). The result, and the message's outbox row
        and outbound activity (on the timeline, queued until sent; under the plan in
        :meth:`items`), commit in one transaction; then the message is delivered with
        retries (``deliver=False`` leaves it to ``kit.workflow.deliver()``).

        A Salesforce Task or Event is refused: its Status and Description are Salesforce's
        fields, so complete it in Salesforce (oppkit does not write Tasks back).

        >>> kit.interactions.record_result(call, "Reached", duration=25,
        ...     message={"channel": "email", "template": "thank_you", "language": "de"})
        """
        with self.scope.engine.connect() as conn:
            row = self._find(conn, plan)
        _own(row, "record a result on")
        _still_planned(row)
        kind = self._result_type(result_type)
        when = to_utc(at) if at is not None else datetime.now(UTC)
        minutes = _minutes(duration)
        wanted = _message(message) if message is not None else None
        now = datetime.now(UTC)
        result = Recorded(row.id)
        with write_transaction(self.scope.engine) as conn:
            outgoing = self._render(conn, row, wanted, kind, comments) if wanted else None
            done = conn.execute(
                update(interactions)
                .where(interactions.c.id == row.interaction_id, interactions.c.status == "planned")
                .values(
                    status="done",
                    result_at=when,
                    result_type=kind,
                    result_comments=comments,
                    result_description=description,
                    updated_at=now,
                    message=outgoing["record"] if outgoing else None,
                )  # fmt: skip
            ).rowcount
            if not done:
                raise OppkitError(f"{row.subject!r} has a result already (or was cancelled)")
            conn.execute(
                update(activities)
                .where(activities.c.id == row.id)
                .values(
                    occurred_at=when,
                    duration_minutes=minutes,
                    is_planned=False,
                    status="done",
                    updated_at=now,
                )  # fmt: skip
            )
            if outgoing is not None:
                result.message_activity, result.message = self._queue(conn, row, outgoing, now)
                result.message_status = "queued"
        if deliver and result.message is not None:
            from .workflow.communications import deliver as send

            [outcome] = send(self.scope.engine, [result.message], settings=self.settings)
            result.message_status = outcome["status"]
        return result

    def _queue(self, conn: Connection, row: Any, out: dict, now: datetime) -> tuple[int, int]:
        """The message's outbound activity and outbox row, hung under the plan."""
        from .workflow.communications import record_outbound

        activity_id = record_outbound(
            conn, channel=out["channel"], recipient=out["to"], subject=out["subject"],
            body=out["body"], opportunity_id=row.opportunity_id, account_id=row.account_id,
            sender_id=self.scope.user_id, when=now, attachments=out["attachments"],
        )  # fmt: skip
        outbox_id = conn.execute(
            insert(outbox)
            .values(
                opportunity_id=row.opportunity_id,
                channel=out["channel"],
                recipient=out["to"],
                subject=out["subject"],
                body=out["body"],
                html=out["html"],
                status="pending",
                attempts=0,
                created_at=now,
                activity_id=activity_id,
            )  # fmt: skip
            .returning(outbox.c.id)
        ).scalar_one()
        conn.execute(
            insert(plan_items).values(interaction_id=row.interaction_id, activity_id=activity_id)
        )
        conn.execute(
            update(interactions)
            .where(interactions.c.id == row.interaction_id)
            .values(outbox_id=outbox_id)
        )
        return activity_id, outbox_id

    def _render(
        self, conn: Connection, row: Any, m: Message, result_type: str, comments: str | None
    ) -> dict[str, Any]:
        """The message to queue: recipient, subject, body, html, attachments, and what the
        interaction records of it."""
        from .workflow.communications import render, template_problem

        to = self._recipient(conn, row, m)
        template = self._template(m) if m.template else None
        subject = m.subject or (template.subject if template else None)
        body = template.body if template else m.body
        html = None if m.as_text else (template.html if template else m.html)
        if m.channel == "email" and not subject:
            subject = row.subject
        for text in (subject, body, html):
            problem = template_problem(text) if text else None
            if problem:
                raise OppkitError(f"message template: {problem}")
        # whom it is for: the recipient of an email, the plan's contact for an SMS
        whom = normalise_email(to) if m.channel == "email" else _contact_of(conn, row.id)
        person = conn.execute(
            select(people.c.name, people.c.email).where(people.c.email == whom)
        ).first() if whom else None  # fmt: skip
        account = conn.scalar(select(accounts.c.name).where(accounts.c.id == row.account_id))
        deal = conn.scalar(
            select(opportunities.c.name).where(opportunities.c.id == row.opportunity_id)
        ) if row.opportunity_id is not None else None  # fmt: skip
        user = conn.scalar(select(people.c.name).where(people.c.id == self.scope.user_id))
        name = (person.name if person else None) or to
        values = {
            "name": name, "first_name": name.split(" ")[0], "email": to,
            "account": account, "opportunity": deal,
            "interaction": row.subject, "result_type": result_type, "comments": comments,
            "planned_start": row.occurred_at.strftime("%Y-%m-%d %H:%M"),
            "user": user or self.scope.user,
        }  # fmt: skip
        rendered = {
            "channel": m.channel, "to": to,
            "subject": _one_line(render(subject, values)) if subject and m.channel == "email"
            else None,
            "body": render(body, values),
            "html": render(html, values, escape=True) if html and m.channel == "email" else None,
            "attachments": [str(Path(p)) for p in m.attachments],
        }  # fmt: skip
        rendered["record"] = {
            **{k: v for k, v in asdict(m).items() if k not in ("body", "html")},
            "to": to, "subject": rendered["subject"],
            "attachments": [Path(p).name for p in m.attachments],
        }  # fmt: skip
        return rendered

    def _recipient(self, conn: Connection, row: Any, m: Message) -> str:
        if m.channel == "sms":
            if not m.to or not _PHONE.match(m.to.strip()):
                raise OppkitError("an SMS needs to= a phone number (oppkit keeps no phone numbers)")
            return m.to.strip()
        if m.to:
            email = normalise_email(m.to)
            if not email or "@" not in email:
                raise OppkitError(f"not an email address: {m.to!r}")
            return email
        contact = _contact_of(conn, row.id)
        if contact:
            return contact
        found = conn.scalars(
            select(people.c.email).where(
                people.c.account_id == row.account_id,
                people.c.is_internal.is_(False),
                people.c.email.is_not(None),
                people.c.id.not_in(self.scope.hidden_people()),
            )
        ).all()
        if len(found) != 1:
            raise OppkitError(
                f"whom to? the plan has no contact and its account has {len(found)} people "
                "with an address: give to="
            )
        return found[0]

    def _template(self, m: Message) -> MessageTemplate:
        templates = message_templates(self.settings)
        variants = templates.get(m.template)
        if variants is None:
            raise OppkitError(
                f"no message template {m.template!r}; templates: "
                f"{', '.join(sorted(templates)) or 'none (add [interactions.templates] to oppkit.toml)'}"
            )
        language = (m.language or "").strip().lower()
        for key in (language, language.split("-")[0]):
            if key and key in variants:
                return variants[key]
        return variants[None]

    # --- what hangs under a plan ---------------------------------------------------

    def items(self, plan: Any) -> pd.DataFrame:
        """What hangs under ``plan``: its follow-ups (relation ``follow-up``), the message
        its result sent (``message``) and activities attached to it (``activity``).

        Columns: id (the activity), relation, kind, name, occurred_at, status,
        interaction_type, opportunity_id, source. Privacy as the timeline.

        >>> kit.interactions.items(call)
        """
        with self.scope.engine.connect() as conn:
            row = self._find(conn, plan)
            rows: list[tuple] = []
            if row.interaction_id is not None:
                now = datetime.now(UTC)
                shown = [activities.c.is_deleted.is_(False), self.scope.visible_activity()]
                follow_ups = (
                    select(
                        activities.c.id,
                        literal("follow-up"),
                        activities.c.kind,
                        activities.c.subject,
                        activities.c.occurred_at,
                        status_of(now),
                        interactions.c.interaction_type,
                        activities.c.opportunity_id,
                        activities.c.source,
                    )  # fmt: skip
                    .select_from(
                        interactions.join(activities, activities.c.id == interactions.c.activity_id)
                    )
                    .where(interactions.c.follows_id == row.interaction_id, *shown)
                )
                rows += [tuple(r) for r in conn.execute(follow_ups)]
                message = conn.scalar(
                    select(outbox.c.activity_id).where(outbox.c.id == row.outbox_id)
                ) if row.outbox_id is not None else None  # fmt: skip
                hung = (
                    select(
                        activities.c.id,
                        activities.c.kind,
                        activities.c.subject,
                        activities.c.occurred_at,
                        activities.c.status,
                        activities.c.opportunity_id,
                        activities.c.source,
                    )  # fmt: skip
                    .join(plan_items, plan_items.c.activity_id == activities.c.id)
                    .where(plan_items.c.interaction_id == row.interaction_id, *shown)
                )
                rows += [
                    (r.id, "message" if r.id == message else "activity", r.kind, r.subject,
                     r.occurred_at, r.status, None, r.opportunity_id, r.source)
                    for r in conn.execute(hung)
                ]  # fmt: skip
        df = pd.DataFrame(rows, columns=ITEM_COLUMNS)
        df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
        df["opportunity_id"] = df["opportunity_id"].astype("Int64")
        df = df.sort_values(["occurred_at", "id"], kind="stable").reset_index(drop=True)
        return self.scope.tag(df, "plan_items")

    def attach(self, plan: Any, activity_id: int) -> None:
        """Hang an activity (a letter, a task, a note...) under a plan made in oppkit; it
        is listed by :meth:`items`. Attaching it again changes nothing.

        >>> kit.interactions.attach(call, 4711)
        """
        with write_transaction(self.scope.engine) as conn:
            row = self._find(conn, plan)
            _own(row, "attach activities to")
            found = conn.scalar(
                select(activities.c.id).where(
                    activities.c.id == int(activity_id),
                    activities.c.is_deleted.is_(False),
                    self.scope.visible_activity(),
                )
            )
            if found is None or found == row.id:
                raise NotFoundError(f"no activity with id {activity_id}")
            known = conn.scalar(
                select(plan_items.c.activity_id).where(
                    plan_items.c.interaction_id == row.interaction_id,
                    plan_items.c.activity_id == found,
                )
            )
            if known is None:
                conn.execute(
                    insert(plan_items).values(interaction_id=row.interaction_id, activity_id=found)
                )

    # --- helpers --------------------------------------------------------------------

    def _find(self, conn: Connection, plan: Any) -> Any:
        """The interaction ``plan`` names (its activity id, its name, or a one-row frame)
        as this user may see it; NotFoundError otherwise."""
        if isinstance(plan, pd.DataFrame):
            if len(plan) != 1:
                raise NotFoundError(f"give one interaction, not {len(plan)}")
            plan = int(plan["id"].iloc[0])
        if isinstance(plan, pd.Series):
            plan = int(plan["id"])
        stmt = (
            select(
                activities.c.id,
                activities.c.subject,
                activities.c.kind,
                activities.c.occurred_at,
                activities.c.account_id,
                activities.c.opportunity_id,
                activities.c.owner_id,
                interactions.c.id.label("interaction_id"),
                func.coalesce(interactions.c.interaction_type, activities.c.kind).label(
                    "interaction_type"
                ),
                interactions.c.status,
                interactions.c.outbox_id,
            )  # fmt: skip
            .select_from(
                activities.outerjoin(interactions, interactions.c.activity_id == activities.c.id)
            )
            .where(
                activities.c.is_deleted.is_(False),
                is_interaction(),
                self.scope.visible_activity(),
            )
        )
        if isinstance(plan, numbers.Integral) and not isinstance(plan, bool):
            found = conn.execute(stmt.where(activities.c.id == int(plan))).all()
        elif isinstance(plan, str) and plan.strip():
            text = " ".join(plan.split())
            found = conn.execute(stmt.where(activities.c.subject == text)).all()
            if not found:
                found = conn.execute(
                    stmt.where(func.lower(activities.c.subject) == text.lower())
                ).all()
        else:
            raise NotFoundError(f"no interaction matches {plan!r} (give an id or a name)")
        if not found:
            raise NotFoundError(f"no interaction matches {plan!r}")
        if len(found) > 1:
            raise NotFoundError(f"{len(found)} interactions match {plan!r}; use the id")
        return found[0]

    def _type(self, interaction_type: str) -> str:
        known = self.types()
        wanted = str(interaction_type or "").strip().casefold()
        for name in known:
            if name.casefold() == wanted:
                return name
        raise OppkitError(
            f"interaction type {interaction_type!r} is not one of: {', '.join(known)}"
        )

    def _result_type(self, result_type: str) -> str:
        known = self.result_types()
        wanted = " ".join(str(result_type or "").split()).casefold()
        for name in known:
            if name.casefold() == wanted:
                return name
        raise OppkitError(f"result type {result_type!r} is not one of: {', '.join(known)}")


def _own(row: Any, what: str) -> None:
    """Refuse to change a Salesforce Task or Event: its fields are Salesforce's."""
    if row.interaction_id is None:
        record = "Event" if row.kind in ("meeting", "event") else "Task"
        raise NotAllowed(
            f"{row.subject!r} is a Salesforce {record}: its Status and Description are "
            f"Salesforce's fields, so oppkit cannot {what} it; do it in Salesforce "
            "(oppkit does not write Tasks or Events back)"
        )


def _still_planned(row: Any) -> None:
    if row.status != "planned":
        raise OppkitError(f"{row.subject!r} is {row.status} already")


def _account_for(
    conn: Connection, account_id: int | None, deal_id: int | None, contact_id: int | None
) -> int:
    """The plan's account: the one given, else its deal's, else its contact's; they must
    agree."""
    deal_account = conn.scalar(
        select(opportunities.c.account_id).where(opportunities.c.id == deal_id)
    ) if deal_id is not None else None  # fmt: skip
    contact_account = conn.scalar(
        select(people.c.account_id).where(people.c.id == contact_id)
    ) if contact_id is not None else None  # fmt: skip
    chosen = account_id or deal_account or contact_account
    if chosen is None:
        raise OppkitError("a plan needs an account: give account=, opportunity= or a contact")
    if deal_account is not None and deal_account != chosen:
        raise OppkitError("that deal is of another account than the plan")
    if contact_account is not None and contact_account != chosen:
        raise OppkitError("that contact is of another account than the plan")
    return chosen


def _contact_of(conn: Connection, activity_id: int) -> str | None:
    return conn.scalar(
        select(func.min(people.c.email))
        .join(activity_people, activity_people.c.person_id == people.c.id)
        .where(activity_people.c.activity_id == activity_id, activity_people.c.role == "who")
    )


def _message(message: Message | dict) -> Message:
    if isinstance(message, dict):
        known = {f.name for f in fields(Message)}
        unknown = sorted(set(message) - known)
        if unknown:
            raise OppkitError(
                f"a message takes {', '.join(sorted(known))}; not {', '.join(unknown)}"
            )
        message = Message(**message)
    if not isinstance(message, Message):
        raise OppkitError("message must be a Message or a dict")
    channel = (message.channel or "").strip().lower()
    if channel not in CHANNELS:
        raise OppkitError(f"message channel must be one of {', '.join(CHANNELS)}")
    if bool(message.body) == bool(message.template):
        raise OppkitError("a message needs a body or a template (one of them)")
    attachments = [message.attachments] if isinstance(message.attachments, (str, Path)) else list(
        message.attachments or ()
    )  # fmt: skip
    if attachments and channel != "email":
        raise OppkitError("only an email carries attachments")
    for path in attachments:
        if not Path(path).is_file():
            raise OppkitError(f"attachment not found: {path}")
    return Message(
        channel=channel, to=message.to, subject=message.subject, body=message.body,
        template=message.template, language=message.language, html=message.html,
        as_text=bool(message.as_text), attachments=[str(p) for p in attachments],
    )  # fmt: skip


def _minutes(duration: float | timedelta | None) -> float | None:
    if duration is None:
        return None
    if isinstance(duration, timedelta):
        minutes = duration.total_seconds() / 60
    elif isinstance(duration, numbers.Real) and not isinstance(duration, bool):
        minutes = float(duration)
    else:
        raise OppkitError("duration is minutes (a number) or a timedelta")
    if minutes < 0:
        raise OppkitError("a duration cannot be negative")
    return minutes


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
