"""Lifecycle stages and the Salesforce status they map to, both ways: a status changed in
Salesforce moves the stage on sync (the manual lock wins); with write-back on, a stage set
in oppkit pushes its status to the Contact or Account. The real simple-salesforce client
against the wire-level fake org (tests/fakes/salesforce.py), into SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pandas as pd
import pytest

import oppkit
from oppkit.db.schema import lifecycle_history
from oppkit.sources.salesforce_client import SalesforceSettings
from oppkit.sync import sync_salesforce
from tests.fakes.salesforce import FakeOrg
from tests.support import count

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AVA = "ava.patel@northwind.example"
JO, KIM, LEE = "jo@acme-robotics.example", "kim@acme-robotics.example", "lee@acme-robotics.example"
FIELD = "Lifecycle_Status__c"  # a custom picklist on Contact and Account

pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = FakeOrg(now=T0)
    for sobject in ("Contact", "Account"):
        org.add_field(sobject, FIELD, "picklist")
    ava = org.add("User", FirstName="Ava", LastName="Patel", Email=AVA, Username="ava")
    acme = org.add("Account", Name="Acme Robotics", Website="acme-robotics.example", OwnerId=ava,
                   Lifecycle_Status__c="Prospect")  # fmt: skip
    people = {
        email: org.add("Contact", AccountId=acme, FirstName=email[0].upper(), LastName="Acme",
                       Email=email, Lifecycle_Status__c=status)
        for email, status in ((JO, "Working - Contacted"), (KIM, None), (LEE, None))
    }  # fmt: skip
    org.ids = {"ava": ava, "acme": acme, **people}  # type: ignore[attr-defined]
    return org


@pytest.fixture
def status_fields(monkeypatch):
    monkeypatch.setenv("OPPKIT_SF_CONTACT_STATUS_FIELD", FIELD)
    monkeypatch.setenv("OPPKIT_SF_ACCOUNT_STATUS_FIELD", FIELD)


@pytest.fixture
def write_back(monkeypatch, status_fields):
    monkeypatch.setenv("OPPKIT_SALESFORCE_WRITE_BACK", "1")


@pytest.fixture
def kit(db_url) -> oppkit.Kit:
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()  # the default lifecycle: its stages carry Salesforce statuses
    return kit


def sync(db_url, settings, fake):  # noqa: ANN001, ANN201
    login = SalesforceSettings(instance_url=fake.url, session_id=fake.session_id,
                               ca_bundle=fake.ca_path)  # fmt: skip
    return sync_salesforce(db_url, settings, salesforce=login)


def stage(kit: oppkit.Kit, email: str) -> str | None:
    value = kit.people().set_index("email").loc[email, "lifecycle_stage"]
    return None if pd.isna(value) else value


def history(kit: oppkit.Kit, ref: str) -> list[list]:
    rows = kit.lifecycle.history(ref)[["old_stage", "new_stage", "reason"]]
    return rows.fillna("-").values.tolist()


def history_rows(db_url: str) -> int:
    return count(db_url, lifecycle_history)


def they_set(org: FakeOrg, email: str, status: str) -> None:
    """Someone sets the contact's status in Salesforce, five minutes on."""
    org.advance(minutes=5)
    org.update("Contact", org.ids[email], Lifecycle_Status__c=status)


def test_a_status_changed_in_salesforce_moves_the_stage_with_history(
    db_url, settings, fake, org, kit, status_fields, caplog
):
    sync(db_url, settings, fake)
    assert (stage(kit, JO), stage(kit, KIM)) == ("Contacted", None)
    they_set(org, JO, "Working - Meeting")
    sync(db_url, settings, fake)
    assert stage(kit, JO) == "Meeting booked"
    assert history(kit, JO) == [
        ["Contacted", "Meeting booked", "salesforce"], ["-", "Contacted", "salesforce"],
    ]  # fmt: skip
    rows = history_rows(db_url)
    org.advance(minutes=1)
    sync(db_url, settings, fake)  # the overlap reads Jo again: nothing changes
    assert history_rows(db_url) == rows
    # a status no stage maps to is left alone, and said once, not per contact
    for email in (KIM, LEE):
        they_set(org, email, "Nurture")
    with caplog.at_level(logging.WARNING, logger="oppkit.sync.writer"):
        sync(db_url, settings, fake)
    assert (stage(kit, KIM), stage(kit, LEE)) == (None, None)
    assert len([r for r in caplog.records if "'Nurture'" in r.getMessage()]) == 1
    assert history_rows(db_url) == rows


def test_a_locked_stage_keeps_what_was_set_by_hand(db_url, settings, fake, org, kit, status_fields):
    sync(db_url, settings, fake)
    kit.lifecycle.set(JO, "Unsubscribed")  # locks
    they_set(org, JO, "Working - Engaged")
    sync(db_url, settings, fake)
    assert stage(kit, JO) == "Unsubscribed"
    assert history(kit, JO) == [
        ["Contacted", "Unsubscribed", "manual"], ["-", "Contacted", "salesforce"],
    ]  # fmt: skip
    assert fake.patches == [] and kit.changes().empty  # write-back is off


