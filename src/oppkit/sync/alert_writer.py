"""Alert writing during sync: the alerts and tasks that text rules find, stored.

The rules themselves (pure functions over text) live in :mod:`oppkit.signal_rules`;
this module turns what they find into ``alerts`` rows and keeps unanswered-question
alerts current.

Why here: the sync runner is the only writer of synced rows, and signals come from the
messages it writes. Two kinds:

* sentence rules (:func:`oppkit.signal_rules.find_signals`): requests made of us, commitments
  we made (with due dates), risks -- one alert per (activity, rule), never re-opened
  once someone closed it;
* unanswered questions: an inbound message that asks something, with no reply of ours
  later in its thread after N days. The alert closes itself when a reply arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, select, update

from ..config import env_setting
from ..db.schema import activities, alerts
from ..db.upsert import insert_ignore

UNANSWERED_RULE = "unanswered.question"
UNANSWERED_LOOKBACK = timedelta(days=90)
_QUESTION = re.compile(r"\?\s*(?:$|\n|[A-Z])")


def unanswered_days() -> float:
    return float(env_setting("UNANSWERED_DAYS", "3") or 3)


def asks_question(text: str | None) -> bool:
    """The newest part of a message asks something (a sentence ending in '?')."""
    return bool(text) and bool(_QUESTION.search(text + "\n"))


def rule_alerts(activity: Mapping[str, Any], activity_id: int, text: str | None) -> list[dict]:
    """Alert rows for the sentence rules that fire on one activity's newest text."""
    from ..signal_rules import find_signals

    if not text or activity["kind"] not in ("email", "meeting"):
        return []
    found = find_signals(
        text, occurred_at=activity["occurred_at"], direction=activity["direction"] or "inbound",
        subject=activity["subject"], is_auto=activity["is_auto"],
    )  # fmt: skip
    seen: dict[str, int] = {}
    rows = []
    for signal in found:
        n = seen[signal.rule] = seen.get(signal.rule, 0) + 1  # two sentences, one rule: two alerts
        rows.append(
            {
                "kind": signal.kind,
                "text": signal.text,
                "due_at": signal.due_at,
                "status": "open",
                "activity_id": activity_id,
                "opportunity_id": activity["opportunity_id"],
                "rule": signal.rule,
                "source": "signal",
                "source_id": f"{activity['source']}:{activity['source_id']}:{signal.rule}:{n}",
            }
        )
    return rows


def write_rule_alerts(conn: Connection, rows: Iterable[dict]) -> int:
    rows = list(rows)
    insert_ignore(conn, alerts, rows)  # an alert someone closed is never re-opened
    return len(rows)


def refresh_unanswered(
    conn: Connection, now: datetime | None = None, days: float | None = None
) -> None:
    """Open alerts for questions we left unanswered; close those that got a reply."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=unanswered_days() if days is None else days)
    reply = activities.alias("reply")
    answered = exists().where(
        reply.c.thread_id == activities.c.thread_id,
        reply.c.direction == "outbound",
        reply.c.occurred_at > activities.c.occurred_at,
        reply.c.is_deleted.is_(False),
    )
    questions = conn.execute(
        select(
            activities.c.id,
            activities.c.opportunity_id,
            activities.c.subject,
            activities.c.occurred_at,
            activities.c.source,
            activities.c.source_id,
        ).where(  # fmt: skip
            activities.c.asks_question.is_(True),
            activities.c.direction == "inbound",
            activities.c.is_auto.is_(False),
            activities.c.is_deleted.is_(False),
            activities.c.occurred_at < cutoff,
            activities.c.occurred_at >= now - UNANSWERED_LOOKBACK,
            ~answered,
        )
    ).all()
    insert_ignore(
        conn,
        alerts,
        [
            {
                "kind": "task",
                "text": f"Unanswered question: {q.subject or '(no subject)'}",
                "due_at": q.occurred_at + (now - cutoff),
                "status": "open",
                "activity_id": q.id,
                "opportunity_id": q.opportunity_id,
                "rule": UNANSWERED_RULE,
                "source": "signal",
                "source_id": f"{q.source}:{q.source_id}:{UNANSWERED_RULE}",
            }
            for q in questions
        ],
    )
    conn.execute(
        update(alerts)
        .where(
            alerts.c.rule == UNANSWERED_RULE,
            alerts.c.status == "open",
            exists().where(and_(activities.c.id == alerts.c.activity_id, answered)),
        )
        .values(status="done")
    )
