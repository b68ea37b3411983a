"""The workflow engine as a notebook user drives it: entries, transitions, triggers,
rollback, follow-ons, privacy and the funnel, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

import oppkit
from oppkit.cli import main
from oppkit.db.schema import links, opportunities, stage_history
from oppkit.workflow import IncompleteTransition, TransitionNotAvailable, TriggerFailed
from tests.workflow_support import TEST_WORKFLOW, add_account, add_member, add_person

AVA = "ava.patel@northwind.example"
BEN = "ben.okafor@northwind.example"


@pytest.fixture
def kit(db_url: str, tmp_path: Path) -> oppkit.Kit:
    path = tmp_path / "workflow.toml"
    path.write_text(TEST_WORKFLOW, encoding="utf-8")
    kit = oppkit.connect(db_url)
    add_person(kit.engine, AVA, "Ava Patel", internal=True)
    add_person(kit.engine, BEN, "Ben Okafor", internal=True)
    kit.workflow.load(path)
    return oppkit.connect(db_url, user=AVA)


def state(kit: oppkit.Kit, opportunity_id: int) -> dict:
    with kit.engine.connect() as conn:
        row = conn.execute(
            select(opportunities).where(opportunities.c.id == opportunity_id)
        ).mappings().one()  # fmt: skip
        n_history = conn.scalar(
            select(func.count()).where(stage_history.c.opportunity_id == opportunity_id)
        )
        n_links = conn.scalar(select(func.count()).where(links.c.opportunity_id == opportunity_id))
    return {
        "step": row["step"], "stage": row["stage"], "amount": row["amount"],
        "close_date": row["close_date"], "attributes": row["attributes"],
        "history": n_history, "links": n_links,
    }  # fmt: skip


def test_new_opportunities_start_at_the_entry_for_a_new_or_an_existing_account(kit):
    acme = add_account(kit.engine, "Acme", "acme.example")
    first = kit.workflow.create("Acme pilot", account="acme.example", amount=1000)
    second = kit.workflow.create("Acme roll-out", account=acme)
    loose = kit.workflow.create("No account yet")
    frame = kit.opportunities().set_index("id")
    assert frame.loc[loose, ["step", "stage", "owner_email"]].tolist() == ["New", "Lead", AVA]
    assert frame.loc[first, ["step", "stage"]].tolist() == ["Review", "Lead"]  # a known account
    assert frame.loc[second, ["step", "stage"]].tolist() == ["Review", "Lead"]
    history = kit.stage_history(opportunity=first)
    assert set(zip(history["field"], history["new_value"], history["source"], strict=True)) == {
        ("step", "Review", "oppkit"), ("stage", "Lead", "oppkit"),
    }  # fmt: skip
    assert set(history["changed_by"]) == {"Ava Patel"}


def test_an_account_oppkit_knows_without_deals_enters_at_the_existing_account_step(kit):
    add_account(kit.engine, "Initech", "initech.example")  # synced from mail: no deals yet
    known = kit.workflow.create("Initech pilot", account="initech.example")
    unknown = kit.workflow.create("Someone new", account_name="Hooli")  # no account row yet
    steps = kit.opportunities().set_index("id")["step"]
    assert (steps[known], steps[unknown]) == ("Review", "New")


def test_an_incomplete_transition_lists_every_missing_field_and_changes_nothing(kit):
    deal = kit.workflow.create("Globex deal")
    before = state(kit, deal)
    with pytest.raises(IncompleteTransition) as caught:
        kit.workflow.transition(deal, "Send proposal", close_date="2026-12-31")
    assert str(caught.value).startswith("Incomplete")
    assert caught.value.missing == ["amount", "decision_maker"]
    assert isinstance(caught.value, oppkit.OppkitError)
    assert state(kit, deal) == before  # not even the close date given was kept


def test_a_transition_sets_attributes_moves_step_and_stage_and_writes_history(kit):
    deal = kit.workflow.create("Globex deal", amount=1000)
    result = kit.workflow.transition(
        "Globex deal", "Send proposal", amount=5000, close_date=date(2026, 12, 31),
        decision_maker="CFO", deliver=False,
    )  # fmt: skip
    assert (result.from_step, result.to_step, result.stage) == ("New", "Proposal sent", "Proposal")
    row = kit.opportunities().set_index("id").loc[deal]
    assert (row["step"], row["stage"], row["amount"], row["probability"]) == (
        "Proposal sent", "Proposal", 5000, 50,
    )  # fmt: skip
    assert row["close_date"] == date(2026, 12, 31)
    assert row["decision_maker"] == "CFO"  # a custom attribute becomes a column
    history = kit.stage_history(opportunity=deal)
    history = history.astype(object).where(history.notna(), None)
    changes = {(f, o, n) for f, o, n in zip(history["field"], history["old_value"], history["new_value"], strict=True)}  # fmt: skip
    assert {("step", "New", "Proposal sent"), ("stage", "Lead", "Proposal"),
            ("amount", "1000.0", "5000.0"), ("close_date", None, "2026-12-31")} <= changes  # fmt: skip
    assert kit.pipeline().set_index("stage").loc["Proposal", "count"] == 1


def test_closing_won_runs_the_built_in_triggers(kit):
    acme = add_account(kit.engine, "Acme", "acme.example")
    deal = kit.workflow.create("Acme pilot", account=acme, amount=7000, seats=3)
    kit.workflow.transition(deal, "Start")  # a known account enters at Review
    kit.workflow.transition(deal, "Send proposal", close_date="2026-06-30", decision_maker="CEO",
                            deliver=False)  # fmt: skip
    result = kit.workflow.transition(deal, "Close won")
    found = kit.workflow.links(deal)
    assert list(found["kind"]) == ["invoice", "registration", "training_token"]
    invoice = found.iloc[0]
    assert invoice["reference"].startswith(f"INV-{deal:05d}-")
    assert invoice["data"] == {
        "amount": 7000.0,
        "currency": None,
        "account": "Acme",
        "due": "2026-06-30",
    }
    assert found.iloc[2]["data"]["seats"] == 3
    assert set(found["transition"]) == {"Close won"}
    assert [link["kind"] for link in result.links] == list(found["kind"])
    assert kit.opportunities().set_index("id").loc[deal, "stage_status"] == "won"


CONTACT_WORKFLOW = (
    TEST_WORKFLOW
    + """
