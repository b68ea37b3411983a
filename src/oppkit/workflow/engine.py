"""The workflow at work: create deals at an entry, move them by transitions, follow-ons.

Why one function per action: the notebook (``kit.workflow``), the CLI and widgets all
call these, so every write goes through the same checks, history and privacy.

A transition is one database transaction: step and stage change, attributes are set,
``stage_history`` rows are written (source ``oppkit``), triggers run and communications
are queued in ``outbox``. If anything fails, nothing of it stays. Queued messages are
sent after the commit (see :mod:`oppkit.workflow.communications`).

Example::

    kit = oppkit.connect(user="ava.patel@northwind.example")
    kit.workflow.load()                                  # the default workflow
    deal = kit.workflow.create("Acme pilot", account="acme-robotics.example", amount=50_000)
    kit.workflow.available(deal)                         # what it can do next, what is missing
    kit.workflow.transition(deal, "Start discovery")
    kit.workflow.transition(deal, "Qualify", close_date="2026-12-31")
    child = kit.workflow.follow_on(deal, "Up-sell", name="Acme — more sensors")
    kit.workflow.family(child)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection, and_, delete, func, insert, select, update

from ..db.engine import write_transaction
from ..db.schema import (
    accounts,
    campaigns,
    follow_ons,
    links,
    opportunities,
    opportunity_people,
    outbound_changes,
    outbox,
    people,
    stage_arrivals,
    stage_history,
    stages,
    steps,
    transitions,
)
from ..funnel import place_deals, renumber
from ..history import record_history
from ..matching import rematch_opportunities
from ..scope import ScopeLike, scope_of
from ..writeback import owned_by_salesforce, queue_changes
from . import communications, definition
from .model import (
    COLUMN_ATTRIBUTES,
    REFERENCE_ATTRIBUTES,
    Communication,
    Definition,
    IncompleteTransition,
    TransitionNotAvailable,
    TriggerFailed,
    WorkflowError,
)
from .processes import entry_step_id
from .triggers import TriggerContext, get_trigger, json_safe

if TYPE_CHECKING:
    from .graph import WorkflowGraph

SOURCE = "oppkit"
UNDONE = ("step_id", "step", "stage", "amount", "close_date", "probability", "attributes")


@dataclass
class TransitionResult:
    """What a transition did: where the deal went, what it created, what was sent.

    ``before`` (the deal's step, stage, amount, close date, probability and attributes
    before it moved), ``from_stage``, ``updated_at`` (the deal's as the transition left
    it) and ``queued`` (ids of changes queued for Salesforce) are what
    :meth:`Workflow.undo` needs to move it back.
    """

    opportunity_id: int
    transition: str
    from_step: str | None
    to_step: str
    stage: str
    links: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    from_stage: str | None = None
    before: dict[str, Any] = field(default_factory=dict, repr=False)
    updated_at: datetime | None = field(default=None, repr=False)
    queued: list[int] = field(default_factory=list, repr=False)


# --- values ---------------------------------------------------------------------------


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in ("amount", "probability"):
            return float(value)
        if name == "close_date":
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value).strip())
    except (TypeError, ValueError) as exc:
        kind = "a date (YYYY-MM-DD)" if name == "close_date" else "a number"
        raise WorkflowError(f"{name}: {value!r} is not {kind}") from exc
    return value if name not in COLUMN_ATTRIBUTES else str(value)


def split_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Given attribute values -> (column values, custom attributes); None means not given."""
    columns, custom = {}, {}
    for name, value in values.items():
        if value is None:
            continue
        if name in REFERENCE_ATTRIBUTES:
            raise WorkflowError(f"{name} is required by transitions but is not set by them")
        if name in COLUMN_ATTRIBUTES:
            columns[name] = _coerce(name, value)
        else:
            custom[name] = json_safe(value)
    return columns, custom


