"""The notebook apps as Python objects: what they show, and what their buttons and forms do,
on SQLite and PostgreSQL. The browser side is in test_notebook_browser.py."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete, insert, update

import oppkit
from oppkit import actions
from oppkit.db.engine import write_transaction
from oppkit.db.schema import (
    activities,
    activity_people,
    alerts,
    campaigns,
    opportunities,
    stage_history,
)
from oppkit.sync import sync_salesforce_export
from oppkit.widgets.html import esc
from oppkit.widgets.opportunity import MISSING_CLASS
from tests.support import small_org, sync_fake_salesforce
from tests.workflow_support import add_account, add_member, add_person

AVA = "ava.patel@northwind.example"
BEN = "ben.okafor@northwind.example"
BOB = "bob.smith@acme.example"
MEI = "mei.tanaka@acme.example"
JO = "jo.lee@acme.example"
EVIL = "<img src=x onerror=alert(1)>"
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
name = "Close won"
from = "Proposal sent"
to = "Closed won"
requires = ["amount"]

[entries]
new_account = "New"
existing_account = "New"
"""


def add_activity(
    kit: oppkit.Kit, opportunity_id: int, kind: str, when: datetime, parts: list[tuple[int, str]],
    subject: str = "hello", thread: str | None = None,
) -> int:  # fmt: skip
    with write_transaction(kit.engine) as conn:
        activity_id = conn.execute(
            insert(activities)
            .values(kind=kind, occurred_at=when, subject=subject, snippet=f"about {subject}",
                    opportunity_id=opportunity_id, sender_id=parts[0][0] if parts else None,
                    thread_id=thread, direction="inbound", source="test",
                    source_id=uuid.uuid4().hex)
            .returning(activities.c.id)
        ).scalar_one()  # fmt: skip
        for person_id, role in parts:
            conn.execute(
                insert(activity_people).values(
                    activity_id=activity_id, person_id=person_id, role=role
                )
            )
    return activity_id


def history(kit: oppkit.Kit, opportunity_id: int, field: str, old, new, when: datetime) -> None:  # noqa: ANN001
    with write_transaction(kit.engine) as conn:
        conn.execute(
            insert(stage_history).values(
                opportunity_id=opportunity_id,
                field=field,
                old_value=old,
                new_value=new,
                changed_at=when,
                source="test",
                source_id=uuid.uuid4().hex,
            )  # fmt: skip
        )


def set_columns(kit: oppkit.Kit, opportunity_id: int, **values) -> None:  # noqa: ANN003
    with write_transaction(kit.engine) as conn:
        conn.execute(
            update(opportunities).where(opportunities.c.id == opportunity_id).values(**values)
        )


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> dict:
    base = oppkit.connect(db_url)
    path = tmp_path / "workflow.toml"
    path.write_text(WORKFLOW, encoding="utf-8")
    ids = {
        "ava": add_person(base.engine, AVA, "Ava Patel", internal=True),
        "ben": add_person(base.engine, BEN, "Ben Okafor", internal=True),
    }
    acme = add_account(base.engine, "Acme", "acme.example")
    ids["bob"] = add_person(base.engine, BOB, "Bob Smith", account_id=acme)
    ids["mei"] = add_person(base.engine, MEI, "Mei Tanaka", account_id=acme)
    ids["jo"] = add_person(base.engine, JO, EVIL, account_id=acme)
    base.workflow.load(path)
    kit = oppkit.connect(db_url, user=AVA)
    deal = kit.workflow.create(
        "Acme pilot", account="acme.example", amount=50_000, close_date=TODAY + timedelta(days=10)
    )
    add_member(kit.engine, deal, ids["bob"])
    add_activity(kit, deal, "email", NOW - timedelta(days=3), [(ids["bob"], "from"), (ids["ava"], "to")],
                 subject=EVIL, thread="t1")  # fmt: skip
    add_activity(kit, deal, "meeting", NOW - timedelta(days=2),
                 [(ids["ava"], "organizer"), (ids["bob"], "attendee"), (ids["mei"], "attendee")],
                 subject="Kick-off", thread="t2")  # fmt: skip
    add_activity(kit, deal, "email", NOW - timedelta(days=1), [(ids["mei"], "from"), (ids["jo"], "cc")],
                 subject="Pricing question", thread="t2")  # fmt: skip
    add_activity(kit, deal, "call", NOW - timedelta(hours=5), [(ids["ava"], "from")],
                 subject="Call with Bob")  # fmt: skip
    return {"url": db_url, "kit": kit, "deal": deal, "ids": ids, "acme": acme}


# --- OpportunityView --------------------------------------------------------------


def test_the_opportunity_view_shows_the_deals_metrics(world):
    kit, deal = world["kit"], world["deal"]
    actions.add_task(kit, deal, "Send the pricing sheet", due=TODAY + timedelta(days=2))
    actions.add_task(kit, deal, "Budget at risk", kind="risk")
    view = oppkit.OpportunityView(kit, "Acme pilot")
    assert view.metrics == {
        "Stage": "Lead", "Deal size": "50,000", "Days to close": "10", "Open alerts": "1",
        "Open tasks": "1",
    }  # fmt: skip
    assert "Acme pilot" in view.header.value and "Ava Patel" in view.header.value
    assert "50,000" in view.metrics_html.value and "Open tasks" in view.metrics_html.value

    loose = kit.workflow.create("No amount yet")
    empty = oppkit.OpportunityView(kit, loose)
    assert empty.metrics["Deal size"] == "—" and empty.metrics["Days to close"] == "—"


def test_the_timeline_filters_by_kind_and_by_person(world):
    view = oppkit.OpportunityView(world["kit"], world["deal"])
    feed = view.timeline
    assert list(feed.shown["subject"]) == ["Call with Bob", "Pricing question", "Kick-off", EVIL]
    assert set(feed.kind_filter.options) == {"all", "call", "email", "meeting"}
    feed.kind_filter.value = "email"
    assert list(feed.shown["subject"]) == ["Pricing question", EVIL]
    assert "Kick-off" not in feed.feed.value and "Pricing question" in feed.feed.value
    feed.person_filter.value = MEI
    assert list(feed.shown["subject"]) == ["Pricing question"]
    feed.kind_filter.value = "all"
    assert list(feed.shown["subject"]) == ["Pricing question", "Kick-off"]
    assert "2 of 4 activities" in feed.count.value

    account_feed = oppkit.TimelineView(world["kit"], person=BOB)
    assert set(account_feed.shown["subject"]) == {"Kick-off", EVIL}


