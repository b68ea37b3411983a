"""Stage actions: from a meeting or call on a deal, the actions of its current and previous
stages are listed; performing one records an activity or a letter on the deal's timeline,
linked to the meeting; privacy and refusals; the OpportunityView's buttons; invalid
definitions named one per line. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, insert, select, update

import oppkit
from oppkit.cli import main
from oppkit.db.engine import write_transaction
from oppkit.db.schema import (
    activities,
    activity_people,
    interactions,
    links,
    opportunities,
    plan_items,
    stage_history,
)
from oppkit.db.schema import stage_actions as action_rows
from oppkit.stage_actions import ACTION_COLUMNS, StageActionRefused
from tests.workflow_support import (
    ACTIONS_WORKFLOW,
    TEST_WORKFLOW,
    add_account,
    add_person,
)

AVA, BEN = "ava.patel@northwind.example", "ben.okafor@northwind.example"
BOB = "bob.smith@acme.example"
DEAL = "Acme <pilot> & co"  # markup in a name: raw in frames, escaped in the widget
MET_ON = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def add_activity(kit: oppkit.Kit, deal: int | None, kind: str, subject: str, when: datetime) -> int:
    with write_transaction(kit.engine) as conn:
        return conn.execute(
            insert(activities)
            .values(kind=kind, subject=subject, occurred_at=when, opportunity_id=deal,
                    source="test", source_id=uuid.uuid4().hex)
            .returning(activities.c.id)
        ).scalar_one()  # fmt: skip


def count(kit: oppkit.Kit, table) -> int:  # noqa: ANN001
    with kit.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> dict:
    """Ava's deal on Acme (Bob its contact) moved from Lead to Proposal; a meeting, a call
    and an email on it. Ben's private deal on Acme with a meeting of its own."""
    base = oppkit.connect(db_url)
    add_person(base.engine, AVA, "Ava Patel", internal=True)
    add_person(base.engine, BEN, "Ben Okafor", internal=True)
    acme = add_account(base.engine, "Acme", "acme.example")
    add_person(base.engine, BOB, "Bob Smith", account_id=acme)
    (tmp_path / "workflow.toml").write_text(ACTIONS_WORKFLOW, encoding="utf-8")
    base.workflow.load(tmp_path / "workflow.toml")
    kit = oppkit.connect(db_url, user=AVA)
    deal = kit.workflow.create(DEAL, account="acme.example", amount=50_000, currency="EUR",
                               close_date="2027-01-31", contacts=[BOB])  # fmt: skip
    kit.workflow.transition(deal, "Start")
    kit.workflow.transition(deal, "Send proposal", decision_maker="Bob")
    ben = oppkit.connect(db_url, user=BEN)
    secret = ben.workflow.create("Acme secret", account="acme.example", private=True)
    return {
        "kit": kit, "deal": deal, "url": db_url, "ben": ben, "secret": secret,
        "meeting": add_activity(kit, deal, "meeting", "Pilot <scope> review", MET_ON),
        "call": add_activity(kit, deal, "call", "Pricing call", MET_ON + timedelta(days=1)),
        "email": add_activity(kit, deal, "email", "Re: pilot", MET_ON + timedelta(days=2)),
        "secret_meeting": add_activity(kit, secret, "meeting", "Secret terms", MET_ON),
    }  # fmt: skip


def test_a_meeting_lists_the_actions_of_the_current_then_the_previous_stages(world):
    kit = world["kit"]
    moves = kit.stage_history(opportunity=world["deal"]).query("field == 'stage'")
    assert sorted(moves["new_value"]) == ["Lead", "Proposal"]  # created in Lead, then moved
    listed = kit.stage_actions(world["meeting"])
    assert list(listed.columns) == ACTION_COLUMNS
    shown = listed[["stage", "name", "kind", "activity_kind", "from_stage"]].fillna("")
    assert shown.values.tolist() == [
        ["Proposal", "Send summary", "letter", "", "current"],
        ["Proposal", "Prepare the contract", "activity", "task", "current"],
        ["Lead", "Call back", "activity", "call", "previous"],
        ["Lead", "Send summary", "letter", "", "previous"],
    ]
    assert listed["subject"].iloc[1] == "Contract for {name} ({account})"  # the template
    # a call offers the same; a timeline row does as well as an id
    row = kit.timeline(opportunity=world["deal"], kind="call").iloc[0]
    pd.testing.assert_frame_equal(kit.stage_actions(row), listed)
    pd.testing.assert_frame_equal(kit.stage_actions(world["call"]), listed)


