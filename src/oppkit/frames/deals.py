"""Deal frames: opportunities, the funnel, stage history and alerts, as one user sees them.

Functions of a :class:`~oppkit.scope.Scope` (or a Kit); ``kit.opportunities()`` and its
siblings are these with the Kit's scope bound. Every frame applies the scope's privacy.

Example::

    from oppkit.frames import deals
    deals.opportunities(kit, open_only=True)[["name", "stage", "amount", "days_to_close"]]
    deals.pipeline(kit)
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import exists, func, literal, not_, or_, select

from ..db import schema as db
from ..db.ownership import CONFLICT, PENDING, WAITING
from ..scope import ScopeLike, as_list, scope_of
from .interactions import interactions

__all__ = [
    "alerts", "open_tasks", "opportunities", "pipeline", "stage_history", "stages",
    "waiting_changes",
]  # fmt: skip

# The status a task's source gives it when it is done (Salesforce Task.Status "Completed";
# a task closed in Salesforce some other way has IsClosed, which the source stores as
# ``is_planned`` false).
DONE_TASK_STATUSES = ("completed",)
OPEN_TASK_COLUMNS = ["origin", "alert_id", "activity_id", "opportunity_id", "opportunity",
                     "text", "due_at", "status", "source"]  # fmt: skip


def opportunities(
    scope: ScopeLike,
    *,
    stage: str | list[str] | None = None,
    owner: str | None = None,
    account: Any = None,
    open_only: bool = False,
    campaign: Any = None,
) -> pd.DataFrame:
    """One row per opportunity: stage, deal size, days to close, open alerts, campaign...

    ``campaign`` keeps the deals of one campaign or of several together (names, ids or
    a ``kit.campaigns()`` frame).

    ``pending`` holds the changes made in oppkit that Salesforce does not have yet
    ({field: value}, or None), ``conflicts`` those Salesforce changed in between
    (write-back, see ``kit.changes()``); the other columns are what Salesforce confirmed.

    >>> kit.opportunities(open_only=True)[["name", "stage", "amount", "days_to_close"]]
    """
    scope = scope_of(scope)
    owner_p = db.people.alias("owner")
    open_alerts = (
        select(db.alerts.c.opportunity_id, func.count().label("n"))
        .where(db.alerts.c.status == "open", db.alerts.c.is_deleted.is_(False))
        .group_by(db.alerts.c.opportunity_id)
        .subquery()
    )
    stmt = (
        select(
            db.opportunities.c.id,
            db.opportunities.c.name,
            db.accounts.c.name.label("account"),
            db.opportunities.c.account_id,
            owner_p.c.name.label("owner"),
            owner_p.c.email.label("owner_email"),
            db.opportunities.c.stage,
            func.coalesce(db.stages.c.status, literal("open")).label("stage_status"),
            db.opportunities.c.step,
            db.opportunities.c.amount,
            db.opportunities.c.close_date,
            db.opportunities.c.probability,
            func.coalesce(open_alerts.c.n, 0).label("open_alerts"),
            db.opportunities.c.is_private,
            db.opportunities.c.parent_id,
            db.opportunities.c.campaign_id,
            db.campaigns.c.name.label("campaign"),
            db.opportunities.c.process,
            db.opportunities.c.attributes,
            db.opportunities.c.created_at,
            db.opportunities.c.updated_at,
            db.opportunities.c.source,
            db.opportunities.c.source_id,
        )
        .select_from(
            db.opportunities.outerjoin(
                db.accounts, db.accounts.c.id == db.opportunities.c.account_id
            )
            .outerjoin(owner_p, owner_p.c.id == db.opportunities.c.owner_id)
            .outerjoin(db.stages, db.stages.c.name == db.opportunities.c.stage)
            .outerjoin(open_alerts, open_alerts.c.opportunity_id == db.opportunities.c.id)
            .outerjoin(db.campaigns, db.campaigns.c.id == db.opportunities.c.campaign_id)
        )
        .where(db.opportunities.c.is_deleted.is_(False), scope.visible())
        .order_by(db.opportunities.c.close_date, db.opportunities.c.id)
    )
    if stage is not None:
        stmt = stmt.where(db.opportunities.c.stage.in_(as_list(stage)))
    if owner is not None:
        who = owner.strip().lower()
        stmt = stmt.where(
            or_(func.lower(owner_p.c.email) == who, func.lower(owner_p.c.name) == who)
        )
    if account is not None:
        stmt = stmt.where(db.opportunities.c.account_id.in_(scope.account_ids(account)))
    if open_only:
        stmt = stmt.where(func.coalesce(db.stages.c.status, literal("open")) == "open")
    if campaign is not None:
        stmt = stmt.where(db.opportunities.c.campaign_id.in_(scope.campaign_ids(campaign)))
    df = scope.frame(stmt, "opportunities")
    df["campaign_id"] = df["campaign_id"].astype("Int64")
    _expand_attributes(df)
    df["amount"] = df["amount"].astype("Float64")
    df["close_date"] = pd.to_datetime(df["close_date"]).dt.date
    today = datetime.now(UTC).date()
    df["days_to_close"] = pd.array(  # a closed deal has nothing left to close
        [
            (d - today).days if isinstance(d, date) and not pd.isna(d) and status == "open"
            else None
            for d, status in zip(df["close_date"], df["stage_status"].fillna("open"), strict=True)
        ],
        dtype="Int64",
    )  # fmt: skip
    df["open_alerts"] = df["open_alerts"].astype("int64")
    df["is_private"] = df["is_private"].astype(bool)
    for column in ("created_at", "updated_at"):
        df[column] = pd.to_datetime(df[column], utc=True)
    waiting = waiting_changes(scope, df["id"].tolist())
    df["pending"] = [waiting.get(i, {}).get(PENDING) for i in df["id"]]
    df["conflicts"] = [waiting.get(i, {}).get(CONFLICT) for i in df["id"]]
    return df


def waiting_changes(scope: ScopeLike, opportunity_ids: list[int]) -> dict[int, dict[str, dict]]:
    """Deal id -> status (pending, conflict) -> field -> the value a person set in oppkit
    that Salesforce does not have yet (``kit.changes()`` has the details). The deal's own
    columns keep Salesforce's value until Salesforce confirms."""
    scope = scope_of(scope)
    found: dict[int, dict[str, dict]] = {}
    if not opportunity_ids:
        return found
    with scope.engine.connect() as conn:
        for start in range(0, len(opportunity_ids), 500):
            part = [int(i) for i in opportunity_ids[start : start + 500]]
            for opp_id, field, value, status in conn.execute(
                select(
                    db.outbound_changes.c.opportunity_id, db.outbound_changes.c.field,
                    db.outbound_changes.c.new_value, db.outbound_changes.c.status,
                ).where(
                    db.outbound_changes.c.opportunity_id.in_(part),
                    db.outbound_changes.c.status.in_(WAITING),
                )
            ):  # fmt: skip
                found.setdefault(opp_id, {}).setdefault(status, {})[field] = value
    return found