def test_with_write_back_on_a_stage_set_here_is_pushed_and_the_next_sync_changes_nothing(
    db_url, settings, fake, org, kit, write_back
):
    sync(db_url, settings, fake)
    kit.lifecycle.set(JO, "Engaged", by=AVA)
    assert stage(kit, JO) == "Engaged"  # the stage is oppkit's: set at once
    change = kit.changes().iloc[0]
    assert (change["sobject"], change["person"], change["field"], change["status"]) == (
        "Contact", JO, "lifecycle_status", "pending",
    )  # fmt: skip
    assert (change["old_value"], change["new_value"]) == (
        "Working - Contacted",
        "Working - Engaged",
    )
    assert pd.isna(change["opportunity"]) and change["requested_by"] == AVA
    org.advance(minutes=5)
    assert "pushed 1, conflicts 0, waiting 0" in sync(db_url, settings, fake).line()
    assert org.get("Contact", org.ids[JO])[FIELD] == "Working - Engaged"
    (patch,) = fake.patches
    assert (patch.id, patch.body) == (org.ids[JO], {FIELD: "Working - Engaged"})
    assert patch.headers["If-Unmodified-Since"] == "Mon, 02 Nov 2026 09:00:00 GMT"
    assert list(kit.changes()["status"]) == ["pushed"]
    rows = history_rows(db_url)
    for _ in range(2):
        org.advance(minutes=5)
        sync(db_url, settings, fake)
    assert (stage(kit, JO), history_rows(db_url), len(fake.patches)) == ("Engaged", rows, 1)
    # a stage of the same status as Salesforce's has nothing to push
    kit.lifecycle.set(JO, "Engaged")
    assert list(kit.changes()["status"]) == ["pushed"]


def test_with_write_back_off_nothing_is_pushed_and_the_stage_changes_here(
    db_url, settings, fake, org, kit, status_fields
):
    sync(db_url, settings, fake)
    kit.lifecycle.set(JO, "Engaged")  # never refused: the stage is oppkit's
    assert stage(kit, JO) == "Engaged" and kit.changes().empty
    for _ in range(2):
        org.advance(minutes=5)
        sync(db_url, settings, fake)
    assert fake.patches == [] and org.get("Contact", org.ids[JO])[FIELD] == "Working - Contacted"
    assert stage(kit, JO) == "Engaged"  # a sync does not undo it: Salesforce's is unchanged
    they_set(org, JO, "Working - Meeting")
    sync(db_url, settings, fake)
    assert stage(kit, JO) == "Meeting booked"  # a status changed there still moves it


@pytest.mark.parametrize("keep", ["mine", "theirs"])
def test_a_status_conflict_is_shown_and_settled(db_url, settings, fake, org, kit, write_back, keep):
    sync(db_url, settings, fake)
    kit.lifecycle.set(JO, "Engaged", by=AVA)
    they_set(org, JO, "Working - Meeting")  # someone, in Salesforce
    org.advance(minutes=5)
    assert "conflicts 1" in sync(db_url, settings, fake).line()
    assert org.get("Contact", org.ids[JO])[FIELD] == "Working - Meeting"  # not overwritten
    conflict = kit.changes(status="conflict").iloc[0]
    assert (conflict["person"], conflict["new_value"], conflict["their_value"]) == (
        JO, "Working - Engaged", "Working - Meeting",
    )  # fmt: skip
    assert stage(kit, JO) == "Engaged"  # the read-back leaves a stage whose change waits
    with pytest.raises(oppkit.OppkitError, match="kit.lifecycle.resolve_conflict"):
        kit.resolve_conflict(JO, "lifecycle_status", keep=keep)
    kit.lifecycle.resolve_conflict(JO, keep=keep, by=AVA)
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    expected = {"mine": ("Working - Engaged", "Engaged", "pushed"),
                "theirs": ("Working - Meeting", "Meeting booked", "dropped")}[keep]  # fmt: skip
    assert (org.get("Contact", org.ids[JO])[FIELD], stage(kit, JO),
            kit.changes()["status"].iloc[0]) == expected  # fmt: skip


def test_an_account_status_reads_back_and_a_rule_pushes_its_new_stage(
    db_url, fake, org, tmp_path, monkeypatch
):
    (tmp_path / "oppkit.toml").write_text(
        f'[salesforce]\nwrite_back = true\naccount_status_field = "{FIELD}"\n'
    )  # contacts' status: no field named, so theirs is neither read nor pushed
    monkeypatch.chdir(tmp_path)
    settings = oppkit.load_settings(db_url)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()
    sync(db_url, settings, fake)
    accounts = kit.accounts().set_index("name")
    assert accounts.loc["Acme Robotics", "lifecycle_stage"] == "Target"  # first of "Prospect"
    assert stage(kit, JO) is None
    org.advance(minutes=5)
    won = org.add("Opportunity", Name="Acme fleet", AccountId=org.ids["acme"],
                  OwnerId=org.ids["ava"], StageName="Closed Won", Amount=50000,
                  CloseDate=date(2026, 10, 30))  # fmt: skip
    org.add("OpportunityContactRole", OpportunityId=won, ContactId=org.ids[JO],
            Role="Decision Maker")  # fmt: skip
    sync(db_url, settings, fake)
    moved = kit.lifecycle.apply_rules()
    assert sorted(zip(moved["kind"], moved["new_stage"], strict=True)) == [
        ("account", "Customer"), ("contact", "Customer"),
    ]  # fmt: skip
    (change,) = kit.changes().itertuples()  # the contact's is not queued: no field named
    assert (change.sobject, change.account, change.origin, change.new_value) == (
        "Account", "Acme Robotics", "rule", "Customer - Direct",
    )  # fmt: skip
    org.advance(minutes=5)
    assert "pushed 1" in sync(db_url, settings, fake).line()
    assert org.get("Account", org.ids["acme"])[FIELD] == "Customer - Direct"
    rows = history_rows(db_url)
    org.advance(minutes=5)
    sync(db_url, settings, fake)
    assert kit.accounts().set_index("name").loc["Acme Robotics", "lifecycle_stage"] == "Customer"
    assert history_rows(db_url) == rows and len(fake.patches) == 1