def test_a_salesforce_stage_offers_the_actions_of_the_workflow_stage_it_maps_to(world, tmp_path):
    kit = world["kit"]
    mapped = ACTIONS_WORKFLOW.replace(
        'name = "Lead"\nstatus = "open"\nprobability = 10\n',
        'name = "Lead"\nstatus = "open"\nprobability = 10\nsalesforce = ["Needs Analysis"]\n',
    )
    (tmp_path / "mapped.toml").write_text(mapped, encoding="utf-8")
    kit.workflow.load(tmp_path / "mapped.toml")
    with write_transaction(kit.engine) as conn:  # as a sync brings it: a Salesforce stage
        conn.execute(
            update(opportunities)
            .where(opportunities.c.id == world["deal"])
            .values(stage="Needs Analysis")
        )
        conn.execute(
            insert(stage_history).values(
                opportunity_id=world["deal"],
                field="stage",
                old_value="Proposal",
                new_value="Needs Analysis",
                changed_at=datetime.now(UTC),
                source="salesforce",
                source_id="008000000000001AAA",
            )  # fmt: skip
        )
    listed = kit.stage_actions(world["meeting"])
    assert listed[["stage", "name", "from_stage"]].values.tolist() == [
        ["Lead", "Call back", "current"],
        ["Lead", "Send summary", "current"],
        ["Proposal", "Send summary", "previous"],
        ["Proposal", "Prepare the contract", "previous"],
    ]


def test_performing_an_activity_action_plans_it_on_the_timeline_linked_to_the_meeting(world):
    kit, deal, meeting = world["kit"], world["deal"], world["meeting"]
    new_id = kit.perform_stage_action(meeting, "Prepare the contract", due="2027-01-10 09:30")
    row = kit.timeline(opportunity=deal).set_index("id").loc[new_id]
    assert (row["kind"], row["subject"], row["is_planned"], row["source"], row["sender"]) == (
        "task", "Contract for Acme <pilot> & co (Acme)", True, "oppkit", AVA,
    )  # fmt: skip
    assert row["occurred_at"] == pd.Timestamp("2027-01-10 09:30", tz="UTC")
    assert new_id in set(kit.open_tasks(opportunity=deal)["activity_id"])
    done = kit.workflow.links(deal)
    done = done[done["kind"] == "stage_action"].iloc[0]
    assert done["reference"] == f"activity:{new_id}"
    assert {k: done["data"][k] for k in ("activity_id", "from_activity_id", "stage", "action")} == {
        "activity_id": new_id, "from_activity_id": meeting, "stage": "Proposal",
        "action": "Prepare the contract",
    }  # fmt: skip

    # a previous stage's call, now (no due): planned at the moment it was made
    call_id = kit.perform_stage_action(world["call"], "call back")  # names match in any case
    call = kit.timeline(opportunity=deal).set_index("id").loc[call_id]
    assert (call["kind"], call["subject"], call["is_planned"]) == (
        "call", "Call back about Pricing call", True,
    )  # fmt: skip


def test_performing_a_letter_records_its_rendered_text(world):
    kit, deal, meeting = world["kit"], world["deal"], world["meeting"]
    letter_id = kit.perform_stage_action(meeting, "Send summary", next_steps="sign <it> & go")
    row = kit.timeline(opportunity=deal).set_index("id").loc[letter_id]
    assert (row["kind"], row["direction"], row["subject"], row["sender"]) == (
        "letter", "outbound", "Our meeting on 2026-11-20: Acme <pilot> & co", AVA,
    )  # fmt: skip
    text = (
        "Dear Bob Smith,\n\nthank you for meeting us about Acme <pilot> & co (50,000 EUR).\n"
        "Next: sign <it> & go\n"
    )
    assert row["snippet"] == " ".join(text.split())  # one line; the whole text in its link
    data = kit.workflow.links(deal).set_index("kind").loc["stage_action", "data"]
    assert data["text"] == text and data["kind"] == "letter" and data["activity_id"] == letter_id
    with kit.engine.connect() as conn:
        to = conn.execute(
            select(activity_people.c.role).where(activity_people.c.activity_id == letter_id)
        ).scalars()
        assert sorted(to) == ["from", "to"]  # from Ava, to Bob (the deal's contact)

    # the same name on the previous stage: given as a row of the actions frame
    listed = kit.stage_actions(meeting)
    lead_letter = listed[(listed["stage"] == "Lead") & (listed["name"] == "Send summary")]
    old_id = kit.perform_stage_action(meeting, lead_letter.iloc[0])
    assert kit.timeline(opportunity=deal).set_index("id").loc[old_id, "subject"] == (
        "Lead summary: Acme <pilot> & co"
    )


def test_an_action_from_an_interaction_plan_becomes_one_of_its_items(world):
    kit, meeting = world["kit"], world["meeting"]
    with write_transaction(kit.engine) as conn:
        plan = conn.execute(
            insert(interactions)
            .values(activity_id=meeting, interaction_type="meeting", status="planned")
            .returning(interactions.c.id)
        ).scalar_one()
    new_id = kit.perform_stage_action(meeting, "Call back")
    with kit.engine.connect() as conn:
        items = conn.execute(select(plan_items.c.interaction_id, plan_items.c.activity_id)).all()
    assert items == [(plan, new_id)]


def test_a_private_deals_meeting_is_not_found_for_a_colleague(world):
    kit, secret_meeting = world["kit"], world["secret_meeting"]
    before = count(kit, activities), count(kit, links)
    for who in (kit, oppkit.connect(world["url"])):  # Ava, and a Kit without a user
        with pytest.raises(oppkit.NotFoundError, match=f"no activity with id {secret_meeting}"):
            who.stage_actions(secret_meeting)
        with pytest.raises(oppkit.NotFoundError):
            who.perform_stage_action(secret_meeting, "Call back")
    assert (count(kit, activities), count(kit, links)) == before
    # its owner sees its actions (the deal stands in Lead)
    assert list(world["ben"].stage_actions(secret_meeting)["name"]) == ["Call back", "Send summary"]
    with pytest.raises(oppkit.NotFoundError):
        kit.stage_actions(10**9)  # an id nobody has


def test_only_a_meeting_or_call_on_a_deal_offers_actions(world):
    kit = world["kit"]
    with pytest.raises(StageActionRefused, match="is an email: stage actions start from a "
                                                 "meeting or a call"):  # fmt: skip
        kit.stage_actions(world["email"])
    with pytest.raises(StageActionRefused, match="is an email"):
        kit.perform_stage_action(world["email"], "Send summary")
    loose = add_activity(kit, None, "meeting", "No deal", MET_ON)
    with pytest.raises(StageActionRefused, match="is on no deal"):
        kit.stage_actions(loose)
    with pytest.raises(StageActionRefused, match="no stage action 'Dance'.*'Send summary'"):
        kit.perform_stage_action(world["meeting"], "Dance")
    with pytest.raises(StageActionRefused, match="has no due"):
        kit.perform_stage_action(world["meeting"], "Send summary", due="2027-01-01")
    with pytest.raises(oppkit.NotFoundError, match="give its id"):
        kit.stage_actions("Pilot review")
    assert count(kit, links) == 0


def test_the_opportunity_view_offers_the_actions_of_a_meeting_and_performs_them(world, tmp_path):
    pytest.importorskip("ipywidgets")
    kit, deal = world["kit"], world["deal"]
    view = oppkit.OpportunityView(kit, deal)
    assert [value for _label, value in view.action_picker.options] == [
        world["call"],
        world["meeting"],
    ]  # fmt: skip  (newest first; the email is no meeting or call)
    assert view.action_picker.value == world["call"]
    view.action_picker.value = world["meeting"]
    assert list(view.action_buttons) == [
        "Send summary", "Prepare the contract", "Call back", "Send summary (Lead)",
    ]  # fmt: skip
    assert view.action_buttons["Call back"].tooltip.startswith("call: Call back about")

    view.action_buttons["Send summary"].click()
    newest = view.timeline.frame.iloc[0]
    assert (newest["kind"], newest["subject"]) == (
        "letter", "Our meeting on 2026-11-20: Acme <pilot> & co",
    )  # fmt: skip
    feed, message = view.timeline.feed.value, view.action_message.value
    assert "Acme &lt;pilot&gt; &amp; co" in feed and "<pilot>" not in feed
    assert "Send summary: letter" in message and "Acme &lt;pilot&gt; &amp; co" in message
    assert "<pilot>" not in message and "oppkit-message-ok" in message
    assert view.action_picker.value == world["meeting"]  # still the meeting picked

    view.action_buttons["Prepare the contract"].click()
    assert "Contract for Acme &lt;pilot&gt; &amp; co (Acme)" in view.timeline.feed.value
    assert view.metrics["Open tasks"] == "1"  # the planned task counts at once

    # the workflow changed under the view: the click is refused, with the reason, escaped
    (tmp_path / "plain.toml").write_text(TEST_WORKFLOW, encoding="utf-8")
    oppkit.connect(world["url"]).workflow.load(tmp_path / "plain.toml")
    view.action_buttons["Call back"].click()
    assert "oppkit-message-error" in view.action_message.value
    assert "no stage action &#x27;Call back&#x27;" in view.action_message.value
    view.refresh()
    assert view.action_buttons == {} and "No stage actions" in view.actions_html.value


def test_a_deal_without_meetings_or_calls_shows_no_actions(world):
    pytest.importorskip("ipywidgets")
    kit = world["kit"]
    quiet = kit.workflow.create("Quiet deal", account="acme.example")
    view = oppkit.OpportunityView(kit, quiet)
    assert view.action_picker.options == () and view.action_buttons == {}
    assert "no meeting or call" in view.actions_html.value


def test_invalid_action_definitions_are_named_one_per_line(db_url, tmp_path, capsys):
    bad = ACTIONS_WORKFLOW.replace('kind = "activity"\nactivity_kind = "call"', 'kind = "fax"', 1)
    bad = bad.replace('template = "Intro for {name}."', "", 1)
    bad = bad.replace("Next: {next_steps}", "Next: {steps.next}", 1)
    bad = bad.replace('activity_kind = "task"', 'activity_kind = "lunch"', 1)
    bad = bad.replace(
        "[entries]",
        '[[stage_actions]]\nstage = "Nowhere"\nname = "Wave"\nkind = "letter"\n'
        'subject = "Hi"\ntemplate = "Hello"\n\n[entries]',
        1,
    )
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    assert main(["workflow", "load", str(tmp_path / "bad.toml"), "--db", db_url]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "oppkit: error: invalid workflow (5 problems):",
        "stage 'Nowhere' action 'Wave': stage 'Nowhere' is neither in the file nor in the database",
        "stage 'Lead' action 'Call back': kind 'fax' is not one of activity, letter",
        "stage 'Lead' action 'Send summary': has no template",
        "stage 'Proposal' action 'Send summary': template: placeholder {steps.next} is not a "
        "plain name",
        "stage 'Proposal' action 'Prepare the contract': activity_kind 'lunch' is not one of "
        "task, call, meeting, note",
    ]
    assert count(oppkit.connect(db_url), action_rows) == 0  # nothing written
    (tmp_path / "good.toml").write_text(ACTIONS_WORKFLOW, encoding="utf-8")
    assert main(["workflow", "load", str(tmp_path / "good.toml"), "--db", db_url]) == 0
    assert "4 stage actions" in capsys.readouterr().out
