"""Everything about one deal on one screen: metrics, timeline, alerts, people, workflow,
the account's sales records.

Deal size, close date, stage and probability are edited in place
(:class:`~oppkit.widgets.deal_edit.DealEditForm`, ``view.editor``); a value Salesforce has
not confirmed yet is marked *pending*, a conflict with Salesforce is shown with both
values, who changed it there and when, and "Keep theirs" / "Push mine".

Reads go through the Kit; the few writes (a note, a task, an alert done, a member, the
privacy setting, a workflow transition, following) go through the package functions in
:mod:`oppkit.actions` and ``kit.workflow``, so a widget never writes SQL of its own.
Every text from a mailbox or Salesforce is escaped before it becomes HTML.

Sized for a notebook (:mod:`oppkit.widgets.layout`): the feed is paged (25 a page) in a
420 px scroll area, alerts, transition forms and the graphs have fixed maximum heights,
and buttons size to their text. Alerts show a readable name for the rule that found them
(:data:`RULE_LABELS`), the message they came from (subject and date, opened in the feed
with one click), an *overdue* marker, and each (rule, message) once; overdue planned
interactions are listed with them. The *Sales* tab
(:class:`~oppkit.widgets.sales_tab.SalesTab`, ``view.sales``) shows the account's planned
interactions and results, its agreements and the deal's linked records.

Example::

    kit = oppkit.connect(user="anna.keller@northwind.example")
    view = oppkit.OpportunityView(kit, "Acme Robotics — Predictive maintenance pilot")
    view                                   # in a notebook
    view.metrics                           # {'Stage': 'Proposal/Price Quote', 'Deal size': ...}
    view.editor.fields["amount"].value = "125000"; view.editor.save_button.click()
    view.add_note("Pricing call booked for Thursday.")
    view.forms["Negotiate"].submit()       # a workflow transition from its form (no question)
    view.forms["Negotiate"].button.click() # asks "Move ... from ... to ...?" first
    view.forms["Negotiate"].confirm_button.click()
    view.undo_button.click()               # back where it was (a stage change of its own)
    view.alert_sources[12].click()         # the message an alert came from, in the feed
    view.action_picker.value = 4711        # a meeting or call of the deal (newest by default)
    view.action_buttons["Schedule follow-up call"].click()   # a stage action from it
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from .. import actions
from ..errors import OppkitError
from ..stage_actions import STARTS_FROM
from ..workflow.model import REFERENCE_ATTRIBUTES, IncompleteTransition, TransitionNotAvailable
from .deal_edit import WAITING, DealEditForm, marked, waiting_values
from .freshness import FreshnessBar
from .html import DASH, STYLE, error_html, esc, is_missing, metric, money, ok_html, table, text
from .layout import (
    FORMS_HEIGHT,
    GRAPH_HEIGHT,
    LAYOUT_STYLE,
    LIST_HEIGHT,
    fit_button,
    scroll_layout,
)
from .sales_tab import SalesTab
from .timeline import TimelineView

if TYPE_CHECKING:
    from ..kit import Kit
    from ..workflow.engine import TransitionResult

FREQUENCIES = ("daily", "weekly")
TAB_NAMES = ("Activities", "Alerts & Tasks", "Relationship graph", "People", "Workflow", "Sales")
# A readable name for the rule that raised an alert (oppkit.signal_rules and the syncs);
# an id not listed here is de-slugged: "risk.new_rule" -> "Risk: new rule".
RULE_LABELS = {
    "request.could_you": "Request: could you…",
    "request.would_you_mind": "Request: would you mind…",
    "request.possible": "Request: would it be possible…",
    "request.appreciate": "Request: we'd appreciate…",
    "request.please": "Request: please…",
    "request.imperative": "Request: send / share…",
    "request.we_need": "Request: something is needed",
    "request.look_forward": "Request: looking forward to receiving…",
    "commitment.i_will": "Commitment: will do something",
    "commitment.will_do": "Commitment: will do",
    "commitment.let_me": "Commitment: let me check",
    "commitment.our_team": "Commitment: our team will",
    "commitment.you_will_receive": "Commitment: you will receive",
    "commitment.expect_from_me": "Commitment: expect it from me/us",
    "commitment.can_with_date": "Commitment: can do it by a date",
    "commitment.sending": "Commitment: sending something",
    "risk.budget_freeze": "Risk: budget freeze",
    "risk.postponed": "Risk: deal postponed",
    "risk.on_hold": "Risk: on hold",
    "risk.paused": "Risk: paused",
    "risk.competitor": "Risk: went with a competitor",
    "risk.deprioritised": "Risk: deprioritised",
    "risk.not_proceeding": "Risk: not proceeding",
    "risk.cancelled": "Risk: cancelled",
    "risk.lost_funding": "Risk: lost funding",
    "risk.reorg": "Risk: reorganisation",
    "risk.champion_leaving": "Risk: champion leaving",
    "unanswered.question": "Unanswered question",
    "manual": "Added by hand",
}
MISSING_CLASS = "oppkit-missing"
RED_BORDER = "2px solid #d32f2f"


class TransitionForm(widgets.VBox):
    """A form for one workflow transition: a field per required attribute and a button.

    Every required field is marked ``*`` and shows the deal's current value beside it
    ("now: 42,000", "now: 2027-01-31", "now: not set"), so a blank field is never mistaken
    for a missing value. A click on the button (or :meth:`ask`) changes nothing: it shows
    what will happen ("Move <deal> from <stage> to <stage>?", with the values it will use)
    and Confirm / Cancel; Confirm calls :meth:`submit`. When attributes are missing it
    shows the "Incomplete" message at once, marks the missing fields (CSS class
    ``oppkit-missing`` and a red border) and keeps their names in :attr:`missing`.
    :meth:`submit` commits without asking (for code); after it the view offers Undo.
    """

    def __init__(self, view: OpportunityView, row: Any, deal: dict[str, Any]) -> None:
        self.view = view
        self.deal = deal
        self.name: str = row.transition
        self.to_step: str = row.to_step
        self.to_stage: str = row.to_stage
        self.requires: list[str] = list(row.requires)
        self.not_set: list[str] = list(row.missing)  # required and not set on the deal
        self.sends: int = int(row.communications or 0)
        self.triggers: list[str] = list(row.triggers or [])
        self.missing: list[str] = []
        self.fields: dict[str, widgets.Text] = {}
        self.current: dict[str, str] = {}  # attribute -> the deal's value as shown
        rows: list[widgets.Widget] = []
        for attribute in self.requires:
            value = deal.get(attribute)
            if attribute in REFERENCE_ATTRIBUTES:
                value = value or (deal.get(f"{attribute}_id") and "set")
            shown = DASH if is_missing(value) or value in ("", None) else (
                money(value) if attribute == "amount" else text(value)
            )  # fmt: skip
            self.current[attribute] = shown
            now = (
                '<small>now: <span class="oppkit-required">not set</span></small>'
                if shown == DASH
                else f"<small>now: {esc(shown)}</small>"
            )
            if attribute in REFERENCE_ATTRIBUTES:  # set elsewhere, never by a transition
                rows.append(widgets.HTML(f"{esc(attribute)} <b>*</b> {now}"))
                continue
            self.fields[attribute] = widgets.Text(
                description=f"{attribute} *",
                tooltip=f"{attribute} (required)",
                placeholder="YYYY-MM-DD" if attribute == "close_date" else "new value",
                style={"description_width": "120px"},
                layout={"width": "340px", "max_width": "100%"},
            )
            rows.append(widgets.HBox([self.fields[attribute], widgets.HTML(now)],
                                     layout={"align_items": "center", "flex_flow": "row wrap"}))  # fmt: skip
        label = f"{self.name} → {self.to_step}"
        self.button = fit_button(
            label,
            tooltip=f"{label} ({self.to_stage}): "
            + ("ready" if row.ready else f"needs {', '.join(row.missing)}"),
            button_style="success" if row.ready else "",
        )
        self.message = widgets.HTML()
        self.question = widgets.HTML()
        self.confirm_button = fit_button("Confirm", button_style="warning", icon="check")
        self.cancel_button = fit_button("Cancel", icon="times")
        self.confirm_box = widgets.VBox(
            [self.question, widgets.HBox([self.confirm_button, self.cancel_button])],
            layout={"display": "none"},
        )
        self.confirm_box.add_class("oppkit-confirm")
        self.button.on_click(lambda _b: self.ask())
        self.confirm_button.on_click(lambda _b: self.confirm())
        self.cancel_button.on_click(lambda _b: self.cancel())
        header = f"<b>{esc(self.name)}</b> → {esc(self.to_step)} ({esc(self.to_stage)})" + (
            "<br><small>required fields are marked *</small>" if self.requires else ""
        )
        super().__init__(
            [widgets.HTML(header), *rows, self.button, self.confirm_box, self.message],
            layout={"border": "1px solid #e0e0e0", "padding": "4px 6px", "margin": "0 0 6px 0",
                    "max_width": "100%"},
        )  # fmt: skip
        self.add_class("oppkit-transition")

    @property
    def asking(self) -> bool:
        """Whether the confirmation is shown (nothing has changed yet)."""
        return self.confirm_box.layout.display != "none"

    def values(self) -> dict[str, Any]:
        """What the user typed (blank fields are left out: the deal's value stays)."""
        return {k: w.value.strip() for k, w in self.fields.items() if w.value.strip()}

    def _mark(self, missing: list[str]) -> None:
        self.missing = list(missing)
        for name, field in self.fields.items():
            if name in missing:
                field.add_class(MISSING_CLASS)
                field.layout.border = RED_BORDER
            else:
                field.remove_class(MISSING_CLASS)
                field.layout.border = None

    def ask(self) -> bool:
        """Show what the transition will do, with Confirm / Cancel; nothing changes yet.

        False (and the "Incomplete" message, missing fields marked) when a required
        attribute is neither typed nor set on the deal.
        """
        now = self.view.kit.workflow.deal(self.view.opportunity_id)
        if now.get("step_id") != self.deal.get("step_id"):  # moved since the view was drawn
            self.view.moved_meanwhile()
            return False
        typed = self.values()
        missing = [a for a in self.not_set if a not in typed]
        self._mark(missing)
        if missing:
            self.confirm_box.layout.display = "none"
            self.message.value = error_html(IncompleteTransition(self.name, missing))
            return False
        d = self.deal
        items = []
        for attribute in self.requires:
            if attribute in typed:
                items.append(f"{esc(attribute)}: <b>{esc(typed[attribute])}</b> (new)")
            else:
                items.append(f"{esc(attribute)}: {esc(self.current[attribute])} (as now)")
        extra = []
        if self.triggers:
            extra.append(f"runs {esc(', '.join(self.triggers))}")
        if self.sends:
            extra.append(f"sends {self.sends} message{'s' if self.sends != 1 else ''}")
        self.question.value = (
            f"Move <b>{esc(d.get('name'))}</b> from <b>{esc(d.get('stage'))}</b>"
            f" ({esc(d.get('step'))}) to <b>{esc(self.to_stage)}</b> ({esc(self.to_step)})?"
            + (f"<br><small>{' · '.join(items)}</small>" if items else "")
            + (f"<br><small>It also {' and '.join(extra)}.</small>" if extra else "")
        )
        self.message.value = ""
        self.confirm_box.layout.display = "flex"
        return True

    def cancel(self) -> None:
        """Hide the confirmation; nothing changed."""
        self.confirm_box.layout.display = "none"
        self.message.value = ok_html("Cancelled: nothing changed.")

    def confirm(self) -> bool:
        """Run the transition asked about (see :meth:`submit`)."""
        self.confirm_box.layout.display = "none"
        return self.submit()

    def submit(self, **values: Any) -> bool:
        """Run the transition with the form's values (and ``values``) without asking;
        True when it moved (the view then offers Undo)."""
        self._mark([])
        try:
            result = self.view.kit.workflow.transition(
                self.view.opportunity_id, self.name, **{**self.values(), **values}
            )
        except IncompleteTransition as exc:
            self._mark([a for a in exc.missing])
            self.message.value = error_html(str(exc))
            return False
        except TransitionNotAvailable:  # the deal moved since the view was drawn
            self.view.moved_meanwhile()
            return False
        except OppkitError as exc:
            self.message.value = error_html(str(exc))
            return False
        self.view.transitioned(result)
        return True


class OpportunityView(widgets.VBox):
    """One deal on one screen (see module docs).

    The summary's *Open tasks* is ``kit.open_tasks(deal)``: open task alerts and the
    deal's open Salesforce tasks, each once (``view.open_tasks``); the Alerts & Tasks tab
    lists the Salesforce ones too, to be closed in Salesforce. *Open alerts* counts the
    other open alerts. ``on_refresh`` is an optional callable run by the Refresh button
    before re-reading (e.g. a sync of the user's mailbox); ``on_change`` one run after the
    deal's fields were changed here (e.g. to redraw the review around this view).
    """

    def __init__(
        self, kit: Kit, opportunity: Any, *, on_refresh: Callable[[], Any] | None = None,
        on_change: Callable[[], Any] | None = None,
    ) -> None:  # fmt: skip
        self.kit = kit
        self.on_refresh = on_refresh
        self.on_change = on_change
        self.opportunity_id: int = kit.scope.opportunity_id(opportunity)
        self.deal: dict[str, Any] = {}
        self.waiting = pd.DataFrame()  # kit.changes(): pending and in conflict
        self.metrics: dict[str, str] = {}
        self.is_owner = False
        self.alerts = pd.DataFrame()
        self.open_tasks = pd.DataFrame()  # tasks in alerts and open Salesforce tasks, each once
        self.members = pd.DataFrame()
        self.suggested = pd.DataFrame()
        self.followers = pd.DataFrame()
        self.transitions = pd.DataFrame()
        self.forms: dict[str, TransitionForm] = {}
        self.last_transition: TransitionResult | None = None  # what Undo moves back
        self.alert_buttons: dict[int, widgets.Button] = {}
        self.alert_sources: dict[int, widgets.Button] = {}  # alert id -> "open in feed"
        self.shown_alerts = pd.DataFrame()  # the alerts listed: each (rule, message) once
        self.add_buttons: dict[str, widgets.Button] = {}
        self.graph: Any = None  # the RelationshipGraph drawn (its tab, once shown)
        self.workflow_graph: Any = None  # the WorkflowGraph drawn (the Workflow tab)

        # settings
        self.follow_frequency = widgets.Dropdown(
            options=FREQUENCIES, value="weekly", description="Digest", layout={"width": "180px"}
        )
        self.follow_button = fit_button("Follow", icon="bell")
        self.unfollow_button = fit_button("Unfollow", icon="bell-slash")
        self.private_box = widgets.Checkbox(
            description="private (owner and members only)", indent=False,
            layout={"width": "auto"},
        )  # fmt: skip
        self.refresh_button = fit_button("Refresh", icon="refresh")
        self.settings_message = widgets.HTML()
        self.follow_button.on_click(lambda _b: self.follow())
        self.unfollow_button.on_click(lambda _b: self.unfollow())
        self.refresh_button.on_click(lambda _b: self.refresh(run_callback=True))
        settings = widgets.HBox(
            [
                self.follow_frequency,
                self.follow_button,
                self.unfollow_button,
                self.private_box,
                self.refresh_button,
            ],  # fmt: skip
            layout={"flex_flow": "row wrap", "align_items": "center"},
        )

        self.header = widgets.HTML()
        self.freshness = FreshnessBar(kit)  # data as of, per source; a badge when stale
        self.metrics_html = widgets.HTML()
        self.metrics_html.add_class("oppkit-metrics")
        self.editor = DealEditForm(kit, on_change=self._edited)

        # activities and notes
        self.timeline = TimelineView(kit, opportunity=self.opportunity_id, limit=300)
        self.note_text = widgets.Textarea(placeholder="Add a note…", layout={"width": "70%"})
        self.note_button = widgets.Button(description="Add note", icon="sticky-note")
        self.note_message = widgets.HTML()
        self.note_button.on_click(lambda _b: self._note_clicked())
        # stage actions of a meeting or call of the deal (oppkit.stage_actions)
        self.action_picker = widgets.Dropdown(
            description="From", options=[], layout={"width": "70%"}
        )
        self.actions_html = widgets.HTML()
        self.action_row = widgets.HBox(layout={"flex_flow": "row wrap"})
        self.action_message = widgets.HTML()
        self.stage_actions = pd.DataFrame()  # kit.stage_actions of the picked activity
        self.action_buttons: dict[str, widgets.Button] = {}
        self._picking = False
        activities_tab = widgets.VBox(
            [
                widgets.HBox([self.note_text, self.note_button]),
                self.note_message,
                self.actions_html,
                self.action_picker,
                self.action_row,
                self.action_message,
                self.timeline,
            ]  # fmt: skip
        )

        # alerts and tasks
        self.alerts_list = widgets.VBox(layout=scroll_layout(LIST_HEIGHT))
        self.alerts_list.add_class("oppkit-scroll")
        self.task_text = widgets.Text(placeholder="What needs doing", description="New")
        self.task_kind = widgets.Dropdown(options=["task", "alert"], layout={"width": "90px"})
        self.task_due = widgets.DatePicker(description="Due", layout={"width": "auto"})
        self.task_button = fit_button("Add", icon="plus")
        self.task_message = widgets.HTML()
        self.task_button.on_click(lambda _b: self._task_clicked())
        alerts_tab = widgets.VBox(
            [
                self.alerts_list,
                widgets.HBox(
                    [self.task_text, self.task_kind, self.task_due, self.task_button],
                    layout={"flex_flow": "row wrap"},
                ),
                self.task_message,
            ]  # fmt: skip
        )

        # relationship graph, people, workflow
        self.graph_area = widgets.HTML(layout={"width": "100%"})  # the graph's iframe
        self.graph_note = widgets.HTML()
        self.members_html = widgets.HTML(layout=scroll_layout(LIST_HEIGHT // 2 + 60))
        self.suggested_list = widgets.VBox(layout=scroll_layout(LIST_HEIGHT // 2 + 60))
        self.followers_html = widgets.HTML(layout=scroll_layout(LIST_HEIGHT // 2))
        self.people_message = widgets.HTML()
        # the owner manages members: change a role, or take someone off the deal
        self.member_picker = widgets.Dropdown(description="Member", options=[])
        self.role_text = widgets.Text(placeholder="role, e.g. Decision maker")
        self.set_role_button = widgets.Button(description="Set role", icon="id-badge")
        self.remove_member_button = widgets.Button(
            description="Remove", icon="user-times", button_style="warning"
        )
        self.set_role_button.on_click(lambda _b: self._manage(self.set_member_role))
        self.remove_member_button.on_click(lambda _b: self._manage(self.remove_member))
        self.member_admin = widgets.HBox(
            [self.member_picker, self.role_text, self.set_role_button, self.remove_member_button]
        )
        people_tab = widgets.VBox(
            [
                widgets.HTML("<b>Members</b>"),
                self.members_html,
                self.member_admin,
                widgets.HTML("<b>Suggested people</b> (on the threads, not on the deal)"),
                self.suggested_list,
                self.people_message,
                widgets.HTML("<b>Followers</b>"),
                self.followers_html,
            ]  # fmt: skip
        )
        self.workflow_html = widgets.HTML()
        self.workflow_forms = widgets.VBox(layout=scroll_layout(FORMS_HEIGHT))
        self.workflow_forms.add_class("oppkit-scroll")
        self.workflow_message = widgets.HTML()
        self.undo_button = fit_button("Undo", icon="undo", button_style="warning")
        self.undo_button.layout.display = "none"
        self.undo_button.on_click(lambda _b: self.undo())
        self.workflow_graph_area = widgets.HTML(layout={"width": "100%"})
        workflow_tab = widgets.VBox(
            [
                self.workflow_html,
                widgets.HBox([self.workflow_message, self.undo_button],
                             layout={"align_items": "center", "flex_flow": "row wrap"}),
                self.workflow_forms,
                self.workflow_graph_area,
            ]
        )  # fmt: skip

        self.sales = SalesTab(kit, self.opportunity_id, None)  # its account when first shown
        self.tabs = widgets.Tab(
            [
                activities_tab,
                alerts_tab,
                widgets.VBox([self.graph_note, self.graph_area]),
                people_tab,
                workflow_tab,
                self.sales,
            ]  # fmt: skip
        )
        self.tab_names = list(TAB_NAMES)
        for i, title in enumerate(self.tab_names):
            self.tabs.set_title(i, title)
        self._loaded: set[int] = set()
        self._quiet = False
        self.tabs.observe(self._tab_selected, names="selected_index")
        super().__init__(
            [
                widgets.HTML(STYLE + LAYOUT_STYLE),
                self.header,
                self.freshness,
                settings,
                self.settings_message,
                self.metrics_html,
                self.editor,
                self.tabs,
            ]  # fmt: skip
        )
        self.add_class("oppkit-opportunity-view")
        self.refresh(timeline=False)
        self.private_box.observe(self._private_changed, names="value")
        self.action_picker.observe(self._picked, names="value")

    # --- reading ------------------------------------------------------------------

    def moved_meanwhile(self) -> None:
        """The deal moved since this view was drawn (another cell, a sync, a colleague):
        draw it as it stands now and say so, instead of offering transitions it no longer
        has."""
        self.refresh()
        d = self.deal
        self.workflow_message.value = error_html(
            f"{d.get('name')} moved on meanwhile: it stands at {d.get('step')} "
            f"({d.get('stage')}) now. The transitions below are the ones it has now."
        )

    def refresh(self, *, run_callback: bool = False, timeline: bool = True) -> None:
        """Re-read the deal from the database and redraw (optionally run ``on_refresh``)."""
        if run_callback and self.on_refresh is not None:
            self.on_refresh()
        self.deal = self.kit.workflow.deal(self.opportunity_id)
        self.waiting = self.kit.changes(self.opportunity_id, status=WAITING)
        self.is_owner = actions.is_owner(self.kit, self.opportunity_id)
        self.alerts = self.kit.alerts(opportunity=self.opportunity_id)
        self.open_tasks = self.kit.open_tasks(opportunity=self.opportunity_id)
        if timeline:
            self.timeline.refresh()
            self.freshness.refresh()
        self._draw_header()
        self.editor.bind(self.deal, self.waiting)
        self._draw_alerts()
        self._draw_workflow()
        self._draw_stage_actions()
        # the People and graph tabs read more; they load when first shown
        for index in list(self._loaded):
            self._load_tab(index)

    def _tab_selected(self, change: dict) -> None:
        if change["new"] is not None and change["new"] not in self._loaded:
            self._load_tab(change["new"])

    def _load_tab(self, index: int) -> None:
        if index == 2:
            self._draw_graph()
        elif index == 3:
            self.load_people()
        elif index == 4:
            self._draw_workflow_graph()
        elif index == 5:
            self.sales.account_id = self.deal.get("account_id")
            self.sales.load()
        self._loaded.add(index)

    def _draw_header(self) -> None:
        d = self.deal
        close = d.get("close_date")
        days = (close - datetime.now(UTC).date()).days if isinstance(close, date) else None
        open_alerts = self.alerts[self.alerts["status"] == "open"]
        pending, conflicts = waiting_values(self.waiting, self.opportunity_id)
        size = money(d.get("amount"), d.get("currency"))
        if "amount" in pending or "amount" in conflicts:
            size = marked("amount", d.get("amount"), pending, conflicts)
        self.metrics = {
            "Stage": marked("stage", d.get("stage"), pending, conflicts),
            "Deal size": size,
            "Days to close": text(days),
            "Open alerts": str(int((open_alerts["kind"] != "task").sum())),
            "Open tasks": str(len(self.open_tasks)),  # kit.open_tasks: alerts and Salesforce
        }
        private = " · <b>private</b>" if d.get("is_private") else ""
        self.header.value = (
            f"<h3 style='margin:4px 0'>{esc(d.get('name'))}</h3>"
            f"<div>{esc(d.get('account'))} · owner {esc(d.get('owner') or d.get('owner_email'))}"
            f" · step {esc(d.get('step'))}"
            f" · closes {esc(marked('close_date', close, pending, conflicts))}{private}</div>"
        )
        self.metrics_html.value = "".join(metric(k, v) for k, v in self.metrics.items())
        self._quiet = True
        self.private_box.value = bool(d.get("is_private"))
        self._quiet = False
        self.private_box.disabled = not self.is_owner
        self.private_box.tooltip = (
            "only the owner can change this" if not self.is_owner else "owner and members only"
        )
        self.follow_button.disabled = self.unfollow_button.disabled = not self.kit.user

    def _source(self, activity_id: Any) -> tuple[str, Any]:
        """The subject and date of the activity an alert came from, as the feed has it."""
        frame = self.timeline.frame
        if pd.isna(activity_id) or frame.empty:
            return "", None
        found = frame[frame["id"] == int(activity_id)]
        if found.empty:
            return "", None
        return text(found["subject"].iloc[0]), found["occurred_at"].iloc[0]

    def _draw_alerts(self) -> None:
        rows = []
        self.alert_buttons = {}
        self.alert_sources = {}
        now = pd.Timestamp.now(tz="UTC")
        self.shown_alerts = dedupe_alerts(self.alerts)
        for a in self.shown_alerts.itertuples(index=False):
            due = f" · due {esc(a.due_at.date())}" if not pd.isna(a.due_at) else ""
            late = a.status == "open" and not pd.isna(a.due_at) and a.due_at < now
            subject, when = self._source(a.activity_id)
            source = ""
            if not pd.isna(a.activity_id):
                source = (
                    f'<div class="oppkit-source">from “{esc(subject)}” · {esc(when)}</div>'
                    if subject or when is not None
                    else '<div class="oppkit-source">from a message older than the feed shows</div>'
                )
            label = widgets.HTML(
                f"<b>{esc(rule_label(a.rule) if a.rule else a.kind)}</b>"
                f"{overdue_html() if late else ''} {esc(a.text)}{source}"
                f"<small>{esc(a.kind)} · {esc(a.status)}{due}</small>",
                layout={"flex": "1 1 auto", "min_width": "0"},
            )
            if a.status == "open":
                button = fit_button("Done", icon="check")
                button.on_click(lambda _b, alert_id=int(a.id): self.mark_done(alert_id))
                self.alert_buttons[int(a.id)] = button
                first: widgets.Widget = button
            else:
                first = widgets.HTML(layout={"width": "72px"})
            row = [first, label]
            if subject or when is not None:
                opener = fit_button(
                    "Open in feed", icon="envelope-open",
                    tooltip=f"Show “{subject}” in the Activities tab",
                )  # fmt: skip
                opener.on_click(lambda _b, aid=int(a.activity_id): self.open_activity(aid))
                self.alert_sources[int(a.id)] = opener
                row.append(opener)
            rows.append(widgets.HBox(row, layout={"align_items": "flex-start"}))
        # open tasks of the deal's source (Salesforce), and planned interactions now
        # overdue: shown here, closed where they live
        others = self.open_tasks[self.open_tasks["origin"].isin(["activity", "interaction"])]
        for t in others.itertuples(index=False):
            due = f" · due {esc(t.due_at.date())}" if not pd.isna(t.due_at) else ""
            planned = t.origin == "interaction"
            late = planned or (not pd.isna(t.due_at) and t.due_at < now)
            what = "planned interaction" if planned else "task"
            label = widgets.HTML(
                f"<b>{esc(what)}</b>{overdue_html() if late else ''} {esc(t.text)}"
                f"<br><small>{esc(t.status or 'open')}{due} · from {esc(t.source)}</small>",
                layout={"flex": "1 1 auto", "min_width": "0"},
            )
            rows.append(widgets.HBox([widgets.HTML(layout={"width": "72px"}), label]))
        self.alerts_list.children = rows or [widgets.HTML("<i>No alerts or tasks.</i>")]

    def open_activity(self, activity_id: int) -> bool:
        """Show an activity (e.g. the message an alert came from) in the Activities tab."""
        found = self.timeline.show_activity(activity_id)
        if found:
            self.tabs.selected_index = 0
        return found

    def _draw_graph(self) -> None:
        self.graph = self.kit.relationship_graph(opportunity=self.opportunity_id)
        self.graph_note.value = ""
        self.graph_area.value = self.graph.frame(height=GRAPH_HEIGHT)

    def _draw_workflow_graph(self) -> None:
        try:
            self.workflow_graph = self.kit.workflow.graph(self.opportunity_id)
        except (OppkitError, LookupError) as exc:
            self.workflow_graph = None
            self.workflow_graph_area.value = error_html(exc)
            return
        self.workflow_graph_area.value = self.workflow_graph.frame(height=GRAPH_HEIGHT)

    def load_people(self) -> None:
        """Read members, followers and suggested people (the People tab)."""
        people = self.kit.people(opportunity=self.opportunity_id)
        self.members = people[people["membership"] == "member"]
        self.followers = people[people["membership"] == "follower"]
        self.suggested = self.kit.suggested_people(self.opportunity_id)
        self.members_html.value = table(
            self.members.sort_values(["is_internal", "name"]),
            ["name", "email", "title", "account", "role", "is_internal"],
            {"is_internal": "internal"}, empty="No members yet.",
        )  # fmt: skip
        self.followers_html.value = table(
            self.followers, ["name", "email"], empty="Nobody follows this deal."
        )
        self.member_picker.options = [
            (f"{p.name or p.email} <{p.email}>", p.email)
            for p in self.members.itertuples(index=False)
        ]
        self.member_admin.layout.display = "flex" if self.is_owner else "none"
        rows = []
        self.add_buttons = {}
        for p in self.suggested.head(10).itertuples(index=False):
            button = widgets.Button(description="Add", icon="user-plus", layout={"width": "80px"})
            button.on_click(lambda _b, email=p.email: self.add_member(email))
            self.add_buttons[p.email] = button
            rows.append(widgets.HBox([button, widgets.HTML(
                f"{esc(p.name)} &lt;{esc(p.email)}&gt; · {esc(p.title)} · {esc(p.account)}"
                f" · on {esc(p.messages)} messages"
            )]))  # fmt: skip
        self.suggested_list.children = rows or [widgets.HTML("<i>No suggestions.</i>")]
        self._loaded.add(3)

    def _draw_workflow(self) -> None:
        d = self.deal
        self.forms = {}
        try:
            self.transitions = self.kit.workflow.available(self.opportunity_id)
        except OppkitError as exc:
            self.transitions = pd.DataFrame()
            self.workflow_html.value = error_html(exc)
            self.workflow_forms.children = []
            return
        where = f"Step <b>{esc(d.get('step'))}</b> in stage <b>{esc(d.get('stage'))}</b>."
        if self.transitions.empty:
            where += " <i>No transitions available from here.</i>"
            if d.get("step") is None:
                where += (
                    " <i>(The deal stands at no workflow step: kit.workflow.load() loads one.)</i>"
                )
        self.workflow_html.value = where
        for row in self.transitions.itertuples(index=False):
            self.forms[row.transition] = TransitionForm(self, row, d)
        self.workflow_forms.children = list(self.forms.values())

    def transitioned(self, result: TransitionResult) -> None:
        """After a transition from a form: read the deal again, offer Undo."""
        self.last_transition = result
        self.refresh()
        self.workflow_message.value = ok_html(
            f"{result.transition}: now at {result.to_step} ({result.stage})"
        )
        self.undo_button.description = f"Undo {result.transition}"
        self.undo_button.tooltip = (
            f"Move it back to {result.from_step} ({result.from_stage}); recorded as a "
            "stage change. Messages sent stay sent."
        )
        self.undo_button.layout.display = "flex"
        if self.on_change is not None:
            self.on_change()

    def undo(self) -> bool:
        """Move the deal back before the last transition made here (a stage change in the
        history of its own). Refused, with the reason shown, when the deal changed since."""
        done = self.last_transition
        if done is None:
            self.workflow_message.value = error_html("Nothing to undo.")
            return False
        try:
            back = self.kit.workflow.undo(done)
        except (OppkitError, LookupError) as exc:
            self.workflow_message.value = error_html(exc)
            self.undo_button.layout.display = "none"
            self.last_transition = None
            return False
        self.last_transition = None
        self.undo_button.layout.display = "none"
        self.refresh()
        self.workflow_message.value = ok_html(
            f"Undone: {self.deal.get('name')} is back at {back.to_step} ({back.stage})."
        )
        if self.on_change is not None:
            self.on_change()
        return True

    def _draw_stage_actions(self) -> None:
        """Offer the deal's meetings and calls in the feed (newest first, the one picked
        kept) and the stage actions of the one picked."""
        frame = self.timeline.frame
        picks = frame[frame["kind"].isin(STARTS_FROM)] if not frame.empty else frame
        options = [
            (f"{r.kind} · {text(r.occurred_at)} · {text(r.subject)}"[:120], int(r.id))
            for r in picks.itertuples(index=False)
        ]  # a dropdown's labels are text, not HTML
        ids = [value for _label, value in options]
        keep = self.action_picker.value
        self._picking = True
        try:
            self.action_picker.options = options
            self.action_picker.value = keep if keep in ids else (ids[0] if ids else None)
        finally:
            self._picking = False
        self._load_stage_actions()

    def _picked(self, _change: dict) -> None:
        if not self._picking:
            self.action_message.value = ""
            self._load_stage_actions()

    def _load_stage_actions(self) -> None:
        self.action_buttons = {}
        self.stage_actions = pd.DataFrame()
        title = "<b>Stage actions</b> "
        activity_id = self.action_picker.value
        self.action_picker.layout.display = "none" if activity_id is None else "flex"
        if activity_id is None:
            self.actions_html.value = (
                title + "<i>There is no meeting or call on this deal to start one from.</i>"
            )
            self.action_row.children = []
            return
        try:
            self.stage_actions = self.kit.stage_actions(activity_id)
        except (OppkitError, LookupError) as exc:
            self.actions_html.value = title + error_html(exc)
            self.action_row.children = []
            return
        if self.stage_actions.empty:
            self.actions_html.value = title + "<i>No stage actions for this deal's stages.</i>"
        else:
            self.actions_html.value = title + (
                "<small>from the meeting or call picked: its deal's stage "
                f"<b>{esc(self.deal.get('stage'))}</b> first, then earlier ones</small>"
            )
        for a in self.stage_actions.itertuples(index=False):
            key = a.name if a.name not in self.action_buttons else f"{a.name} ({a.stage})"
            button = widgets.Button(
                description=key[:60],
                tooltip=f"{a.activity_kind or a.kind}: {a.subject} · {a.from_stage} stage "
                f"{a.stage}",
                button_style="info" if a.from_stage == "current" else "",
                layout={"width": "auto"},
            )
            button.on_click(lambda _b, stage=a.stage, name=a.name: self.perform_action(stage, name))
            self.action_buttons[key] = button
        self.action_row.children = list(self.action_buttons.values())

    # --- writing ----------------------------------------------------------------

    def perform_action(self, stage: str, name: str, **values: Any) -> int | None:
        """Do stage action ``name`` of ``stage`` from the meeting or call picked; the new
        activity's id (None when refused: the reason shows under the buttons)."""
        try:
            new_id = self.kit.perform_stage_action(
                self.action_picker.value, {"stage": stage, "name": name}, **values
            )
        except (OppkitError, LookupError) as exc:
            self.action_message.value = error_html(exc)
            return None
        self.refresh()  # the feed, the open tasks, the actions
        made = self.timeline.frame[self.timeline.frame["id"] == new_id]
        kind, subject = (made["kind"].iloc[0], made["subject"].iloc[0]) if len(made) else ("", "")
        self.action_message.value = ok_html(f"{name}: {kind} “{text(subject)}” is on the timeline.")
        return new_id

    def _edited(self) -> None:
        """After a save or a settled conflict in the edit form: read the deal again."""
        self.refresh(timeline=False)
        if self.on_change is not None:
            self.on_change()

    def add_note(self, note: str) -> int:
        """Add a note to the deal's timeline (shown at once); its activity id."""
        activity_id = actions.add_note(self.kit, self.opportunity_id, note)
        self.timeline.refresh()
        return activity_id

    def _note_clicked(self) -> None:
        try:
            self.add_note(self.note_text.value)
        except OppkitError as exc:
            self.note_message.value = error_html(exc)
            return
        self.note_text.value = ""
        self.note_message.value = ok_html("Note added.")

    def add_task(self, task: str, *, due: Any = None, kind: str = "task") -> int:
        """Add a task or alert by hand; its id."""
        alert_id = actions.add_task(self.kit, self.opportunity_id, task, due=due, kind=kind)
        self.refresh(timeline=False)
        return alert_id

    def _task_clicked(self) -> None:
        try:
            self.add_task(self.task_text.value, due=self.task_due.value, kind=self.task_kind.value)
        except OppkitError as exc:
            self.task_message.value = error_html(exc)
            return
        self.task_text.value = ""
        self.task_message.value = ok_html("Added.")

    def mark_done(self, alert_id: int) -> None:
        """Mark an alert or task done."""
        actions.set_alert_status(self.kit, alert_id, "done")
        self.refresh(timeline=False)

    def add_member(self, person: str, role: str | None = None) -> None:
        """Make a person (e.g. a suggested one) a member of the deal."""
        actions.add_member(self.kit, self.opportunity_id, person, role=role)
        self.load_people()
        self.people_message.value = ok_html(f"{person} added.")

    def remove_member(self, person: str) -> None:
        """Take a person off the deal (owner only; on a private deal their access ends)."""
        actions.remove_member(self.kit, self.opportunity_id, person)
        self.load_people()
        self.people_message.value = ok_html(f"{person} removed.")

    def set_member_role(self, person: str, role: str | None = None) -> None:
        """Change a member's role (owner only); the role typed in the People tab by default."""
        role = self.role_text.value.strip() if role is None else role
        actions.set_member_role(self.kit, self.opportunity_id, person, role)
        self.load_people()
        self.people_message.value = ok_html(f"{person}: role set.")

    def _manage(self, act: Any) -> None:  # noqa: ANN401 - one of the two methods above
        if not self.member_picker.value:
            return
        try:
            act(self.member_picker.value)
        except (OppkitError, LookupError) as exc:
            self.people_message.value = error_html(str(exc))

    def set_private(self, private: bool) -> None:
        """Change the deal's privacy (owner only: raises :class:`oppkit.actions.NotAllowed`)."""
        actions.set_private(self.kit, self.opportunity_id, private)
        self.refresh(timeline=False)

    def _private_changed(self, change: dict) -> None:
        if self._quiet:
            return
        try:
            self.set_private(change["new"])
        except OppkitError as exc:
            self.settings_message.value = error_html(exc)
            self.refresh(timeline=False)
        else:
            self.settings_message.value = ok_html(
                "Private: owner and members only." if change["new"] else "Visible to everyone."
            )

    def follow(self, frequency: str | None = None) -> None:
        """Follow the deal (a daily or weekly digest) as the Kit's user."""
        if not self.kit.user:
            self.settings_message.value = error_html("Following needs connect(user=...).")
            return
        frequency = frequency or self.follow_frequency.value
        self.kit.follow(self.opportunity_id, self.kit.user, frequency)
        self.settings_message.value = ok_html(f"Following ({frequency} digest).")
        if 3 in self._loaded:
            self.load_people()

    def unfollow(self) -> None:
        """Stop following the deal, via ``kit.unfollow``."""
        if not self.kit.user:
            self.settings_message.value = error_html("Unfollowing needs connect(user=...).")
            return
        self.kit.unfollow(self.opportunity_id, self.kit.user)
        self.settings_message.value = ok_html("Not following any more.")
        if 3 in self._loaded:
            self.load_people()


def rule_label(rule: str) -> str:
    """A readable name for an alert's rule id: :data:`RULE_LABELS`, else the id de-slugged
    ("risk.new_thing" -> "Risk: new thing")."""
    if rule in RULE_LABELS:
        return RULE_LABELS[rule]
    head, _, tail = str(rule).partition(".")
    words = (tail or head).replace("_", " ").replace("-", " ").strip()
    if not tail:
        return words[:1].upper() + words[1:]
    return f"{head.replace('_', ' ').capitalize()}: {words}"


def overdue_html() -> str:
    """The *overdue* marker."""
    return ' <span class="oppkit-overdue">overdue</span>'


def dedupe_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts to list: open ones first (soonest due first), and one per (rule, message) —
    a rule that fired on two sentences of one message is one alert (an open one kept)."""
    if alerts.empty:
        return alerts
    df = alerts.assign(_closed=alerts["status"] != "open")
    df = df.sort_values(["_closed", "due_at", "created_at"], na_position="last", kind="stable")
    has_source = df["activity_id"].notna() & df["rule"].notna()
    once = df[has_source].drop_duplicates(["rule", "activity_id"], keep="first")
    return (
        pd.concat([once, df[~has_source]])
        .sort_values(["_closed", "due_at", "created_at"], na_position="last", kind="stable")
        .drop(columns="_closed")
    )