def _is_set(row: Any, name: str) -> bool:
    if name in REFERENCE_ATTRIBUTES:
        return row[f"{name}_id"] is not None
    if name in COLUMN_ATTRIBUTES:
        return row[name] is not None
    return (row["attributes"] or {}).get(name) not in (None, "")


def opportunity_values(conn: Connection, opportunity_id: int) -> dict[str, Any]:
    """The opportunity as a flat dict: what triggers and message templates see.

    Keys: id, name, amount, currency, close_date, probability, stage, step, account,
    account_id, account_domain, owner, owner_email, contact_name, contact_email,
    is_private, parent_id, and every custom attribute.

    ``contact_email`` and ``contact_name`` are the deal's own attributes when
    ``contact_email`` is set on it (given on :meth:`Workflow.create` or a transition: what
    the ``create_contact`` trigger makes a member); else its first external member's
    (primary first), so a new deal, which has no members yet, keeps the contact given.
    """
    owner = people.alias("owner")
    row = conn.execute(
        select(
            opportunities, accounts.c.name.label("account_name_"), accounts.c.domain,
            owner.c.name.label("owner_name"), owner.c.email.label("owner_email"),
        )  # fmt: skip
        .select_from(
            opportunities.outerjoin(accounts, accounts.c.id == opportunities.c.account_id)
            .outerjoin(owner, owner.c.id == opportunities.c.owner_id)
        )
        .where(opportunities.c.id == opportunity_id)
    ).mappings().one()  # fmt: skip
    values = dict(row.get("attributes") or {})
    if values.get("contact_email") in (None, ""):  # given wins; the members are the fallback
        contact = conn.execute(
            select(people.c.name, people.c.email)
            .join(opportunity_people, opportunity_people.c.person_id == people.c.id)
            .where(
                opportunity_people.c.opportunity_id == opportunity_id,
                opportunity_people.c.kind == "member",
                opportunity_people.c.is_deleted.is_(False),
                people.c.is_internal.is_(False),
            )
            .order_by(opportunity_people.c.is_primary.desc(), opportunity_people.c.id)
            .limit(1)
        ).first()
        values.update(
            contact_name=contact.name if contact else None,
            contact_email=contact.email if contact else None,
        )
    else:
        values.setdefault("contact_name", None)
    values.update(
        id=row["id"], name=row["name"], amount=row["amount"], currency=row["currency"],
        close_date=row["close_date"], probability=row["probability"], stage=row["stage"],
        step=row["step"], account=row["account_name_"], account_id=row["account_id"],
        account_domain=row["domain"], owner=row["owner_name"], owner_email=row["owner_email"],
        is_private=bool(row["is_private"]), parent_id=row["parent_id"],
    )  # fmt: skip
    return values


def _workflow_stage(conn: Connection, stage_name: str | None) -> str | None:
    """The workflow stage a Salesforce stage is (``stage_arrivals``), else the stage itself."""
    found = conn.scalar(
        select(stages.c.name)
        .select_from(stage_arrivals)
        .join(steps, steps.c.id == stage_arrivals.c.step_id)
        .join(stages, stages.c.id == steps.c.stage_id)
        .where(stage_arrivals.c.stage_name == stage_name)
    )
    return found or stage_name


def _step(conn: Connection, step_id: int) -> Any:
    return conn.execute(
        select(steps.c.id, steps.c.name, stages.c.name.label("stage"), stages.c.probability)
        .join(stages, stages.c.id == steps.c.stage_id)
        .where(steps.c.id == step_id)
    ).one()


def current_step_id(conn: Connection, row: Any) -> int | None:
    """The deal's step; a synced deal without one stands at its stage's only step."""
    if row["step_id"] is not None:
        return row["step_id"]
    if row["stage"] is None:
        return None
    candidates = conn.scalars(
        select(steps.c.id)
        .join(stages, stages.c.id == steps.c.stage_id)
        .where(stages.c.name == row["stage"], steps.c.is_active.is_(True))
    ).all()
    return candidates[0] if len(candidates) == 1 else None