def alerts(scope: ScopeLike, *, opportunity: Any = None, status: str | None = None) -> pd.DataFrame:
    """Alerts and tasks, with the activity they came from and the rule that found them."""
    scope = scope_of(scope)
    stmt = (
        select(
            db.alerts.c.id,
            db.alerts.c.kind,
            db.alerts.c.text,
            db.alerts.c.due_at,
            db.alerts.c.status,
            db.alerts.c.rule,
            db.alerts.c.activity_id,
            db.alerts.c.opportunity_id,
            db.opportunities.c.name.label("opportunity"),
            db.alerts.c.created_at,
        )
        .select_from(
            db.alerts.outerjoin(
                db.opportunities, db.opportunities.c.id == db.alerts.c.opportunity_id
            )
        )
        .where(
            db.alerts.c.is_deleted.is_(False),
            or_(db.alerts.c.opportunity_id.is_(None), scope.visible()),
            # and never an alert from an activity on a deal this user may not see
            or_(
                db.alerts.c.activity_id.is_(None),
                db.alerts.c.activity_id.not_in(
                    select(db.activities.c.id).where(
                        db.activities.c.opportunity_id.in_(scope.hidden_opportunities())
                    )
                ),
            ),
        )
        .order_by(db.alerts.c.created_at.desc())
    )
    if opportunity is not None:
        stmt = stmt.where(db.alerts.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if status is not None:
        stmt = stmt.where(db.alerts.c.status == status)
    df = scope.frame(stmt, "alerts")
    for column in ("due_at", "created_at"):
        df[column] = pd.to_datetime(df[column], utc=True)
    return df


def open_tasks(scope: ScopeLike, *, opportunity: Any = None) -> pd.DataFrame:
    """Open tasks, each once: the tasks among the alerts and the tasks on the timeline.

    Two kinds of row (``origin``):

    - ``alert``: an open alert of kind ``task`` (entered by hand, or found by a rule such
      as an unanswered question); source ``oppkit``;
    - ``activity``: a task on the timeline (activity kind ``task``: a Salesforce Task)
      that is not done: still ``is_planned`` (Salesforce: neither ``IsClosed`` nor status
      Completed) and its status is not Completed. A task activity that a task alert
      refers to is that alert's task and is not listed again (the alert's status decides);
    - ``interaction``: a plan made in oppkit (``kit.interactions``) that is overdue (its
      planned start has passed without a result); status ``overdue``. A plan is listed
      here only, whatever its type (never again as an ``activity``), and only once overdue.

    Columns: origin, alert_id, activity_id, opportunity_id, opportunity, text (the
    alert's text or the task's subject), due_at (the alert's due date or the task's
    activity date), status, source; soonest due first. Without ``opportunity``, every
    open task this scope may see. Privacy as in :func:`alerts` and the timeline.

    >>> kit.open_tasks(opportunity="Acme pilot")[["origin", "text", "due_at"]]
    """
    scope = scope_of(scope)
    ids = scope.opportunity_ids(opportunity) if opportunity is not None else None
    task_alerts = alerts(scope, opportunity=ids, status="open")
    task_alerts = task_alerts[task_alerts["kind"] == "task"]
    rows = [
        ("alert", a.id, a.activity_id, a.opportunity_id, a.opportunity, a.text, a.due_at,
         a.status, "oppkit")
        for a in task_alerts.itertuples(index=False)
    ]  # fmt: skip
    as_alert = exists().where(
        db.alerts.c.activity_id == db.activities.c.id,
        db.alerts.c.kind == "task",
        db.alerts.c.is_deleted.is_(False),
    )
    stmt = (
        select(
            db.activities.c.id,
            db.activities.c.opportunity_id,
            db.opportunities.c.name,
            db.activities.c.subject,
            db.activities.c.occurred_at,
            db.activities.c.status,
            db.activities.c.source,
        )  # fmt: skip
        .select_from(
            db.activities.outerjoin(
                db.opportunities, db.opportunities.c.id == db.activities.c.opportunity_id
            )
        )
        .where(
            db.activities.c.kind == "task",
            db.activities.c.is_planned.is_(True),
            db.activities.c.is_deleted.is_(False),
            or_(
                db.activities.c.status.is_(None),
                func.lower(db.activities.c.status).not_in(DONE_TASK_STATUSES),
            ),
            not_(as_alert),
            not_(exists().where(db.interactions.c.activity_id == db.activities.c.id)),
            or_(db.activities.c.opportunity_id.is_(None), scope.visible()),
        )
    )
    if ids is not None:
        stmt = stmt.where(db.activities.c.opportunity_id.in_(ids))
    with scope.engine.connect() as conn:
        rows += [
            ("activity", None, r.id, r.opportunity_id, r.name, r.subject, r.occurred_at,
             r.status, r.source)
            for r in conn.execute(stmt)
        ]  # fmt: skip
    plans = interactions(scope, opportunity=ids, status="overdue", source="oppkit")
    rows += [
        ("interaction", None, p.id, p.opportunity_id, p.opportunity, p.name, p.planned_start,
         p.status, p.source)
        for p in plans.itertuples(index=False)
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=OPEN_TASK_COLUMNS)
    df["due_at"] = pd.to_datetime(df["due_at"], utc=True)
    for column in ("alert_id", "activity_id", "opportunity_id"):
        df[column] = df[column].astype("Int64")
    df = df.sort_values("due_at", na_position="last", kind="stable").reset_index(drop=True)
    return scope.tag(df, "open_tasks")


def stages(scope: ScopeLike) -> pd.DataFrame:
    """The workflow's stages: open ones in funnel order, then closed ones."""
    scope = scope_of(scope)
    stmt = select(
        db.stages.c.name,
        db.stages.c.status,
        db.stages.c.sort_order,
        db.stages.c.probability,
        db.stages.c.is_active,
    ).order_by(db.stages.c.sort_order, db.stages.c.name)
    return scope.frame(stmt, "stages")


def pipeline(scope: ScopeLike) -> pd.DataFrame:
    """The funnel: open stages in their order with count, amount and weighted amount.

    Opportunities in a stage the workflow does not know are shown after the known
    ones, so nothing silently drops out of the total.
    """
    scope = scope_of(scope)
    opps = opportunities(scope, open_only=True)
    known = stages(scope)
    order = known[known["status"] == "open"]["name"].tolist()
    extra = sorted(set(opps["stage"].dropna()) - set(known["name"]))
    rows = []
    for position, stage in enumerate(order + extra, start=1):
        in_stage = opps[opps["stage"] == stage]
        weighted = (in_stage["amount"].fillna(0) * in_stage["probability"].fillna(0) / 100).sum()
        rows.append(
            {
                "stage": stage,
                "order": position,
                "count": len(in_stage),
                "amount": float(in_stage["amount"].fillna(0).sum()),
                "weighted_amount": float(weighted),
            }
        )
    df = pd.DataFrame(rows, columns=["stage", "order", "count", "amount", "weighted_amount"])
    df.attrs["oppkit"] = {"kit": scope.token, "frame": "pipeline"}
    return df


def stage_history(scope: ScopeLike, *, opportunity: Any = None) -> pd.DataFrame:
    """Every stage, step, amount and close-date change, newest first; ``origin`` says
    where it came from: sync (Salesforce), create, transition, edit, conflict."""
    scope = scope_of(scope)
    by = db.people.alias("by")
    stmt = (
        select(
            db.stage_history.c.opportunity_id,
            db.opportunities.c.name.label("opportunity"),
            db.stage_history.c.field,
            db.stage_history.c.old_value,
            db.stage_history.c.new_value,
            db.stage_history.c.changed_at,
            by.c.name.label("changed_by"),
            db.stage_history.c.source,
            db.stage_history.c.origin,
        )
        .select_from(
            db.stage_history.join(
                db.opportunities, db.opportunities.c.id == db.stage_history.c.opportunity_id
            ).outerjoin(by, by.c.id == db.stage_history.c.changed_by_id)
        )
        .where(scope.visible(), db.opportunities.c.is_deleted.is_(False))
        .order_by(db.stage_history.c.changed_at.desc(), db.stage_history.c.id.desc())
    )
    if opportunity is not None:
        stmt = stmt.where(db.stage_history.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    df = scope.frame(stmt, "stage_history")
    df["changed_at"] = pd.to_datetime(df["changed_at"], utc=True)
    return df


def _expand_attributes(df: pd.DataFrame) -> None:
    """Custom fields mapped in oppkit.toml become columns of their own (never shadowing ours)."""
    attributes = df.pop("attributes")
    if not attributes.notna().any():
        return
    extra = pd.DataFrame([a if isinstance(a, dict) else {} for a in attributes], index=df.index)
    for column in extra.columns:
        if column not in df.columns:
            df[column] = extra[column]
