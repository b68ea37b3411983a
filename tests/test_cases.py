"""Cases and policies linked to deals: Salesforce Cases synced (the real client against the
wire-level fake org), on their account only unless the org names the deal; pending cases
formalised; policies linked; kit.links lists everything on a deal. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import oppkit
from oppkit.errors import OppkitError
from tests.fakes.salesforce import FakeOrg
from tests.support import small_org
from tests.support import sync_fake_salesforce as sync
from tests.workflow_support import TEST_WORKFLOW, add_account, add_person

T0 = datetime.now(UTC).replace(microsecond=0)
AVA = "ava.patel@northwind.example"

pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = small_org(T0)
    org.add_field("Case", "Opportunity__c", "reference", reference_to=["Opportunity"])
    acme = org.ids["acme"]
    bob = org.add("Contact", AccountId=acme, FirstName="Bob", LastName="Smith",
                  Email="bob.smith@acme-robotics.example")  # fmt: skip
    linked = org.add("Case", AccountId=acme, ContactId=bob, Subject="Sensor <script>x</script>",
                     Status="New", Priority="High", Opportunity__c=org.ids["pilot"])  # fmt: skip
    loose = org.add("Case", AccountId=acme, Subject="Invoice question", Status="New")
    org.ids |= {"bob": bob, "linked": linked, "loose": loose}
    return org


def test_a_case_names_its_deal_only_through_the_configured_field(db_url, settings, fake, org,
                                                                 monkeypatch):  # fmt: skip
    sync(db_url, settings, fake)  # no [salesforce] case_opportunity_field: never a guess
    kit = oppkit.connect(db_url, user=AVA)
    every = kit.cases(account="acme-robotics.example")
    assert sorted(every["subject"]) == ["Invoice question", "Sensor <script>x</script>"]
    assert every["opportunity_id"].isna().all()
    assert kit.cases(opportunity="Acme pilot").empty

    monkeypatch.setenv("OPPKIT_SF_CASE_OPPORTUNITY_FIELD", "Opportunity__c")
    org.advance(minutes=1)
    org.update("Case", org.ids["linked"], Priority="Medium")
    sync(db_url, settings, fake)
    on_deal = kit.cases(opportunity="Acme pilot")
    assert on_deal[["subject", "priority", "contact", "kind"]].values.tolist() == [
        ["Sensor <script>x</script>", "Medium", "bob.smith@acme-robotics.example", "case"]
    ]
    sync(db_url, settings, fake)  # again: nothing doubles
    assert len(kit.cases(account="acme-robotics.example")) == 2

    org.advance(minutes=1)
    org.delete("Case", org.ids["linked"])
    sync(db_url, settings, fake)
    assert kit.cases(opportunity="Acme pilot").empty
    assert kit.cases()["subject"].tolist() == ["Invoice question"]


def test_pending_cases_formalised_policies_and_links(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    pending = kit.cases.open_pending("Firmware crashes", opportunity="Acme pilot",
                                     contact="bob.smith@acme-robotics.example")  # fmt: skip
    assert kit.cases(opportunity="Acme pilot")["kind"].tolist() == ["pending"]
    loose = org.get("Case", org.ids["loose"])["CaseNumber"]
    assert kit.cases.formalise(pending, into=[loose]) == [
        int(kit.cases().set_index("case_number").loc[loose, "id"])
    ]
    cases = kit.cases(opportunity="Acme pilot").set_index("subject")
    assert cases.loc["Invoice question", "parent_id"] == pending
    assert cases.loc["Firmware crashes", "status"] == "Formalised"
    with pytest.raises(OppkitError, match="formal already"):
        kit.cases.formalise(loose)
    org.advance(minutes=1)
    org.update("Case", org.ids["loose"], Status="Working")
    sync(db_url, settings, fake)  # the org names no deal: the link formalise gave stays
    assert "Invoice question" in set(kit.cases(opportunity="Acme pilot")["subject"])

    policy = kit.policies.create("POL-1", name="Fleet cover", account="acme-robotics.example",
                                 premium=1200, start_date="2026-12-01")  # fmt: skip
    assert kit.policies(opportunity="Acme pilot").empty
    kit.policies.link("POL-1", "Acme pilot")
    assert kit.policies(opportunity="Acme pilot")["id"].tolist() == [policy]
    kit.agreements.create("acme-robotics.example", "License", start_date="2026-01-01",
                          end_date=(T0 + timedelta(days=400)).date(), contract_number="L-7")  # fmt: skip
    links = kit.links("Acme pilot")
    assert sorted(links["record_type"]) == ["agreement", "case", "pending case", "policy"]
    assert links.set_index("record_type").loc["agreement", "reference"] == "L-7"


def test_a_pending_case_needs_a_subject_and_an_account(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    with pytest.raises(OppkitError, match="needs a subject"):
        kit.cases.open_pending("  ", opportunity="Acme pilot")
    with pytest.raises(OppkitError, match="give opportunity= or account="):
        kit.cases.open_pending("Something")
    account_only = kit.cases.open_pending("Something", account="acme-robotics.example")
    assert kit.cases().set_index("id").loc[account_only, "opportunity"] is None


def test_links_lists_what_the_workflow_triggers_made(db_url, tmp_path):
    path = tmp_path / "workflow.toml"
    path.write_text(TEST_WORKFLOW, encoding="utf-8")
    kit = oppkit.connect(db_url)
    add_person(kit.engine, AVA, "Ava Patel", internal=True)
    kit.workflow.load(path)
    kit = oppkit.connect(db_url, user=AVA)
    acme = add_account(kit.engine, "Acme", "acme.example")
    deal = kit.workflow.create("Acme pilot", account=acme, amount=7000, seats=3)
    kit.workflow.transition(deal, "Start")
    kit.workflow.transition(deal, "Send proposal", close_date="2026-06-30", decision_maker="CEO",
                            deliver=False)  # fmt: skip
    kit.workflow.transition(deal, "Close won")
    kit.policies.create("POL-9", opportunity=deal)
    links = kit.links(deal)
    assert list(links["record_type"]) == ["policy", "invoice", "registration", "training_token"]
    assert links.set_index("record_type").loc["invoice", "reference"].startswith("INV-")
    assert links.set_index("record_type").loc["training_token", "details"]["seats"] == 3
