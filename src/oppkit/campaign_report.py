"""The campaign report: what each campaign brought, what it cost, what it won.

Why: "which campaigns pay?" is the question marketing and sales share. One row per
campaign puts members, leads, deals, pipeline, wins and costs side by side, counted by
the database (GROUP BY), so it stays quick on a large org, and with the scope's privacy:
a deal the user may not see is neither counted nor summed.

What each figure means (``since`` limits the counts, never the costs):

* ``members``: non-deleted campaign members (contacts and leads) -- as
  ``kit.campaigns()`` counts them;
* ``leads``: the campaign's leads, as ``kit.leads(campaign=...)`` lists them: leads that
  are members themselves, and converted leads whose contact is a member (a lead reached
  both ways counts once); deleted leads are not counted. ``leads_converted``: those of
  them that are converted;
* ``opportunities``: the deals the campaign is stamped on (``opportunities.campaign_id``)
  that the user may see, not deleted; ``pipeline_amount`` sums the amounts of the open ones
  (a stage the workflow does not know counts as open, as in ``kit.opportunities()``),
  ``won_amount`` of the won ones; ``won`` and ``lost`` count the closed ones (archived deals
  are neither); ``win_rate`` is won / (won + lost), NA when none closed;
  ``avg_days_to_close``: the average of (close date - day created, UTC) over won deals;
* ``budgeted_cost``, ``actual_cost``: the campaign's own; ``cost_per_won`` is
  actual cost / won deals and ``return_on_cost`` is (won amount - actual cost) / actual
  cost, both NA without an actual cost (none or 0), ``cost_per_won`` also without a win.

``since`` (a date, datetime or text; naive means UTC) keeps deals, members and leads
created on or after it. Amounts are summed as stored, whatever their currency.

Example::

    report = kit.campaign_report(since="2026-01-01")
    report[["name", "opportunities", "won_amount", "win_rate", "return_on_cost"]]

    from oppkit.campaign_report import campaign_chart
    campaign_chart(kit.campaign_report(["Spring webinar", "Trade fair"]))   # a Figure
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Date, Float, case, cast, func, literal, select, union
from sqlalchemy.sql import ColumnElement

from .charts import plain_text
from .db import schema as db
from .scope import ScopeLike, refs_of, scope_of, to_utc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["REPORT_COLUMNS", "campaign_chart", "campaign_report"]

REPORT_COLUMNS = [
    "id", "name", "campaign_type", "status", "start_date", "members", "leads",
    "leads_converted", "opportunities", "pipeline_amount", "won_amount", "won", "lost",
    "win_rate", "avg_days_to_close", "budgeted_cost", "actual_cost", "cost_per_won",
    "return_on_cost",
]  # fmt: skip
_COUNTS = ("members", "leads", "leads_converted", "opportunities", "won", "lost")


def campaign_report(
    scope: ScopeLike, campaigns: Any = None, since: date | datetime | str | None = None
) -> pd.DataFrame:
    """One row per campaign (those named, in the order given, or every campaign not
    deleted, newest first): members, leads, deals, pipeline, wins and what they cost.
    The module docstring says what each column means.

    ``campaigns``: ids, names, Salesforce ids or a frame of campaigns (its ``id``).
    ``since``: count only deals, members and leads created on or after it.

    >>> kit.campaign_report(since="2026-01-01").sort_values("return_on_cost")
    >>> kit.campaign_report(["Spring webinar", "Trade fair"])[["name", "won", "win_rate"]]
    """
    scope = scope_of(scope)
    ids = None
    if campaigns is not None:
        ids = list(dict.fromkeys(scope.campaign_ids(refs_of(campaigns))))
    after = to_utc(since) if since is not None else None
    c = db.campaigns
    deals = _deal_figures(scope, ids, after)
    members = _member_figures(ids, after)
    leads = _lead_figures(ids, after)
    stmt = (
        select(
            c.c.id,
            c.c.name,
            c.c.campaign_type,
            c.c.status,
            c.c.start_date,
            func.coalesce(members.c.members, 0).label("members"),
            func.coalesce(leads.c.leads, 0).label("leads"),
            func.coalesce(leads.c.leads_converted, 0).label("leads_converted"),
            func.coalesce(deals.c.opportunities, 0).label("opportunities"),
            func.coalesce(deals.c.pipeline_amount, 0.0).label("pipeline_amount"),
            func.coalesce(deals.c.won_amount, 0.0).label("won_amount"),
            func.coalesce(deals.c.won, 0).label("won"),
            func.coalesce(deals.c.lost, 0).label("lost"),
            deals.c.avg_days_to_close,
            c.c.budgeted_cost,
            c.c.actual_cost,
        )  # fmt: skip
        .select_from(
            c.outerjoin(deals, deals.c.campaign_id == c.c.id)
            .outerjoin(members, members.c.campaign_id == c.c.id)
            .outerjoin(leads, leads.c.campaign_id == c.c.id)
        )
        .where(c.c.is_deleted.is_(False))
        .order_by(c.c.start_date.desc().nulls_last(), c.c.name, c.c.id)
    )
    if ids is not None:
        stmt = stmt.where(c.c.id.in_(ids))
    with scope.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # JIT compiling this plan (its cost estimate is over jit_above_cost) takes
            # longer than running it: off for this read transaction only
            conn.exec_driver_sql("SET LOCAL jit = off")
        result = conn.execute(stmt)
        df = pd.DataFrame([tuple(row) for row in result.fetchall()], columns=list(result.keys()))
    if ids is not None:  # the order the campaigns were named in
        found = set(df["id"])
        df = df.set_index("id").reindex([i for i in ids if i in found]).reset_index()
    return scope.tag(_finish(df), "campaign_report")


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Types, and the ratios (on one row per campaign: no need for the database)."""
    df["start_date"] = pd.to_datetime(df["start_date"]).dt.date
    for column in _COUNTS:
        df[column] = df[column].astype("int64")
    for column in ("pipeline_amount", "won_amount"):
        df[column] = df[column].astype("float64")
    for column in ("avg_days_to_close", "budgeted_cost", "actual_cost"):
        df[column] = df[column].astype("Float64")
    closed = (df["won"] + df["lost"]).astype("Float64")
    df["win_rate"] = (df["won"] / closed).where(closed > 0)
    cost = df["actual_cost"].mask(df["actual_cost"].fillna(0) == 0)  # none or 0: no cost
    df["cost_per_won"] = (cost / df["won"].astype("Float64")).where(df["won"] > 0)
    df["return_on_cost"] = (df["won_amount"] - cost) / cost
    for column in ("win_rate", "cost_per_won", "return_on_cost"):
        df[column] = df[column].astype("Float64")
    return df[REPORT_COLUMNS]


