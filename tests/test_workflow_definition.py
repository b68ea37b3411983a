"""Workflow files: every problem named at once, nothing written when invalid, load and
export round-trip, the shipped default, and the CLI's exit codes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

import oppkit
from oppkit.cli import main
from oppkit.db.engine import write_transaction
from oppkit.db.schema import stages, steps, transitions
from oppkit.workflow import InvalidWorkflow
from oppkit.workflow.definition import default_workflow_text, export_text, parse_definition
from tests.workflow_support import ACTIONS_WORKFLOW, TEST_WORKFLOW

# (what is broken, how to break TEST_WORKFLOW, the problem it must name)
BROKEN = [
    ("step without stage", ('name = "Review"\nstage = "Lead"', 'name = "Review"'),
     "step 'Review': has no stage"),
    ("unknown stage", ('name = "Review"\nstage = "Lead"', 'name = "Review"\nstage = "Leed"'),
     "step 'Review': belongs to unknown stage 'Leed'"),
    ("transition to a missing step", ('to = "Parked"', 'to = "Parkd"'),
     "transition 'Park': goes to missing step 'Parkd'"),
    ("transition from a missing step", ('from = "Parked"', 'from = "Nowhere"'),
     "transition 'Unpark': comes from missing step 'Nowhere'"),
    ("no entry", ('[entries]\nnew_account = "New"\nexisting_account = "Review"', ""),
     "no entry: set [entries] new_account = STEP and existing_account = STEP"),
    ("a dead end", ('name = "Close lost"\nfrom = "Proposal sent"\nto = "Closed lost"',
                    'name = "Close lost"\nfrom = "Proposal sent"\nto = "Closed lost"\n\n'
                    '[[steps]]\nname = "Limbo"\nstage = "Proposal"\n\n'
                    '[[transitions]]\nname = "Wait"\nfrom = "New"\nto = "Limbo"'),
     "step 'Limbo': open, but no won or lost stage can be reached from it"),
    ("an unreachable step", ('[entries]', '[[steps]]\nname = "Island"\nstage = "Won"\n\n[entries]'),
     "step 'Island': unreachable from any entry or follow-on"),
    ("an unknown trigger", ('triggers = ["create_invoice", "tests_boom"]', 'triggers = ["send_fax"]'),
     "transition 'Explode': unknown trigger 'send_fax'"),
]  # fmt: skip


# (what is broken in a stage action of ACTIONS_WORKFLOW, the edit, the problem it must name)
BROKEN_ACTIONS = [
    ("an unknown kind", ('kind = "activity"\nactivity_kind = "call"', 'kind = "fax"'),
     "stage 'Lead' action 'Call back': kind 'fax' is not one of activity, letter"),
    ("an unknown activity kind", ('activity_kind = "call"', 'activity_kind = "lunch"'),
     "stage 'Lead' action 'Call back': activity_kind 'lunch' is not one of task, call, "
     "meeting, note"),
    ("a letter without template", ('template = "Intro for {name}."', ""),
     "stage 'Lead' action 'Send summary': has no template"),
    ("a bad placeholder", ('subject = "Lead summary: {name}"', 'subject = "Hi {contact.name}"'),
     "stage 'Lead' action 'Send summary': subject: placeholder {contact.name} is not a plain name"),
    ("an unclosed placeholder", ("Next: {next_steps}", "Next: {next_steps"),
     "stage 'Proposal' action 'Send summary': template: expected '}' before end of string"),
    ("an action without name", ('name = "Call back"\n', ""),
     "stage 'Lead' action '#1': has no name"),
    ("an action twice", ('name = "Prepare the contract"', 'name = "Send summary"'),
     "stage 'Proposal' action 'Send summary': defined twice"),
    ("an action on a stage nowhere", ('[entries]', '[[stage_actions]]\nstage = "Nowhere"\n'
                                      'name = "Wave"\nkind = "activity"\nactivity_kind = "note"\n'
                                      'subject = "Wave"\n\n[entries]'),
     "stage 'Nowhere' action 'Wave': stage 'Nowhere' is neither in the file nor in the database"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "edit", "problem"), BROKEN_ACTIONS, ids=[b[0] for b in BROKEN_ACTIONS]
)
def test_each_kind_of_stage_action_problem_is_named(what, edit, problem):
    old, new = edit
    assert old in ACTIONS_WORKFLOW
    with pytest.raises(InvalidWorkflow) as caught:
        parse_definition(ACTIONS_WORKFLOW.replace(old, new, 1))
    assert problem in caught.value.problems, caught.value.problems


def broken(old: str, new: str) -> str:
    assert old in TEST_WORKFLOW
    return TEST_WORKFLOW.replace(old, new, 1)


@pytest.mark.parametrize(("what", "edit", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_kind_of_problem_is_named(what, edit, problem):
    with pytest.raises(InvalidWorkflow) as caught:
        parse_definition(broken(*edit))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_every_problem_is_listed_at_once_and_nothing_is_written(db_url, tmp_path, capsys):
    text = broken(*BROKEN[0][1])
    text = text.replace('to = "Parked"', 'to = "Parkd"', 1).replace(
        'from = "Parked"', 'from = "Nowhere"', 1
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text(TEST_WORKFLOW, encoding="utf-8")
    assert main(["workflow", "load", str(good), "--db", db_url]) == 0
    assert "5 stages, 7 steps, 8 transitions" in capsys.readouterr().out
    kit = oppkit.connect(db_url)
    before = kit.workflow.export()

    assert main(["workflow", "load", str(bad), "--db", db_url]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "oppkit: error: invalid workflow (4 problems):"
    assert lines[1:] == [
        "step 'Review': has no stage",
        "transition 'Park': goes to missing step 'Parkd'",
        "transition 'Unpark': comes from missing step 'Nowhere'",
        "step 'Parked': unreachable from any entry or follow-on",
    ]
    assert kit.workflow.export() == before

    assert main(["workflow", "load", str(tmp_path / "missing.toml"), "--db", db_url]) == 2
    assert "no such workflow file" in capsys.readouterr().err
    (tmp_path / "garbage.toml").write_text("[[steps]\nname=", encoding="utf-8")
    assert main(["workflow", "load", str(tmp_path / "garbage.toml"), "--db", db_url]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_load_and_export_round_trip(db_url, tmp_path, capsys):
    source = tmp_path / "ours.toml"
    source.write_text(ACTIONS_WORKFLOW, encoding="utf-8")
    original = parse_definition(ACTIONS_WORKFLOW)
    kit = oppkit.connect(db_url)
    kit.workflow.load(source)
    exported = tmp_path / "exported.toml"
    assert main(["workflow", "export", str(exported), "--db", db_url]) == 0
    assert capsys.readouterr().out == f"workflow written to {exported}\n"
    again = parse_definition(exported.read_text(encoding="utf-8"))
    assert again.steps == original.steps
    assert again.transitions == original.transitions
    assert again.entries == original.entries and again.follow_ons == original.follow_ons
    assert [(s.name, s.status) for s in again.stages] == [
        (s.name, s.status) for s in original.stages
    ]
    assert again.lifecycle_stages == original.lifecycle_stages  # the defaults, written out
    assert again.stage_actions == original.stage_actions and len(again.stage_actions) == 4
    assert again.actions("Proposal")[0].template.startswith("Dear {contact_name},\n\n")
    kit.workflow.load(exported)
    assert main(["workflow", "export", "--db", db_url]) == 0
    assert capsys.readouterr().out == exported.read_text(encoding="utf-8")
    body = tomllib.loads(exported.read_text(encoding="utf-8"))["transitions"][0]["communications"][
        0
    ]
    assert body["html"] == "<p>Proposal for <b>{name}</b> ({decision_maker})</p>"


def test_reloading_keeps_steps_that_deals_stand_on_and_drops_the_rest(db_url, tmp_path):
    kit = oppkit.connect(db_url)
    (tmp_path / "a.toml").write_text(TEST_WORKFLOW, encoding="utf-8")
    kit.workflow.load(tmp_path / "a.toml")
    deal = kit.workflow.create("Parked deal")
    kit.workflow.transition(deal, "Park")
    smaller = TEST_WORKFLOW.replace('[[steps]]\nname = "Parked"\nstage = "Parked"\n', "")
    smaller = smaller.replace('[[transitions]]\nname = "Park"\nfrom = "New"\nto = "Parked"\n', "")
    smaller = smaller.replace('[[transitions]]\nname = "Unpark"\nfrom = "Parked"\nto = "New"\n', "")
    (tmp_path / "b.toml").write_text(smaller, encoding="utf-8")
    kit.workflow.load(tmp_path / "b.toml")
    assert [s.name for s in kit.workflow.definition().steps] == [
        "New", "Review", "Upsell", "Proposal sent", "Closed won", "Closed lost",
    ]  # fmt: skip
    with kit.engine.connect() as conn:
        kept = conn.execute(
            select(steps.c.name, steps.c.is_active).where(steps.c.name == "Parked")
        ).all()
        assert kept == [("Parked", False)]
        assert conn.scalar(select(func.count()).select_from(transitions)) == 6
    assert kit.opportunities()["step"].tolist() == ["Parked"]


def test_steps_may_use_stages_already_synced_from_salesforce(db_url, tmp_path):
    kit = oppkit.connect(db_url)
    with write_transaction(kit.engine) as conn:
        conn.execute(insert(stages).values(name="Id. Decision Makers", status="open", sort_order=5,
                                           probability=60, source="salesforce"))  # fmt: skip
    text = TEST_WORKFLOW.replace(
        'name = "Review"\nstage = "Lead"', 'name = "Review"\nstage = "Id. Decision Makers"'
    ).replace(
        "[entries]",
        '[[stage_actions]]\nstage = "Id. Decision Makers"\nname = "Map the committee"\n'
        'kind = "activity"\nactivity_kind = "task"\nsubject = "Who decides on {name}?"\n\n'
        "[entries]",
    )
    with pytest.raises(InvalidWorkflow, match="unknown stage 'Id. Decision Makers'") as caught:
        parse_definition(text)  # alone, the file does not know the stage
    assert (
        "stage 'Id. Decision Makers' action 'Map the committee': stage 'Id. Decision Makers' "
        "is neither in the file nor in the database"
    ) in caught.value.problems
    (tmp_path / "w.toml").write_text(text, encoding="utf-8")
    kit.workflow.load(tmp_path / "w.toml")
    exported = parse_definition(kit.workflow.export())
    assert exported.step("Review").stage == "Id. Decision Makers"
    assert exported.stage("Id. Decision Makers").status == "open"
    assert [(a.stage, a.name) for a in exported.stage_actions] == [
        ("Id. Decision Makers", "Map the committee")
    ]


def test_the_shipped_default_loads_and_exports_unchanged(db_url, capsys):
    assert main(["workflow", "load", "--db", db_url]) == 0
    assert "workflow loaded from the default" in capsys.readouterr().out
    kit = oppkit.connect(db_url)
    definition = kit.workflow.definition()
    assert definition.entries == {"new_account": "New lead", "existing_account": "Account review"}
    assert export_text(definition) == export_text(parse_definition(default_workflow_text()))
    assert [(a.stage, a.name) for a in definition.stage_actions] == [
        ("Prospecting", "Schedule discovery meeting"),
        ("Qualification", "Send meeting summary letter"),
        ("Qualification", "Schedule follow-up call"),
    ]
    assert {s.name for s in definition.lifecycle("contact")} >= {
        "New",
        "Engaged",
        "Bounced",
        "Unsubscribed",
    }
    text = (
        Path(oppkit.__file__)
        .parent.joinpath("workflow", "default_workflow.toml")
        .read_text("utf-8")
    )
    assert text == default_workflow_text()
