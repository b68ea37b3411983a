"""Edits to fields Salesforce owns: pushed to Salesforce when the team allows it, else refused.

Why: a deal synced from Salesforce has two writers, Salesforce and the people working it
in oppkit. Each column has one owner (:mod:`oppkit.db.ownership`); a change to one that
Salesforce owns (stage, amount, close date, probability, name), made with
:func:`update_opportunity` or by a workflow transition, is never kept locally only to be
overwritten by the next sync. With write-back off (the default) it is refused, saying
where to change it. With ``[salesforce] write_back = true`` in oppkit.toml (or
``OPPKIT_SALESFORCE_WRITE_BACK=1``) it is queued in ``outbound_changes``, in the same
transaction as the edit, and shows as pending everywhere until the Salesforce agent
pushes it (:mod:`oppkit.sync.salesforce_push`, before it pulls) with If-Unmodified-Since
the SystemModstamp the user saw. When Salesforce changed the record in between, the
change becomes a *conflict*, shown with both values, which the user resolves
(:func:`resolve_conflict`: keep theirs, or push mine). A deal oppkit created itself is
oppkit's: its fields change at once.

A contact's or account's lifecycle stage is oppkit's, so it always changes at once; with
write-back on and the Salesforce field of its status named (``[salesforce]
contact_status_field`` / ``account_status_field``), the status its new stage maps to is
queued for the Salesforce Contact or Account the same way (:class:`StatusQueue`, field
``lifecycle_status``), never refused.

Example::

    kit = oppkit.connect(user="ava.patel@northwind.example")
    kit.update_opportunity("Acme pilot", amount=55_000, close_date="2027-01-31")
    kit.changes()                       # pending, pushed, conflicts
    kit.resolve_conflict("Acme pilot", "amount", keep="mine")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, delete, insert, or_, select, update

from .config import Settings, status_field, write_back_enabled
from .db.engine import write_transaction
from .db.ownership import (
    CONFLICT,
    DROPPED,
    LIFECYCLE_STATUS,
    PENDING,
    PUSHED,
    SALESFORCE_EDITABLE,
    WAITING,
)
from .db.schema import accounts, opportunities, outbound_changes, people, stages
from .errors import OppkitError
from .history import record_history, same_value
from .lifecycle_status import SALESFORCE_OBJECTS, TARGETS, StatusMap
from .scope import ScopeLike, as_list, scope_of

SALESFORCE = "salesforce"
OPPORTUNITY = "Opportunity"  # outbound_changes.sobject of a deal's change
CHANGE_COLUMNS = [
    "id", "sobject", "opportunity_id", "opportunity", "person_id", "person", "account_id",
    "account", "field", "old_value", "new_value", "status", "origin", "requested_by",
    "requested_at", "attempts", "last_error", "pushed_at", "their_value", "their_by",
    "their_modstamp",
]  # fmt: skip


class WriteBackOff(OppkitError):
    """A change to a field Salesforce owns while write-back is off: change it there."""

    exit_code = 2


def owned_by_salesforce(row: Mapping[str, Any]) -> bool:
    """Whether the deal (an ``opportunities`` row) is Salesforce's record."""
    return row["source"] == SALESFORCE


def as_json(value: Any) -> Any:
    """A field value as stored in the queue (dates as ISO text)."""
    return value.isoformat() if isinstance(value, date | datetime) else value