def _since(column: ColumnElement, after: datetime | None) -> list[ColumnElement[bool]]:
    return [] if after is None else [column >= after]


def _of(column: ColumnElement, ids: list[int] | None) -> list[ColumnElement[bool]]:
    return [] if ids is None else [column.in_(ids)]


def _days_to_close(scope: Any) -> ColumnElement:
    """Days from the (UTC) day a deal was created to its close date, in SQL."""
    o = db.opportunities
    if scope.engine.dialect.name == "sqlite":
        return func.julianday(o.c.close_date) - func.julianday(func.date(o.c.created_at))
    return o.c.close_date - cast(o.c.created_at, Date)


def _deal_figures(scope: Any, ids: list[int] | None, after: datetime | None) -> Any:
    """Per campaign, over the deals the user may see: count, open and won amounts, won and
    lost counts, average days to close a won deal."""
    o, s = db.opportunities, db.stages
    status = func.coalesce(s.c.status, literal("open"))  # an unknown stage counts as open
    won, lost, is_open = status == "won", status == "lost", status == "open"
    return (
        select(
            o.c.campaign_id,
            func.count().label("opportunities"),
            func.sum(case((is_open, o.c.amount))).label("pipeline_amount"),
            func.sum(case((won, o.c.amount))).label("won_amount"),
            func.count(case((won, 1))).label("won"),
            func.count(case((lost, 1))).label("lost"),
            cast(func.avg(case((won, _days_to_close(scope)))), Float).label("avg_days_to_close"),
        )
        .select_from(o.outerjoin(s, s.c.name == o.c.stage))
        .where(
            o.c.is_deleted.is_(False),
            o.c.campaign_id.is_not(None),
            *_of(o.c.campaign_id, ids),
            *_since(o.c.created_at, after),
            scope.visible(),
        )
        .group_by(o.c.campaign_id)
        .subquery("deal_figures")
    )


