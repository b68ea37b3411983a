"""Write-back: push the changes people made in oppkit to Salesforce, before the pull.

Why here: the Salesforce agent is the one writer of what Salesforce owns. A change made
in oppkit (``oppkit.writeback``) waits in ``outbound_changes``: a deal's field, or the
lifecycle status of a contact or account (pushed to the field the settings name:
:func:`oppkit.config.status_field`). This pushes it with ``sf.<Object>.update`` and
If-Unmodified-Since the SystemModstamp the person saw, so Salesforce itself refuses (412)
when someone changed the record in between:

* accepted: the change is ``pushed``; the deal takes the value and a stage_history row
  (origin: the edit or transition that made it); a contact or account keeps its stage
  (set already) and takes the status as Salesforce's (``source_status``);
* 412: Salesforce's values are read. A field that already holds the pushed value was
  pushed before (an agent killed between the PATCH and its commit): ``pushed``, never
  sent twice. A field Salesforce left as the person saw it is pushed again, over the new
  stamp. Any other is a ``conflict`` with their value, who and when, for the person to
  resolve (``oppkit.writeback.resolve_conflict``): never a silent overwrite either way;
* refused (a validation rule, a field not writeable, a locked record) or unreachable:
  the change stays ``pending`` with Salesforce's message, tried again next run.

Example::

    result = push_changes(engine, client)
    print(result.line())   # "pushed 2, conflicts 1, waiting 0"
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from ..config import Settings, status_field, write_back_enabled
from ..db.engine import write_transaction
from ..db.ownership import CONFLICT, LIFECYCLE_STATUS, PENDING, PUSHED, SALESFORCE_EDITABLE
from ..db.schema import accounts, campaigns, opportunities, outbound_changes, people
from ..errors import SourceError
from ..history import record_history, same_value
from ..lifecycle_status import SALESFORCE_OBJECTS, TARGETS
from ..redact import error_line, one_line
from ..sources.salesforce_client import (
    DONE,
    RecordRefused,
    SalesforceClient,
    current_record,
    update_record,
)

log = logging.getLogger(__name__)
KIND_OF = {sobject: kind for kind, (sobject, _prefix) in SALESFORCE_OBJECTS.items()}


@dataclass
class PushResult:
    """What a push did; part of the Salesforce agent's summary line."""

    pushed: int = 0
    conflicts: int = 0
    waiting: int = 0  # still pending: refused, unreachable, or write-back off

    def line(self) -> str:
        return f"pushed {self.pushed}, conflicts {self.conflicts}, waiting {self.waiting}"