def coerce(field: str, value: Any) -> Any:
    """A value a person typed, as the column stores it; OppkitError when it cannot be."""
    if field not in SALESFORCE_EDITABLE:
        raise OppkitError(
            f"{field!r} cannot be edited here; editable: {', '.join(SALESFORCE_EDITABLE)}"
        )
    if value is None or (isinstance(value, str) and not value.strip()):
        if field in ("name", "stage"):
            raise OppkitError(f"a deal needs a {field}")
        return None
    try:
        if field == "campaign_id":
            return int(value)
        if field in ("amount", "probability"):
            number = float(value)
            if not math.isfinite(number) or (field == "probability" and not 0 <= number <= 100):
                raise ValueError
            return number
        if field == "close_date":
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        kind = {"close_date": "a date (YYYY-MM-DD)", "probability": "a number from 0 to 100",
                "campaign_id": "a campaign id"}  # fmt: skip
        raise OppkitError(f"{field}: {value!r} is not {kind.get(field, 'a number')}") from None
    return str(value).strip()


def refusal(deal_name: str, fields: list[str]) -> WriteBackOff:
    """The message for a change refused because write-back is off."""
    return WriteBackOff(
        f"{', '.join(fields)} of {deal_name!r} {'is' if len(fields) == 1 else 'are'} owned by "
        "Salesforce: change it in Salesforce (the next sync brings it here), or let oppkit "
        "push changes: [salesforce] write_back = true in oppkit.toml "
        "(or OPPKIT_SALESFORCE_WRITE_BACK=1)"
    )


def queue_changes(
    conn: Connection, row: Mapping[str, Any], changes: Mapping[str, Any], *,
    origin: str, by_id: int | None, settings: Settings | None = None,
) -> list[int]:  # fmt: skip
    """Queue changes to a Salesforce deal's fields (``row``: its opportunities row), in the
    caller's transaction; refuses with :class:`WriteBackOff` when write-back is off.

    A newer change to a field replaces one still waiting (pending or in conflict).
    Returns the ids of the queued changes (none when nothing differs).
    """
    changed = {f: v for f, v in changes.items() if not same_value(row[f], v)}
    if not changed:
        return []
    if not write_back_enabled(settings):
        raise refusal(row["name"], list(changed))
    conn.execute(
        delete(outbound_changes).where(
            outbound_changes.c.opportunity_id == row["id"],
            outbound_changes.c.field.in_(list(changed)),
            outbound_changes.c.status.in_((PENDING, CONFLICT)),
        )
    )
    record = {"sobject": OPPORTUNITY, "opportunity_id": row["id"]}
    return [
        add_pending(
            conn,
            record,
            field,
            as_json(row[field]),
            as_json(value),
            seen=row["source_modstamp"],
            origin=origin,
            by_id=by_id,
        )  # fmt: skip
        for field, value in changed.items()
    ]


def add_pending(
    conn: Connection, record: Mapping[str, Any], field: str, old: Any, new: Any, *,
    seen: datetime | None, origin: str, by_id: int | None,
) -> int:  # fmt: skip
    """One pending change of ``record`` (its ``sobject`` and oppkit's id of it:
    ``opportunity_id``, ``person_id`` or ``account_id``); its id."""
    return conn.execute(
        insert(outbound_changes)
        .values(
            **record,
            field=field,
            old_value=old,
            new_value=new,
            seen_modstamp=seen,
            status=PENDING,
            origin=origin,
            requested_by_id=by_id,
            requested_at=datetime.now(UTC),
        )  # fmt: skip
        .returning(outbound_changes.c.id)
    ).scalar_one()


