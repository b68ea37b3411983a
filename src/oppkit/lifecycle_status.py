"""A contact's or account's lifecycle stage and the Salesforce status it maps to.

Why one place: the stage is oppkit's (:mod:`oppkit.workflow.lifecycle` moves it by rule
or by hand); the status field of the Salesforce Contact or Account is Salesforce's. The
two meet three times: a sync reads Salesforce's status back into the stage
(:mod:`oppkit.sync.writer`), write-back queues the status of a stage set in oppkit
(:mod:`oppkit.writeback`), and a conflict settled "theirs" takes Salesforce's status.
All of them map through ``lifecycle_stages.external_status`` the same way: a status
moves a stage only when the stage does not map to it already (several stages may share
one status: the first of them in order is taken), and every move is one
``lifecycle_history`` row.

Example::

    statuses = StatusMap.load(conn, "contact")
    statuses.stage_for("Working - Engaged", current="Contacted")  # "Engaged"
    move_stage(conn, "contact", person_id, "Contacted", "Engaged", reason="salesforce")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, insert, select, update

from .db.schema import accounts, lifecycle_history, lifecycle_stages, people

# kind -> (table, its key in lifecycle_history and outbound_changes)
TARGETS: dict[str, tuple[Table, str]] = {
    "contact": (people, "person_id"),
    "account": (accounts, "account_id"),
}
# kind -> the Salesforce object and the key prefix of its Ids. A Lead (00Q, Status) would
# be the third; leads are not synced yet.
SALESFORCE_OBJECTS = {"contact": ("Contact", "003"), "account": ("Account", "001")}
FROM_SALESFORCE = "salesforce"  # lifecycle_history.reason of a stage read back by a sync


@dataclass(frozen=True)
class StatusMap:
    """The lifecycle stages of one kind, in order, with the status each maps to."""

    stages: tuple[tuple[str, str | None], ...]

    @classmethod
    def load(cls, conn: Connection, kind: str) -> StatusMap:
        rows = conn.execute(
            select(lifecycle_stages.c.name, lifecycle_stages.c.external_status)
            .where(lifecycle_stages.c.kind == kind)
            .order_by(lifecycle_stages.c.sort_order)
        ).all()
        return cls(tuple((name, status) for name, status in rows))

    def status_of(self, stage: str | None) -> str | None:
        """The Salesforce status ``stage`` maps to (None: it maps to none)."""
        return next((status for name, status in self.stages if name == stage), None)

    def maps(self, status: str) -> bool:
        """Whether some stage maps to ``status``."""
        return any(s == status for _, s in self.stages)

    def stage_for(self, status: str, current: str | None) -> str | None:
        """The stage a contact or account at ``current`` moves to when Salesforce says
        ``status``; None when ``current`` maps to it already, or no stage does."""
        if self.status_of(current) == status:
            return None
        return next((name for name, s in self.stages if s == status), None)


def move_stage(
    conn: Connection, kind: str, target_id: int, old: str | None, new: str, *,
    reason: str, by_id: int | None = None, activity_id: int | None = None,
    locked: bool | None = None,
) -> None:  # fmt: skip
    """Set a contact's or account's stage (and its lock, when given); a lifecycle_history
    row when the stage changes. ``reason``: manual, the rule's event, salesforce."""
    table, key = TARGETS[kind]
    values: dict = {"lifecycle_stage": new}
    if locked is not None:
        values["stage_locked"] = locked
    conn.execute(update(table).where(table.c.id == target_id).values(**values))
    if old == new:
        return
    conn.execute(
        insert(lifecycle_history).values(
            kind=kind,
            **{key: target_id},
            old_stage=old,
            new_stage=new,
            reason=reason,
            activity_id=activity_id,
            changed_at=datetime.now(UTC),
            changed_by_id=by_id,
        )  # fmt: skip
    )


__all__ = ["FROM_SALESFORCE", "SALESFORCE_OBJECTS", "TARGETS", "StatusMap", "move_stage"]