[[transitions]]
name = "Add contact"
from = "New"
to = "Proposal sent"
requires = ["contact_email"]
triggers = ["create_contact"]
"""
)


def test_a_contact_given_on_the_transition_becomes_a_member_of_a_new_deal(kit, tmp_path):
    path = tmp_path / "contact.toml"
    path.write_text(CONTACT_WORKFLOW, encoding="utf-8")
    kit.workflow.load(path)
    acme = add_account(kit.engine, "Acme", "acme.example")
    fresh = kit.workflow.create("Fresh deal")  # no members yet
    result = kit.workflow.transition(fresh, "Add contact", contact_email=" Jo@Acme.example ",
                                     contact_name="Jo Acme")  # fmt: skip
    assert [(link["kind"], link["reference"]) for link in result.links] == [
        ("contact", "jo@acme.example")
    ]
    members = kit.people(opportunity=fresh)
    assert members[["email", "name", "role"]].values.tolist() == [
        ["jo@acme.example", "Jo Acme", "contact"]
    ]
    # a deal that has a contact already: the one given on the transition wins
    known = kit.workflow.create("Known deal")
    add_member(kit.engine, known, add_person(kit.engine, "kim@acme.example", "Kim", acme))
    assert kit.workflow.deal(known)["contact_email"] == "kim@acme.example"  # the fallback
    kit.workflow.transition(known, "Add contact", contact_email="lee@acme.example")
    assert set(kit.people(opportunity=known)["email"]) == {"kim@acme.example", "lee@acme.example"}
    assert kit.workflow.links(known)["reference"].tolist() == ["lee@acme.example"]


def test_a_failing_trigger_rolls_back_step_history_attributes_and_links(kit):
    deal = kit.workflow.create("Initech", amount=900)
    before = state(kit, deal)
    with pytest.raises(TriggerFailed, match="trigger 'tests_boom' failed: the ERP is down"):
        kit.workflow.transition(deal, "Explode", close_date="2026-01-31", note="x")
    assert state(kit, deal) == before
    assert before["links"] == 0 and before["step"] == "New"


def test_a_transition_from_another_step_is_refused_with_the_options(kit):
    deal = kit.workflow.create("Initech")
    with pytest.raises(TransitionNotAvailable, match=r"'Close won' is not available from step 'New' \(available: 'Send proposal', 'Park', 'Explode'\)"):  # fmt: skip
        kit.workflow.transition(deal, "Close won")
    kit.workflow.transition(deal, "park")  # names match case-insensitively
    assert kit.opportunities()["step"].tolist() == ["Parked"]


def test_available_shows_what_each_transition_still_needs(kit):
    deal = kit.workflow.create("Initech", amount=100)
    df = kit.workflow.available(deal).set_index("transition")
    assert list(df.index) == ["Send proposal", "Park", "Explode"]
    assert df.loc["Send proposal", "missing"] == ["close_date", "decision_maker"]
    assert df.loc["Send proposal", "requires"] == ["amount", "close_date", "decision_maker"]
    assert not df.loc["Send proposal", "ready"]
    assert bool(df.loc["Park", "ready"]) and df.loc["Park", "to_stage"] == "Parked"
    assert df.loc["Send proposal", "communications"] == 1
    assert df.loc["Explode", "triggers"] == ["create_invoice", "tests_boom"]


def test_a_follow_on_is_a_child_with_the_parents_account_and_people(kit):
    acme = add_account(kit.engine, "Acme", "acme.example")
    buyer = add_person(kit.engine, "jo@acme.example", "Jo", acme)
    parent = kit.workflow.create("Acme pilot", account=acme, amount=10)
    add_member(kit.engine, parent, buyer, role="Decision maker")
    child = kit.workflow.follow_on("Acme pilot", "Up-sell", name="Acme fleet", amount=50)
    row = kit.opportunities().set_index("id").loc[child]
    assert (row["name"], row["account"], row["parent_id"], row["step"], row["owner_email"]) == (
        "Acme fleet", "Acme", parent, "Upsell", AVA,
    )  # fmt: skip
    members = kit.people(opportunity=child)
    assert members[["email", "role"]].values.tolist() == [["jo@acme.example", "Decision maker"]]
    assert kit.workflow.family(parent)[["relation", "name"]].values.tolist() == [
        ["self", "Acme pilot"], ["child", "Acme fleet"],
    ]  # fmt: skip
    assert kit.workflow.family(child)[["relation", "id"]].values.tolist() == [
        ["parent", parent], ["self", child],
    ]  # fmt: skip
    kit.workflow.transition(child, "Qualify up-sell")  # amount already set on the child
    with pytest.raises(oppkit.workflow.WorkflowError, match="no follow-on 'Renewal'"):
        kit.workflow.follow_on(parent, "Renewal")


def test_private_deals_cannot_be_moved_by_someone_who_cannot_see_them(kit, db_url):
    secret = kit.workflow.create("Secret deal", private=True)
    outsider = oppkit.connect(db_url, user=BEN)
    anonymous = oppkit.connect(db_url)
    for other in (outsider, anonymous):
        with pytest.raises(oppkit.NotFoundError, match="no opportunity matches"):
            other.workflow.transition(secret, "Park")
        with pytest.raises(oppkit.NotFoundError):
            other.workflow.available("Secret deal")
    assert state(kit, secret)["step"] == "New"
    add_member(kit.engine, secret, outsider.scope.user_id, role="Engineer")
    outsider.workflow.transition(secret, "Park")
    assert state(kit, secret)["step"] == "Parked"


def test_the_funnel_shows_open_stages_in_workflow_order_and_leaves_closed_ones_out(kit):
    for name, path in [("a", []), ("b", ["Park"]), ("c", ["Send proposal"]),
                       ("d", ["Send proposal", "Close won"]), ("e", ["Send proposal", "Close lost"])]:  # fmt: skip
        deal = kit.workflow.create(
            name, amount=100, account=add_account(kit.engine, name, f"{name}.example")
        )
        kit.workflow.transition(deal, "Start")  # a known account enters at Review
        for step in path:
            kit.workflow.transition(deal, step, close_date="2026-01-01", decision_maker="x",
                                    deliver=False)  # fmt: skip
    funnel = kit.pipeline()
    assert funnel[["stage", "order", "count"]].values.tolist() == [
        ["Lead", 1, 1],
        ["Proposal", 2, 1],
    ]
    assert funnel["weighted_amount"].tolist() == [10.0, 50.0]
    assert list(kit.stages()["name"]) == ["Lead", "Proposal", "Won", "Lost", "Parked"]


def test_the_cli_moves_a_deal_and_exits_2_on_bad_input(kit, db_url, capsys):
    kit.workflow.create("Umbrella", amount=10)
    base = ["--db", db_url, "--user", AVA]
    assert main(["workflow", "available", "Umbrella", *base]) == 0
    assert (
        "Send proposal -> Proposal sent (Proposal): needs close_date, decision_maker"
        in capsys.readouterr().out
    )
    assert (
        main(
            [
                "workflow",
                "transition",
                "Umbrella",
                "Send proposal",
                "--set",
                "close_date=2026-12-31",
                *base,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "oppkit: error: Incomplete transition 'Send proposal': missing decision_maker"
    )
    assert main(["workflow", "transition", "Umbrella", "Send proposal", "--set", "close_date=soon",
                 "--set", "decision_maker=CFO", *base]) == 2  # fmt: skip
    assert "close_date: 'soon' is not a date" in capsys.readouterr().err
    assert main(["workflow", "transition", "Nobody", "Park", *base]) == 2
    assert "no opportunity matches 'Nobody'" in capsys.readouterr().err
    assert main(["workflow", "transition", "Umbrella", "Send proposal", "--set", "close_date=2026-12-31",
                 "--set", "decision_maker=CFO", "--set", "amount=5000", *base]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("Send proposal: New -> Proposal sent (stage Proposal)")
    row = kit.opportunities().iloc[0]
    assert (row["amount"], row["close_date"], row["decision_maker"]) == (
        5000,
        date(2026, 12, 31),
        "CFO",
    )
    assert main(["workflow", "transition", "Umbrella", "Explode", *base]) == 2
    assert "not available from step 'Proposal sent'" in capsys.readouterr().err
