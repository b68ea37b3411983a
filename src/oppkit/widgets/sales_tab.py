"""The deal's Sales tab: the account's planned interactions and results, its agreements,
and every record linked to the deal, in one place.

Why: before a call a consultant asks "what did we plan, what happened, what contract
runs out, which cases are open?" The answers live in four frames
(:meth:`Kit.interactions`, :meth:`Kit.agreements`, :meth:`Kit.links`); this tab shows
them side by side for the deal's account, each in a scroll area of fixed height, every
value escaped (names and subjects come from mail and Salesforce). It reads nothing until
:meth:`load` (the opportunity view calls it when the tab is first shown).

Example::

    tab = SalesTab(kit, opportunity_id=8, account_id=3)
    tab.load()
    tab.include_inactive.value = True      # ended agreements too
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from .html import esc, table

if TYPE_CHECKING:
    from ..kit import Kit

SECTION_HEIGHT = "220px"
PLAN_COLUMNS = {"planned_start": "Planned", "name": "Interaction", "interaction_type": "Type",
                "assigned_to": "Assigned", "status": "Status"}  # fmt: skip
RESULT_COLUMNS = {"result_at": "Done", "name": "Interaction", "interaction_type": "Type",
                  "result_type": "Result", "result_comments": "Comments"}  # fmt: skip
AGREEMENT_COLUMNS = {"agreement_type": "Type", "contract_number": "Contract",
                     "start_date": "Start", "end_date": "End", "status": "Status",
                     "days_left": "Days left"}  # fmt: skip
LINK_LABELS = {"record_type": "Record", "reference": "Reference", "name": "Name",
               "status": "Status", "start_date": "Start", "end_date": "End"}  # fmt: skip
RESULTS_SHOWN = 10


class SalesTab(widgets.VBox):
    """Interactions, agreements and linked records of a deal and its account."""

    def __init__(self, kit: Kit, opportunity_id: int, account_id: int | None) -> None:
        self.kit = kit
        self.opportunity_id = opportunity_id
        self.account_id = account_id
        self.loaded = False
        self.plans = _area()
        self.results = _area()
        self.agreements = _area()
        self.links = _area()
        self.include_inactive = widgets.Checkbox(description="ended agreements too")
        self.include_inactive.observe(lambda _c: self._draw_agreements(), names="value")
        super().__init__([
            widgets.HTML("<b>Planned interactions</b>"), self.plans,
            widgets.HTML("<b>Results</b>"), self.results,
            widgets.HBox([widgets.HTML("<b>Agreements of the account</b>"),
                          self.include_inactive]),
            self.agreements,
            widgets.HTML("<b>Linked records</b> (cases, policies, agreements, what "
                         "workflow triggers made)"), self.links,
        ])  # fmt: skip
        self.add_class("oppkit-sales-tab")

    def load(self) -> None:
        """Read the four frames and draw them (again)."""
        self.loaded = True
        account = self.account_id
        if account is None:
            note = "<i>The deal has no account.</i>"
            self.plans.value = self.results.value = self.agreements.value = note
        else:
            plans = self.kit.interactions(account=account, status="planned")
            self.plans.value = _table(plans, PLAN_COLUMNS, "Nothing planned.", _overdue_badge)
            done = self.kit.interactions(account=account, status="done").head(RESULTS_SHOWN)
            self.results.value = _table(done, RESULT_COLUMNS, "No results recorded yet.")
            self._draw_agreements()
        links = self.kit.links(self.opportunity_id)
        self.links.value = _table(links, LINK_LABELS, "No linked records.")

    def _draw_agreements(self) -> None:
        if self.account_id is None:
            return
        found = self.kit.agreements(
            account=self.account_id, include_inactive=self.include_inactive.value
        )
        self.agreements.value = _table(found, AGREEMENT_COLUMNS, "No agreements.")


def _area() -> widgets.HTML:
    return widgets.HTML(layout={"max_height": SECTION_HEIGHT, "overflow": "auto"})


def _overdue_badge(value: Any) -> str:
    text = esc(value)
    return f'<span class="oppkit-flag">{text}</span>' if value == "overdue" else text


def _table(df: pd.DataFrame, labels: dict[str, str], empty: str, status: Any = None) -> str:
    columns = [c for c in labels if c in df.columns]
    formatters = {"status": status} if status else {}
    return table(df, columns, labels, formatters, empty=empty)


__all__ = ["SalesTab"]
