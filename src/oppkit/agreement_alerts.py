"""Expiring agreements as alerts on the account's open deals (rule ``agreement.expiring``).

Why: a deal with a customer whose agreement ends soon is the moment to renew it, and the
people on the deal should see that where they look (``kit.alerts()``, the deal's view)
without running a report. :func:`check_agreements` runs after every Salesforce sync (an
after-run hook of the Salesforce sources), from ``oppkit agreements check`` and as the
``agreements`` agent in ``[[agents]]``; it is idempotent:

- an agreement is *expiring* when its end date lies within ``[agreements] expiring_days``
  (default 60) from today, and it is not *renewed*: no other agreement of the same
  account and type ends later (or never);
- each open deal of its account gets one alert (kind ``alert``, due on the end date) per
  agreement and end date; running twice writes no second alert, and an alert someone
  closed is never re-opened;
- an open alert is resolved (status ``done``) once its agreement is renewed, gone
  (deleted, or its end date moved) or its deal is no longer open. An agreement that just
  lapsed unrenewed keeps its alert.

Example::

    with write_transaction(engine) as conn:
        check_agreements(conn, settings, today=date(2026, 11, 2)).line()
        # 'agreements: 1 expiring, 1 alert opened, 0 resolved'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, exists, func, literal, or_, select, update

from .config import Settings, expiring_days
from .db.schema import accounts, agreements, alerts, opportunities, stages
from .db.upsert import insert_ignore

__all__ = ["ALERT_SOURCE", "EXPIRING_RULE", "AgreementCheck", "check_agreements", "renewed"]

EXPIRING_RULE = "agreement.expiring"
ALERT_SOURCE = "agreement"  # alerts.source of the alerts this module writes


@dataclass
class AgreementCheck:
    """What one check found and did (``read``/``written``/``skipped`` as a run counts)."""

    expiring: int = 0
    opened: int = 0
    resolved: int = 0
    skipped: int = 0

    @property
    def read(self) -> int:
        return self.expiring

    @property
    def written(self) -> int:
        return self.opened + self.resolved

    def line(self) -> str:
        """One line for a terminal or a log."""
        alert = "alert" if self.opened == 1 else "alerts"
        return (
            f"agreements: {self.expiring} expiring, {self.opened} {alert} opened, "
            f"{self.resolved} resolved"
        )


def renewed():  # noqa: ANN201 (a SQL condition on the agreements row)
    """SQL condition: another live agreement of the same account and type ends later (or
    never) than this one: it was renewed."""
    renewal = agreements.alias("renewal")
    return exists().where(
        renewal.c.account_id == agreements.c.account_id,
        renewal.c.agreement_type == agreements.c.agreement_type,
        renewal.c.id != agreements.c.id,
        renewal.c.is_deleted.is_(False),
        or_(renewal.c.end_date.is_(None), renewal.c.end_date > agreements.c.end_date),
    )


def check_agreements(
    conn: Connection, settings: Settings | None = None, today: date | None = None
) -> AgreementCheck:
    """Open alerts for expiring agreements on their accounts' open deals; resolve the
    alerts whose agreement was renewed or is gone, or whose deal closed. In the caller's
    transaction."""
    today = today or datetime.now(UTC).date()
    horizon = today + timedelta(days=expiring_days(settings))
    stmt = (
        select(
            agreements.c.id,
            agreements.c.agreement_type,
            agreements.c.contract_number,
            agreements.c.end_date,
            accounts.c.name.label("account"),
            opportunities.c.id.label("deal_id"),
        )
        .join(accounts, accounts.c.id == agreements.c.account_id)
        .join(opportunities, opportunities.c.account_id == agreements.c.account_id)
        .outerjoin(stages, stages.c.name == opportunities.c.stage)
        .where(
            agreements.c.is_deleted.is_(False),
            agreements.c.end_date.is_not(None),
            agreements.c.end_date <= horizon,
            ~renewed(),
            opportunities.c.is_deleted.is_(False),
            func.coalesce(stages.c.status, literal("open")) == "open",
        )
    )
    current: dict[str, dict] = {}
    expiring: set[int] = set()
    for row in conn.execute(stmt):
        key = f"agreement:{row.id}:{row.end_date.isoformat()}:{row.deal_id}"
        if row.end_date < today:  # lapsed: an alert it has stays, no new one
            current[key] = {}
            continue
        expiring.add(row.id)
        what = f"{row.agreement_type} {row.contract_number}" if row.contract_number else (
            row.agreement_type
        )  # fmt: skip
        current[key] = {
            "kind": "alert",
            "text": f"Agreement {what} of {row.account} ends on {row.end_date:%Y-%m-%d}: renew it",
            "due_at": datetime.combine(row.end_date, time(), UTC),
            "status": "open",
            "opportunity_id": row.deal_id,
            "rule": EXPIRING_RULE,
            "source": ALERT_SOURCE,
            "source_id": key,
        }
    known = set(
        conn.scalars(select(alerts.c.source_id).where(alerts.c.source == ALERT_SOURCE)).all()
    )
    new = [row for key, row in current.items() if row and key not in known]
    insert_ignore(conn, alerts, new)
    stale = [
        alert_id
        for alert_id, key in conn.execute(
            select(alerts.c.id, alerts.c.source_id).where(
                alerts.c.source == ALERT_SOURCE,
                alerts.c.rule == EXPIRING_RULE,
                alerts.c.status == "open",
            )
        )
        if key not in current
    ]
    for start in range(0, len(stale), 500):
        conn.execute(
            update(alerts)
            .where(alerts.c.id.in_(stale[start : start + 500]))
            .values(status="done", updated_at=datetime.now(UTC))
        )
    return AgreementCheck(expiring=len(expiring), opened=len(new), resolved=len(stale))
