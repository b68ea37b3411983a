"""The deal view sized for a notebook and safe to click (issue #15), on SQLite and
PostgreSQL: a paged feed in a scroll area, transitions that ask before they move and can be
undone, every field's current value, alerts with readable names, their message and an
overdue marker, each once, the graphs named after the deal and redrawn after a move.
What only a browser shows (heights, cut button text) is in test_deal_view_browser.py."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

import oppkit
from oppkit.db.engine import write_transaction
from oppkit.db.schema import activities, alerts, opportunities, outbound_changes
from oppkit.signal_rules import RULES
from oppkit.sync import sync_salesforce_export
from oppkit.widgets.layout import FIT_CLASS
from oppkit.widgets.opportunity import RULE_LABELS, rule_label
from oppkit.workflow.model import WorkflowError
from tests.workflow_support import add_account, add_member, add_person

AVA = "ava.patel@northwind.example"
BOB = "bob.smith@acme.example"
EVIL = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
NOW = datetime.now(UTC)
TODAY = NOW.date()

WORKFLOW = """
[[stages]]
name = "Lead"
status = "open"
probability = 10

[[stages]]
name = "Proposal"
status = "open"
probability = 50

[[stages]]
name = "Negotiation"
status = "open"
probability = 70

[[stages]]
name = "Won"
status = "won"

[[stages]]
name = "Lost"
status = "lost"

[[steps]]
name = "New"
stage = "Lead"

[[steps]]
name = "Proposal sent"
stage = "Proposal"

[[steps]]
name = "Negotiation"
stage = "Negotiation"

[[steps]]
name = "Closed won"
stage = "Won"

[[steps]]
name = "Closed lost"
stage = "Lost"

[[transitions]]
name = "Send proposal"
from = "New"
to = "Proposal sent"
requires = ["amount", "close_date", "decision_maker"]

[[transitions]]
name = "Close lost"
from = "New"
to = "Closed lost"

[[transitions]]
name = "Negotiate"
from = "Proposal sent"
to = "Negotiation"
requires = ["amount", "close_date"]

[[transitions]]
name = "Close won"
from = "Negotiation"
to = "Closed won"
requires = ["amount"]