def waiting_changes(engine: Engine) -> list[dict[str, Any]]:
    """Pending changes of Salesforce deals, contacts and accounts, oldest first, with the
    record's Salesforce Id."""
    record_id = func.coalesce(
        opportunities.c.source_id, people.c.salesforce_id, accounts.c.salesforce_id
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbound_changes, record_id.label("record_id"))
            .select_from(
                outbound_changes.outerjoin(
                    opportunities, opportunities.c.id == outbound_changes.c.opportunity_id
                )
                .outerjoin(people, people.c.id == outbound_changes.c.person_id)
                .outerjoin(accounts, accounts.c.id == outbound_changes.c.account_id)
            )
            .where(
                outbound_changes.c.status == PENDING,
                or_(
                    and_(
                        opportunities.c.source == "salesforce",
                        opportunities.c.is_deleted.is_(False),
                    ),
                    and_(people.c.salesforce_id.is_not(None), people.c.is_deleted.is_(False)),
                    and_(accounts.c.salesforce_id.is_not(None), accounts.c.is_deleted.is_(False)),
                ),
            )  # fmt: skip
            .order_by(outbound_changes.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def salesforce_field(change: dict[str, Any], status_fields: dict[str, str | None]) -> str | None:
    """The Salesforce field a change goes to: a deal's, or the status field the settings
    name for contacts or accounts (None: none is named)."""
    if change["field"] == LIFECYCLE_STATUS:
        return status_fields.get(change["sobject"])
    return SALESFORCE_EDITABLE[change["field"]]


def _to_salesforce(engine: Engine, field: str, value: Any) -> Any:
    if field == "campaign_id" and value is not None:  # oppkit's id -> the Salesforce Id
        with engine.connect() as conn:
            return conn.scalar(select(campaigns.c.source_id).where(campaigns.c.id == int(value)))
    return value.isoformat() if isinstance(value, date | datetime) else value


def _from_salesforce(engine: Engine, field: str, value: Any) -> Any:
    if field == "close_date" and isinstance(value, str):
        return value[:10]
    if field == "campaign_id" and value is not None:  # the Salesforce Id -> oppkit's id
        with engine.connect() as conn:
            found = conn.scalar(
                select(campaigns.c.id).where(
                    campaigns.c.source == "salesforce", campaigns.c.source_id == value
                )
            )
        return found if found is not None else value
    return value


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":  # 2026-01-01T10:00:00.000+0000
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _groups(changes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One PATCH per record (a deal, a contact, an account) and per version the person saw."""
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for change in changes:
        record = (change["sobject"], change["record_id"])
        grouped.setdefault((record, change["seen_modstamp"]), []).append(change)
    return list(grouped.values())


def _mark(engine: Engine, changes: list[dict[str, Any]], **values: Any) -> None:
    if values.get("last_error"):  # upstream words: no secret, one bounded line
        values["last_error"] = one_line(values["last_error"])
    with write_transaction(engine) as conn:
        conn.execute(
            update(outbound_changes)
            .where(outbound_changes.c.id.in_([c["id"] for c in changes]))
            .values(attempts=outbound_changes.c.attempts + 1, **values)
        )


def _pushed(engine: Engine, changes: list[dict[str, Any]]) -> None:
    """Salesforce has these values now: the deal takes them, each with its history row; a
    contact or account takes the status as Salesforce's (its stage is set already)."""
    with write_transaction(engine) as conn:
        for change in changes:
            field = change["field"]
            if field == LIFECYCLE_STATUS:
                table, key = TARGETS[KIND_OF[change["sobject"]]]
                conn.execute(
                    update(table)
                    .where(table.c.id == change[key])
                    .values(source_status=change["new_value"])
                )
                _done(conn, change)
                continue
            old = conn.scalar(
                select(opportunities.c[field]).where(opportunities.c.id == change["opportunity_id"])
            )
            value = change["new_value"]
            if field == "close_date" and value is not None:
                value = date.fromisoformat(value)
            conn.execute(
                update(opportunities)
                .where(opportunities.c.id == change["opportunity_id"])
                .values({field: value})
            )
            record_history(
                conn, change["opportunity_id"], [(field, old, value)],
                origin=change["origin"], by_id=change["requested_by_id"],
            )  # fmt: skip
            _done(conn, change)


def _done(conn: Any, change: dict[str, Any]) -> None:
    conn.execute(
        update(outbound_changes)
        .where(outbound_changes.c.id == change["id"])
        .values(
            status=PUSHED,
            pushed_at=datetime.now(UTC),
            last_error=None,
            attempts=outbound_changes.c.attempts + 1,
        )  # fmt: skip
    )


def _who(engine: Engine, user_id: str | None) -> str | None:
    if not user_id:
        return None
    with engine.connect() as conn:
        found = conn.execute(
            select(people.c.name, people.c.email).where(people.c.salesforce_id == user_id)
        ).first()
    return (found.name or found.email) if found else user_id


def _push_group(
    engine: Engine, client: SalesforceClient, group: list[dict], result: PushResult,
    status_fields: dict[str, str | None],
) -> None:  # fmt: skip
    sobject, record_id, seen = group[0]["sobject"], group[0]["record_id"], group[0]["seen_modstamp"]
    names = {c["id"]: salesforce_field(c, status_fields) for c in group}
    unnamed = [c for c in group if names[c["id"]] is None]
    if unnamed:
        kind = KIND_OF[sobject]
        _mark(engine, unnamed, last_error=f"no Salesforce field is named for the {kind}'s "
              f"status: [salesforce] {kind}_status_field in oppkit.toml")  # fmt: skip
        result.waiting += len(unnamed)
        group = [c for c in group if names[c["id"]] is not None]
        if not group:
            return
    if seen is None:
        _mark(engine, group, last_error="no SystemModstamp is known for the record you "
              "changed: sync Salesforce, then make the change again")  # fmt: skip
        result.waiting += len(group)
        return
    body = {names[c["id"]]: _to_salesforce(engine, c["field"], c["new_value"]) for c in group}
    if update_record(client, sobject, record_id, body, seen) == DONE:
        _pushed(engine, group)
        result.pushed += len(group)
        return
    theirs = current_record(client, sobject, record_id, sorted(body))
    if theirs is None:
        _mark(engine, group, last_error="the record is no longer in Salesforce")
        result.waiting += len(group)
        return
    stamp, by = _stamp(theirs.get("SystemModstamp")), _who(engine, theirs.get("LastModifiedById"))
    landed, again, clash = [], [], []
    for change in group:
        their = _from_salesforce(engine, change["field"], theirs.get(names[change["id"]]))
        if same_value(their, change["new_value"]):
            landed.append(change)  # our own earlier push (its commit was lost)
        elif same_value(their, change["old_value"]):
            again.append(change)  # they changed other fields, not this one
        else:
            clash.append((change, their))
    if landed:
        _pushed(engine, landed)
        result.pushed += len(landed)
    for change, their in clash:
        _mark(engine, [change], status=CONFLICT, their_value=their, their_modstamp=stamp,
              their_by=by, last_error=None)  # fmt: skip
        result.conflicts += 1
    if again:
        body = {names[c["id"]]: _to_salesforce(engine, c["field"], c["new_value"]) for c in again}
        if update_record(client, sobject, record_id, body, stamp or seen) == DONE:
            _pushed(engine, again)
            result.pushed += len(again)
        else:
            _mark(engine, again, last_error="Salesforce changed the record while pushing; next run")
            result.waiting += len(again)


def push_changes(
    engine: Engine, client: SalesforceClient, settings: Settings | None = None
) -> PushResult:
    """Push every pending change (see the module docstring); what happened."""
    result = PushResult()
    status_fields = {
        sobject: status_field(kind, settings) for kind, (sobject, _) in SALESFORCE_OBJECTS.items()
    }
    for group in _groups(waiting_changes(engine)):
        try:
            _push_group(engine, client, group, result, status_fields)
        except RecordRefused as exc:
            _mark(engine, group, last_error=str(exc))
            result.waiting += len(group)
        except SourceError as exc:  # unreachable: the rest waits for the next run too
            _mark(engine, group, last_error=str(exc))
            result.waiting += sum(1 for _ in waiting_changes(engine))
            log.warning("write-back stopped: %s", error_line(exc))
            break
    return result


def push_before_pull(engine: Engine, org: Any, settings: Settings) -> PushResult | None:
    """The Salesforce agent's first step: push what waits (nothing to do: no login)."""
    pending = waiting_changes(engine)
    if not pending:
        return None
    if not write_back_enabled(settings):
        log.warning("%d changes wait for Salesforce, but write-back is off", len(pending))
        return PushResult(waiting=len(pending))
    return push_changes(engine, SalesforceClient.connect(org.login), settings)


__all__ = [
    "PushResult", "push_before_pull", "push_changes", "salesforce_field", "waiting_changes",
]  # fmt: skip
