"""The pipeline review: a consultant's live walk through the deals, with what needs a look.

Filters (owner, stage, close period, campaign) narrow one frame read at start-up
(:func:`oppkit.frames.review.review_frame`); the funnel (one button per open stage: a
click filters the deals to that stage, :class:`~oppkit.widgets.funnel_chart.FunnelChart`),
the sortable deals table with flags (in a scroll area of fixed height), the "what changed
since" list and the download all follow the current view. The Export tab hands the view
to the person's browser as a CSV or Excel download (a link holding the file); nothing is
written on the server. The deal picked in the list
can be edited in place (deal size, close date, stage, probability:
:class:`~oppkit.widgets.deal_edit.DealEditForm`); a change Salesforce has not confirmed
yet shows as *pending*, one it changed meanwhile as a *conflict* with both values.
"Open deal" shows its :class:`~oppkit.widgets.opportunity.OpportunityView` below. The
"Assign to campaign" tab stamps deals of the view with a campaign
(:class:`~oppkit.widgets.campaign_assign.CampaignAssign`); the table's campaign column
follows, a Salesforce deal's new campaign pending until Salesforce confirms.

Example::

    review = oppkit.PipelineReview(kit)
    review                                    # in a notebook
    review.owner_filter.value = "Anna Keller"
    review.sort_by.value = "amount"; review.ascending.value = False
    review.funnel_chart.buttons["Proposal"].click()  # the deals in Proposal; again: all
    review.view()                             # the deals shown now (a DataFrame)
    review.changes("2026-11-01")              # stage moves, amount/close-date changes, new/won/lost
    review.deal_picker.value = deal_id        # the edit form shows the picked deal
    review.editor.fields["amount"].value = "125000"; review.editor.save_button.click()
    review.open_deal(review.view()["id"].iloc[0])  # the deal's OpportunityView in the detail area
    review.campaign_assign.select_all.click()  # the deals shown, then a campaign, then Assign
    review.campaign_assign.campaign.value = campaign_id
    review.campaign_assign.assign_button.click()
    review.export_format.value = "xlsx"; review.export_button.click()  # a download link
    review.export("review.xlsx")              # a file, from a script (or .csv)
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from ..frames.deal_changes import as_of, markers
from ..frames.review import FLAGS, Thresholds, changes_since, review_frame
from .campaign_assign import CampaignAssign, campaign_html
from .deal_edit import WAITING, DealEditForm, marked, marked_html
from .deal_grid import DealGrid
from .freshness import FreshnessBar
from .funnel_chart import FunnelChart
from .html import STYLE, error_html, esc, flags_html, money, table

if TYPE_CHECKING:
    from ..kit import Kit

ALL = "all"
PERIODS = ["all", "overdue", "next 30 days", "this quarter", "next quarter", "this year"]
SORTS = {
    "n_flags": "flags",
    "amount": "deal size",
    "close_date": "close date",
    "days_since_activity": "days since activity",
    "days_in_stage": "days in stage",
    "name": "name",
    "stage": "stage",
    "owner": "owner",
}
TABLE_COLUMNS = {
    "name": "Deal",
    "account": "Account",
    "owner": "Owner",
    "stage": "Stage",
    "amount": "Deal size",
    "close_date": "Close date",
    "campaign": "Campaign",
    "days_since_activity": "Days quiet",
    "engaged_contacts": "Contacts engaged",
    "flags": "Flags",
}
EXPORT_COLUMNS = [
    "id", "name", "account", "owner", "owner_email", "stage", "stage_status", "amount",
    "close_date", "days_to_close", "campaign", "last_activity", "days_since_activity",
    "engaged_contacts", "close_date_pushes", "amount_changes", "days_in_stage", "open_alerts",
    *FLAGS, "flags",
]  # fmt: skip
MARKED = ("stage", "amount", "close_date")  # shown with what waits for Salesforce
TABS = ["Deals", "What changed", "Export", "Assign to campaign"]
TABLE_HEIGHT = "420px"  # the deals table scrolls inside this height
FORMATS = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def period_range(period: str, today: date | None = None) -> tuple[date | None, date | None]:
    """Close dates [start, end) for a period name from :data:`PERIODS`."""
    today = today or datetime.now(UTC).date()
    start = _quarter_start(today)
    next_start = _quarter_start(start + timedelta(days=95))
    return {
        "all": (None, None),
        "overdue": (None, today),
        "next 30 days": (today, today + timedelta(days=31)),
        "this quarter": (start, next_start),
        "next quarter": (next_start, _quarter_start(next_start + timedelta(days=95))),
        "this year": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
    }[period]


def defuse(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...) made inert.

    Deal and account names come from Salesforce and mail; Excel and LibreOffice treat a
    cell starting with one of these characters as a formula (CSV/formula injection).
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _joined(first: str, rest: str) -> str:
    return f"{first} · {rest}" if rest else first


def _amount_text(value: Any) -> Any:
    try:
        return money(float(value))
    except (TypeError, ValueError):
        return value


class PipelineReview(widgets.VBox):
    """The pipeline review app (see module docs); ``max_rows`` caps the table's rows."""

    def __init__(
        self,
        kit: Kit,
        *,
        stale_days: int = 30,
        stuck_days: int = 60,
        engaged_days: int = 30,
        open_only: bool = True,
        max_rows: int = 200,
    ) -> None:
        self.kit = kit
        self.max_rows = max_rows
        self.thresholds = Thresholds(stale_days, stuck_days, engaged_days)
        self.frame = pd.DataFrame()
        self.waiting = pd.DataFrame()  # kit.changes(): pending and in conflict
        self.detail_view: Any = None
        self._drawing = False
        self._picking = False
        self._changes_stale = True

        self.owner_filter = widgets.Dropdown(description="Owner", options=[ALL])
        self.stage_filter = widgets.Dropdown(description="Stage", options=[ALL])
        self.period_filter = widgets.Dropdown(description="Closing", options=PERIODS, value="all")
        self.campaign_filter = widgets.Dropdown(description="Campaign", options=[ALL])
        self.open_only = widgets.Checkbox(value=open_only, description="open deals only")
        self.flagged_only = widgets.Checkbox(value=False, description="flagged only")
        self.stale_days = widgets.BoundedIntText(
            value=stale_days, min=1, max=3650, description="Quiet days", layout={"width": "180px"}
        )
        self.stuck_days = widgets.BoundedIntText(
            value=stuck_days, min=1, max=3650, description="Stuck days", layout={"width": "180px"}
        )
        self.sort_by = widgets.Dropdown(
            description="Sort by", options=[(v, k) for k, v in SORTS.items()], value="n_flags"
        )
        self.ascending = widgets.ToggleButtons(
            options=[("↓ descending", False), ("↑ ascending", True)], value=False,
            style={"button_width": "110px"},
        )  # fmt: skip
        self.summary = widgets.HTML()
        self.funnel_chart = FunnelChart(on_pick=self._stage_picked)
        self.table = widgets.HTML(layout={"max_height": TABLE_HEIGHT, "overflow": "auto"})
        self.grid = DealGrid(on_pick=self._grid_picked)
        self.shown_as = widgets.ToggleButtons(
            options=["Grid", "Table"], value="Grid", style={"button_width": "80px"},
            tooltips=["sort and filter in the column headers; a click opens the deal",
                      "with what waits for Salesforce marked"],
        )  # fmt: skip
        self.deals_area = widgets.Box([self.grid], layout={"width": "100%"})
        self.deal_picker = widgets.Select(description="Deal", rows=6, layout={"width": "60%"})
        self.open_button = widgets.Button(description="Open deal", icon="folder-open")
        self.editor = DealEditForm(kit, on_change=self._edited)
        self.detail = widgets.VBox()
        self.since = widgets.DatePicker(  # the baseline: the grid's markers, "What changed"
            description="Changes since", value=datetime.now(UTC).date() - timedelta(days=7),
            style={"description_width": "initial"},
        )  # fmt: skip
        # (baseline date, (changes since it, the deals then, the deals with markers))
        self._changes: tuple[Any, tuple[pd.DataFrame, ...]] | None = None
        self.changes_html = widgets.HTML()
        self.export_format = widgets.ToggleButtons(
            options=[("CSV", "csv"), ("Excel", "xlsx")], value="xlsx", description="Format"
        )
        self.export_button = widgets.Button(
            description="Prepare download", icon="download", layout={"width": "auto"},
            tooltip="Make a file of the deals in view, for your browser to download",
        )  # fmt: skip
        self.export_status = widgets.HTML()
        self.freshness = FreshnessBar(kit)  # data as of, per source; a badge when stale
        self.campaign_assign = CampaignAssign(kit, on_change=self._assigned)

        filters = widgets.VBox([
            widgets.HBox([self.owner_filter, self.stage_filter, self.period_filter]),
            widgets.HBox([self.campaign_filter, self.open_only, self.flagged_only]),
            widgets.HBox([self.stale_days, self.stuck_days, self.since]),
        ])  # fmt: skip
        deals = widgets.VBox([
            widgets.HBox([self.shown_as, self.sort_by, self.ascending]), self.deals_area,
            widgets.HBox([self.deal_picker, self.open_button]), self.editor, self.detail,
        ])  # fmt: skip
        self.tabs = widgets.Tab(
            [
                deals,
                self.changes_html,
                widgets.VBox(
                    [widgets.HBox([self.export_format, self.export_button]), self.export_status]
                ),
                self.campaign_assign,
            ]  # fmt: skip
        )
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        self.tabs.add_class("oppkit-review-tabs")
        super().__init__(
            [
                widgets.HTML(STYLE + "<h3>Pipeline review</h3>"),
                self.freshness,
                filters,
                self.summary,
                self.funnel_chart,
                self.tabs,
            ]  # fmt: skip
        )
        self.add_class("oppkit-pipeline-review")
        self.refresh()
        for control in (
            self.owner_filter, self.stage_filter, self.period_filter, self.campaign_filter,
            self.open_only, self.flagged_only, self.sort_by, self.ascending,
        ):  # fmt: skip
            control.observe(self._redraw, names="value")
        for control in (self.stale_days, self.stuck_days):
            control.observe(self._rethreshold, names="value")
        self.since.observe(self._new_baseline, names="value")
        self.shown_as.observe(self._switch_table, names="value")
        self.tabs.observe(self._tab_selected, names="selected_index")
        self.deal_picker.observe(self._picked, names="value")
        self.open_button.on_click(lambda _b: self.open_deal(self.deal_picker.value))
        self.export_button.on_click(self._export_clicked)

    # --- data -------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the deals again and redraw everything."""
        self.thresholds = Thresholds(
            self.stale_days.value, self.stuck_days.value, self.thresholds.engaged_days
        )
        self.frame = review_frame(self.kit, self.thresholds)
        self._changes = None  # read again for the new frame
        if hasattr(self, "freshness"):
            self.freshness.refresh()
        self.waiting = self.kit.changes(status=WAITING)
        self._stage_order = self.kit.stages()
        self.editor.campaign_names = self.campaign_assign.load_campaigns()
        self._drawing = True
        try:
            self._set_options(self.owner_filter, self.frame["owner"])
            self._set_options(self.stage_filter, self._ordered_stages(self.frame["stage"]))
            self._set_options(self.campaign_filter, self.frame["campaign"])
        finally:
            self._drawing = False
        self._redraw()
        if self.tabs.selected_index == 1:
            self._draw_changes()
        else:  # read when the "What changed" tab is first shown
            self._changes_stale = True

    def _ordered_stages(self, values: pd.Series) -> list[str]:
        present = set(values.dropna())
        known = [s for s in self._stage_order["name"] if s in present]
        return known + sorted(present - set(known))

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, values: Any) -> None:
        values = (
            list(values) if isinstance(values, list) else sorted(set(pd.Series(values).dropna()))
        )
        keep = dropdown.value
        dropdown.options = [ALL, *values]
        dropdown.value = keep if keep in values else ALL

    def view(self) -> pd.DataFrame:
        """The deals the filters select, in the table's order (all rows, not just shown)."""
        df = self._in_view(self.frame)
        column = self.sort_by.value
        return df.sort_values(
            [column, "id"], ascending=[self.ascending.value, True], na_position="last",
            kind="stable",
        )  # fmt: skip

    def grid_view(self) -> pd.DataFrame:
        """The grid's rows: :meth:`view` with ``change`` (what changed since the baseline
        date, :attr:`since`: new, moved in, stage forward/back, won, lost, amount ↑/↓,
        pushed, pulled) and ``waiting`` (values Salesforce has not confirmed), then the
        deals that were in view at the baseline and are not now, marked *moved out*.

        >>> review.grid_view()[["name", "change"]]
        """
        view = self.view()
        if self.since.value is None:
            return view.assign(change="", waiting=self._waiting_text(view))
        then, frame = self._baseline()
        was_in = self._in_view(then.assign(n_flags=self.frame["n_flags"]))["id"]
        change = view["id"].map(frame.set_index("id")["change"]).fillna("")
        moved_in = ~view["id"].isin(was_in) & (change != "new")
        with_move = ("moved in · " + change).where(change != "", "moved in")
        shown = view.assign(change=change.where(~moved_in, with_move))
        gone = frame[frame["id"].isin(was_in) & ~frame["id"].isin(view["id"])]
        gone = gone.assign(change=[_joined("moved out", c) for c in gone["change"]])
        out = pd.concat([shown, gone], ignore_index=True) if len(gone) else shown
        return out.assign(waiting=self._waiting_text(out))

    def _baseline(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(the deals as of the baseline, the deals with their ``change``), read once per
        frame and baseline date: the filters only pick among them."""
        _changes, then, marked_frame = self._since_baseline()
        return then, marked_frame

    def _since_baseline(self) -> tuple[pd.DataFrame, ...]:
        """(changes since the baseline date, the deals then, the deals with markers): one
        read of the history per frame and date, shared by the grid and "What changed"."""
        since = self.since.value
        if self._changes is None or self._changes[0] != since:
            changes = changes_since(self.kit, since, deals=self.frame)
            order = self._stage_order
            status = dict(zip(order["name"], order["status"], strict=True))
            then = as_of(self.frame, changes, status)
            rank = {name: i for i, name in enumerate(order["name"])}
            marked_frame = self.frame.assign(change=markers(self.frame, then, rank))
            self._changes = (since, (changes, then, marked_frame))
        return self._changes[1]

    @staticmethod
    def _waiting_text(deals: pd.DataFrame) -> list[str]:
        """Per deal, what waits for Salesforce, as text: ``amount 125,000 (pending)``."""
        out = [""] * len(deals)
        waiting = (deals["pending"].notna() | deals["conflicts"].notna()).to_numpy()
        for i in waiting.nonzero()[0]:
            row = deals.iloc[i]
            pending = row.pending if isinstance(row.pending, Mapping) else {}
            conflicts = row.conflicts if isinstance(row.conflicts, Mapping) else {}
            fields = dict.fromkeys([*conflicts, *pending])
            out[i] = "; ".join(
                f"{field.replace('_', ' ')} "
                f"{marked(field, row.get(field), pending, conflicts)}"
                for field in fields
            )  # fmt: skip
        return out

    def _in_view(self, df: pd.DataFrame) -> pd.DataFrame:
        df = self._filtered(df)
        if self.stage_filter.value != ALL:
            df = df[df["stage"] == self.stage_filter.value]
        return df

    def _filtered(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` narrowed by every filter but the stage (the funnel shows every stage)."""
        if self.open_only.value:
            df = df[df["stage_status"] == "open"]
        if self.owner_filter.value != ALL:
            df = df[df["owner"] == self.owner_filter.value]
        if self.campaign_filter.value != ALL:
            df = df[df["campaign"] == self.campaign_filter.value]
        start, end = period_range(self.period_filter.value)
        if start or end:
            close = pd.to_datetime(df["close_date"])
            keep = close.notna()
            if start:
                keep &= close >= pd.Timestamp(start)
            if end:
                keep &= close < pd.Timestamp(end)
            df = df[keep.fillna(False)]
        if self.flagged_only.value:
            df = df[df["n_flags"] > 0]
        return df

    def funnel(self, deals: pd.DataFrame | None = None) -> pd.DataFrame:
        """Open stages in funnel order with count and amount, for ``deals`` (default: the
        view's deals in every stage, so that a stage picked in the funnel keeps the others)."""
        deals = self._filtered(self.frame) if deals is None else deals
        open_deals = deals[deals["stage_status"] == "open"]
        order = self._stage_order[self._stage_order["status"] == "open"]["name"].tolist()
        order += sorted(set(open_deals["stage"].dropna()) - set(order))
        grouped = open_deals.groupby("stage")["amount"].agg(["size", "sum"])
        out = grouped.reindex(order).fillna(0).reset_index()
        out.columns = ["stage", "count", "amount"]
        out["count"] = out["count"].astype("int64")
        out["amount"] = out["amount"].astype(float)
        return out

    def changes(self, since: Any = None) -> pd.DataFrame:
        """What changed since a date (default: the date picker) for the deals in view."""
        return changes_since(self.kit, since or self.since.value, deals=self.frame)

    # --- drawing ----------------------------------------------------------------

    def _rethreshold(self, _change: Any = None) -> None:
        self.refresh()

    def _redraw(self, _change: Any = None) -> None:
        if self._drawing:
            return
        deals = self.view()
        amount = deals["amount"].fillna(0).sum()
        flagged = int((deals["n_flags"] > 0).sum())
        pending = int(deals["pending"].notna().sum())
        conflicts = int(deals["conflicts"].notna().sum())
        self.summary.value = (
            f"<b>{len(deals)}</b> deals, <b>{esc(money(amount))}</b> in total, "
            f"<b>{flagged}</b> flagged"
            + (f", <b>{pending}</b> with changes pending in Salesforce" if pending else "")
            + (f", <b>{conflicts}</b> in conflict with Salesforce" if conflicts else "")
        )
        self._draw_funnel()
        self.grid.show(self.grid_view())
        shown = deals.head(self.max_rows)
        more = (
            f"<p><i>Showing {len(shown)} of {len(deals)} deals; export for all.</i></p>"
            if len(deals) > len(shown) else ""
        )  # fmt: skip
        self.table.value = more + table(
            self._marked(shown), list(TABLE_COLUMNS), TABLE_COLUMNS,
            {**{field: str for field in (*MARKED, "campaign")},  # already escaped HTML
             "flags": lambda v: flags_html(v.split(", ") if isinstance(v, str) and v else [])},
            empty="No deals match the filters.",
        )  # fmt: skip
        options = [
            (f"{r.name} — {marked('stage', r.stage, r.pending, r.conflicts)} — "
             f"{marked('amount', r.amount, r.pending, r.conflicts)}", int(r.id))
            for r in shown.itertuples(index=False)
        ]  # fmt: skip
        keep = self.deal_picker.value
        self._picking = True  # the same deal stays picked while it is in view
        try:
            self.deal_picker.options = options
            ids = [deal_id for _label, deal_id in options]
            self.deal_picker.value = keep if keep in ids else (ids[0] if ids else None)
        finally:
            self._picking = False
        self._bind_editor()
        self.campaign_assign.bind(deals, shown)

    def _marked(self, deals: pd.DataFrame) -> pd.DataFrame:
        """``deals`` with stage, deal size, close date and campaign as escaped HTML: values
        pending in Salesforce marked, conflicts with both values and who changed it there."""
        conflicts = self.waiting[self.waiting["status"] == "conflict"]
        their_by = {
            (r.opportunity_id, r.field): r.their_by for r in conflicts.itertuples(index=False)
        }
        out = deals.copy()
        for field in MARKED:
            out[field] = [
                marked_html(field, value, pending, conflict, their_by.get((deal_id, field)))
                for deal_id, value, pending, conflict in zip(
                    deals["id"], deals[field], deals["pending"], deals["conflicts"], strict=True
                )
            ]
        names = self.campaign_assign.names
        out["campaign"] = [
            campaign_html(value, pending, conflict, names, their_by.get((deal_id, "campaign_id")))
            for deal_id, value, pending, conflict in zip(
                deals["id"], deals["campaign"], deals["pending"], deals["conflicts"], strict=True
            )
        ]
        return out

    def _picked(self, _change: Any = None) -> None:
        if self._picking:
            return
        self.editor.message.value = ""  # the message was about the deal picked before
        self._bind_editor()
        shown = self.detail_view
        if shown is not None and shown.opportunity_id != self.deal_picker.value:
            self.open_deal(self.deal_picker.value)  # the view below is the deal picked

    def _bind_editor(self) -> None:
        picked = self.frame[self.frame["id"] == self.deal_picker.value]
        deal = picked.iloc[0].to_dict() if len(picked) else None
        self.editor.bind(deal, self.waiting, list(self._stage_order["name"]))

    def _edited(self) -> None:
        """After a save or a settled conflict: read again; the open deal's view too."""
        self.refresh()
        view = self.detail_view
        if view is not None and view.opportunity_id == self.editor.deal.get("id"):
            view.refresh(timeline=False)

    def _assigned(self) -> None:
        """After deals were stamped with a campaign: read again; the open deal's view too."""
        self.refresh()
        if self.detail_view is not None:
            self.detail_view.refresh(timeline=False)

    def _draw_funnel(self) -> None:
        stage = self.stage_filter.value
        self.funnel_chart.draw(self.funnel(), None if stage == ALL else stage)

    def _stage_picked(self, stage: str | None) -> None:
        """A click on the funnel: only that stage's deals (None: every stage again)."""
        if stage is not None and stage not in self.stage_filter.options:
            return
        self.stage_filter.value = ALL if stage is None else stage

    def _new_baseline(self, _change: Any = None) -> None:
        """A new baseline date: the grid's markers and the "What changed" list follow."""
        self.grid.show(self.grid_view())
        if self.tabs.selected_index == 1:
            self._draw_changes()
        else:
            self._changes_stale = True

    def _switch_table(self, change: dict) -> None:
        self.deals_area.children = [self.grid if change["new"] == "Grid" else self.table]

    def _grid_picked(self, deal_id: int) -> None:
        """A click on a grid row: the deal is picked (its edit form) and opened below."""
        if deal_id in [v for _l, v in self.deal_picker.options]:
            self.deal_picker.value = deal_id
        self.open_deal(deal_id)

    def _tab_selected(self, change: dict) -> None:
        if change["new"] == 1 and self._changes_stale:
            self._draw_changes()

    def _draw_changes(self) -> None:
        self._changes_stale = False
        if self.since.value is None:
            self.changes_html.value = "<p><i>Pick a date.</i></p>"
            return
        found = self._since_baseline()[0]
        more = (
            f"<p><i>The newest {self.max_rows} of {len(found)} changes; "
            "review.changes() has them all.</i></p>" if len(found) > self.max_rows else ""
        )  # fmt: skip
        shown = found.head(self.max_rows).copy()
        for column in ("old", "new"):  # "80000.0" from the history as a deal size: 80,000
            shown[column] = [
                _amount_text(v) if change == "amount" else v
                for change, v in zip(shown["change"], shown[column], strict=True)
            ]
        self.changes_html.value = more + table(
            shown, ["changed_at", "opportunity", "change", "old", "new"],
            {"changed_at": "When", "opportunity": "Deal", "change": "Change", "old": "From",
             "new": "To"},
            empty="Nothing changed since then.",
        )  # fmt: skip

    # --- actions ----------------------------------------------------------------

    def open_deal(self, opportunity: Any) -> Any:
        """Show the deal's :class:`OpportunityView` in the detail area and return it; the
        deal picker follows when the deal is in view, so both always name the same deal."""
        from .opportunity import OpportunityView

        if opportunity is None:
            return None
        self.detail_view = OpportunityView(self.kit, opportunity, on_change=self.refresh)
        self.detail.children = [self.detail_view]
        picked = self.detail_view.opportunity_id
        if picked != self.deal_picker.value and picked in [v for _l, v in self.deal_picker.options]:
            self.deal_picker.value = picked
        return self.detail_view

    def export_bytes(self, fmt: str = "xlsx") -> bytes:
        """The current view (every row, with flags) as a ``csv`` or ``xlsx`` file's bytes.

        Text a spreadsheet would run as a formula is made inert (:func:`defuse`).

        >>> open("review.csv", "wb").write(review.export_bytes("csv"))
        """
        df = self.view()[EXPORT_COLUMNS].copy()
        for column in ("name", "account", "owner", "owner_email", "stage", "campaign"):
            df[column] = df[column].map(defuse)
        buffer = io.BytesIO()
        if fmt == "csv":
            buffer.write(df.to_csv(index=False).encode("utf-8-sig"))  # Excel reads the BOM
        elif fmt in ("xlsx", "xlsm"):
            df["last_activity"] = df["last_activity"].dt.tz_localize(None)
            df.to_excel(buffer, index=False, sheet_name="Pipeline review", engine="openpyxl")
        else:
            raise ValueError(f"export to .csv or .xlsx, not {fmt!r}")
        return buffer.getvalue()

    def export(self, path: str | Path) -> Path:
        """Write the current view to a ``.csv`` or ``.xlsx`` file (from a script); the path.

        In the app, the Export tab hands the same file to the browser instead.

        >>> review.export("review.xlsx")
        """
        path = Path(path)
        path.write_bytes(self.export_bytes(path.suffix.lower().lstrip(".") or "no suffix"))
        return path

    def _export_clicked(self, _button: Any) -> None:
        """A download link holding the file: the person's browser saves it where they say."""
        fmt = self.export_format.value
        try:
            data = self.export_bytes(fmt)
        except (OSError, ValueError) as exc:
            self.export_status.value = error_html(exc)
            return
        name = f"pipeline_review_{datetime.now(UTC):%Y-%m-%d}.{fmt}"
        rows = len(self.view())
        href = f"data:{FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
        self.export_status.value = (
            f'<a class="oppkit-download" download="{esc(name)}" href="{href}">'
            f"⬇ Download {esc(name)}</a> <small>({rows} deals, {len(data) / 1024:,.0f} KB)</small>"
        )
