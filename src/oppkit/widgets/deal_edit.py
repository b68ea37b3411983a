"""Editing a deal in the apps: deal size, close date, stage and probability, with what
waits for Salesforce and what clashed with it.

One form, used by both :class:`~oppkit.widgets.PipelineReview` (bound to the deal picked
in its list) and :class:`~oppkit.widgets.OpportunityView`. Save calls
``kit.update_opportunity``: a deal made in oppkit changes at once; a Salesforce deal's
change goes to Salesforce and shows as *pending* until it confirms (write-back on), or the
form says where to change it (write-back off). A change Salesforce changed in between is a
*conflict*: both values, who changed it there and when, with "Keep theirs" and "Push
mine" (``kit.resolve_conflict``). Every value shown is escaped.

Example::

    form = view.editor                        # or review.editor, bound to the picked deal
    form.fields["amount"].value = "125000"
    form.save_button.click()
    form.message.value                        # 'Deal size sent to Salesforce: pending...'
    form.keep_theirs["amount"].click()        # a conflict: Salesforce's value stays
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from ..errors import OppkitError
from .campaign_assign import campaign_name
from .html import DASH, error_html, esc, is_missing, money, ok_html, text

if TYPE_CHECKING:
    from ..kit import Kit

LABELS = {
    "amount": "Deal size",
    "close_date": "Close date",
    "stage": "Stage",
    "probability": "Probability",
}
NAMES = {**LABELS, "name": "Name", "campaign_id": "Campaign"}  # of changes that may wait
WAITING = ["pending", "conflict"]  # kit.changes(status=WAITING): not in Salesforce yet
GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")  # 125,000 as the tables show it
TEXT_STYLE = {"description_width": "80px"}


def shown(field: str, value: Any) -> str:
    """A field's value as the apps show it: ``125,000``, ``2027-04-30``, ``75%``."""
    if field == "amount":
        return money(value)
    if field == "probability":
        return DASH if is_missing(value) else f"{float(value):g}%"
    return text(value)


def editable(field: str, value: Any) -> str:
    """A field's value as the form's text box holds it (``125000``, ``2027-04-30``)."""
    if is_missing(value):
        return ""
    if field in ("amount", "probability"):
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    return text(value)


def waiting_values(waiting: pd.DataFrame, opportunity_id: Any) -> tuple[dict, dict]:
    """From a ``kit.changes()`` frame: one deal's pending values and conflicts (field ->
    the value a person set), as ``kit.opportunities()`` has them."""
    found: dict[str, dict] = {"pending": {}, "conflict": {}}
    if len(waiting):
        for row in waiting[waiting["opportunity_id"] == opportunity_id].itertuples():
            if row.status in found:
                found[row.status][row.field] = row.new_value
    return found["pending"], found["conflict"]


def marked(field: str, value: Any, pending: Any, conflicts: Any) -> str:
    """The value a person sees, as text: ``125,000 (pending)`` while Salesforce does not
    have it yet, ``90,000 (conflict: yours 125,000)`` when Salesforce changed it meanwhile."""
    pending = pending if isinstance(pending, Mapping) else {}
    conflicts = conflicts if isinstance(conflicts, Mapping) else {}
    if field in conflicts:
        return f"{shown(field, value)} (conflict: yours {shown(field, conflicts[field])})"
    if field in pending:
        return f"{shown(field, pending[field])} (pending)"
    return shown(field, value)


def marked_html(field: str, value: Any, pending: Any, conflicts: Any, their_by: Any = None) -> str:
    """:func:`marked` as escaped HTML for a table cell: a pending value with a *pending*
    badge (Salesforce's value in its tooltip), a conflict with both values and who."""
    pending = pending if isinstance(pending, Mapping) else {}
    conflicts = conflicts if isinstance(conflicts, Mapping) else {}
    if field in conflicts:
        who = f" by {esc(their_by)}" if not is_missing(their_by) else ""
        return (
            f'{esc(shown(field, value))} <span class="oppkit-conflict">conflict</span>'
            f"<br><small>yours {esc(shown(field, conflicts[field]))} · Salesforce "
            f"{esc(shown(field, value))}{who}</small>"
        )
    if field in pending:
        tip = esc(f"Salesforce has {shown(field, value)} until it confirms")
        return (
            f'{esc(shown(field, pending[field]))} <span class="oppkit-pending" '
            f'title="{tip}">pending</span>'
        )
    return esc(shown(field, value))


