"""Assigning deals to a campaign in the pipeline review: pick deals, pick a campaign, Assign.

Why: marketing asks sales to stamp a batch of deals with the campaign they came from,
and the review already narrows the pipeline to that batch (owner, stage, period...). The
list holds the deals the review shows (its filters and order, at most its ``max_rows``:
a few hundred labels, however large the pipeline); *Select all shown* picks them all and
*every deal in view* takes every deal the filters select, listed or not.

*Assign to campaign* calls ``kit.campaigns.assign`` and says what happened in one line
(N assigned, M queued for Salesforce, K already in it), or why nothing did: a deal made in
oppkit changes at once; a Salesforce deal's campaign is Salesforce's, so it is queued for
the agent to push (write-back on) and shows as *pending* in the table until Salesforce
confirms, or the whole assignment is refused saying where to change it (write-back off);
a Salesforce deal takes only a campaign Salesforce knows. Nothing raises; every message
is escaped (names come from Salesforce).

Example::

    box = review.campaign_assign                   # the review's "Assign to campaign" tab
    box.select_all.click()                         # or box.deals.value = (12, 14)
    box.campaign.value = int(kit.campaigns().set_index("name").loc["Spring webinar", "id"])
    box.assign_button.click()
    box.message.value     # 'Spring webinar: 2 assigned, 1 queued for Salesforce, 0 already in it'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from ..errors import OppkitError
from ..scope import NotFoundError
from .html import DASH, error_html, esc, is_missing, ok_html, text

if TYPE_CHECKING:
    from ..campaigns import Assignment
    from ..kit import Kit

FIELD = "campaign_id"  # the deal's column, and the field of its change in kit.changes()
NO_CAMPAIGN = 0  # the dropdown's value for "no campaign" (campaign ids start at 1)
SALESFORCE = "salesforce"


def campaign_name(campaign_id: Any, names: Mapping[int, str]) -> str:
    """A campaign id as its name ("—" for none; the id when the name is unknown)."""
    if is_missing(campaign_id):
        return DASH
    try:
        key = int(campaign_id)
    except (TypeError, ValueError):  # not an id: show it as it is
        return text(campaign_id)
    return names.get(key, f"campaign {key}")


def campaign_html(
    value: Any, pending: Any, conflicts: Any, names: Mapping[int, str], their_by: Any = None
) -> str:
    """A deal's campaign as escaped HTML for a table cell: a change waiting for Salesforce
    with a *pending* badge (Salesforce's campaign in its tooltip), a conflict with both.

    ``value`` is the campaign's name as Salesforce (or oppkit) has it now; ``pending``
    and ``conflicts`` are the deal's ``{field: value}`` of ``kit.opportunities()``."""
    pending = pending if isinstance(pending, Mapping) else {}
    conflicts = conflicts if isinstance(conflicts, Mapping) else {}
    now = text(value)
    if FIELD in conflicts:
        who = f" by {esc(their_by)}" if not is_missing(their_by) else ""
        return (
            f'{esc(now)} <span class="oppkit-conflict">conflict</span><br><small>yours '
            f"{esc(campaign_name(conflicts[FIELD], names))} · Salesforce {esc(now)}{who}</small>"
        )
    if FIELD in pending:
        theirs = "no campaign" if is_missing(value) else now
        tip = esc(f"Salesforce has {theirs} until it confirms")
        return (
            f"{esc(campaign_name(pending[FIELD], names))} "
            f'<span class="oppkit-pending" title="{tip}">pending</span>'
        )
    return esc(now)


def outcome(campaign: str, result: Assignment) -> str:
    """What an assignment did, in one line of text."""
    queued = len(result.queued)  # one change (the campaign) per Salesforce deal
    line = (
        f"{campaign}: {len(result.assigned)} assigned, {queued} queued for Salesforce, "
        f"{len(result.unchanged)} already in it"
    )
    return line + (" (pending until Salesforce confirms)" if queued else "")


class CampaignAssign(widgets.VBox):
    """Deals of the review's view, a campaign, and *Assign to campaign* (see module docs).

    ``deals`` (SelectMultiple of deal ids), ``select_all`` and ``clear`` (buttons),
    ``all_in_view`` (Checkbox: every deal the filters select), ``campaign`` (Dropdown of
    campaign ids; :data:`NO_CAMPAIGN` takes deals out of theirs), ``assign_button``,
    ``message``; ``result`` is the last :class:`~oppkit.campaigns.Assignment`.
    ``on_change`` runs after deals changed (the review reads its deals again).
    """

    def __init__(self, kit: Kit, *, on_change: Callable[[], Any]) -> None:
        self.kit = kit
        self.on_change = on_change
        self.view = pd.DataFrame({"id": []})  # every deal in the review's view
        self.names: dict[int, str] = {}  # campaign id -> name
        self.result: Assignment | None = None
        self.deals = widgets.SelectMultiple(description="Deals", rows=10, layout={"width": "70%"})
        self.select_all = widgets.Button(description="Select all shown", icon="check-square-o")
        self.clear = widgets.Button(description="Clear", icon="square-o")
        self.all_in_view = widgets.Checkbox(value=False, description="every deal in view")
        self.campaign = widgets.Dropdown(description="Campaign", layout={"width": "420px"})
        self.assign_button = widgets.Button(
            description="Assign to campaign", icon="bullhorn", button_style="primary",
            layout={"width": "180px"},
        )  # fmt: skip
        self.count = widgets.HTML()
        self.message = widgets.HTML()
        super().__init__(
            [
                self.count,
                widgets.HBox([self.deals, widgets.VBox([self.select_all, self.clear])]),
                self.all_in_view,
                widgets.HBox([self.campaign, self.assign_button]),
                self.message,
            ]  # fmt: skip
        )
        self.add_class("oppkit-campaign-assign")
        self.select_all.on_click(lambda _b: self._select(all_shown=True))
        self.clear.on_click(lambda _b: self._select(all_shown=False))
        self.all_in_view.observe(self._counted, names="value")
        self.deals.observe(self._counted, names="value")
        self.assign_button.on_click(lambda _b: self.assign())

    # --- what is offered --------------------------------------------------------------

    def load_campaigns(self) -> dict[int, str]:
        """Read the campaigns (``kit.campaigns()``) into the dropdown; id -> name.

        A campaign kept only in oppkit is labelled so: Salesforce deals do not take one.
        Labels are plain text (a dropdown shows no HTML)."""
        campaigns = self.kit.campaigns()
        self.names = {
            int(i): str(n) for i, n in zip(campaigns["id"], campaigns["name"], strict=True)
        }
        options = [
            (name if source == SALESFORCE else f"{name} (oppkit only)", int(cid))
            for cid, name, source in zip(
                campaigns["id"], campaigns["name"], campaigns["source"], strict=True
            )
        ]
        keep = self.campaign.value
        self.campaign.options = [*options, ("(no campaign)", NO_CAMPAIGN)]
        values = [value for _label, value in self.campaign.options]
        self.campaign.value = keep if keep in values else values[0]
        return self.names

    def bind(self, view: pd.DataFrame, shown: pd.DataFrame) -> None:
        """List ``shown`` (the deals the table shows) out of ``view`` (all the filters
        select); picked deals still listed stay picked."""
        self.view = view
        keep = set(self.deals.value)
        options = [
            (f"{r.name} — {text(r.account)} — {text(r.stage)} — campaign: "
             f"{self._campaign_text(r.campaign, r.pending)}", int(r.id))
            for r in shown.itertuples(index=False)
        ]  # fmt: skip
        self.deals.options = options
        # by index: ipywidgets finds each picked value by a linear search otherwise
        self.deals.index = tuple(i for i, (_l, deal_id) in enumerate(options) if deal_id in keep)
        self._counted()

    def _campaign_text(self, campaign: Any, pending: Any) -> str:
        if isinstance(pending, Mapping) and FIELD in pending:
            return f"{campaign_name(pending[FIELD], self.names)} (pending)"
        return text(campaign)

    def _select(self, *, all_shown: bool) -> None:
        self.deals.index = tuple(range(len(self.deals.options))) if all_shown else ()

    def _counted(self, _change: Any = None) -> None:
        listed, total = len(self.deals.options), len(self.view)
        more = f" (the first {listed} are listed)" if total > listed else ""
        self.all_in_view.description = f"every deal in view: {total}"
        self.deals.disabled = self.all_in_view.value
        self.count.value = (
            f"<b>{len(self.targets())}</b> of <b>{total}</b> deals in view picked{esc(more)}. "
            "The filters above choose the deals listed."
        )

    def targets(self) -> list[int]:
        """The deals an assignment would stamp: those picked, or every deal in view."""
        if self.all_in_view.value:
            return [int(i) for i in self.view["id"]]
        return [int(i) for i in self.deals.value]

    # --- acting -----------------------------------------------------------------------

    def assign(self) -> Assignment | None:
        """Stamp the picked deals with the chosen campaign; the outcome (None when refused).

        The message says what happened, or why nothing did (never raises)."""
        deals = self.targets()
        if not deals:
            self.message.value = error_html("Pick the deals first (or every deal in view).")
            return None
        if self.campaign.value is None:
            self.message.value = error_html("Pick a campaign first.")
            return None
        campaign = None if self.campaign.value == NO_CAMPAIGN else int(self.campaign.value)
        try:
            result = self.kit.campaigns.assign(deals, campaign)
        except (OppkitError, NotFoundError) as exc:  # write-back off, a local campaign...
            self.message.value = error_html(exc)
            return None
        self.result = result
        label = "No campaign" if campaign is None else campaign_name(campaign, self.names)
        self.message.value = ok_html(outcome(label, result))
        if result.assigned or result.queued:
            self.on_change()
        return result


__all__ = ["NO_CAMPAIGN", "CampaignAssign", "campaign_html", "campaign_name", "outcome"]