class StatusQueue:
    """Queues, in the caller's transaction, the Salesforce status of lifecycle stages set in
    oppkit (by hand or by a rule); settings and stage maps are read once per transaction.

    A change is queued only with write-back on, for a kind whose status field is named
    (:func:`oppkit.config.status_field`), of a row that is a Salesforce Contact or Account
    (its ``salesforce_id``), when the new stage maps to a status other than Salesforce's
    as last synced (``source_status``). A newer change replaces one still waiting. It
    never refuses: the stage is oppkit's and stays set whatever is pushed.

    >>> StatusQueue(conn).queue("contact", person_id, "Engaged", origin="edit", by_id=None)
    """

    def __init__(self, conn: Connection, settings: Settings | None = None) -> None:
        self.conn = conn
        on = write_back_enabled(settings)
        self.kinds = {kind for kind in TARGETS if on and status_field(kind, settings)}
        self.maps: dict[str, StatusMap] = {}

    def queue(
        self, kind: str, target_id: int, stage: str, *, origin: str, by_id: int | None = None
    ) -> int | None:
        """Queue the status ``stage`` maps to; the queued change's id, or None."""
        if kind not in self.kinds:
            return None
        table, key = TARGETS[kind]
        sobject, prefix = SALESFORCE_OBJECTS[kind]
        row = self.conn.execute(
            select(table.c.salesforce_id, table.c.source_status, table.c.source_modstamp).where(
                table.c.id == target_id
            )
        ).first()
        if row is None or not (row.salesforce_id or "").startswith(prefix):
            return None
        self.conn.execute(
            delete(outbound_changes).where(
                outbound_changes.c[key] == target_id,
                outbound_changes.c.field == LIFECYCLE_STATUS,
                outbound_changes.c.status.in_(WAITING),
            )
        )
        if kind not in self.maps:
            self.maps[kind] = StatusMap.load(self.conn, kind)
        status = self.maps[kind].status_of(stage)
        if status is None or status == row.source_status:
            return None  # a stage of no status, or Salesforce has it already
        record = {"sobject": sobject, key: target_id}
        return add_pending(self.conn, record, LIFECYCLE_STATUS, row.source_status, status,
                           seen=row.source_modstamp, origin=origin, by_id=by_id)  # fmt: skip


def update_opportunity(
    kit: ScopeLike, opportunity: Any, *, by: str | None = None, **fields: Any
) -> list[int]:
    """Change a deal's name, stage, amount, close date or probability.

    A deal oppkit created changes at once (with a stage_history row, origin ``edit``).
    A Salesforce deal's change is queued for Salesforce (write-back on: pending until
    pushed; returns the queued ids) or refused with :class:`WriteBackOff` (off). Setting
    a field back to Salesforce's value withdraws the change still waiting on it.

    >>> update_opportunity(kit, "Acme pilot", amount=55_000, close_date="2027-01-31")
    """
    scope = scope_of(kit)
    opportunity_id = scope.opportunity_id(opportunity)
    by_id = scope.acting_person_id(by)
    values = {field: coerce(field, value) for field, value in fields.items()}
    with write_transaction(scope.engine) as conn:
        if "stage" in values and values["stage"] not in set(conn.scalars(select(stages.c.name))):
            raise OppkitError(f"no stage {values['stage']!r}; see kit.stages()")
        row = conn.execute(
            select(opportunities).where(opportunities.c.id == opportunity_id).with_for_update()
        ).mappings().one()  # fmt: skip
        if owned_by_salesforce(row):
            back = [f for f, v in values.items() if same_value(row[f], v)]
            withdraw(conn, opportunity_id, back, origin="edit", by_id=by_id)
            return queue_changes(conn, row, values, origin="edit", by_id=by_id)
        changed = {f: v for f, v in values.items() if not same_value(row[f], v)}
        if changed:
            conn.execute(
                update(opportunities)
                .where(opportunities.c.id == opportunity_id)
                .values(**changed, updated_at=datetime.now(UTC))
            )
            record_history(
                conn, opportunity_id, [(f, row[f], v) for f, v in changed.items()],
                origin="edit", by_id=by_id,
            )  # fmt: skip
        return []


