"""The pipeline funnel as widgets: one row per open stage, and a click on a stage filters.

Why: a consultant walking a client through the pipeline points at a stage and wants its
deals. A picture of a chart cannot be clicked, and matplotlib reads ``$...$`` in a stage
name from Salesforce as mathematics (it raised and the review never opened). Here each
stage is a button (its text set as text, never as markup) with the full name wrapped
over lines, never cut, and a bar whose width is the stage's share of the largest amount.

Example::

    chart = FunnelChart(on_pick=lambda stage: print(stage))
    chart.draw(review.funnel(), selected=None)
    chart.buttons["Proposal"].click()      # on_pick("Proposal"); a second click: on_pick(None)
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from .html import esc, money

FUNNEL_STYLE = """
<style>
.oppkit-funnel-stage{white-space:normal !important;height:auto !important;min-height:28px;
  text-align:left !important;line-height:1.25 !important;padding:3px 8px !important;
  overflow-wrap:anywhere}
.oppkit-funnel-bar{display:flex;align-items:center;gap:8px;font-size:12px;height:100%}
.oppkit-funnel-bar .bar{height:18px;background:#4a7ab5;border-radius:2px;min-width:2px}
.oppkit-funnel-bar .figures{white-space:nowrap;color:#333}
</style>
"""


class FunnelChart(widgets.VBox):
    """Open stages in funnel order, each a clickable button with its deal count and amount."""

    def __init__(self, on_pick: Callable[[str | None], None]) -> None:
        self.on_pick = on_pick
        self.buttons: dict[str, widgets.Button] = {}
        self.selected: str | None = None
        self.title = widgets.HTML(
            FUNNEL_STYLE + "<b>Open pipeline by stage</b> <small>(click a stage to filter; "
            "again to show all)</small>"
        )
        super().__init__([self.title], layout={"max_width": "760px"})
        self.add_class("oppkit-funnel")

    def draw(self, funnel: pd.DataFrame, selected: str | None) -> None:
        """Show ``funnel`` (columns stage, count, amount) with ``selected`` highlighted."""
        self.selected = selected
        largest = max([float(a) for a in funnel["amount"]] + [0.0]) or 1.0
        rows, self.buttons = [self.title], {}
        for stage, count, amount in funnel[["stage", "count", "amount"]].itertuples(
            index=False, name=None
        ):
            button = widgets.Button(
                description=str(stage), tooltip=f"Show only the deals in {stage}",
                button_style="info" if stage == selected else "",
                layout={"width": "240px", "height": "auto"},
            )  # fmt: skip
            button.add_class("oppkit-funnel-stage")
            button.on_click(lambda _b, stage=stage: self._clicked(stage))
            self.buttons[str(stage)] = button
            share = 100.0 * float(amount) / largest
            bar = widgets.HTML(
                f'<div class="oppkit-funnel-bar"><div class="bar" style="width:{share * 0.7:.1f}%">'
                f'</div><span class="figures">{int(count)} · {esc(money(amount))}</span></div>',
                layout={"flex": "1 1 auto"},
            )
            rows.append(widgets.HBox([button, bar], layout={"align_items": "stretch"}))
        if len(rows) == 1:
            rows.append(widgets.HTML("<i>No open deals in view.</i>"))
        self.children = rows

    def _clicked(self, stage: str) -> None:
        self.on_pick(None if stage == self.selected else stage)


__all__ = ["FunnelChart"]