# --- the accessor -------------------------------------------------------------------


class Workflow:
    """``kit.workflow``: the team's sales process, applied to one scope's database and user.

    ``Workflow(kit)`` or ``Workflow(scope)``; ``kit.workflow`` is the same thing.
    """

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)
        self.engine = self.scope.engine

    # definitions

    def load(self, path: str | Path | None = None) -> Definition:
        """Validate a workflow file (default: the one oppkit ships) and make it the workflow.

        Raises :class:`~oppkit.workflow.model.InvalidWorkflow` listing every problem;
        then nothing is written. Every deal synced from Salesforce is placed at the step
        its stage arrives at; ``.unplaced`` of the result lists the open deals whose stage
        the workflow does not map (they take no transition until it does).
        """
        with write_transaction(self.engine) as conn:
            known = dict(conn.execute(select(stages.c.name, stages.c.status)).all())
            text = (
                Path(path).read_text(encoding="utf-8")
                if path is not None
                else definition.default_workflow_text()
            )
            parsed = definition.parse_definition(text, known)
            definition.save(conn, parsed)
            renumber(conn)
            parsed.unplaced = place_deals(conn, origin="sync").unplaced
        return parsed

    def definition(self) -> Definition:
        """The workflow in the database."""
        with self.engine.connect() as conn:
            return definition.load(conn)

    def export(self, path: str | Path | None = None) -> str:
        """The workflow as a TOML file's text; written to ``path`` when given."""
        text = definition.export_text(self.definition())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # helpers

    def _insert(
        self, conn: Connection, *, name: str, step_id: int, by_id: int | None,
        values: dict[str, Any], **columns: Any,
    ) -> int:  # fmt: skip
        step = _step(conn, step_id)
        column_values, custom = split_values(values)
        if step.probability is not None:
            column_values.setdefault("probability", step.probability)
        now = datetime.now(UTC)
        opportunity_id = conn.execute(
            insert(opportunities)
            .values(
                name=name,
                stage=step.stage,
                step=step.name,
                step_id=step.id,
                attributes=custom or None,
                source=SOURCE,
                source_id=f"opportunity:{uuid.uuid4().hex}",
                created_at=now,
                updated_at=now,
                **column_values,
                **columns,
            )  # fmt: skip
            .returning(opportunities.c.id)
        ).scalar_one()
        record_history(
            conn, opportunity_id, [("step", None, step.name), ("stage", None, step.stage)],
            origin="create", by_id=by_id,
        )  # fmt: skip
        rematch_opportunities(conn, [opportunity_id])  # a new deal: live from now on
        return opportunity_id

    # actions

    def create(
        self, name: str, *, account: Any = None, owner: str | None = None,
        private: bool = False, by: str | None = None, process: str | None = None,
        campaign: Any = None, contacts: Any = None, **values: Any,
    ) -> int:  # fmt: skip
        """A new opportunity at the entry step for a new or an existing account; its id.

        An account is *existing* when oppkit already knows it: a row in ``accounts``
        (synced from Salesforce, created from mail or by an earlier deal), with or without
        deals. A deal given no account (``create_account`` makes one later) enters at the
        *new account* step. Which one depends on the account alone, never on its deals, so
        a private deal the user may not see cannot show through. ``owner`` (an email)
        defaults to the scope's user; other keywords are attributes (amount, close_date, ...).

        ``process`` names the process the deal runs (its entry steps; default: the
        campaign's process, else the default one); ``campaign`` stamps the deal with a
        campaign; ``contacts`` (emails or ids) become its members.

        >>> kit.workflow.create("Acme pilot", account="acme-robotics.example", amount=50_000)
        """
        account_id = self.scope.account_ids(account)[0] if account is not None else None
        owner_id = self.scope.acting_person_id(owner)
        by_id = self.scope.acting_person_id(by)
        campaign_id = self.scope.campaign_ids(campaign)[0] if campaign is not None else None
        member_ids = self.scope.person_ids(contacts) if contacts is not None else []
        with write_transaction(self.engine) as conn:
            return self.create_in(
                conn, name, account_id=account_id, owner_id=owner_id, by_id=by_id,
                private=private, process=process, campaign_id=campaign_id,
                member_ids=member_ids, values=values,
            )  # fmt: skip

    def create_in(
        self, conn: Connection, name: str, *, account_id: int | None, owner_id: int | None,
        by_id: int | None, private: bool = False, process: str | None = None,
        campaign_id: int | None = None, member_ids: list[int] = (),  # type: ignore[assignment]
        values: dict[str, Any] | None = None, new_account: bool = False,
    ) -> int:  # fmt: skip
        """:meth:`create` inside the caller's transaction, with everything resolved to ids
        (for features that create a deal together with other rows, e.g. accepting a lead;
        ``new_account=True`` when the caller made the account in this transaction)."""
        # known to oppkit: the account's row, not its deals (so no deal, private or
        # not, has any say)
        existing = (
            account_id is not None
            and not new_account
            and conn.scalar(
                select(accounts.c.id).where(
                    accounts.c.id == account_id, accounts.c.is_deleted.is_(False)
                )
            )
        )
        kind = "existing_account" if existing else "new_account"
        if process is None and campaign_id is not None:
            process = conn.scalar(select(campaigns.c.process).where(campaigns.c.id == campaign_id))
        step_id = entry_step_id(conn, process, kind)
        opportunity_id = self._insert(
            conn, name=name, step_id=step_id, by_id=by_id, values=values or {},
            account_id=account_id, owner_id=owner_id, is_private=private,
            process=process, campaign_id=campaign_id,
        )  # fmt: skip
        for person_id in dict.fromkeys(member_ids):
            conn.execute(
                insert(opportunity_people).values(
                    opportunity_id=opportunity_id,
                    person_id=person_id,
                    kind="member",
                    role="contact",
                    source=SOURCE,
                    source_id=f"member:{uuid.uuid4().hex}",
                )  # fmt: skip
            )
        return opportunity_id

    def transition(
        self, opportunity: Any, name: str, *, by: str | None = None, deliver: bool = True,
        **values: Any,
    ) -> TransitionResult:  # fmt: skip
        """Move a deal along transition ``name``, setting attributes given as keywords.

        Refuses with :class:`IncompleteTransition` (listing every missing attribute) when
        a required attribute is neither given nor set; with
        :class:`TransitionNotAvailable` when the transition does not leave the current
        step. ``by`` (an email) defaults to the scope's user. Messages are sent after the
        commit unless ``deliver=False`` (they stay queued for :meth:`deliver`).

        >>> kit.workflow.transition("Acme pilot", "Send proposal", amount=5000, close_date="2026-12-31")
        """
        opportunity_id = self.scope.opportunity_id(opportunity)
        by_id = self.scope.acting_person_id(by)
        column_values, custom = split_values(values)
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(opportunities).where(opportunities.c.id == opportunity_id).with_for_update()
            ).mappings().one()  # fmt: skip
            step_id = current_step_id(conn, row)
            if step_id is None:
                raise WorkflowError(
                    f"{row['name']!r} stands at no workflow step (stage {row['stage']!r})"
                )
            current = _step(conn, step_id)
            candidates = conn.execute(
                select(transitions).where(transitions.c.from_step_id == step_id).order_by(transitions.c.sort_order)
            ).mappings().all()  # fmt: skip
            chosen = next((t for t in candidates if t["name"] == name), None) or next(
                (t for t in candidates if t["name"].lower() == name.strip().lower()), None
            )
            if chosen is None:
                options = ", ".join(repr(t["name"]) for t in candidates) or "none"
                raise TransitionNotAvailable(
                    f"transition {name!r} is not available from step {current.name!r} "
                    f"(available: {options})"
                )
            missing = [
                a for a in chosen["required_attributes"] or []
                if a not in column_values and a not in custom and not _is_set(row, a)
            ]  # fmt: skip
            if missing:
                raise IncompleteTransition(chosen["name"], missing)
            target = _step(conn, chosen["to_step_id"])
            attributes = {**(row["attributes"] or {}), **custom}
            pushed: dict[str, Any] = {}
            queued_changes: list[int] = []
            before = {k: row[k] for k in UNDONE}
            if owned_by_salesforce(row):
                # stage, amount, close date... are Salesforce's: queued for it (write-back
                # on) or the whole transition is refused; the step is oppkit's
                pushed = dict(column_values)
                if _workflow_stage(conn, row["stage"]) != target.stage:
                    pushed["stage"] = target.stage
                queued_changes = queue_changes(conn, row, pushed, origin="transition", by_id=by_id)
                column_values = {}
            else:
                if target.probability is not None:
                    column_values.setdefault("probability", target.probability)
                column_values["stage"] = target.stage
            conn.execute(
                update(opportunities)
                .where(opportunities.c.id == opportunity_id)
                .values(
                    step_id=target.id,
                    step=target.name,
                    attributes=attributes or None,
                    updated_at=datetime.now(UTC),
                    **column_values,
                )  # fmt: skip
            )
            record_history(conn, opportunity_id, [
                ("step", current.name, target.name),
                *[(f, row[f], column_values[f]) for f in ("stage", "amount", "close_date")
                  if f in column_values],
            ], origin="transition", by_id=by_id)  # fmt: skip
            snapshot = opportunity_values(conn, opportunity_id)
            context = TriggerContext(conn, snapshot, chosen["name"], by_id)
            for trigger_name in chosen["triggers"] or []:
                try:
                    get_trigger(trigger_name)(context)
                except Exception as exc:
                    raise TriggerFailed(
                        f"transition {chosen['name']!r} rolled back: trigger {trigger_name!r} "
                        f"failed: {exc}"
                    ) from exc
            # the deal may have closed, reopened, got an account or members: activities follow
            rematch_opportunities(conn, [opportunity_id])
            values_now = {**opportunity_values(conn, opportunity_id), **pushed}  # as it will be
            by_name = (
                conn.scalar(select(people.c.name).where(people.c.id == by_id)) if by_id else None
            )
            values_now.update(transition=chosen["name"], by=by_name)
            queued = communications.queue(
                conn, values_now, chosen["name"],
                [Communication(**c) for c in chosen["communications"] or []], sender_id=by_id,
            )  # fmt: skip
            updated_at = conn.scalar(
                select(opportunities.c.updated_at).where(opportunities.c.id == opportunity_id)
            )
        result = TransitionResult(
            opportunity_id, chosen["name"], current.name, target.name, target.stage,
            links=context.created, from_stage=row["stage"], before=before,
            updated_at=updated_at, queued=queued_changes,
        )  # fmt: skip
        if queued and deliver:
            result.messages = communications.deliver(self.engine, queued)
        return result

    def undo(self, done: TransitionResult, *, by: str | None = None) -> TransitionResult:
        """Move a deal back to where transition ``done`` found it (step, stage, amount,
        close date, probability, attributes), recorded as a normal stage change
        (``stage_history``, origin ``transition``); no triggers run and nothing is sent.

        Refuses with :class:`WorkflowError` (nothing changed) when the deal changed since
        (it moved on, was edited or synced), or when a change queued for Salesforce has
        already been sent there. What the transition's triggers created and the messages
        it sent stay.

        >>> done = kit.workflow.transition("Acme pilot", "Send proposal")
        >>> kit.workflow.undo(done)
        """
        opportunity_id = self.scope.opportunity_id(done.opportunity_id)
        by_id = self.scope.acting_person_id(by)
        refused = f"Cannot undo {done.transition!r}"
        if done.from_step is None or not done.before:
            raise WorkflowError(f"{refused}: it does not say where the deal stood before")
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(opportunities).where(opportunities.c.id == opportunity_id).with_for_update()
            ).mappings().one()  # fmt: skip
            step_id = current_step_id(conn, row)
            now_at = _step(conn, step_id).name if step_id is not None else None
            if now_at != done.to_step:
                raise WorkflowError(
                    f"{refused}: {row['name']!r} moved on since (now at step {now_at!r}, "
                    f"not {done.to_step!r}); nothing was changed"
                )
            if done.updated_at is not None and row["updated_at"] != done.updated_at:
                later = conn.execute(
                    select(stage_history.c.field, stage_history.c.new_value)
                    .where(stage_history.c.opportunity_id == opportunity_id)
                    .order_by(stage_history.c.changed_at.desc(), stage_history.c.id.desc())
                    .limit(1)
                ).first()  # fmt: skip
                what = f" (last: {later.field} set to {later.new_value!r})" if later else ""
                raise WorkflowError(
                    f"{refused}: {row['name']!r} was changed since{what}; nothing was changed"
                )
            back = conn.execute(
                select(steps.c.id).where(steps.c.name == done.from_step)
            ).scalar()  # fmt: skip
            if back is None:
                raise WorkflowError(f"{refused}: step {done.from_step!r} no longer exists")
            before = done.before
            if owned_by_salesforce(row):
                if done.queued:
                    sent = conn.scalar(
                        select(func.count()).select_from(outbound_changes).where(
                            outbound_changes.c.id.in_(done.queued),
                            outbound_changes.c.status != "pending",
                        )
                    )  # fmt: skip
                    if sent:
                        raise WorkflowError(
                            f"{refused}: its change was already sent to Salesforce; change "
                            "it back in the edit form"
                        )
                    conn.execute(
                        delete(outbound_changes).where(outbound_changes.c.id.in_(done.queued))
                    )
                columns: dict[str, Any] = {}
            else:
                columns = {k: before[k] for k in ("stage", "amount", "close_date", "probability")}
            conn.execute(
                update(opportunities)
                .where(opportunities.c.id == opportunity_id)
                .values(
                    step_id=back,
                    step=done.from_step,
                    attributes=before.get("attributes"),
                    updated_at=datetime.now(UTC),
                    **columns,
                )  # fmt: skip
            )
            record_history(conn, opportunity_id, [
                ("step", done.to_step, done.from_step),
                *[(f, row[f], columns[f]) for f in ("stage", "amount", "close_date")
                  if f in columns],
            ], origin="transition", by_id=by_id)  # fmt: skip
            rematch_opportunities(conn, [opportunity_id])
        return TransitionResult(
            opportunity_id, f"Undo {done.transition}", done.to_step, done.from_step,
            before.get("stage") or done.from_stage or "", from_stage=done.stage,
        )  # fmt: skip

    def available(self, opportunity: Any) -> pd.DataFrame:
        """Transitions the deal can take from its step, with what each still needs.

        Columns: transition, to_step, to_stage, requires, missing, ready, triggers,
        communications (how many messages it sends).
        """
        opportunity_id = self.scope.opportunity_id(opportunity)
        target = steps.alias("target")
        columns = ["transition", "to_step", "to_stage", "requires", "missing", "ready", "triggers",
                   "communications"]  # fmt: skip
        with self.engine.connect() as conn:
            row = conn.execute(
                select(opportunities).where(opportunities.c.id == opportunity_id)
            ).mappings().one()  # fmt: skip
            step_id = current_step_id(conn, row)
            found = conn.execute(
                select(transitions, target.c.name.label("to_step"), stages.c.name.label("to_stage"))
                .join(target, target.c.id == transitions.c.to_step_id)
                .join(stages, stages.c.id == target.c.stage_id)
                .where(transitions.c.from_step_id == step_id)
                .order_by(transitions.c.sort_order)
            ).mappings().all()  # fmt: skip
        rows = []
        for t in found:
            requires = list(t["required_attributes"] or [])
            missing = [a for a in requires if not _is_set(row, a)]
            rows.append([t["name"], t["to_step"], t["to_stage"], requires, missing, not missing,
                         list(t["triggers"] or []), len(t["communications"] or [])])  # fmt: skip
        df = pd.DataFrame(rows, columns=columns)
        return self.scope.tag(df, "transitions")

    def follow_on(
        self, parent: Any, follow_on: str, *, name: str | None = None, owner: str | None = None,
        by: str | None = None, **values: Any,
    ) -> int:  # fmt: skip
        """A child deal (an up-sell) at the follow-on's step, linked to ``parent``; its id.

        The child gets the parent's account, privacy and members (opportunity_people);
        ``owner`` defaults to the parent's owner.

        >>> kit.workflow.follow_on("Acme pilot", "Up-sell", name="Acme — fleet roll-out")
        """
        parent_id = self.scope.opportunity_id(parent)
        owner_id = self.scope.person_ids(owner)[0] if owner else None
        by_id = self.scope.acting_person_id(by)
        with write_transaction(self.engine) as conn:
            step_id = conn.scalar(
                select(follow_ons.c.step_id).where(func.lower(follow_ons.c.name) == follow_on.strip().lower())
            )  # fmt: skip
            if step_id is None:
                known = (
                    ", ".join(repr(n) for n in conn.scalars(select(follow_ons.c.name))) or "none"
                )
                raise WorkflowError(f"no follow-on {follow_on!r} (known: {known})")
            p = (
                conn.execute(select(opportunities).where(opportunities.c.id == parent_id))
                .mappings()
                .one()
            )
            child_id = self._insert(
                conn, name=name or f"{p['name']} — {follow_on}", step_id=step_id, by_id=by_id,
                values=values, account_id=p["account_id"], owner_id=owner_id or p["owner_id"],
                is_private=p["is_private"], parent_id=parent_id, currency=p["currency"],
            )  # fmt: skip
            members = conn.execute(
                select(opportunity_people.c.person_id, opportunity_people.c.kind,
                       opportunity_people.c.role, opportunity_people.c.is_primary)
                .where(opportunity_people.c.opportunity_id == parent_id,
                       opportunity_people.c.kind == "member",
                       opportunity_people.c.is_deleted.is_(False))
            ).all()  # fmt: skip
            for m in {m.person_id: m for m in members}.values():
                conn.execute(
                    insert(opportunity_people).values(
                        opportunity_id=child_id,
                        person_id=m.person_id,
                        kind=m.kind,
                        role=m.role,
                        is_primary=m.is_primary,
                        source=SOURCE,
                        source_id=f"member:{uuid.uuid4().hex}",
                    )  # fmt: skip
                )
            rematch_opportunities(conn, [child_id])
        return child_id

    def family(self, opportunity: Any) -> pd.DataFrame:
        """The deal with its parent and children (follow-ons) that the user may see.

        Columns: relation (parent, self, child), id, name, stage, step, amount, close_date.
        """
        opportunity_id = self.scope.opportunity_id(opportunity)
        with self.engine.connect() as conn:
            parent_id = conn.scalar(
                select(opportunities.c.parent_id).where(opportunities.c.id == opportunity_id)
            )
            stmt = (
                select(opportunities.c.id, opportunities.c.name, opportunities.c.stage,
                       opportunities.c.step, opportunities.c.amount, opportunities.c.close_date,
                       opportunities.c.parent_id)
                .where(
                    and_(opportunities.c.is_deleted.is_(False), self.scope.visible()),
                    (opportunities.c.id == opportunity_id)
                    | (opportunities.c.parent_id == opportunity_id)
                    | (opportunities.c.id == (parent_id if parent_id is not None else -1)),
                )
                .order_by(opportunities.c.id)
            )  # fmt: skip
            rows = conn.execute(stmt).all()
        out = []
        for r in rows:
            relation = (
                "self" if r.id == opportunity_id else "parent" if r.id == parent_id else "child"
            )
            out.append({"relation": relation, **{k: getattr(r, k) for k in
                        ("id", "name", "stage", "step", "amount", "close_date")}})  # fmt: skip
        order = {"parent": 0, "self": 1, "child": 2}
        out.sort(key=lambda r: (order[r["relation"]], r["id"]))
        df = pd.DataFrame(
            out, columns=["relation", "id", "name", "stage", "step", "amount", "close_date"]
        )
        return self.scope.tag(df, "opportunities")

    def links(self, opportunity: Any) -> pd.DataFrame:
        """Records the deal's triggers created (invoices, registrations, tokens...)."""
        opportunity_id = self.scope.opportunity_id(opportunity)
        stmt = (
            select(links.c.id, links.c.kind, links.c.reference, links.c.data, links.c.transition,
                   links.c.created_at)
            .where(links.c.opportunity_id == opportunity_id)
            .order_by(links.c.id)
        )  # fmt: skip
        return self.scope.frame(stmt, "links")

    def outbox(self, opportunity: Any = None) -> pd.DataFrame:
        """Messages queued by transitions and what became of them (status, attempts)."""
        stmt = select(
            outbox.c.id, outbox.c.opportunity_id, outbox.c.transition, outbox.c.channel,
            outbox.c.recipient, outbox.c.subject, outbox.c.status, outbox.c.attempts,
            outbox.c.last_error, outbox.c.created_at, outbox.c.sent_at,
        ).order_by(outbox.c.id)  # fmt: skip
        if opportunity is not None:
            stmt = stmt.where(outbox.c.opportunity_id == self.scope.opportunity_id(opportunity))
        else:
            visible = select(opportunities.c.id).where(self.scope.visible())
            stmt = stmt.where(outbox.c.opportunity_id.in_(visible))
        return self.scope.frame(stmt, "outbox")

    def deliver(self) -> pd.DataFrame:
        """Send what is still pending or failed in the outbox (with retries)."""
        return pd.DataFrame(communications.deliver(self.engine))

    def graph(self, opportunity: Any = None) -> WorkflowGraph:
        """The workflow drawn (steps grouped by stage), offline; see :mod:`.graph`.

        With ``opportunity``, its current step, the transitions it can take now and the
        steps they lead to are green (dashed while attributes are missing, with what each
        still needs), steps it cannot reach grey; arrows turn blue under the mouse.
        """
        from .graph import build_graph

        drawn = self.definition()
        if opportunity is None:
            return build_graph(drawn)
        opportunity_id = self.scope.opportunity_id(opportunity)
        available = self.available(opportunity_id)
        deal = self.deal(opportunity_id)
        missing = dict(zip(available["transition"], available["missing"], strict=True))
        return build_graph(drawn, deal["current_step"], missing, title=deal["name"])

    def deal(self, opportunity: Any) -> dict[str, Any]:
        """One visible deal as a flat dict (see :func:`opportunity_values`) and where it stands.

        ``step_id`` is what oppkit recorded; ``current_step`` is the step the workflow
        places it at (a synced deal without a step stands at its stage's only step).

        >>> kit.workflow.deal("Acme pilot")["current_step"]
        """
        opportunity_id = self.scope.opportunity_id(opportunity)
        with self.engine.connect() as conn:
            values = opportunity_values(conn, opportunity_id)
            row = conn.execute(
                select(opportunities.c.step_id, opportunities.c.stage).where(
                    opportunities.c.id == opportunity_id
                )
            ).mappings().one()  # fmt: skip
            step_id = current_step_id(conn, row)
            current = (
                conn.scalar(select(steps.c.name).where(steps.c.id == step_id)) if step_id else None
            )
        values.update(step_id=row["step_id"], current_step=current)
        return values