def _member_figures(ids: list[int] | None, after: datetime | None) -> Any:
    m = db.campaign_members
    return (
        select(m.c.campaign_id, func.count().label("members"))
        .where(m.c.is_deleted.is_(False), *_of(m.c.campaign_id, ids), *_since(m.c.created_at, after))
        .group_by(m.c.campaign_id)
        .subquery("member_figures")
    )  # fmt: skip


def _lead_figures(ids: list[int] | None, after: datetime | None) -> Any:
    """Per campaign: its leads (members as leads, and converted leads whose contact is a
    member; each lead once) and how many of them are converted.

    Both halves start from ``leads`` and look members up by lead and by person (indexes
    of migration 0012), and say ``IS NOT NULL`` outright so PostgreSQL sizes them right.
    """
    m, lead = db.campaign_members, db.leads
    shown = [
        lead.c.is_deleted.is_(False), m.c.is_deleted.is_(False), *_of(m.c.campaign_id, ids),
        *_since(lead.c.created_at, after),
    ]  # fmt: skip
    columns = (m.c.campaign_id, lead.c.id.label("lead_id"), lead.c.is_converted)
    as_lead = (
        select(*columns)
        .select_from(lead.join(m, m.c.lead_id == lead.c.id))
        .where(m.c.lead_id.is_not(None), *shown)
    )
    as_contact = (
        select(*columns)
        .select_from(lead.join(m, m.c.person_id == lead.c.converted_person_id))
        .where(lead.c.converted_person_id.is_not(None), *shown)
    )
    pairs = union(as_lead, as_contact).subquery("campaign_leads")  # UNION: each lead once
    return (
        select(
            pairs.c.campaign_id,
            func.count().label("leads"),
            func.count(case((pairs.c.is_converted.is_(True), 1))).label("leads_converted"),
        )
        .group_by(pairs.c.campaign_id)
        .subquery("lead_figures")
    )


# --- the chart ---------------------------------------------------------------------------

BARS = (  # column, legend, colour
    ("pipeline_amount", "Open pipeline", "#4a7ab5"),
    ("won_amount", "Won", "#3f9b5b"),
    ("actual_cost", "Actual cost", "#c8693a"),
)


def campaign_chart(report: pd.DataFrame, *, title: str | None = None) -> Figure:
    """The campaigns of a :func:`campaign_report` side by side: grouped bars of open
    pipeline, won amount and actual cost, and the win rate (dots, right axis). Names are
    shown as written (a ``$`` in a name is no mathtext).

    >>> campaign_chart(kit.campaign_report(["Spring webinar", "Trade fair"]))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    n = len(report)
    fig = Figure(figsize=(max(6.4, 1.1 * n + 2.5), 4.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(BARS)
    positions = list(range(n))
    for k, (column, label, colour) in enumerate(BARS):
        values = pd.to_numeric(report[column], errors="coerce").astype("float64").fillna(0.0)
        offset = (k - (len(BARS) - 1) / 2) * width
        ax.bar([p + offset for p in positions], values.tolist(), width, label=label, color=colour)
    ax.set_xticks(positions, [plain_text(name, 28) for name in report["name"]],
                  rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center")  # fmt: skip
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_ylabel("Amount", fontsize=9)
    ax.tick_params(labelsize=8)
    for side in ("top",):
        ax.spines[side].set_visible(False)
    rates = ax.twinx()
    win_rate = pd.to_numeric(report["win_rate"], errors="coerce").astype("float64")
    rates.plot(positions, win_rate.tolist(), "o", color="#222222", label="Win rate")
    rates.set_ylim(0, 1.05)
    rates.yaxis.set_major_formatter(PercentFormatter(1.0))
    rates.set_ylabel("Win rate", fontsize=9)
    rates.tick_params(labelsize=8)
    rates.spines["top"].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = rates.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc="upper left", frameon=False)
    ax.set_title(plain_text(title) if title else "Campaigns: pipeline, won, cost", fontsize=10)
    if n == 0:
        ax.text(0.5, 0.5, "No campaigns", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig
