"""Contact and account lifecycle: rules on timeline events, manual locks, history, and the
columns people and accounts show; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import oppkit
from oppkit.cli import main
from oppkit.workflow import WorkflowError
from tests.workflow_support import add_account, add_activity, add_member, add_person

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
AVA = "ava.patel@northwind.example"


@pytest.fixture
def org(db_url: str) -> dict:
    kit = oppkit.connect(db_url)
    kit.workflow.load()  # the default workflow with the default lifecycle
    e = kit.engine
    acme = add_account(e, "Acme", "acme.example")
    return {
        "url": db_url, "kit": kit, "acme": acme,
        "ava": add_person(e, AVA, "Ava", internal=True),
        "jo": add_person(e, "jo@acme.example", "Jo", acme),
        "kim": add_person(e, "kim@acme.example", "Kim", acme),
    }  # fmt: skip


def stage_of(kit: oppkit.Kit, email: str) -> tuple:
    row = kit.people().set_index("email").loc[email]
    stage = None if pd.isna(row["lifecycle_stage"]) else row["lifecycle_stage"]
    return stage, row["lifecycle_category"], bool(row["stage_locked"])


def test_rules_follow_the_timeline_and_rerunning_changes_nothing(org):
    kit, ava, jo, kim = org["kit"], org["ava"], org["jo"], org["kim"]
    add_activity(kit.engine, kind="email", when=T0, direction="outbound",
                 parts=[(ava, "from"), (jo, "to"), (kim, "cc")])  # fmt: skip
    add_activity(kit.engine, kind="email", when=T0 + timedelta(hours=1), direction="inbound",
                 parts=[(kim, "from"), (ava, "to")], is_auto=True, status="auto-reply")  # fmt: skip
    add_activity(kit.engine, kind="email", when=T0 + timedelta(hours=2), direction="inbound",
                 parts=[(jo, "from"), (ava, "to")])  # fmt: skip
    changes = kit.lifecycle.apply_rules()
    assert sorted(zip(changes["kind"], changes["id"], changes["new_stage"], changes["event"], strict=True)) == [
        ("account", org["acme"], "Engaged", "reply_received"),
        ("account", org["acme"], "Target", "email_sent"),
        ("contact", jo, "Contacted", "email_sent"),
        ("contact", jo, "Engaged", "reply_received"),
        ("contact", kim, "Contacted", "email_sent"),
    ]  # fmt: skip
    assert stage_of(kit, "jo@acme.example") == ("Engaged", "in progress", False)
    assert stage_of(kit, "kim@acme.example")[0] == "Contacted"  # an auto-reply is no reply
    assert kit.accounts().set_index("name").loc["Acme", "lifecycle_stage"] == "Engaged"
    assert kit.lifecycle.apply_rules().empty
    assert main(["lifecycle", "apply", "--db", org["url"]]) == 0

    add_activity(kit.engine, kind="meeting", when=T0 + timedelta(days=1),
                 parts=[(ava, "organizer"), (jo, "attendee")])  # fmt: skip
    add_activity(kit.engine, kind="email", when=T0 + timedelta(days=1), direction="inbound",
                 is_auto=True, status="bounce", subject="Undeliverable",
                 snippet="Delivery to kim@acme.example failed", parts=[(ava, "to")])  # fmt: skip
    changes = kit.lifecycle.apply_rules()
    assert sorted(zip(changes["kind"], changes["new_stage"], strict=True)) == [
        ("contact", "Bounced"), ("contact", "Meeting booked"),
    ]  # fmt: skip
    assert stage_of(kit, "kim@acme.example") == ("Bounced", "not succeeded", False)
    history = kit.lifecycle.history("jo@acme.example")
    assert history[["old_stage", "new_stage", "reason"]].fillna("-").values.tolist() == [
        ["Engaged", "Meeting booked", "meeting_booked"],
        ["Contacted", "Engaged", "reply_received"],
        ["-", "Contacted", "email_sent"],
    ]
    assert history["activity_id"].notna().all()


def test_a_stage_set_by_hand_that_locks_is_left_alone_by_rules(org):
    kit, jo, kim = org["kit"], org["jo"], org["kim"]
    kit.lifecycle.set("jo@acme.example", "Unsubscribed", by=AVA)  # locks
    kit.lifecycle.set("kim@acme.example", "Contacted", by=AVA)  # does not lock
    assert stage_of(kit, "jo@acme.example") == ("Unsubscribed", "not succeeded", True)
    add_activity(kit.engine, kind="email", when=T0, direction="inbound", parts=[(jo, "from")])
    add_activity(kit.engine, kind="email", when=T0, direction="inbound", parts=[(kim, "from")])
    kit.lifecycle.apply_rules()
    assert stage_of(kit, "jo@acme.example")[0] == "Unsubscribed"
    assert stage_of(kit, "kim@acme.example") == ("Engaged", "in progress", False)
    manual = kit.lifecycle.history("jo@acme.example")
    assert manual[["new_stage", "reason", "changed_by"]].values.tolist() == [
        ["Unsubscribed", "manual", AVA]
    ]
    kit.lifecycle.set("jo@acme.example", "Engaged")  # a person can always move it again
    assert stage_of(kit, "jo@acme.example") == ("Engaged", "in progress", False)
    with pytest.raises(WorkflowError, match="no contact lifecycle stage 'VIP'"):
        kit.lifecycle.set("jo@acme.example", "VIP")


def test_an_unsubscribe_email_and_an_account_lock(org):
    kit, jo = org["kit"], org["jo"]
    kit.lifecycle.set("acme.example", "Churned")
    add_activity(kit.engine, kind="email", when=T0, direction="inbound", subject="Unsubscribe",
                 parts=[(jo, "from")])  # fmt: skip
    kit.lifecycle.apply_rules()
    assert stage_of(kit, "jo@acme.example")[0] == "Unsubscribed"
    account = kit.accounts().set_index("name").loc["Acme"]
    assert (account["lifecycle_stage"], account["lifecycle_category"], account["stage_locked"]) == (
        "Churned", "not succeeded", True,
    )  # fmt: skip


def test_deals_move_their_account_and_members(org):
    kit = oppkit.connect(org["url"], user=AVA)
    deal = kit.workflow.create("Acme pilot", account="acme.example", amount=100,
                               close_date="2026-09-30")  # fmt: skip
    add_member(kit.engine, deal, org["jo"])
    kit.lifecycle.apply_rules()
    assert kit.accounts().set_index("name").loc["Acme", "lifecycle_stage"] == "Opportunity"
    for name in ("Start discovery", "Qualify", "Send proposal", "Negotiate", "Close won"):
        kit.workflow.transition(deal, name, deliver=False)
    changes = kit.lifecycle.apply_rules()
    assert sorted(zip(changes["kind"], changes["new_stage"], strict=True)) == [
        ("account", "Customer"), ("contact", "Customer"),
    ]  # fmt: skip
    assert stage_of(kit, "jo@acme.example") == ("Customer", "succeeded", False)
    assert stage_of(kit, "kim@acme.example")[0] is None  # not on the deal
    stages = kit.lifecycle.stages("account")
    assert stages["name"].tolist() == ["Target", "Engaged", "Opportunity", "Customer", "Churned"]
    assert stages.set_index("name").loc["Customer", "external_status"] == "Customer - Direct"


def test_rules_loaded_after_a_run_without_rules_apply_to_past_events(db_url):
    kit = oppkit.connect(db_url)  # no workflow loaded yet: no lifecycle rules
    ava = add_person(kit.engine, AVA, "Ava", internal=True)
    jo = add_person(
        kit.engine, "jo@acme.example", "Jo", add_account(kit.engine, "Acme", "acme.example")
    )
    add_activity(kit.engine, kind="email", when=T0, direction="outbound",
                 parts=[(ava, "from"), (jo, "to")])  # fmt: skip
    assert kit.lifecycle.apply_rules().empty
    kit.workflow.load()  # the default lifecycle rules arrive
    changes = kit.lifecycle.apply_rules()
    assert sorted(zip(changes["kind"], changes["new_stage"], changes["event"], strict=True)) == [
        ("account", "Target", "email_sent"), ("contact", "Contacted", "email_sent"),
    ]  # fmt: skip
    assert stage_of(kit, "jo@acme.example")[0] == "Contacted"
    assert kit.lifecycle.apply_rules().empty


def test_a_changed_rule_applies_to_past_events_and_a_lock_still_wins(org, tmp_path):
    from oppkit.workflow.definition import default_workflow_text

    kit, ava, jo, kim = org["kit"], org["ava"], org["jo"], org["kim"]
    locking_new = default_workflow_text().replace(
        'name = "New"\ncategory = "in progress"\n', 'name = "New"\ncategory = "in progress"\nlocks = true\n'
    )  # fmt: skip
    first = tmp_path / "first.toml"
    first.write_text(locking_new, encoding="utf-8")
    kit.workflow.load(first)
    kit.lifecycle.set("kim@acme.example", "New", by=AVA)  # by hand, and it locks
    email = add_activity(kit.engine, kind="email", when=T0, direction="outbound",
                         parts=[(ava, "from"), (jo, "to"), (kim, "to")])  # fmt: skip
    kit.lifecycle.apply_rules()
    assert stage_of(kit, "jo@acme.example")[0] == "Contacted"

    second = tmp_path / "second.toml"  # the team decides a sent email means engaged
    second.write_text(
        locking_new.replace(
            'event = "email_sent"\nstage = "Contacted"', 'event = "email_sent"\nstage = "Engaged"'
        ),
        encoding="utf-8",
    )
    kit.workflow.load(second)
    changes = kit.lifecycle.apply_rules()
    assert list(zip(changes["id"], changes["new_stage"], changes["event"], changes["activity_id"], strict=True)) == [
        (jo, "Engaged", "email_sent", email),
    ]  # fmt: skip
    assert stage_of(kit, "jo@acme.example") == ("Engaged", "in progress", False)
    assert stage_of(kit, "kim@acme.example") == ("New", "in progress", True)  # the lock wins
    assert kit.lifecycle.apply_rules().empty

    # another rule changes: the unchanged email_sent rule does not run over old mail again
    kit.lifecycle.set("jo@acme.example", "Contacted", by=AVA)  # by hand, no lock
    third = tmp_path / "third.toml"
    third.write_text(
        second.read_text(encoding="utf-8").replace(
            'event = "bounce"\nstage = "Bounced"', 'event = "bounce"\nstage = "Unsubscribed"'
        ),
        encoding="utf-8",
    )
    rules = kit.workflow.load(third).lifecycle_rules
    assert ("contact", "bounce", "Unsubscribed") in {(r.kind, r.event, r.stage) for r in rules}
    assert kit.lifecycle.apply_rules().empty
    assert stage_of(kit, "jo@acme.example")[0] == "Contacted"
