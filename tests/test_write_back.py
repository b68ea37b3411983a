"""One owner per fact: what a person changes in oppkit is never silently undone, and reaches
Salesforce when write-back is on. The real simple-salesforce client against the wire-level
fake org (tests/fakes/salesforce.py), into SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.db.schema import stage_history
from oppkit.sources.salesforce_client import SalesforceSettings, update_record
from oppkit.writeback import WriteBackOff
from tests.fakes.salesforce import FakeOrg
from tests.support import small_org
from tests.support import sync_fake_salesforce as sync

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AVA = "ava.patel@northwind.example"


pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    return small_org(T0)


@pytest.fixture
def write_back(monkeypatch):
    monkeypatch.setenv("OPPKIT_SALESFORCE_WRITE_BACK", "1")


def deal(kit: oppkit.Kit) -> dict:
    return kit.opportunities().set_index("name").loc["Acme pilot"].to_dict()


def history_rows(db_url: str) -> int:
    engine = connect_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(stage_history))
    finally:
        engine.dispose()


def test_with_write_back_off_a_change_to_a_salesforce_field_is_refused(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    with pytest.raises(WriteBackOff, match="change it in Salesforce.*write_back = true"):
        kit.update_opportunity("Acme pilot", amount=120000)
    kit.workflow.load()
    assert deal(kit)["step"] == "Discovery"  # "Needs Analysis" arrives at Qualification
    # a transition that changes the stage is refused whole: step and stage stay
    kit.workflow.transition("Acme pilot", "Qualify")  # within Qualification: oppkit's step
    with pytest.raises(WriteBackOff, match="stage of 'Acme pilot'"):
        kit.workflow.transition("Acme pilot", "Send proposal")
    assert (deal(kit)["step"], deal(kit)["stage"]) == ("Qualified", "Needs Analysis")
    assert kit.changes().empty and fake.patches == []


def test_a_pushed_edit_arrives_and_the_next_sync_changes_nothing(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=125000, close_date="2027-04-30")
    shown = deal(kit)
    assert shown["amount"] == 100000  # Salesforce's, until it confirms
    assert shown["pending"] == {"amount": 125000.0, "close_date": "2027-04-30"}
    org.advance(minutes=5)
    summary = sync(db_url, settings, fake)
    assert "pushed 2, conflicts 0, waiting 0" in summary.line()
    record = org.get("Opportunity", org.ids["pilot"])
    assert (record["Amount"], record["CloseDate"]) == (125000, date(2027, 4, 30))
    assert fake.patches[0].headers["If-Unmodified-Since"] == "Mon, 02 Nov 2026 09:00:00 GMT"
    shown = deal(kit)
    assert (shown["amount"], shown["close_date"], shown["pending"]) == (
        125000, date(2027, 4, 30), None,
    )  # fmt: skip
    assert set(kit.changes()["status"]) == {"pushed"}
    edits = kit.stage_history(opportunity="Acme pilot").query("origin == 'edit'")
    assert sorted(edits["field"]) == ["amount", "close_date"]
    rows = history_rows(db_url)
    for _ in range(2):
        org.advance(minutes=5)
        sync(db_url, settings, fake)
    assert history_rows(db_url) == rows and len(fake.patches) == 1
    assert (deal(kit)["amount"], deal(kit)["close_date"]) == (125000, date(2027, 4, 30))


def test_setting_a_field_back_to_salesforces_value_withdraws_the_waiting_change(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=125000, close_date="2027-04-30")
    assert kit.update_opportunity("Acme pilot", amount=100000) == []  # Salesforce's own value
    assert deal(kit)["pending"] == {"close_date": "2027-04-30"}
    assert dict(zip(kit.changes()["field"], kit.changes()["status"], strict=True)) == {
        "amount": "dropped", "close_date": "pending",
    }  # fmt: skip
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    assert [p.body for p in fake.patches] == [{"CloseDate": "2027-04-30"}]
    assert org.get("Opportunity", org.ids["pilot"])["Amount"] == 100000


@pytest.mark.parametrize("keep", ["mine", "theirs"])
def test_a_conflict_is_shown_with_both_values_and_resolved(
    db_url, settings, fake, org, write_back, keep
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=125000)
    org.advance(minutes=5)
    org.update("Opportunity", org.ids["pilot"], Amount=90000)  # someone, in Salesforce
    org.advance(minutes=5)
    assert "conflicts 1" in sync(db_url, settings, fake).line()
    assert org.get("Opportunity", org.ids["pilot"])["Amount"] == 90000  # not overwritten
    conflict = kit.changes(status="conflict").iloc[0]
    assert (conflict["new_value"], conflict["their_value"]) == (125000, 90000)
    assert conflict["old_value"] == 100000 and conflict["their_by"]
    assert deal(kit)["amount"] == 90000 and deal(kit)["conflicts"] == {"amount": 125000}
    kit.resolve_conflict("Acme pilot", "amount", keep=keep)
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    expected = 125000 if keep == "mine" else 90000
    assert org.get("Opportunity", org.ids["pilot"])["Amount"] == expected
    assert deal(kit)["amount"] == expected and deal(kit)["conflicts"] is None
    assert set(kit.changes()["status"]) == {"pushed" if keep == "mine" else "dropped"}


def test_a_refused_push_stays_pending_with_salesforces_message(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    fake.add_validation_rule(
        "Opportunity", lambda r: (r["Amount"] or 0) > 200000, "Deals over 200k need approval",
        field="Amount",
    )  # fmt: skip
    fake.lock_record("Opportunity", org.ids["pilot"])
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=250000)
    org.advance(minutes=5)
    assert "waiting 1" in sync(db_url, settings, fake).line()
    change = kit.changes().iloc[0]
    assert change["status"] == "pending" and "ENTITY_IS_LOCKED" in change["last_error"]
    fake.unlock_record("Opportunity", org.ids["pilot"])
    sync(db_url, settings, fake)
    change = kit.changes().iloc[0]
    assert change["status"] == "pending" and "Deals over 200k need approval" in change["last_error"]
    assert change["attempts"] == 2
    assert org.get("Opportunity", org.ids["pilot"])["Amount"] == 100000
    assert deal(kit)["pending"] == {"amount": 250000.0}


def test_a_refusal_echoing_the_session_id_is_stored_without_it(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=120000)
    fake.fail_next(400, path_contains=f"/sobjects/Opportunity/{org.ids['pilot']}",
                   code="INVALID_FIELD", msg="rejected\n", echo_headers=True)  # fmt: skip
    assert "waiting 1" in sync(db_url, settings, fake).line()
    error = kit.changes().iloc[0]["last_error"]
    assert error.startswith("INVALID_FIELD: rejected") and "request headers:" in error
    assert "Authorization: Bearer ***" in error and "s3cr3t" not in error
    assert len(error) <= 300 and error.isprintable()


def test_a_push_whose_commit_was_lost_is_counted_once_never_sent_twice(
    db_url, settings, fake, org, write_back
):
    """The agent PATCHed, then died before it committed: the next run finds Salesforce
    already holding the value (412 over the stamp the person saw) and marks it pushed."""
    from oppkit.sources.salesforce_client import SalesforceClient

    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.update_opportunity("Acme pilot", amount=130000)
    org.advance(minutes=5)
    client = SalesforceClient.connect(
        SalesforceSettings(
            instance_url=fake.url, session_id=fake.session_id, ca_bundle=fake.ca_path
        )  # fmt: skip
    )
    seen = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert (
        update_record(client, "Opportunity", org.ids["pilot"], {"Amount": 130000}, seen) == "done"
    )
    org.advance(minutes=5)
    assert "pushed 1" in sync(db_url, settings, fake).line()
    assert [p.body for p in fake.patches] == [{"Amount": 130000}, {"Amount": 130000.0}]
    assert org.get("Opportunity", org.ids["pilot"])["Amount"] == 130000
    assert list(kit.changes()["status"]) == ["pushed"]
    assert len(kit.stage_history(opportunity="Acme pilot").query("origin == 'edit'")) == 1


def test_privacy_and_the_workflow_step_survive_every_sync(db_url, settings, fake, org, write_back):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()
    oppkit.actions.set_private(kit, "Acme pilot", True)
    kit.workflow.transition("Acme pilot", "Qualify")  # Discovery -> Qualified, same stage
    for amount in (101000, 102000, 103000):
        org.advance(minutes=5)
        org.update("Opportunity", org.ids["pilot"], Amount=amount)
        sync(db_url, settings, fake)
    shown = deal(kit)
    assert (shown["amount"], shown["is_private"], shown["step"]) == (103000, True, "Qualified")
    assert oppkit.connect(db_url, user="someone@northwind.example").opportunities().empty
    # Salesforce moves the deal to another stage: its step follows, and says so
    org.advance(minutes=5)
    org.update("Opportunity", org.ids["pilot"], StageName="Negotiation/Review")
    sync(db_url, settings, fake)
    assert deal(kit)["step"] == "Negotiation"
    moved = kit.stage_history(opportunity="Acme pilot").query("field == 'step'")
    assert moved["origin"].iloc[0] == "sync"  # newest first


def test_a_transition_that_changes_the_stage_is_pushed_with_its_history(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()
    kit.workflow.transition("Acme pilot", "Qualify")
    kit.workflow.transition("Acme pilot", "Send proposal", deliver=False)
    shown = deal(kit)
    assert (shown["step"], shown["stage"]) == ("Proposal sent", "Needs Analysis")
    assert shown["pending"] == {"stage": "Proposal/Price Quote"}
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    assert org.get("Opportunity", org.ids["pilot"])["StageName"] == "Proposal/Price Quote"
    shown = deal(kit)
    assert (shown["step"], shown["stage"], shown["pending"]) == (
        "Proposal sent", "Proposal/Price Quote", None,
    )  # fmt: skip
    history = kit.stage_history(opportunity="Acme pilot")
    stage_rows = history.query("field == 'stage' and origin == 'transition'")
    assert list(stage_rows["new_value"]) == ["Proposal/Price Quote"]
    # Salesforce records the change in its own history too: still one row for one change
    org.add("OpportunityHistory", OpportunityId=org.ids["pilot"], StageName="Proposal/Price Quote",
            Amount=100000, CloseDate=date(2027, 3, 31),
            CreatedDate=datetime.now(UTC))  # when the push landed  # fmt: skip
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    assert deal(kit)["step"] == "Proposal sent"  # the pulled stage leaves the step alone
    history = kit.stage_history(opportunity="Acme pilot")
    assert len(history.query("field == 'stage' and new_value == 'Proposal/Price Quote'")) == 1


def test_every_open_demo_deal_can_move_once_the_default_workflow_loads(tmp_path):
    from oppkit.config import Settings
    from oppkit.demo import build_demo
    from oppkit.sync import sync_salesforce_export

    files, url, _ = build_demo(tmp_path / "demo", progress=False)
    kit = oppkit.connect(url)
    loaded = kit.workflow.load()
    assert loaded.unplaced == []
    open_deals = kit.opportunities(open_only=True)
    assert len(open_deals) >= 13
    for deal_id in open_deals["id"]:
        assert not kit.workflow.available(deal_id).empty, deal_id
    funnel = [
        "Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
        "Proposal/Price Quote", "Id. Decision Makers", "Perception Analysis",
        "Negotiation/Review", "Closed Won", "Closed Lost", "On Hold",
    ]  # fmt: skip
    stages = kit.stages()
    assert list(stages["name"]) == funnel and stages["sort_order"].is_unique
    steps = kit.opportunities()[["id", "step"]]
    # Salesforce's stages synced again: the workflow's order, statuses and steps stay
    settings = Settings(database_url=url, internal_domains=tuple(files.internal_domains))
    sync_salesforce_export(files.salesforce_dir, db=url, settings=settings)
    again = kit.stages()
    assert list(again["name"]) == funnel and again["sort_order"].is_unique
    assert (
        again.set_index("name")["status"].to_dict() == stages.set_index("name")["status"].to_dict()
    )
    assert kit.opportunities()[["id", "step"]].equals(steps)
    assert list(kit.pipeline()["stage"][:3]) == funnel[:3]