def test_a_note_appears_in_the_timeline_at_once(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    view.note_text.value = "Bob wants the pilot to start in March.\nBudget approved."
    view.note_button.click()
    newest = view.timeline.shown.iloc[0]
    assert (newest["kind"], newest["subject"], newest["source"], newest["sender"]) == (
        "note", "Bob wants the pilot to start in March.", "oppkit", AVA,
    )  # fmt: skip
    assert "Bob wants the pilot" in view.timeline.feed.value
    assert view.note_text.value == "" and "Note added" in view.note_message.value
    assert kit.timeline(opportunity=deal, kind="note")["snippet"].iloc[0].endswith("approved.")
    view.note_button.click()  # empty: refused, nothing written
    assert "needs some text" in view.note_message.value
    assert len(kit.timeline(opportunity=deal, kind="note")) == 1


def test_alerts_and_tasks_are_added_and_marked_done(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    assert view.metrics["Open tasks"] == "0"
    view.task_text.value = "Book the security review"
    view.task_due.value = TODAY + timedelta(days=5)
    view.task_button.click()
    task = kit.alerts(opportunity=deal)
    assert list(task["text"]) == ["Book the security review"]
    assert task["due_at"].iloc[0].date() == TODAY + timedelta(days=5)
    assert view.metrics["Open tasks"] == "1"
    task_id = int(task["id"].iloc[0])
    view.alert_buttons[task_id].click()
    assert kit.alerts(opportunity=deal)["status"].tolist() == ["done"]
    assert view.metrics["Open tasks"] == "0" and task_id not in view.alert_buttons


def test_open_tasks_count_salesforce_tasks_once_and_follow_their_status(
    db_url: str, settings, export: Path
):
    sync_salesforce_export(export, settings=settings)
    kit = oppkit.connect(db_url, user=AVA)
    view = oppkit.OpportunityView(kit, "Acme pilot")
    # "Send contract" is Not Started in Salesforce; the call and "Bad date" are done
    assert (view.metrics["Open tasks"], view.metrics["Open alerts"]) == ("1", "0")
    listed = " ".join(row.children[1].value for row in view.alerts_list.children)
    assert "Send contract" in listed and "from salesforce" in listed
    view.add_task("Book the security review")
    assert view.metrics["Open tasks"] == "2"
    contract = kit.timeline(opportunity="Acme pilot", kind="task")
    contract = int(contract.set_index("subject").loc["Send contract", "id"])
    with write_transaction(kit.engine) as conn:  # an alert on that very task is the same task
        conn.execute(insert(alerts).values(
            kind="task", text="Send contract", status="open", activity_id=contract,
            opportunity_id=view.opportunity_id, rule="test", source="test", source_id="t1",
        ))  # fmt: skip
    view.refresh()
    assert view.metrics["Open tasks"] == "2"
    tasks = view.open_tasks
    assert sorted(tasks["text"]) == ["Book the security review", "Send contract"]

    task_csv = export / "Task.csv"  # Salesforce closes the task; the next sync says so
    task_csv.write_text(
        task_csv.read_text(encoding="utf-8").replace('"Not Started","false"', '"Completed","true"'),
        encoding="utf-8",
    )
    with write_transaction(kit.engine) as conn:
        conn.execute(delete(alerts).where(alerts.c.source_id == "t1"))
    sync_salesforce_export(export, settings=settings)
    view.refresh()
    assert view.metrics["Open tasks"] == "1"
    assert list(view.open_tasks["text"]) == ["Book the security review"]


def test_a_suggested_person_is_added_as_a_member(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    view.tabs.selected_index = 3  # the People tab loads when shown
    assert list(view.members["email"]) == [BOB]
    assert set(view.suggested["email"]) == {MEI, JO}
    assert view.suggested["email"].iloc[0] == MEI  # most engaged first
    view.add_buttons[MEI].click()
    assert set(view.members["email"]) == {BOB, MEI}
    assert list(view.suggested["email"]) == [JO]
    assert set(kit.people(opportunity=deal)["email"]) == {BOB, MEI}
    assert "Mei Tanaka" in view.members_html.value


def test_a_transition_form_shows_incomplete_highlights_the_missing_field_then_succeeds(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    assert set(view.forms) == {"Send proposal", "Close lost"}
    form = view.forms["Send proposal"]
    assert set(form.fields) == {"amount", "close_date", "decision_maker"}
    form.fields["close_date"].value = "2027-01-31"
    form.button.click()
    assert form.missing == ["decision_maker"]
    assert "Incomplete" in form.message.value and "decision_maker" in form.message.value
    assert MISSING_CLASS in form.fields["decision_maker"]._dom_classes
    assert form.fields["decision_maker"].layout.border
    assert MISSING_CLASS not in form.fields["close_date"]._dom_classes
    assert kit.opportunities().set_index("id").loc[deal, "stage"] == "Lead"  # nothing changed

    form.fields["decision_maker"].value = "Bob Smith (CFO)"
    form.button.click()  # asks first (tests/test_deal_view.py), then moves on Confirm
    assert form.missing == [] and form.asking
    form.confirm_button.click()
    assert view.metrics["Stage"] == "Proposal"
    assert set(view.forms) == {"Close won"}
    assert "now at Proposal sent" in view.workflow_message.value
    row = kit.opportunities().set_index("id").loc[deal]
    assert (row["step"], row["close_date"], row["decision_maker"]) == (
        "Proposal sent", date(2027, 1, 31), "Bob Smith (CFO)",
    )  # fmt: skip


def test_only_the_owner_may_change_privacy(world):
    kit, deal, url = world["kit"], world["deal"], world["url"]
    add_member(kit.engine, deal, world["ids"]["ben"], role="Solutions")
    ben = oppkit.connect(url, user=BEN)
    ben_view = oppkit.OpportunityView(ben, deal)
    assert ben_view.private_box.disabled
    with pytest.raises(actions.NotAllowed):
        ben_view.set_private(True)
    with pytest.raises(actions.NotAllowed):
        actions.set_private(oppkit.connect(url), deal, True)  # nobody in particular

    view = oppkit.OpportunityView(kit, deal)
    assert not view.private_box.disabled
    view.private_box.value = True
    assert "Private" in view.settings_message.value
    assert kit.opportunities().set_index("id").loc[deal, "is_private"]
    assert deal not in set(oppkit.connect(url).opportunities()["id"])  # hidden from others
    assert deal in set(ben.opportunities()["id"])  # a member still sees it
    assert "private" in view.header.value


def test_refresh_rereads_the_deal_and_runs_the_given_callable(world):
    kit, deal = world["kit"], world["deal"]
    calls = []
    view = oppkit.OpportunityView(kit, deal, on_refresh=lambda: calls.append(1))
    set_columns(kit, deal, amount=75_000.0)
    actions.add_note(kit, deal, "written elsewhere")
    assert view.metrics["Deal size"] == "50,000"
    view.refresh_button.click()
    assert calls == [1]
    assert view.metrics["Deal size"] == "75,000"
    assert view.timeline.shown["subject"].iloc[0] == "written elsewhere"


def test_following_goes_through_kit_follow(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    view.follow_frequency.value = "daily"
    view.follow_button.click()
    view.load_people()
    assert list(view.followers["email"]) == [AVA]


def test_untrusted_text_is_escaped_everywhere_it_is_shown(world):
    kit, deal = world["kit"], world["deal"]
    set_columns(kit, deal, name=f"Acme {EVIL}", stage=EVIL)
    actions.add_task(kit, deal, EVIL)
    view = oppkit.OpportunityView(kit, deal)
    view.load_people()
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    shown = [view.header.value, view.metrics_html.value, view.timeline.feed.value,
             view.alerts_list.children[0].children[1].value,
             *[row.children[1].value for row in view.suggested_list.children]]  # fmt: skip
    for value in shown:
        assert "<img" not in value
    assert all(escaped in value for value in shown[:4])
    assert any(escaped in value for value in shown[4:])  # Jo's display name
    assert "<img" not in str(view.timeline.person_filter.options) or all(
        isinstance(o, tuple) for o in view.timeline.person_filter.options
    )  # dropdown labels are text, not HTML
    assert "<img" not in view.editor.title.value and escaped in view.editor.title.value
    review = oppkit.PipelineReview(kit)
    assert "<img" not in review.table.value and escaped in review.table.value
    picked(review, deal)
    assert "<img" not in review.editor.title.value and escaped in review.editor.title.value
    assert EVIL in review.editor.fields["stage"].options  # a dropdown's labels are text


# --- PipelineReview ---------------------------------------------------------------


def deal(kit: oppkit.Kit, name: str, *, owner: int, stage: str = "Lead", amount: float | None = 10_000,
         close: date | None = None, created_days: int = 10, campaign: int | None = None) -> int:  # fmt: skip
    with write_transaction(kit.engine) as conn:
        return conn.execute(
            insert(opportunities)
            .values(name=name, owner_id=owner, stage=stage, amount=amount,
                    close_date=close or TODAY + timedelta(days=30), campaign_id=campaign,
                    created_at=NOW - timedelta(days=created_days), source="test",
                    source_id=uuid.uuid4().hex)
            .returning(opportunities.c.id)
        ).scalar_one()  # fmt: skip


@pytest.fixture
def pipeline(world) -> dict:
    kit, ids = world["kit"], world["ids"]
    with write_transaction(kit.engine) as conn:
        spring = conn.execute(
            insert(campaigns).values(name="Spring webinar", source="test", source_id="c1")
            .returning(campaigns.c.id)
        ).scalar_one()  # fmt: skip
    two = [(ids["bob"], "from"), (ids["mei"], "to")]
    d = {
        "busy": deal(kit, "Busy", owner=ids["ava"], amount=90_000, campaign=spring),
        "pushed": deal(kit, "Pushed", owner=ids["ava"], stage="Proposal", amount=40_000),
        "resized": deal(kit, "Resized", owner=ids["ben"], amount=30_000),
        "quiet": deal(kit, "Quiet", owner=ids["ben"], amount=20_000),
        "solo": deal(kit, "Solo", owner=ids["ben"], stage="Proposal", amount=None),
        "late": deal(kit, "Late", owner=ids["ava"], close=TODAY - timedelta(days=3)),
        "stuck": deal(kit, "Stuck", owner=ids["ava"], created_days=200),
        "won": deal(kit, "Won deal", owner=ids["ava"], stage="Won", amount=5_000),
    }
    for key in ("busy", "pushed", "resized", "late", "stuck", "won"):
        add_activity(kit, d[key], "email", NOW - timedelta(days=1), two)
        add_activity(kit, d[key], "email", NOW - timedelta(days=3), [(ids["mei"], "from"), (ids["bob"], "cc")])  # fmt: skip
    add_activity(kit, d["quiet"], "email", NOW - timedelta(days=40), two)
    add_activity(kit, d["solo"], "email", NOW - timedelta(days=2), [(ids["bob"], "from")])
    add_activity(kit, d["solo"], "meeting", NOW - timedelta(days=1), [(ids["bob"], "attendee"), (ids["ava"], "organizer")])  # fmt: skip
    add_activity(kit, d["busy"], "meeting", NOW + timedelta(days=3), two)  # planned: not "activity"
    for key in d:
        if key != "stuck":
            history(kit, d[key], "stage", None, "Lead", NOW - timedelta(days=10))
    history(kit, d["pushed"], "close_date", "2026-01-31", "2026-02-28", NOW - timedelta(days=20))
    history(kit, d["pushed"], "close_date", "2026-02-28", "2026-04-30", NOW - timedelta(days=2))
    history(kit, d["pushed"], "stage", "Lead", "Proposal", NOW - timedelta(days=2))
    history(kit, d["resized"], "amount", "25000.0", "30000", NOW - timedelta(days=1))
    history(kit, d["won"], "stage", "Proposal", "Won", NOW - timedelta(days=1))
    history(kit, d["busy"], "amount", "90000", "90000.0", NOW - timedelta(days=1))  # no change
    history(kit, d["stuck"], "stage", "Lead", "Lead", NOW - timedelta(days=150))
    return {**world, "deals": d, "campaign": spring}


def flagged(review, name: str) -> set[str]:  # noqa: ANN001
    row = review.frame.set_index("name").loc[name]
    return {f for f in ("no_activity", "overdue", "pushed", "amount_changed", "single_threaded",
                        "stuck") if row[f]}  # fmt: skip


def test_the_review_flags_what_a_reviewer_looks_for(pipeline):
    review = oppkit.PipelineReview(pipeline["kit"], stale_days=30, stuck_days=60)
    assert flagged(review, "Busy") == set()
    assert flagged(review, "Pushed") == {"pushed"}
    assert flagged(review, "Resized") == {"amount_changed"}
    assert flagged(review, "Quiet") == {"no_activity"}
    assert flagged(review, "Solo") == {"single_threaded"}
    assert flagged(review, "Late") == {"overdue"}
    assert flagged(review, "Stuck") == {"stuck"}
    assert flagged(review, "Won deal") == set()  # closed deals carry no flags
    frame = review.frame.set_index("name")
    assert frame.loc["Pushed", "close_date_pushes"] == 2
    assert frame.loc["Busy", "days_since_activity"] == 1  # the planned meeting does not count
    assert frame.loc["Busy", "engaged_contacts"] == 2 and frame.loc["Solo", "engaged_contacts"] == 1
    assert frame.loc["Quiet", "flags"] == "no activity"
    assert "pushed" in review.table.value and "single-threaded" in review.table.value
    assert "Won deal" not in review.table.value  # open deals only by default

    review.stale_days.value = 50  # thresholds re-read the flags
    assert flagged(review, "Quiet") == {"single_threaded"}  # nobody wrote in 30 days


def test_review_filters_sort_and_funnel(pipeline):
    review = oppkit.PipelineReview(pipeline["kit"])
    assert set(review.view()["name"]) == {"Busy", "Pushed", "Resized", "Quiet", "Solo", "Late",
                                          "Stuck", "Acme pilot"}  # fmt: skip
    assert list(review.funnel()[["stage", "count"]].itertuples(index=False, name=None)) == [
        ("Lead", 6), ("Proposal", 2),
    ]  # fmt: skip
    assert list(review.funnel_chart.buttons) == ["Lead", "Proposal"]  # funnel order

    review.owner_filter.value = "Ben Okafor"
    assert set(review.view()["name"]) == {"Resized", "Quiet", "Solo"}
    assert "Busy" not in review.table.value and "3</b> deals" in review.summary.value
    review.stage_filter.value = "Proposal"
    assert list(review.view()["name"]) == ["Solo"]
    review.owner_filter.value = review.stage_filter.value = "all"
    review.campaign_filter.value = "Spring webinar"
    assert list(review.view()["name"]) == ["Busy"]
    review.campaign_filter.value = "all"
    review.period_filter.value = "overdue"
    assert list(review.view()["name"]) == ["Late"]
    review.period_filter.value = "all"
    review.open_only.value = False
    assert "Won deal" in set(review.view()["name"])
    review.open_only.value = True

    review.sort_by.value = "amount"
    review.ascending.value = True
    names = list(review.view()["name"])
    assert names[:2] == ["Late", "Stuck"] or names[0] in {"Late", "Stuck"}
    assert names[-1] == "Solo"  # no amount: last
    assert review.table.value.index("Busy") > review.table.value.index("Quiet")
    review.ascending.value = False
    assert list(review.view()["name"])[0] == "Busy"
    review.flagged_only.value = True
    assert "Busy" not in set(review.view()["name"])


def test_what_changed_since_a_date(pipeline):
    review = oppkit.PipelineReview(pipeline["kit"])
    changes = review.changes(NOW - timedelta(days=5))
    got = set(zip(changes["opportunity"], changes["change"], changes["new"], strict=True))
    assert got == {
        ("Pushed", "close date", "2026-04-30"), ("Pushed", "stage", "Proposal"),
        ("Resized", "amount", "30000"), ("Won deal", "won", "Won"),
        ("Busy", "amount", "90000.0"), ("Acme pilot", "new deal", "Lead"),
    }  # fmt: skip
    assert changes["changed_at"].is_monotonic_decreasing
    assert review.changes_html.value == ""  # read when the tab is first shown
    review.tabs.selected_index = 1
    assert "Pushed" in review.changes_html.value
    review.since.value = (NOW - timedelta(days=30)).date()
    assert "2026-02-28" in review.changes_html.value and "Stuck" not in review.changes_html.value
    assert set(review.changes(NOW - timedelta(days=30))["change"]) >= {"new deal", "close date"}


def test_picking_a_deal_opens_its_view(pipeline):
    review = oppkit.PipelineReview(pipeline["kit"])
    review.deal_picker.value = pipeline["deals"]["pushed"]
    review.open_button.click()
    view = review.detail_view
    assert review.detail.children == (view,)
    assert view.metrics["Stage"] == "Proposal" and view.metrics["Deal size"] == "40,000"


def test_export_writes_the_current_view_to_csv_and_excel(pipeline, tmp_path: Path):
    kit = pipeline["kit"]
    set_columns(kit, pipeline["deals"]["quiet"], name='=HYPERLINK("http://x","click")')
    review = oppkit.PipelineReview(kit)
    review.owner_filter.value = "Ben Okafor"
    csv = pd.read_csv(review.export(tmp_path / "review.csv"))
    assert list(csv["id"]) == list(review.view()["id"])
    assert set(csv["owner"]) == {"Ben Okafor"}
    assert csv.set_index("id").loc[pipeline["deals"]["solo"], "flags"] == "single-threaded"
    assert csv["name"].str.startswith("'=HYPERLINK").any()  # no formula in a spreadsheet
    (tmp_path / "review.xlsx").write_bytes(review.export_bytes("xlsx"))
    excel = pd.read_excel(tmp_path / "review.xlsx")
    assert list(excel["id"]) == list(csv["id"])
    assert list(excel["amount_changed"]) == list(csv["amount_changed"])
    with pytest.raises(ValueError, match="csv or .xlsx"):
        review.export(tmp_path / "review.json")


def test_export_hands_the_file_to_the_browser_and_writes_nothing_on_the_server(
    pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The Export tab's button makes a download link holding the file (seen before: a
    download icon that wrote pipeline_review.xlsx into the notebook's folder)."""
    import base64
    import html
    import io
    import re

    kernel_dir = tmp_path / "notebooks"
    kernel_dir.mkdir()
    monkeypatch.chdir(kernel_dir)
    review = oppkit.PipelineReview(pipeline["kit"])
    review.owner_filter.value = "Ben Okafor"
    for fmt, read in (("csv", pd.read_csv), ("xlsx", pd.read_excel)):
        review.export_format.value = fmt
        review.export_button.click()
        link = re.search(r'<a class="oppkit-download" download="([^"]+)" href="data:([^;]+);base64,([^"]+)"',
                         review.export_status.value)  # fmt: skip
        assert link, review.export_status.value
        name, mime, data = html.unescape(link[1]), link[2], base64.b64decode(link[3])
        assert name.startswith("pipeline_review_") and name.endswith(f".{fmt}")
        assert mime == {"csv": "text/csv", "xlsx": EXCEL}[fmt]
        got = read(io.BytesIO(data))
        assert list(got["id"]) == list(review.view()["id"]) and set(got["owner"]) == {"Ben Okafor"}
        assert "3 deals" in review.export_status.value
    assert list(kernel_dir.iterdir()) == []  # nothing was written where the kernel runs


EXCEL = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_a_stage_named_like_mathematics_opens_the_review_and_a_click_filters_by_it(pipeline):
    """Seen before: a stage holding ``$...$`` made the review raise ValueError (matplotlib
    read it as math) and never open; long stage names were cut at the chart's edge."""
    kit, d = pipeline["kit"], pipeline["deals"]
    odd = "Negotiation $1M+ deals $x^2$ — with a very long name from Salesforce that goes on"
    set_columns(kit, d["busy"], stage=odd)
    set_columns(kit, d["late"], stage=EVIL)
    review = oppkit.PipelineReview(kit)
    assert list(review.funnel_chart.buttons) == ["Lead", "Proposal", EVIL, odd]
    assert review.funnel_chart.buttons[odd].description == odd  # the whole name, as text
    assert EVIL not in "".join(c.value for c in review.funnel_chart.children[1:]
                               if hasattr(c, "value"))  # fmt: skip

    review.funnel_chart.buttons["Proposal"].click()
    assert review.stage_filter.value == "Proposal"
    assert set(review.view()["name"]) == {"Pushed", "Solo"}
    assert list(review.funnel_chart.buttons) == ["Lead", "Proposal", EVIL, odd]  # all stages
    assert review.funnel_chart.buttons["Proposal"].button_style == "info"
    review.funnel_chart.buttons[odd].click()
    assert list(review.view()["name"]) == ["Busy"]
    review.funnel_chart.buttons[odd].click()  # again: every stage
    assert review.stage_filter.value == "all" and len(review.view()) == 8


def test_tables_show_amounts_dates_and_closed_deals_as_a_person_reads_them(pipeline):
    """Seen before: ``80000.0`` for amounts, dates wrapped over two lines, and
    ``days_to_close`` of -45 on closed deals."""
    kit = pipeline["kit"]
    deals = kit.opportunities().set_index("name")
    assert pd.isna(deals.loc["Won deal", "days_to_close"])  # closed: nothing left to close
    assert deals.loc["Late", "days_to_close"] == -3  # open and overdue: still counted
    review = oppkit.PipelineReview(kit)
    review.tabs.selected_index = 1
    review.since.value = (NOW - timedelta(days=5)).date()
    changes = review.changes_html.value
    assert "90,000" in changes and "90000.0" not in changes and "25000.0" not in changes
    assert '<td class="oppkit-when">' in changes  # dates never wrap
    assert review.table.layout.max_height and review.table.layout.overflow == "auto"
    labels = dict(review.ascending.options)  # the toggle names the order it sorts in
    assert labels == {"↓ descending": False, "↑ ascending": True}


def test_the_deal_picked_and_the_deal_shown_below_are_always_the_same(pipeline):
    """Seen before: the picker highlighted one deal while the view below showed another."""
    review = oppkit.PipelineReview(pipeline["kit"])
    d = pipeline["deals"]
    review.open_deal(d["pushed"])
    assert review.deal_picker.value == d["pushed"]
    review.deal_picker.value = d["quiet"]
    assert review.detail_view.opportunity_id == d["quiet"]
    assert review.detail.children == (review.detail_view,)


def test_the_grid_marks_what_changed_since_the_baseline_and_what_moved_out(pipeline):
    """Pipeline Inspection's question, deal by deal: what is different since a date?"""
    review = oppkit.PipelineReview(pipeline["kit"])
    review.since.value = (NOW - timedelta(days=5)).date()
    rows = review.grid_view().set_index("name")["change"].to_dict()
    assert rows["Pushed"] == "stage forward · pushed"
    assert rows["Resized"] == "amount ↑"
    assert rows["Busy"] == ""  # 90000 -> 90000.0 is no change
    assert rows["Quiet"] == "" and rows["Late"] == ""
    assert rows["Won deal"] == "moved out · won"  # open at the baseline, won since
    grid = review.grid.frame.set_index("Deal")
    assert grid.loc["Won deal", "Change"] == "moved out · won"
    assert grid.loc["Pushed", "Close date"] == (TODAY + timedelta(days=30)).isoformat()

    review.stage_filter.value = "Proposal"
    rows = review.grid_view().set_index("name")["change"].to_dict()
    assert rows == {"Pushed": "moved in · stage forward · pushed", "Solo": "",
                    "Won deal": "moved out · won"}  # fmt: skip
    review.since.value = TODAY - timedelta(days=1)  # after Pushed moved, before the win
    assert dict(review.grid_view()[["name", "change"]].to_numpy()) == {
        "Pushed": "", "Solo": "", "Won deal": "moved out · won"}  # fmt: skip


def test_the_grids_sort_and_filter_survive_a_refresh_and_a_click_opens_the_row(pipeline):
    kit, d = pipeline["kit"], pipeline["deals"]
    set_columns(kit, d["quiet"], name=EVIL)
    review = oppkit.PipelineReview(kit)
    grid = review.grid.grid
    sort = [{"type": "sort", "column": "Deal size", "desc": True}]
    grid.transform(sort)
    set_columns(kit, d["busy"], amount=95_000)
    review.refresh()
    assert grid._transforms == sort  # the person's sort is kept
    assert review.grid.frame.set_index("Deal").loc["Busy", "Deal size"] == 95_000
    assert EVIL in set(review.grid.frame["Deal"])  # drawn as text on a canvas, never markup

    ids = list(review.grid.frame.index)
    grid._visible_rows = list(reversed(range(len(ids))))  # as the browser reports its sort
    grid.selections = [{"r1": 0, "c1": 0, "r2": 0, "c2": 9}]
    assert review.detail_view.opportunity_id == ids[-1]  # the row shown first, not data row 0
    review.shown_as.value = "Table"
    assert review.deals_area.children == (review.table,)


def test_private_deals_stay_out_of_the_review_of_others(pipeline):
    kit, url = pipeline["kit"], pipeline["url"]
    actions.set_private(kit, pipeline["deal"], True)
    other = oppkit.PipelineReview(oppkit.connect(url, user=BEN))
    assert "Acme pilot" not in set(other.frame["name"])
    assert "Acme pilot" not in set(other.changes(NOW - timedelta(days=5))["opportunity"])
    assert "Acme pilot" in set(oppkit.PipelineReview(kit).frame["name"])


# --- Editing deals: local at once, Salesforce's pending, conflicts settled ----------------

WRITE_BACK = "OPPKIT_SALESFORCE_WRITE_BACK"


def picked(review, deal_id: int):  # noqa: ANN001, ANN201
    """Pick a deal in the review's list: its edit form."""
    review.deal_picker.value = deal_id
    assert review.editor.deal["id"] == deal_id
    return review.editor


def test_a_local_deals_new_amount_shows_in_the_review_at_once(pipeline):
    kit, busy = pipeline["kit"], pipeline["deals"]["busy"]
    review = oppkit.PipelineReview(kit)
    form = picked(review, busy)
    assert "Busy" in form.title.value and form.fields["amount"].value == "90000"
    form.fields["amount"].value = "95,000"  # as the table writes it
    form.fields["close_date"].value = (TODAY + timedelta(days=45)).isoformat()
    form.save_button.click()
    assert "Deal size, Close date saved" in form.message.value
    row = kit.opportunities().set_index("id").loc[busy]
    assert (row["amount"], row["close_date"], row["pending"]) == (
        95_000, TODAY + timedelta(days=45), None,
    )  # fmt: skip
    assert review.view().set_index("id").loc[busy, "amount"] == 95_000
    assert "95,000" in review.table.value and "pending" not in review.table.value
    assert review.deal_picker.value == busy and form.fields["amount"].value == "95000"
    assert kit.changes().empty  # a deal made in oppkit goes nowhere else

    form.save_button.click()
    assert "Nothing to save" in form.message.value


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [("amount", "lots", "amount: 'lots' is not a number"),
     ("close_date", "2027-02-30", "close_date: '2027-02-30' is not a date (YYYY-MM-DD)"),
     ("probability", "150", "probability: '150' is not a number from 0 to 100")],
)  # fmt: skip
def test_input_that_is_not_a_number_or_a_date_is_refused_with_its_message(
    pipeline, field, typed, said
):
    kit, busy = pipeline["kit"], pipeline["deals"]["busy"]
    review = oppkit.PipelineReview(kit)
    form = picked(review, busy)
    form.fields["amount"].value = "99000"
    form.fields[field].value = typed
    form.save_button.click()
    assert "oppkit-message-error" in form.message.value
    assert esc(said) in form.message.value
    assert kit.opportunities().set_index("id").loc[busy, "amount"] == 90_000  # nothing changed
    assert form.fields[field].value == typed  # what was typed stays, to correct it


def test_the_opportunity_view_edits_a_local_deal_in_place(world):
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    form = view.editor
    assert (form.fields["amount"].value, form.fields["stage"].value) == ("50000", "Lead")
    assert list(form.fields["stage"].options) == list(kit.stages()["name"])
    form.fields["stage"].value = "Proposal"
    form.fields["probability"].value = "60"
    form.fields["amount"].value = "62500.5"
    form.save_button.click()
    assert (view.metrics["Stage"], view.metrics["Deal size"]) == ("Proposal", "62,500")
    row = kit.opportunities().set_index("id").loc[deal]
    assert (row["stage"], row["probability"], row["amount"]) == ("Proposal", 60, 62_500.5)
    edits = kit.stage_history(opportunity=deal).query("origin == 'edit'")
    assert set(edits["field"]) >= {"stage", "amount"}
    assert view.tabs.selected_index == 0 and "Call with Bob" in view.timeline.feed.value


@pytest.fixture
def synced(db_url: str, settings, export: Path) -> dict:  # noqa: ANN001
    """The Salesforce export synced (source 'salesforce'); Ava's "Acme pilot", 120,000."""
    sync_salesforce_export(export, settings=settings)
    kit = oppkit.connect(db_url, user=AVA)
    return {"kit": kit, "pilot": int(kit.opportunities().set_index("name").loc["Acme pilot", "id"])}


def test_with_write_back_off_the_review_says_where_to_change_a_salesforce_deal(synced):
    kit, pilot = synced["kit"], synced["pilot"]
    review = oppkit.PipelineReview(kit)
    form = picked(review, pilot)
    form.fields["amount"].value = "125000"
    form.save_button.click()
    message = form.message.value
    assert "oppkit-message-error" in message and "Traceback" not in message
    assert "is owned by Salesforce: change it in Salesforce" in message
    assert "write_back = true" in message and "OPPKIT_SALESFORCE_WRITE_BACK=1" in message
    row = kit.opportunities().set_index("id").loc[pilot]
    assert (row["amount"], row["pending"]) == (120_000, None) and kit.changes().empty
    assert "125,000" not in review.table.value and "pending" not in review.table.value


def test_with_write_back_on_a_salesforce_deals_change_shows_as_pending(synced, monkeypatch):
    monkeypatch.setenv(WRITE_BACK, "1")
    kit, pilot = synced["kit"], synced["pilot"]
    review = oppkit.PipelineReview(kit)
    review.open_deal(pilot)
    form = picked(review, pilot)
    form.fields["amount"].value = "125000"
    form.fields["close_date"].value = "2027-04-30"
    form.save_button.click()
    assert "sent to Salesforce: pending until it confirms" in form.message.value
    changes = kit.changes()
    assert set(zip(changes["field"], changes["new_value"], changes["status"], strict=True)) == {
        ("amount", 125_000, "pending"), ("close_date", "2027-04-30", "pending"),
    }  # fmt: skip
    row = kit.opportunities().set_index("id").loc[pilot]
    assert row["amount"] == 120_000  # Salesforce's, until it confirms
    assert '125,000 <span class="oppkit-pending"' in review.table.value
    assert "Salesforce has 120,000" in review.table.value  # the badge's tooltip
    assert "2027-04-30 <span" in review.table.value
    assert "1</b> with changes pending in Salesforce" in review.summary.value
    assert "125,000 (pending)" in dict((v, k) for k, v in review.deal_picker.options)[pilot]
    assert form.fields["amount"].value == "125000"  # the form holds what was asked for
    assert "Salesforce has 120,000 until it confirms" in form.pending_html.value
    view = review.detail_view  # the open deal's view follows
    assert view.metrics["Deal size"] == "125,000 (pending)"
    assert "2027-04-30 (pending)" in view.header.value

    view.editor.fields["amount"].value = "120000"  # Salesforce's value again: withdrawn
    view.editor.save_button.click()
    assert view.metrics["Deal size"] == "120,000"
    assert list(kit.changes(status="pending")["field"]) == ["close_date"]
    assert "125,000" not in review.table.value  # the review around the view follows too


@pytest.fixture
def org():  # noqa: ANN201
    """The fake Salesforce org (conftest's ``fake`` serves it): Ava's "Acme pilot", 100,000,
    and Ben, whose name is untrusted text."""
    org = small_org(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    org.ids["ben"] = org.add("User", FirstName="Ben", LastName=EVIL, Email=BEN, Username="ben")
    return org


@pytest.mark.usefixtures("sf_fast_retries")
@pytest.mark.parametrize("keep", ["theirs", "mine"])
def test_a_conflict_shows_both_values_and_who_and_the_buttons_settle_it(
    db_url, settings, fake, org, monkeypatch, keep
):  # fmt: skip
    monkeypatch.setenv(WRITE_BACK, "1")
    sync_fake_salesforce(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    view = oppkit.OpportunityView(kit, "Acme pilot")
    view.editor.fields["amount"].value = "125000"
    view.editor.save_button.click()
    org.advance(minutes=5)
    org.update("Opportunity", org.ids["pilot"], Amount=90000, LastModifiedById=org.ids["ben"])
    org.advance(minutes=5)
    assert "conflicts 1" in sync_fake_salesforce(db_url, settings, fake).line()

    view.refresh_button.click()
    assert view.metrics["Deal size"] == "90,000 (conflict: yours 125,000)"
    (row,) = view.editor.conflict_list.children
    panel = row.children[0].value
    assert "yours <b>125,000</b>" in panel and "Salesforce <b>90,000</b>" in panel
    assert "changed there by Ben &lt;img src=x onerror=alert(1)&gt;" in panel
    assert "on 2026-11-02 09:05 UTC" in panel and "you saw 100,000" in panel
    assert "<img" not in panel
    assert set(view.editor.keep_theirs) == set(view.editor.push_mine) == {"amount"}

    review = oppkit.PipelineReview(kit)
    pilot = view.opportunity_id
    cell = review.table.value
    assert '90,000 <span class="oppkit-conflict">conflict</span>' in cell
    assert "yours 125,000 · Salesforce 90,000 by Ben &lt;img" in cell and "<img" not in cell
    assert "1</b> in conflict with Salesforce" in review.summary.value
    form = picked(review, pilot)
    buttons = form.keep_theirs if keep == "theirs" else form.push_mine
    buttons["amount"].click()
    assert list(kit.changes()["status"]) == ["dropped" if keep == "theirs" else "pending"]
    assert form.conflict_list.children == () and "conflict" not in review.table.value
    if keep == "theirs":
        assert esc("Salesforce's value stays") in form.message.value
        assert kit.opportunities().set_index("id").loc[pilot, "amount"] == 90_000
        assert "90,000" in review.table.value and "pending" not in review.table.value
    else:
        assert "yours goes to Salesforce with the next sync" in form.message.value
        assert '125,000 <span class="oppkit-pending"' in review.table.value
        org.advance(minutes=5)
        sync_fake_salesforce(db_url, settings, fake)
        assert org.get("Opportunity", org.ids["pilot"])["Amount"] == 125000
        view.refresh_button.click()
        assert view.metrics["Deal size"] == "125,000"
        assert list(kit.changes()["status"]) == ["pushed"]


def test_importing_oppkit_does_not_import_the_widgets():
    import subprocess
    import sys

    code = "import sys, oppkit; print('ipywidgets' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert oppkit.OpportunityView.__name__ == "OpportunityView"


def test_both_apps_say_how_fresh_their_data_is_and_flag_a_failing_source(
    export: Path, db_url: str, settings, tmp_path: Path
):
    from oppkit.cli import main

    sync_salesforce_export(export, db=db_url, settings=settings)
    kit = oppkit.connect(db_url)
    review = oppkit.PipelineReview(kit)
    assert "Data as of: <span" in review.freshness.value
    assert "salesforce-export/csv: " in review.freshness.value
    assert "UTC (" in review.freshness.value and "oppkit-stale" not in review.freshness.value
    # a mailbox whose sync fails: both apps show it with a badge and why
    missing = tmp_path / "<gone>.mbox"
    assert main(["sync", "mail", "--mbox", str(missing), "--db", db_url]) != 0
    review.refresh()
    assert "oppkit-stale" in review.freshness.value and "failing" in review.freshness.value
    assert "&lt;gone&gt;" in review.freshness.value and "<gone>" not in review.freshness.value
    assert any("failing" in w for w in review.freshness.warnings)
    deal = int(kit.opportunities()["id"].iloc[0])
    view = oppkit.OpportunityView(kit, deal)
    assert "oppkit-stale" in view.freshness.value


# --- Assigning deals to a campaign from the review ------------------------------------------


def campaign_id(kit: oppkit.Kit, name: str) -> int:
    return int(kit.campaigns().set_index("name").loc[name, "id"])


def test_the_review_assigns_local_deals_to_a_campaign_and_the_table_follows(pipeline):
    kit, d = pipeline["kit"], pipeline["deals"]
    autumn = kit.campaigns.create(f"Autumn {EVIL}")
    review = oppkit.PipelineReview(kit)
    box = review.campaign_assign
    assert review.tabs.get_title(3) == "Assign to campaign" and review.tabs.children[3] is box
    labels = dict(box.campaign.options)
    assert labels[f"Autumn {EVIL} (oppkit only)"] == autumn  # a dropdown's labels are text
    assert labels["Spring webinar (oppkit only)"] == pipeline["campaign"]

    box.campaign.value = autumn
    box.assign_button.click()  # nothing picked: said, nothing written
    assert "Pick the deals first" in box.message.value and box.result is None

    review.owner_filter.value = "Ben Okafor"
    assert {deal_id for _label, deal_id in box.deals.options} == {
        d["resized"], d["quiet"], d["solo"],
    }  # fmt: skip
    box.select_all.click()
    assert set(box.deals.value) == {d["resized"], d["quiet"], d["solo"]}
    assert "<b>3</b> of <b>3</b> deals in view picked" in box.count.value
    box.assign_button.click()
    escaped = esc(f"Autumn {EVIL}")
    assert box.message.value == (
        f'<span class="oppkit-message-ok">{escaped}: 3 assigned, 0 queued for Salesforce, '
        "0 already in it</span>"
    )
    assert "<img" not in box.message.value
    assert sorted(box.result.assigned) == sorted([d["resized"], d["quiet"], d["solo"]])
    campaigns_now = kit.opportunities().set_index("id")["campaign"]
    assert set(campaigns_now.loc[[d["resized"], d["quiet"], d["solo"]]]) == {f"Autumn {EVIL}"}
    assert campaigns_now.loc[d["busy"]] == "Spring webinar"  # not picked: not touched
    assert review.table.value.count(f"<td>{escaped}</td>") == 3  # the campaign column
    assert "<img" not in review.table.value and "pending" not in review.table.value
    assert f"Autumn {EVIL}" in review.campaign_filter.options
    assert set(box.deals.value) == {d["resized"], d["quiet"], d["solo"]}  # still picked
    assert kit.changes().empty  # deals made here go nowhere else

    box.assign_button.click()  # again: nothing to change
    assert "0 assigned, 0 queued for Salesforce, 3 already in it" in box.message.value

    review.owner_filter.value = "all"  # the picked deals stay picked while in view
    assert set(box.deals.value) == {d["resized"], d["quiet"], d["solo"]}
    assert len(box.deals.options) == 8
    box.clear.click()  # one deal picked by hand, into Spring webinar
    box.deals.value = (d["quiet"],)
    box.campaign.value = pipeline["campaign"]
    box.assign_button.click()
    assert "Spring webinar: 1 assigned, 0 queued for Salesforce, 0 already in it" in (
        box.message.value
    )
    box.campaign.value = 0  # "(no campaign)" takes it out again
    assert dict(box.campaign.options)["(no campaign)"] == 0
    box.assign_button.click()
    assert "No campaign: 1 assigned" in box.message.value
    assert pd.isna(kit.opportunities().set_index("id").loc[d["quiet"], "campaign"])


def test_every_deal_in_view_takes_more_than_the_list_shows(pipeline):
    kit, d = pipeline["kit"], pipeline["deals"]
    review = oppkit.PipelineReview(kit, max_rows=2)
    box = review.campaign_assign
    review.owner_filter.value = "Ava Patel"
    in_view = set(review.view()["id"])
    assert len(box.deals.options) == 2 and len(in_view) == 5
    assert "the first 2 are listed" in box.count.value
    box.select_all.click()
    assert len(box.targets()) == 2
    box.all_in_view.value = True
    assert set(box.targets()) == in_view and box.deals.disabled
    assert box.all_in_view.description == "every deal in view: 5"
    box.campaign.value = pipeline["campaign"]
    box.assign_button.click()
    assert "4 assigned, 0 queued for Salesforce, 1 already in it" in box.message.value  # Busy
    assert set(kit.opportunities(campaign="Spring webinar")["id"]) == in_view
    assert d["resized"] not in in_view


@pytest.fixture
def campaign_org(org):  # noqa: ANN001, ANN201
    """The fake org with two campaigns (one named with untrusted text) and a second deal,
    "Acme expansion", already in that campaign."""
    ids = org.ids
    ids["spring"] = org.add("Campaign", Name=f"Spring {EVIL}", Type="Webinar", Status="In Progress",
                            IsActive=True, OwnerId=ids["ava"])  # fmt: skip
    ids["expansion"] = org.add(
        "Opportunity", Name="Acme expansion", AccountId=ids["acme"], OwnerId=ids["ava"],
        StageName="Needs Analysis", Amount=30000, CloseDate=date(2027, 5, 31),
        CampaignId=ids["spring"],
    )  # fmt: skip
    return org


@pytest.mark.usefixtures("sf_fast_retries")
def test_assigning_salesforce_deals_to_a_campaign_is_refused_with_write_back_off(
    db_url, settings, fake, campaign_org, monkeypatch
):  # fmt: skip
    monkeypatch.delenv(WRITE_BACK, raising=False)
    sync_fake_salesforce(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    deals = kit.opportunities().set_index("name")["id"]
    ava = int(kit.people().set_index("email").loc[AVA, "id"])
    local = deal(kit, "Local deal", owner=ava)
    review = oppkit.PipelineReview(kit)
    box = review.campaign_assign
    spring = campaign_id(kit, f"Spring {EVIL}")
    assert dict(box.campaign.options)[f"Spring {EVIL}"] == spring  # Salesforce's: no suffix
    box.deals.value = (int(deals["Acme pilot"]), local)
    box.campaign.value = spring
    box.assign_button.click()
    message = box.message.value
    assert "oppkit-message-error" in message and "Traceback" not in message
    assert "campaign of &#x27;Acme pilot&#x27; is owned by Salesforce" in message
    assert "change it in Salesforce" in message and "OPPKIT_SALESFORCE_WRITE_BACK=1" in message
    assert box.result is None and kit.changes().empty  # all or nothing: the local deal too
    now = kit.opportunities().set_index("name")["campaign"]
    assert pd.isna(now["Acme pilot"]) and pd.isna(now["Local deal"])
    assert "pending" not in review.table.value

    kit.campaigns.create(f"List {EVIL}")  # a campaign of oppkit only: never on a Salesforce deal
    review.refresh()
    box.campaign.value = campaign_id(kit, f"List {EVIL}")
    box.assign_button.click()
    assert "is a campaign of oppkit only; Salesforce deals take Salesforce campaigns" in (
        box.message.value
    )
    assert "<img" not in box.message.value and kit.changes().empty


@pytest.mark.usefixtures("sf_fast_retries")
def test_with_write_back_on_a_salesforce_deals_campaign_is_queued_and_shows_as_pending(
    db_url, settings, fake, campaign_org, monkeypatch
):  # fmt: skip
    monkeypatch.setenv(WRITE_BACK, "1")
    org = campaign_org
    sync_fake_salesforce(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    deals = kit.opportunities().set_index("name")["id"]
    pilot, expansion = int(deals["Acme pilot"]), int(deals["Acme expansion"])
    local = deal(kit, "Local deal", owner=int(kit.people().set_index("email").loc[AVA, "id"]))
    review = oppkit.PipelineReview(kit)
    box = review.campaign_assign
    spring = campaign_id(kit, f"Spring {EVIL}")
    box.select_all.click()
    assert set(box.deals.value) == {pilot, expansion, local}
    box.campaign.value = spring
    box.assign_button.click()
    assert f"{esc(f'Spring {EVIL}')}: 1 assigned, 1 queued for Salesforce, 1 already in it" in (
        box.message.value
    )
    assert "pending until Salesforce confirms" in box.message.value
    changes = kit.changes()
    assert list(zip(changes["opportunity_id"], changes["field"], changes["new_value"],
                    changes["status"], strict=True)) == [(pilot, "campaign_id", spring, "pending")]  # fmt: skip
    assert box.result.queued == [int(changes["id"].iloc[0])]
    row = kit.opportunities().set_index("id").loc[pilot]
    assert pd.isna(row["campaign"]) and row["pending"] == {"campaign_id": spring}  # Salesforce's
    assert kit.opportunities().set_index("id").loc[local, "campaign"] == f"Spring {EVIL}"
    escaped = esc(f"Spring {EVIL}")
    assert f'<td>{escaped} <span class="oppkit-pending" title="Salesforce has no campaign until it confirms">pending</span></td>' in review.table.value  # fmt: skip
    assert "<img" not in review.table.value
    assert "1</b> with changes pending in Salesforce" in review.summary.value
    listed = {deal_id: label for label, deal_id in box.deals.options}
    assert listed[pilot].endswith(f"campaign: Spring {EVIL} (pending)")
    review.deal_picker.value = pilot  # the edit form names the campaign waiting, not its id
    assert f"<b>Campaign</b> {escaped} " in review.editor.pending_html.value

    org.advance(minutes=5)  # the agent pushes it; Salesforce has it, nothing pending
    assert "pushed 1" in sync_fake_salesforce(db_url, settings, fake).line()
    assert org.get("Opportunity", org.ids["pilot"])["CampaignId"] == org.ids["spring"]
    review.refresh()
    assert kit.opportunities().set_index("id").loc[pilot, "campaign"] == f"Spring {EVIL}"
    assert "pending" not in review.table.value and list(kit.changes()["status"]) == ["pushed"]