class DealEditForm(widgets.VBox):
    """The edit form for one deal (see module docs); :meth:`bind` shows a deal in it.

    ``fields`` (amount, close_date, probability: Text; stage: Dropdown), ``save_button``,
    ``message``, ``pending_html``, and per field in conflict ``keep_theirs[field]`` /
    ``push_mine[field]`` buttons. ``on_change`` runs after a save or a resolved conflict
    (the app re-reads the deal and binds it again).
    """

    def __init__(self, kit: Kit, *, on_change: Callable[[], Any]) -> None:
        self.kit = kit
        self.on_change = on_change
        self.deal: dict[str, Any] = {}
        self.waiting = pd.DataFrame()
        self.initial: dict[str, str] = {}
        self.keep_theirs: dict[str, widgets.Button] = {}
        self.push_mine: dict[str, widgets.Button] = {}
        self.campaign_names: dict[int, str] | None = None  # read when a campaign waits
        box = {"width": "230px"}
        self.fields: dict[str, widgets.Text | widgets.Dropdown] = {
            "amount": widgets.Text(description="Deal size", placeholder="e.g. 125000",
                                   layout=box, style=TEXT_STYLE),
            "close_date": widgets.Text(description="Close date", placeholder="YYYY-MM-DD",
                                       layout=box, style=TEXT_STYLE),
            "stage": widgets.Dropdown(description="Stage", layout={"width": "300px"},
                                      style=TEXT_STYLE),
            "probability": widgets.Text(description="Probability", placeholder="0-100 (%)",
                                        layout=box, style=TEXT_STYLE),
        }  # fmt: skip
        self.save_button = widgets.Button(description="Save", icon="save", button_style="primary")
        self.save_button.on_click(lambda _b: self.save())
        self.title = widgets.HTML()
        self.message = widgets.HTML()
        self.pending_html = widgets.HTML()
        self.conflict_list = widgets.VBox()
        super().__init__(
            [
                self.title,
                widgets.HBox([self.fields["amount"], self.fields["close_date"]]),
                widgets.HBox([self.fields["stage"], self.fields["probability"], self.save_button]),
                self.message,
                self.pending_html,
                self.conflict_list,
            ]  # fmt: skip
        )
        self.add_class("oppkit-deal-edit")
        self.layout.display = "none"  # until a deal is bound

    # --- showing a deal ------------------------------------------------------------

    def bind(
        self, deal: Mapping[str, Any] | None, waiting: pd.DataFrame,
        stages: list[str] | None = None,
    ) -> None:  # fmt: skip
        """Show ``deal`` (a row of ``kit.opportunities()`` or ``kit.workflow.deal()``), its
        pending changes and conflicts from ``waiting`` (``kit.changes(status=WAITING)``);
        None hides the form. ``stages``: the stage names to offer (default: read them).
        The message stays: it tells what the last action did."""
        if deal is None:
            self.deal, self.layout.display = {}, "none"
            return
        self.layout.display = "flex"
        self.deal = dict(deal)
        deal_id = self.deal["id"]
        self.waiting = waiting[waiting["opportunity_id"] == deal_id] if len(waiting) else waiting
        pending, _conflicts = waiting_values(self.waiting, deal_id)
        self.initial = {f: editable(f, pending.get(f, self.deal.get(f))) for f in LABELS}
        stages = list(self.kit.stages()["name"] if stages is None else stages)
        if self.initial["stage"] and self.initial["stage"] not in stages:
            stages.append(self.initial["stage"])
        self.fields["stage"].options = stages
        for field, box in self.fields.items():
            box.value = self.initial[field] or (None if field == "stage" else "")
        self.title.value = f"<b>Edit</b> {esc(self.deal.get('name'))}"
        self._draw_waiting()

    def _changes(self, status: str) -> list[Any]:
        if not len(self.waiting):
            return []
        return list(self.waiting[self.waiting["status"] == status].itertuples())

    def _shown(self, field: str, value: Any) -> str:
        """:func:`shown`, and a campaign id as the campaign's name."""
        if field != "campaign_id":
            return shown(field, value)
        names = self.campaign_names
        if names is None or (str(value).isdigit() and int(value) not in names):  # a new one
            found = self.kit.campaigns()
            names = dict(zip(found["id"].astype(int), found["name"].astype(str), strict=True))
            self.campaign_names = names
        return campaign_name(value, names)

    def _draw_waiting(self) -> None:
        notes = []
        for row in self._changes("pending"):
            field = row.field
            note = (
                f"<b>{esc(NAMES.get(field, field))}</b> {esc(self._shown(field, row.new_value))} "
                f'<span class="oppkit-pending">pending</span> — Salesforce has '
                f"{esc(self._shown(field, self.deal.get(field)))} until it confirms"
            )
            if not is_missing(row.last_error):
                note += f"<br><small>Salesforce said: {esc(row.last_error)}</small>"
            notes.append(f"<div>{note}</div>")
        self.pending_html.value = "".join(notes)
        self.keep_theirs, self.push_mine, rows = {}, {}, []
        for row in self._changes("conflict"):
            field = row.field
            who = row.their_by if not is_missing(row.their_by) else "someone"
            when = (
                f" on {esc(text(row.their_modstamp))} UTC"
                if not is_missing(row.their_modstamp)
                else ""
            )
            note = widgets.HTML(
                f'<span class="oppkit-conflict">conflict</span> '
                f"<b>{esc(NAMES.get(field, field))}</b>: "
                f"yours <b>{esc(self._shown(field, row.new_value))}</b>"
                f" · Salesforce <b>{esc(self._shown(field, row.their_value))}</b>, changed there"
                f" by {esc(who)}{when} (you saw {esc(self._shown(field, row.old_value))})"
            )  # fmt: skip
            theirs = widgets.Button(description="Keep theirs", icon="cloud-download")
            mine = widgets.Button(
                description="Push mine", icon="cloud-upload", button_style="warning"
            )
            theirs.on_click(lambda _b, f=field: self.resolve(f, "theirs"))
            mine.on_click(lambda _b, f=field: self.resolve(f, "mine"))
            self.keep_theirs[field], self.push_mine[field] = theirs, mine
            rows.append(widgets.HBox([note, theirs, mine]))
        self.conflict_list.children = rows

    # --- acting ----------------------------------------------------------------------

    def values(self) -> dict[str, str | None]:
        """The fields the person changed, as typed (an emptied field clears the value)."""
        changed: dict[str, str | None] = {}
        for field, box in self.fields.items():
            typed = "" if box.value is None else str(box.value).strip()
            if typed == self.initial.get(field, ""):
                continue
            if field == "amount" and GROUPED.fullmatch(typed):
                typed = typed.replace(",", "")
            changed[field] = typed or None
        return changed

    def save(self) -> bool:
        """Save the changed fields (``kit.update_opportunity``); True when saved or queued.
        A refusal or a value that is not a number or a date is shown, nothing changes."""
        values = self.values()
        if not self.deal or not values:
            self.message.value = error_html("Nothing to save: change a value first.")
            return False
        try:
            queued = self.kit.update_opportunity(self.deal["id"], **values)
        except (OppkitError, LookupError) as exc:
            self.message.value = error_html(exc)
            return False
        names = ", ".join(LABELS[f] for f in values)
        self.message.value = ok_html(
            f"{names} sent to Salesforce: pending until it confirms."
            if queued
            else f"{names} saved."
        )
        self.on_change()
        return True

    def resolve(self, field: str, keep: str) -> bool:
        """Settle a conflict: ``keep="theirs"`` (Salesforce's value stays) or ``"mine"``
        (pushed again with the next sync); True when settled."""
        try:
            self.kit.resolve_conflict(self.deal["id"], field, keep)
        except (OppkitError, LookupError) as exc:
            self.message.value = error_html(exc)
            return False
        label = NAMES.get(field, field)
        self.message.value = ok_html(
            f"{label}: Salesforce's value stays." if keep == "theirs"
            else f"{label}: yours goes to Salesforce with the next sync."
        )  # fmt: skip
        self.on_change()
        return True


__all__ = ["LABELS", "WAITING", "DealEditForm", "editable", "marked", "marked_html", "shown",
           "waiting_values"]  # fmt: skip