def changes(
    kit: ScopeLike, opportunity: Any = None, *, status: str | list[str] | None = None
) -> pd.DataFrame:
    """Changes made in oppkit to Salesforce-owned fields: pending, pushed, in conflict.

    Columns: id; which record: sobject (Opportunity, Contact, Account), opportunity_id /
    opportunity (the deal's name), person_id / person (the contact's email), account_id /
    account (the account's name); field (a deal's column, or ``lifecycle_status``),
    old_value (Salesforce's value as the person saw it), new_value, status, origin,
    requested_by, requested_at, attempts, last_error, pushed_at, their_value / their_by /
    their_modstamp (a conflict: Salesforce's now). A change of a deal this user may not
    see, or of a person known only from one, is not shown.

    >>> kit.changes(status="conflict")
    """
    scope = scope_of(kit)
    by = people.alias("requested_by")
    person = people.alias("person")
    stmt = (
        select(
            outbound_changes.c.id,
            outbound_changes.c.sobject,
            outbound_changes.c.opportunity_id,
            opportunities.c.name,
            outbound_changes.c.person_id,
            person.c.email,
            outbound_changes.c.account_id,
            accounts.c.name,
            outbound_changes.c.field,
            outbound_changes.c.old_value,
            outbound_changes.c.new_value,
            outbound_changes.c.status,
            outbound_changes.c.origin,
            by.c.email,
            outbound_changes.c.requested_at,
            outbound_changes.c.attempts,
            outbound_changes.c.last_error,
            outbound_changes.c.pushed_at,
            outbound_changes.c.their_value,
            outbound_changes.c.their_by,
            outbound_changes.c.their_modstamp,
        )  # fmt: skip
        .select_from(
            outbound_changes.outerjoin(
                opportunities, opportunities.c.id == outbound_changes.c.opportunity_id
            )
            .outerjoin(person, person.c.id == outbound_changes.c.person_id)
            .outerjoin(accounts, accounts.c.id == outbound_changes.c.account_id)
            .outerjoin(by, by.c.id == outbound_changes.c.requested_by_id)
        )
        .where(
            or_(outbound_changes.c.opportunity_id.is_(None), scope.visible()),
            or_(
                outbound_changes.c.person_id.is_(None),
                outbound_changes.c.person_id.not_in(scope.hidden_people()),
            ),
        )
        .order_by(outbound_changes.c.requested_at.desc(), outbound_changes.c.id.desc())
    )
    if opportunity is not None:
        stmt = stmt.where(outbound_changes.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if status is not None:
        stmt = stmt.where(outbound_changes.c.status.in_(as_list(status)))
    df = scope.frame(stmt, "changes", CHANGE_COLUMNS)
    for column in ("requested_at", "pushed_at", "their_modstamp"):
        df[column] = pd.to_datetime(df[column], utc=True)
    return df


def settle_conflict(
    conn: Connection, record: ColumnElement[bool], field: str, keep: str, *,
    by_id: int | None, what: str = "deal",
) -> dict[str, Any]:  # fmt: skip
    """Settle the conflict on ``field`` of the record ``record`` selects (a condition on
    outbound_changes), in the caller's transaction: ``keep="theirs"`` drops the change;
    ``keep="mine"`` makes it pending again, over the value and stamp Salesforce has now.
    Returns the change as it was (with ``their_value``)."""
    if keep not in ("theirs", "mine"):
        raise OppkitError("keep must be 'theirs' or 'mine'")
    change = conn.execute(
        select(outbound_changes).where(
            record, outbound_changes.c.field == field, outbound_changes.c.status == CONFLICT
        )
    ).mappings().first()  # fmt: skip
    if change is None:
        raise OppkitError(f"no conflict on {field!r} of this {what}")
    if keep == "mine":
        values = {
            "status": PENDING,
            "seen_modstamp": change["their_modstamp"],
            "old_value": change["their_value"],
            "requested_by_id": by_id or change["requested_by_id"],
        }
    else:
        values = {"status": DROPPED}
    conn.execute(
        update(outbound_changes)
        .where(outbound_changes.c.id == change["id"])
        .values(last_error=None, **values)
    )
    return dict(change)


def resolve_conflict(
    kit: ScopeLike, opportunity: Any, field: str, keep: str, *, by: str | None = None
) -> None:
    """Settle a conflict on a deal's field: ``keep="theirs"`` drops the change (Salesforce's
    value stays); ``keep="mine"`` pushes it again, now over the value the user has seen.
    (A contact's or account's status: ``kit.lifecycle.resolve_conflict``.)

    >>> resolve_conflict(kit, "Acme pilot", "amount", keep="mine")
    """
    if field == LIFECYCLE_STATUS:
        raise OppkitError(
            "a contact's or account's status conflict is settled with "
            "kit.lifecycle.resolve_conflict(person_or_account, keep=...)"
        )
    scope = scope_of(kit)
    opportunity_id = scope.opportunity_id(opportunity)
    by_id = scope.acting_person_id(by)
    with write_transaction(scope.engine) as conn:
        record = outbound_changes.c.opportunity_id == opportunity_id
        settle_conflict(conn, record, field, keep, by_id=by_id)
        if keep == "theirs" and field == "stage":  # the deal stays in Salesforce's stage:
            from .funnel import place_deals  # its step follows it

            place_deals(conn, [opportunity_id], origin="conflict", force=True, by_id=by_id)


def withdraw(
    conn: Connection, opportunity_id: int, fields: Iterable[str], *, origin: str,
    by_id: int | None = None,
) -> list[str]:  # fmt: skip
    """Drop the changes still waiting (pending or in conflict) on these fields of a deal,
    in the caller's transaction: Salesforce's value stays, and a deal whose stage change
    is dropped goes back to the step its stage arrives at. Returns the fields dropped."""
    fields = list(fields)
    if not fields:
        return []
    dropped = list(
        conn.scalars(
            update(outbound_changes)
            .where(
                outbound_changes.c.opportunity_id == opportunity_id,
                outbound_changes.c.field.in_(fields),
                outbound_changes.c.status.in_(WAITING),
            )
            .values(status=DROPPED, last_error=None)
            .returning(outbound_changes.c.field)
        )
    )
    if "stage" in dropped:
        from .funnel import place_deals

        place_deals(conn, [opportunity_id], origin=origin, force=True, by_id=by_id)
    return dropped


def discard_change(kit: ScopeLike, change_id: int) -> None:
    """Withdraw a change that is still pending or in conflict (Salesforce's value stays;
    a contact's or account's lifecycle stage stays as set in oppkit)."""
    scope = scope_of(kit)
    with write_transaction(scope.engine) as conn:
        found = conn.execute(
            select(
                outbound_changes.c.opportunity_id, outbound_changes.c.person_id,
                outbound_changes.c.field,
            ).where(
                outbound_changes.c.id == int(change_id),
                outbound_changes.c.status.in_((PENDING, CONFLICT)),
            )
        ).first()  # fmt: skip
        hidden = found is not None and (
            (
                found.opportunity_id is not None
                and found.opportunity_id not in scope.opportunity_ids(found.opportunity_id)
            )
            or (
                found.person_id is not None
                and conn.scalar(
                    select(people.c.id).where(
                        people.c.id == found.person_id, people.c.id.in_(scope.hidden_people())
                    )
                )
                is not None
            )
        )
        if found is None or hidden:
            raise OppkitError(f"no pending change {change_id}")
        if found.opportunity_id is not None:
            withdraw(conn, found.opportunity_id, [found.field], origin="edit")
        else:
            conn.execute(
                update(outbound_changes)
                .where(outbound_changes.c.id == int(change_id))
                .values(status=DROPPED)
            )


__all__ = [
    "CONFLICT",
    "DROPPED",
    "PENDING",
    "PUSHED",
    "StatusQueue",
    "WriteBackOff",
    "add_pending",
    "as_json",
    "changes",
    "coerce",
    "discard_change",
    "owned_by_salesforce",
    "queue_changes",
    "record_history",
    "refusal",
    "resolve_conflict",
    "settle_conflict",
    "update_opportunity",
    "withdraw",
    "write_back_enabled",
]
