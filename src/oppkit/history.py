"""Stage history rows written by oppkit: one row per change, saying where it came from.

Why shared: a workflow transition, an edit, a pushed write-back, a conflict resolved
and a deal placed by a sync all record their changes the same way; the Kit's
``stage_history()`` shows them beside Salesforce's own history (origin ``sync``).

Example::

    record_history(conn, deal_id, [("stage", "Prospecting", "Qualification")],
                   origin="edit", by_id=person_id)
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, insert

from .db.schema import stage_history

HISTORY_FIELDS = ("stage", "step", "amount", "close_date")  # what stage_history records
ORIGINS = ("sync", "create", "transition", "edit", "conflict")


def same_value(old: Any, new: Any) -> bool:
    """Whether two values of a field are the same (a date and its ISO text; 5 and 5.0)."""
    if isinstance(old, date | datetime):
        old = old.isoformat()
    if isinstance(new, date | datetime):
        new = new.isoformat()
    if isinstance(old, int | float) and isinstance(new, int | float):
        return float(old) == float(new)
    return old == new


def record_history(
    conn: Connection, opportunity_id: int, changes: list[tuple[str, Any, Any]], *,
    origin: str, by_id: int | None, source: str = "oppkit",
) -> None:  # fmt: skip
    """One stage_history row per changed field (stage, step, amount, close date)."""
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}")
    now = datetime.now(UTC)
    for field, old, new in changes:
        if field not in HISTORY_FIELDS or same_value(old, new):
            continue
        conn.execute(
            insert(stage_history).values(
                opportunity_id=opportunity_id,
                field=field,
                old_value=None if old is None else str(old),
                new_value=None if new is None else str(new),
                changed_at=now,
                changed_by_id=by_id,
                origin=origin,
                source=source,
                source_id=f"{origin}:{field}:{uuid.uuid4().hex}",
            )  # fmt: skip
        )


__all__ = ["HISTORY_FIELDS", "ORIGINS", "record_history", "same_value"]