[entries]
new_account = "New"
existing_account = "New"
"""


def add_activities(kit: oppkit.Kit, deal: int, n: int, *, subject: str = "Message") -> list[int]:
    """``n`` emails on the deal, an hour apart, the newest an hour ago; their ids, newest first."""
    rows = [
        {"kind": "email", "occurred_at": NOW - timedelta(hours=i + 1),
         "subject": f"{subject} {i + 1}", "snippet": f"body {i + 1}", "opportunity_id": deal,
         "direction": "inbound", "source": "test", "source_id": uuid.uuid4().hex}
        for i in range(n)
    ]  # fmt: skip
    with write_transaction(kit.engine) as conn:
        conn.execute(insert(activities), rows)
    feed = kit.timeline(opportunity=deal)
    return [int(i) for i in feed["id"]]


def add_alert(kit: oppkit.Kit, deal: int, rule: str | None, text: str, activity: int | None,
              due: datetime | None = None, kind: str = "request") -> None:  # fmt: skip
    with write_transaction(kit.engine) as conn:
        conn.execute(insert(alerts).values(
            kind=kind, text=text, status="open", activity_id=activity, opportunity_id=deal,
            rule=rule, due_at=due, source="test", source_id=uuid.uuid4().hex,
        ))  # fmt: skip


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> dict:
    base = oppkit.connect(db_url)
    path = tmp_path / "workflow.toml"
    path.write_text(WORKFLOW, encoding="utf-8")
    add_person(base.engine, AVA, "Ava Patel", internal=True)
    acme = add_account(base.engine, "Acme", "acme.example")
    bob = add_person(base.engine, BOB, "Bob Smith", account_id=acme)
    base.workflow.load(path)
    kit = oppkit.connect(db_url, user=AVA)
    deal = kit.workflow.create(
        "Acme pilot", account="acme.example", amount=42_000,
        close_date=TODAY + timedelta(days=30),
    )  # fmt: skip
    add_member(kit.engine, deal, bob)
    return {"url": db_url, "kit": kit, "deal": deal}


def stage_of(kit: oppkit.Kit, deal: int) -> tuple[str, str]:
    row = kit.opportunities().set_index("id").loc[deal]
    return row["stage"], row["step"]


# --- the feed ---------------------------------------------------------------------


def test_a_long_feed_is_paged_in_a_scroll_area(world):
    kit, deal = world["kit"], world["deal"]
    ids = add_activities(kit, deal, 300)
    view = oppkit.OpportunityView(kit, deal)
    feed = view.timeline
    assert len(feed.shown) == 300 and len(feed.page_items) == 25
    assert feed.feed.value.count('class="oppkit-feed-item') == 25
    assert "Message 1<" in feed.feed.value and "Message 26<" not in feed.feed.value
    assert feed.pager.label.value == "items 1–25 of 300"
    assert feed.pager.layout.display == "flex"
    assert feed.pager.newer_button.disabled and not feed.pager.older_button.disabled
    assert (feed.feed.layout.max_height, feed.feed.layout.overflow) == ("420px", "auto")

    feed.pager.older_button.click()
    assert feed.pager.label.value == "items 26–50 of 300"
    assert "Message 26<" in feed.feed.value and "Message 1<" not in feed.feed.value
    assert list(feed.page_items["id"]) == ids[25:50]
    feed.pager.show(99)  # clamped to the last page
    assert feed.pager.label.value == "items 276–300 of 300" and feed.pager.older_button.disabled
    feed.kind_filter.value = "email"  # a filter starts again at the newest
    assert feed.pager.label.value == "items 1–25 of 300"
    feed.kind_filter.value = "all"
    view.add_note("The newest now")
    assert (
        "The newest now" in feed.feed.value and feed.pager.label.value == "items 1–25 of 300"
    )  # the newest 300

    short = oppkit.TimelineView(kit, opportunity=deal, limit=10)
    assert short.pager.layout.display == "none"  # one page: no pager
    assert short.feed.value.count('class="oppkit-feed-item') == 10


# --- transitions: ask, confirm, undo ----------------------------------------------


def test_a_transition_click_asks_first_and_moves_only_on_confirm(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    form = view.forms["Send proposal"]
    form.fields["decision_maker"].value = "Bob Smith"
    form.button.click()
    assert form.asking
    assert stage_of(kit, deal) == ("Lead", "New")  # nothing moved yet
    question = re.sub(r"<[^>]+>", "", form.question.value)
    assert "Move Acme pilot from Lead (New) to Proposal (Proposal sent)?" in question
    assert "amount: 42,000 (as now)" in question
    assert "decision_maker: Bob Smith (new)" in question
    assert f"close_date: {TODAY + timedelta(days=30)} (as now)" in question

    form.cancel_button.click()
    assert not form.asking and "nothing changed" in form.message.value
    assert stage_of(kit, deal) == ("Lead", "New")

    form.button.click()
    form.confirm_button.click()
    assert stage_of(kit, deal) == ("Proposal", "Proposal sent")
    assert view.metrics["Stage"] == "Proposal" and set(view.forms) == {"Negotiate"}
    assert view.undo_button.layout.display == "flex"
    assert view.undo_button.description == "Undo Send proposal"


def test_undo_moves_the_deal_back_and_the_history_shows_both_moves(world):
    kit, deal = world["kit"], world["deal"]
    changes = []
    view = oppkit.OpportunityView(kit, deal, on_change=lambda: changes.append(1))
    form = view.forms["Send proposal"]
    form.fields["decision_maker"].value = "Bob Smith"
    form.fields["amount"].value = "55000"
    form.button.click()
    form.confirm_button.click()
    assert kit.opportunities().set_index("id").loc[deal, "amount"] == 55_000
    view.undo_button.click()
    assert stage_of(kit, deal) == ("Lead", "New")
    row = kit.opportunities().set_index("id").loc[deal]
    assert (row["amount"], row["probability"]) == (42_000, 10)
    assert view.metrics["Stage"] == "Lead" and set(view.forms) == {"Send proposal", "Close lost"}
    assert "Undone: Acme pilot is back at New (Lead)" in view.workflow_message.value
    assert view.undo_button.layout.display == "none" and changes == [1, 1]

    history = kit.stage_history(opportunity=deal)
    moves = history[history["origin"] == "transition"]  # a stage change like any other
    got = set(zip(moves["field"], moves["old_value"], moves["new_value"], strict=True))
    assert {("stage", "Lead", "Proposal"), ("stage", "Proposal", "Lead"),
            ("step", "New", "Proposal sent"), ("step", "Proposal sent", "New"),
            ("amount", "42000.0", "55000.0"), ("amount", "55000.0", "42000.0")} <= got  # fmt: skip


def test_undo_is_refused_when_the_deal_changed_meanwhile(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    form = view.forms["Close lost"]
    form.button.click()
    form.confirm_button.click()
    assert stage_of(kit, deal) == ("Lost", "Closed lost")
    kit.update_opportunity(deal, amount=1_000)  # someone edits it in between
    assert not view.undo()
    said = html.unescape(view.workflow_message.value)
    assert "Cannot undo 'Close lost': 'Acme pilot' was changed since" in said
    assert stage_of(kit, deal) == ("Lost", "Closed lost")  # nothing changed
    assert view.undo_button.layout.display == "none"

    # the engine says so too; and a deal moved on is refused with where it stands now
    other = kit.workflow.create("Globex", amount=1, close_date="2027-01-01",
                                decision_maker="Jo")  # fmt: skip
    first = kit.workflow.transition(other, "Send proposal")
    kit.workflow.transition(other, "Negotiate")
    with pytest.raises(WorkflowError, match="moved on since .*Negotiation"):
        kit.workflow.undo(first)
    assert stage_of(kit, other) == ("Negotiation", "Negotiation")


def test_undo_of_a_salesforce_deal_takes_back_the_change_still_waiting(
    db_url, settings, export, monkeypatch
):  # fmt: skip
    monkeypatch.setenv("OPPKIT_SALESFORCE_WRITE_BACK", "1")
    sync_salesforce_export(export, settings=settings)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()  # the default: Proposal/Price Quote is step "Proposal sent"
    view = oppkit.OpportunityView(kit, "Acme pilot")
    form = view.forms["Negotiate"]
    form.button.click()
    form.confirm_button.click()
    waiting = kit.changes(view.opportunity_id, status="pending")
    assert list(zip(waiting["field"], waiting["new_value"], strict=True)) == [
        ("stage", "Negotiation/Review")
    ]
    assert view.metrics["Stage"] == "Negotiation/Review (pending)"
    view.undo_button.click()
    assert kit.changes(view.opportunity_id, status="pending").empty  # nothing goes out
    assert view.deal["step"] == "Proposal sent" and view.metrics["Stage"] == "Proposal/Price Quote"

    done = kit.workflow.transition("Acme pilot", "Negotiate")
    with write_transaction(kit.engine) as conn:  # the agent pushed it meanwhile
        conn.execute(update(outbound_changes).values(status="pushed"))
    with pytest.raises(WorkflowError, match="already sent to Salesforce"):
        kit.workflow.undo(done)
    assert kit.workflow.deal("Acme pilot")["step"] == "Negotiation"


def test_undo_of_a_deal_one_may_not_see_is_not_found(world):
    kit, url = world["kit"], world["url"]
    secret = kit.workflow.create("Secret", private=True)
    done = kit.workflow.transition(secret, "Close lost")
    with pytest.raises(oppkit.NotFoundError):
        oppkit.connect(url, user="ben@northwind.example").workflow.undo(done)
    assert stage_of(kit, secret) == ("Lost", "Closed lost")


def test_transition_buttons_fit_their_text_and_every_field_shows_its_value(world):
    kit, deal = world["kit"], world["deal"]
    kit.workflow.transition(deal, "Send proposal", decision_maker="Bob")
    view = oppkit.OpportunityView(kit, deal)
    form = view.forms["Negotiate"]
    assert form.button.description == "Negotiate → Negotiation"  # never cut
    assert form.button.layout.width == "auto" and FIT_CLASS in form.button._dom_classes
    assert "Negotiate → Negotiation" in form.button.tooltip
    assert view.undo_button.layout.width == "auto"
    assert form.current == {"amount": "42,000", "close_date": str(TODAY + timedelta(days=30))}
    assert all(f.description.endswith(" *") for f in form.fields.values())  # required
    nows = re.findall(r"now: ([^<]+)<", str([c.value for c in _html_of(form)]))
    assert nows == ["42,000", str(TODAY + timedelta(days=30))]  # the date shown like the amount

    fresh = kit.workflow.create("Fresh")  # nothing set: said so, in the same place
    form = oppkit.OpportunityView(kit, fresh).forms["Send proposal"]
    text = " ".join(c.value for c in _html_of(form))
    assert text.count("not set") == 3 and form.current["amount"] == "—"
    form.button.click()  # incomplete: said at once, no question asked
    assert not form.asking and "Incomplete" in form.message.value
    assert form.missing == ["amount", "close_date", "decision_maker"]


def _html_of(widget):  # noqa: ANN001, ANN202
    out, todo = [], [widget]
    while todo:
        w = todo.pop(0)
        if w.__class__.__name__ == "HTML":
            out.append(w)
        todo.extend(getattr(w, "children", ()))
    return out


# --- alerts and tasks -------------------------------------------------------------


def test_alerts_have_a_readable_name_their_message_an_overdue_marker_and_show_once(world):
    kit, deal = world["kit"], world["deal"]
    ids = add_activities(kit, deal, 40)
    source = ids[30]  # on the feed's second page
    with write_transaction(kit.engine) as conn:
        conn.execute(update(activities).where(activities.c.id == source).values(subject=EVIL))
    yesterday = NOW - timedelta(days=1)
    add_alert(kit, deal, "request.we_need", "We need the SOC 2 report", source, due=yesterday)
    add_alert(kit, deal, "request.we_need", "We need the SOC 2 report by Friday", source)
    add_alert(kit, deal, "risk.some_new_rule", EVIL, ids[0], kind="risk")
    view = oppkit.OpportunityView(kit, deal)
    rows = view.alerts_list.children
    labels = [row.children[1].value for row in rows]
    assert len(rows) == 2  # the rule fired on two sentences of one message: one alert
    shown = " ".join(labels)
    assert "request.we_need" not in shown and "risk.some_new_rule" not in shown
    assert "Request: something is needed" in labels[0] and "Risk: some new rule" in labels[1]
    assert 'class="oppkit-overdue">overdue' in labels[0]  # due yesterday
    assert "overdue" not in labels[1]
    assert f"from “{ESCAPED}”" in labels[0] and "<img" not in shown and ESCAPED in labels[1]
    assert (NOW - timedelta(hours=31)).strftime("%Y-%m-%d") in labels[0]  # its date
    assert set(view.shown_alerts["rule"]) == {"request.we_need", "risk.some_new_rule"}

    alert_id = int(view.shown_alerts.iloc[0]["id"])
    view.tabs.selected_index = 1
    view.alert_sources[alert_id].click()  # open its message in the feed
    assert view.tabs.selected_index == 0
    feed = view.timeline
    assert feed.pager.label.value == "items 26–40 of 40"
    assert f'oppkit-highlight" data-activity="{source}"' in feed.feed.value


def test_overdue_planned_interactions_are_listed_with_the_alerts(world):
    kit, deal = world["kit"], world["deal"]
    kit.interactions.plan("Pricing call with Bob", "call", start=NOW - timedelta(days=2),
                          opportunity=deal)  # fmt: skip
    kit.interactions.plan("Next week's demo", "meeting", start=NOW + timedelta(days=7),
                          opportunity=deal)  # fmt: skip
    view = oppkit.OpportunityView(kit, deal)
    labels = " ".join(row.children[1].value for row in view.alerts_list.children)
    assert "Pricing call with Bob" in labels and "overdue" in labels
    assert "planned interaction" in labels and "Next week" not in labels


def test_rule_labels_and_dedupe():
    assert rule_label("request.we_need") == RULE_LABELS["request.we_need"]
    assert rule_label("risk.brand_new") == "Risk: brand new"
    assert rule_label("custom_rule") == "Custom rule"
    assert {r.id for r in RULES} <= set(RULE_LABELS)  # every rule oppkit ships has a name


# --- graphs in the deal view --------------------------------------------------------


def test_the_relationship_graph_is_named_after_the_deal_and_fills_its_frame(world):
    kit, deal = world["kit"], world["deal"]
    with write_transaction(kit.engine) as conn:
        conn.execute(update(opportunities).where(opportunities.c.id == deal)
                     .values(name=f"Acme {EVIL}"))  # fmt: skip
    assert kit.relationship_graph(opportunity=deal).heading == f"Acme {EVIL}"
    assert kit.relationship_graph(account="acme.example").heading == "Acme"
    view = oppkit.OpportunityView(kit, deal)
    assert view.graph is None  # drawn when its tab is first shown
    view.tabs.selected_index = 2
    assert view.graph.heading == f"Acme {EVIL}"
    frame = view.graph_area.value
    assert frame.startswith('<iframe sandbox="allow-scripts"') and "width:100%" in frame
    assert "height:460px" in frame and "<img" not in frame
    assert "Opportunity " not in frame


def test_the_workflow_graph_is_redrawn_after_a_transition_and_an_undo(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    view.tabs.selected_index = 4
    assert "at <strong>New</strong>" in view.workflow_graph.html
    assert view.workflow_graph_area.value.startswith("<iframe")
    assert "Content-Security-Policy" in view.workflow_graph.html
    view.forms["Send proposal"].submit(decision_maker="Bob")
    assert "at <strong>Proposal sent</strong>" in view.workflow_graph.html
    assert "Proposal sent" in view.workflow_graph_area.value
    view.undo_button.click()
    assert "at <strong>New</strong>" in view.workflow_graph.html


def test_the_deal_view_keeps_its_lists_in_scroll_areas(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    scrolled = (view.timeline.feed, view.alerts_list, view.workflow_forms, view.members_html,
                view.suggested_list, view.followers_html)  # fmt: skip
    for area in scrolled:
        assert area.layout.overflow == "auto" and area.layout.max_height.endswith("px")
        assert int(area.layout.max_height[:-2]) <= 480


def test_what_the_new_parts_show_is_escaped(world):
    kit, deal = world["kit"], world["deal"]
    with write_transaction(kit.engine) as conn:
        conn.execute(update(opportunities).where(opportunities.c.id == deal)
                     .values(name=f"Acme {EVIL}"))  # fmt: skip
    view = oppkit.OpportunityView(kit, deal)
    form = view.forms["Send proposal"]
    form.fields["decision_maker"].value = EVIL
    form.button.click()
    assert "<img" not in form.question.value
    assert f"Move <b>Acme {ESCAPED}</b>" in form.question.value
    assert f"decision_maker: <b>{ESCAPED}</b> (new)" in form.question.value
    form.confirm_button.click()
    now = " ".join(w.value for w in _html_of(view.forms["Negotiate"]))
    view.undo_button.click()
    said = view.workflow_message.value
    assert "<img" not in said and f"Undone: Acme {ESCAPED} is back at New" in said
    assert "<img" not in now


def test_a_view_drawn_before_the_deal_moved_shows_where_it_stands_instead_of_failing(world):
    """Seen in notebook 04: a view drawn before later cells moved the deal offered the old
    step's transition and answered its click with "not available from step ..."."""
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    stale = view.forms["Send proposal"]
    kit.workflow.transition(deal, "Send proposal", decision_maker="Bob Smith")  # elsewhere
    stale.fields["decision_maker"].value = "Bob Smith"
    stale.button.click()  # asks on the deal as it stands: it moved
    assert not stale.asking and stage_of(kit, deal) == ("Proposal", "Proposal sent")
    assert "moved on meanwhile" in view.workflow_message.value
    assert "Proposal sent" in view.workflow_message.value
    assert set(view.forms) == {"Negotiate"}  # what it can do now
    assert "not available" not in stale.message.value
    assert stale.submit() is False  # from code too: no move, the view follows
    assert stage_of(kit, deal) == ("Proposal", "Proposal sent")
