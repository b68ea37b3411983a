"""Campaigns and leads: synced from Salesforce (the real client against the wire-level fake
org), read as frames, deals stamped with campaigns (write-back on and off), leads accepted
into the campaign's process, contacts added to campaigns twice without duplicates.
SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import pytest

import oppkit
from oppkit.errors import OppkitError
from oppkit.writeback import WriteBackOff
from tests.fakes.salesforce import FakeOrg
from tests.support import small_org
from tests.support import sync_fake_salesforce as sync

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AVA = "ava.patel@northwind.example"
WEBINAR_PROCESS = """
[processes."Webinar follow-up"]
new_account = "New lead"
existing_account = "New lead"
"""
UPSELL_PROCESS = """
[processes."Webinar follow-up"]
new_account = "New lead"
existing_account = "Up-sell discovery"
"""

pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = small_org(T0)
    acme = org.ids["acme"]
    bob = org.add("Contact", AccountId=acme, FirstName="Bob", LastName="Smith",
                  Email="bob.smith@acme-robotics.example")  # fmt: skip
    summit = org.add("Campaign", Name="Data Summit", Type="Conference", Status="Completed",
                     StartDate="2026-09-01", EndDate="2026-09-02", BudgetedCost=50000,
                     ActualCost=42000, ExpectedRevenue=300000, IsActive=False)  # fmt: skip
    webinar = org.add("Campaign", Name="Spring <b>Webinar</b>", Type="Webinar",
                      Status="In Progress", ParentId=summit, IsActive=True)  # fmt: skip
    nora = org.add("Lead", FirstName="Nora", LastName="Lindqvist", Company="Soylent Foods",
                   Email="Nora.Lindqvist@soylent.example", Status="Open - Not Contacted",
                   LeadSource="Webinar", OwnerId=org.ids["ava"])  # fmt: skip
    bob_member = org.add("CampaignMember", CampaignId=summit, ContactId=bob, Status="Responded")
    member = org.add("CampaignMember", CampaignId=webinar, LeadId=nora, Status="Sent")
    org.ids |= {"bob": bob, "summit": summit, "webinar": webinar, "nora": nora, "member": member,
                "bob_member": bob_member}  # fmt: skip
    return org


@pytest.fixture
def write_back(monkeypatch):
    monkeypatch.setenv("OPPKIT_SALESFORCE_WRITE_BACK", "1")


def test_campaigns_leads_and_members_arrive_and_follow_changes_and_deletions(
    db_url, settings, fake, org
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    camps = kit.campaigns().set_index("name")
    summit = camps.loc["Data Summit"]
    assert (summit.budgeted_cost, summit.actual_cost, summit.expected_revenue) == (
        50000, 42000, 300000,
    )  # fmt: skip
    assert (summit.campaign_type, summit.start_date, summit.members) == (
        "Conference", date(2026, 9, 1), 1,
    )  # fmt: skip
    assert camps.loc["Spring <b>Webinar</b>"].parent == "Data Summit"
    assert camps.loc["Spring <b>Webinar</b>"].lead_members == 1
    lead = kit.leads().set_index("name").loc["Nora Lindqvist"]
    assert (lead.email, lead.company, lead.status, lead.campaigns) == (
        "nora.lindqvist@soylent.example", "Soylent Foods", "Open - Not Contacted",
        ["Spring <b>Webinar</b>"],
    )  # fmt: skip
    members = kit.campaign_members(campaign="Data Summit")
    assert members[["name", "member_type", "account", "status"]].values.tolist() == [
        ["Bob Smith", "contact", "Acme Robotics", "Responded"]
    ]
    assert kit.leads(campaign="Data Summit").empty

    # incremental: a status change, a response and a deletion arrive with the next sync
    org.advance(minutes=5)
    org.update("Lead", org.ids["nora"], Status="Working - Contacted")
    org.update("CampaignMember", org.ids["member"], Status="Responded")
    org.delete("Campaign", org.ids["summit"])
    sync(db_url, settings, fake)
    assert kit.leads()["status"].tolist() == ["Working - Contacted"]
    assert kit.campaign_members(campaign="Spring <b>Webinar</b>")["status"].tolist() == [
        "Responded"
    ]
    assert kit.campaigns()["name"].tolist() == ["Spring <b>Webinar</b>"]
    # a second run with no changes writes nothing new
    before = kit.campaign_members(), kit.leads()
    sync(db_url, settings, fake)
    assert len(kit.campaign_members()) == len(before[0]) and len(kit.leads()) == len(before[1])


def test_a_conversion_and_deleted_leads_and_members_arrive_with_the_next_sync(
    db_url, settings, fake, org
):
    ola = org.add("Lead", FirstName="Ola", LastName="Nordmann", Company="Nordic Ice",
                  Email="ola@nordic-ice.example", Status="Open - Not Contacted")  # fmt: skip
    org.add("CampaignMember", CampaignId=org.ids["webinar"], LeadId=ola, Status="Sent")
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    nora = kit.leads().set_index("name").loc["Nora Lindqvist"]
    assert (nora.owner, nora.owner_email, nora.lead_source, nora.is_converted) == (
        "Ava Patel", AVA, "Webinar", False,
    )  # fmt: skip
    bob = kit.campaign_members(campaign="Data Summit").iloc[0]
    assert (bob["name"], bob.has_responded, bob.first_responded_at) == (
        "Bob Smith", True, T0.date(),
    )  # fmt: skip

    org.advance(days=1)
    made = org.convert_lead(org.ids["nora"])
    org.delete("Lead", ola)
    org.delete("CampaignMember", org.ids["bob_member"])
    sync(db_url, settings, fake)
    converted = kit.leads(converted=True)
    assert converted[
        ["name", "status", "converted_account", "converted_contact", "converted_opportunity",
         "converted_at"]
    ].values.tolist() == [
        ["Nora Lindqvist", "Closed - Converted", "Soylent Foods",
         "nora.lindqvist@soylent.example", "Soylent Foods-", date(2026, 11, 3)],
    ]  # fmt: skip
    assert converted["converted_opportunity_id"][0] == kit.scope.opportunity_id(made["opportunity"])
    assert kit.leads()["name"].tolist() == ["Nora Lindqvist"]  # Ola is gone
    webinar = kit.campaign_members(campaign="Spring <b>Webinar</b>")
    assert webinar[["name", "member_type", "account"]].values.tolist() == [
        ["Nora Lindqvist", "contact", "Soylent Foods"]  # the member is her contact now
    ]
    assert kit.campaign_members(campaign="Data Summit").empty
    assert kit.campaigns().set_index("name").loc["Data Summit", "members"] == 0


def test_leads_filter_by_status_and_deals_by_several_campaigns(db_url, settings, fake, org):
    org.add("Lead", FirstName="Ola", LastName="Nordmann", Company="Nordic Ice",
            Status="Working - Contacted")  # fmt: skip
    org.update("Opportunity", org.ids["pilot"], CampaignId=org.ids["summit"])
    org.add("Opportunity", Name="Acme webinar follow-up", AccountId=org.ids["acme"],
            StageName="Prospecting", CloseDate=date(2027, 1, 31),
            CampaignId=org.ids["webinar"])  # fmt: skip
    org.add("Opportunity", Name="Acme renewal", AccountId=org.ids["acme"],
            StageName="Prospecting", CloseDate=date(2027, 2, 28))  # fmt: skip
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    assert kit.leads(status="Working - Contacted")["name"].tolist() == ["Ola Nordmann"]
    assert sorted(kit.leads(status=["Working - Contacted", "Open - Not Contacted"])["name"]) == [
        "Nora Lindqvist", "Ola Nordmann",
    ]  # fmt: skip
    assert kit.leads(status="Closed - Converted").empty

    both = kit.opportunities(campaign=["Data Summit", "Spring <b>Webinar</b>"])
    assert sorted(zip(both["name"], both["campaign"], strict=True)) == [
        ("Acme pilot", "Data Summit"), ("Acme webinar follow-up", "Spring <b>Webinar</b>"),
    ]  # fmt: skip
    frame = kit.campaigns()  # a campaigns frame names them too
    assert sorted(kit.opportunities(campaign=frame)["name"]) == sorted(both["name"])
    assert kit.opportunities(campaign="Data Summit")["name"].tolist() == ["Acme pilot"]


def test_assigning_a_salesforce_deal_is_refused_with_write_back_off(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    with pytest.raises(WriteBackOff, match="campaign of 'Acme pilot'.*change it in Salesforce"):
        kit.campaigns.assign("Acme pilot", "Data Summit")
    assert kit.changes().empty and fake.patches == []
    assert kit.opportunities(campaign="Data Summit").empty
    local = kit.campaigns.create("Roadshow", campaign_type="Event", actual_cost=1200)
    with pytest.raises(OppkitError, match="'Roadshow' is a campaign of oppkit only"):
        kit.campaigns.assign(kit.opportunities(), local)


def test_an_assignment_with_write_back_on_is_pushed_and_then_shown(
    db_url, settings, fake, org, write_back
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    done = kit.campaigns.assign(kit.opportunities(), "Data Summit")
    assert (done.assigned, len(done.queued), done.unchanged) == ([], 1, [])
    shown = kit.opportunities().set_index("name").loc["Acme pilot"]
    assert pd_isna(shown.campaign) and shown.pending == {"campaign_id": done.campaign_id}
    org.advance(minutes=5)
    summary = sync(db_url, settings, fake)
    assert "pushed 1" in summary.line()
    assert org.get("Opportunity", org.ids["pilot"])["CampaignId"] == org.ids["summit"]
    assert kit.opportunities(campaign=["Data Summit", "Spring <b>Webinar</b>"])[
        "name"
    ].tolist() == ["Acme pilot"]
    again = kit.campaigns.assign("Acme pilot", "Data Summit")
    assert (again.queued, again.unchanged) == ([], [kit.opportunities()["id"][0]])


def test_a_local_deal_takes_a_local_campaign_at_once(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()
    deal = kit.workflow.create("Acme sensors", account="Acme Robotics", amount=20_000)
    roadshow = kit.campaigns.create("Roadshow", actual_cost=1200)
    done = kit.campaigns.assign([deal], roadshow)
    assert done.assigned == [deal]
    assert kit.opportunities(campaign=roadshow)["name"].tolist() == ["Acme sensors"]
    assert kit.campaigns().set_index("name").loc["Roadshow"].opportunities == 1


def test_accepting_a_lead_starts_its_deal_in_the_campaign_process_or_the_default(
    db_url, settings, fake, org, tmp_path
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    workflow = tmp_path / "workflow.toml"
    from oppkit.workflow.definition import default_workflow_text

    workflow.write_text(default_workflow_text() + WEBINAR_PROCESS, encoding="utf-8")
    kit.workflow.load(workflow)
    assert kit.workflow.definition().processes == {
        "Webinar follow-up": {"new_account": "New lead", "existing_account": "New lead"}
    }
    with pytest.raises(OppkitError, match="Salesforce lead: convert it there"):
        kit.leads.accept("nora.lindqvist@soylent.example")

    webinar = kit.campaigns.create("Local webinar")
    kit.campaigns.set_process(webinar, "Webinar follow-up")
    lead = kit.leads.create("Raj Malhotra", email="raj@oscorp.example", company="Oscorp",
                            title="CTO", campaign=webinar)  # fmt: skip
    accepted = kit.leads.accept(lead, amount=40_000)
    deal = kit.opportunities().set_index("id").loc[accepted.opportunity_id]
    assert (deal["name"], deal.account, deal.step, deal.process, deal.campaign, deal.amount) == (
        "Oscorp — Local webinar", "Oscorp", "New lead", "Webinar follow-up", "Local webinar",
        40_000,
    )  # fmt: skip
    row = kit.leads().set_index("id").loc[lead]
    assert (row.is_converted, row.converted_account, row.converted_contact) == (
        True, "Oscorp", "raj@oscorp.example",
    )  # fmt: skip
    assert row.converted_opportunity == "Oscorp — Local webinar"
    with pytest.raises(OppkitError, match="converted already"):
        kit.leads.accept(lead)

    plain = kit.leads.create("Tom Becker", email="tom@gringotts.example", company="Gringotts")
    other = kit.leads.accept(plain)
    deal = kit.opportunities().set_index("id").loc[other.opportunity_id]
    default_entry = kit.workflow.definition().entries["new_account"]
    assert (deal.step, pd_isna(deal.process), pd_isna(deal.campaign)) == (default_entry, True, True)


def test_marketing_options_give_each_contact_one_deal_in_the_campaign_process(
    db_url, settings, fake, org, tmp_path
):
    carla = "carla.diaz@acme-robotics.example"
    org.add("Contact", AccountId=org.ids["acme"], FirstName="Carla", LastName="Diaz", Email=carla)
    org.add("Contact", FirstName="Sam", LastName="Solo", Email="sam.solo@gmail.com")
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    from oppkit.workflow.definition import default_workflow_text

    workflow = tmp_path / "workflow.toml"
    workflow.write_text(default_workflow_text() + UPSELL_PROCESS, encoding="utf-8")
    kit.workflow.load(workflow)
    spring = kit.campaigns.create("Spring push", process="Webinar follow-up")
    contacts = ["bob.smith@acme-robotics.example", carla, "sam.solo@gmail.com", AVA]

    first = kit.campaigns.add_contacts(contacts, spring)
    deals = kit.opportunities(campaign=spring).set_index("name").sort_index()
    assert deals[["account", "process", "step"]].values.tolist() == [
        ["Acme Robotics", "Webinar follow-up", "Up-sell discovery"],
        ["Acme Robotics", "Webinar follow-up", "Up-sell discovery"],
    ]
    assert list(deals.index) == ["Spring push — Bob Smith", "Spring push — Carla Diaz"]
    assert sorted(first.opportunities) == sorted(deals["id"])
    for deal in deals.itertuples():  # each contact is on their own deal
        assert kit.people(opportunity=deal.id)["name"].tolist() == [deal.Index.split(" — ")[1]]
    assert sorted((n.name, n.reason) for n in first.no_deal) == [
        ("Ava Patel", "one of our people"), ("Sam Solo", "no account"),
    ]  # fmt: skip
    assert len(first.members) == 4

    again = oppkit.connect(db_url, user=AVA).campaigns.add_contacts(contacts, "Spring push")
    assert (again.members, again.opportunities) == ([], [])
    assert len(again.already) == 4 and len(again.had_deal) == 2
    assert set(again.no_deal) == set(first.no_deal)  # still said, every run
    assert len(kit.opportunities(campaign=spring)) == 2

    plain = kit.campaigns.create("Plain push")  # no process: the default one
    kit.campaigns.add_contacts([carla], plain, create_deals=False)
    later = kit.campaigns.add_contacts([carla], plain)
    deal = kit.opportunities(campaign=plain).iloc[0]
    assert (later.members, len(later.opportunities)) == ([], 1)  # a member before, a deal now
    assert deal["name"] == "Plain push — Carla Diaz"
    default_entry = kit.workflow.definition().entries["existing_account"]
    assert (deal.step, pd_isna(deal.process)) == (default_entry, True)


def test_campaign_activities_on_an_account_are_filtered_by_kind_and_status(
    db_url, settings, fake, org
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    camp = kit.campaigns.create("Spring push")
    todo = kit.campaigns.plan_activity(camp, "Acme Robotics", "Invite the data team",
                                       assigned_to=AVA, due="2026-11-20")  # fmt: skip
    open_ = kit.campaigns.plan_activity(camp, "Acme Robotics", "Find a speaker")
    shown = kit.campaign_activities(account="Acme Robotics", kind="internal")
    assert shown[["subject", "status", "assigned_to"]].values.tolist() == [
        ["Invite the data team", "assigned", AVA]
    ]
    kit.campaigns.set_activity_status(todo, "completed")
    everything = kit.campaign_activities(account="Acme Robotics", status="all")
    assert dict(zip(everything["id"], everything["status"], strict=True)) == {
        todo: "completed", open_: "unassigned",
    }  # fmt: skip
    timeline = kit.timeline(account="Acme Robotics")
    assert {"Invite the data team", "Find a speaker"} <= set(timeline["subject"])
    with pytest.raises(OppkitError, match="status must be one of"):
        kit.campaigns.set_activity_status(todo, "someday")

    venue = kit.campaigns.plan_activity(camp, "Acme Robotics", "Book a venue", assigned_to=AVA)
    kit.campaigns.set_activity_status(open_, "In Progress", assigned_to=AVA)
    kit.campaigns.set_activity_status(todo, "cancelled")

    def subjects(status):  # noqa: ANN001, ANN202
        return sorted(kit.campaign_activities(account="Acme Robotics", status=status)["subject"])

    assert subjects("in progress") == ["Find a speaker"]
    assert subjects("cancelled") == ["Invite the data team"]
    assert subjects(["in progress", "cancelled"]) == ["Find a speaker", "Invite the data team"]
    assert subjects(None) == ["Book a venue"]  # by default: the assigned ones only
    shown = kit.campaign_activities(account="Acme Robotics", status="all").set_index("id")
    assert shown.loc[open_, "assigned_to"] == AVA and bool(shown.loc[open_, "is_planned"])
    assert not shown.loc[todo, "is_planned"] and shown.loc[venue, "status"] == "assigned"


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_a_salesforce_task_about_a_campaign_is_campaign_work_on_the_account(
    db_url, settings, fake, org
):
    org.add("Task", WhatId=org.ids["summit"], WhoId=org.ids["bob"], Subject="Call Bob about the summit",
            Status="Not Started", Priority="Normal", ActivityDate="2026-11-10")  # fmt: skip
    org.add("Task", WhoId=org.ids["bob"], Subject="Send the pilot plan", Status="Not Started",
            Priority="Normal", ActivityDate="2026-11-11")  # fmt: skip
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    work = kit.campaign_activities(account="Acme Robotics")
    assert work[["campaign", "kind", "subject", "status"]].values.tolist() == [
        ["Data Summit", "internal", "Call Bob about the summit", "assigned"]
    ]
    assert pd_isna(work["opportunity_id"][0])  # the account's, never a guessed deal
    timeline = kit.timeline(account="Acme Robotics").set_index("subject")
    assert pd_isna(timeline.loc["Call Bob about the summit", "opportunity_id"])
    assert timeline.loc["Send the pilot plan", "opportunity"] == "Acme pilot"


def test_the_demo_export_brings_campaign_costs_leads_and_conversions(db_url, settings, tmp_path):
    from oppkit.demo_data import write_demo_files
    from oppkit.sync import sync_salesforce_export

    files = write_demo_files(tmp_path / "files", seed=7)
    sync_salesforce_export(files.salesforce_dir, settings=settings)
    kit = oppkit.connect(db_url, user=AVA)
    summit = kit.campaigns().set_index("name").loc["Data & Analytics Summit"]
    assert (summit.budgeted_cost, summit.actual_cost, summit.expected_revenue) == (
        60_000, 64_000, 500_000,
    )  # fmt: skip
    assert (summit.members, summit.lead_members) == (7, 2)
    converted = kit.leads(converted=True).set_index("name")
    assert converted.loc["Bob Smith", "converted_opportunity"] == (
        "Acme Robotics — Predictive maintenance pilot"
    )
    assert converted.loc["Bob Smith", "converted_account"] == "Acme Robotics"
    assert set(kit.leads(converted=False)["status"]) == {
        "Open - Not Contacted", "Working - Contacted", "Closed - Not Converted",
    }  # fmt: skip
    assert sorted(kit.leads(campaign="Data & Analytics Summit")["name"]) == [
        "Raj Malhotra", "Tom Becker", "Zoë Ørsted",
    ]  # fmt: skip


def test_a_campaign_message_reaches_each_member_and_stands_on_their_account_timeline(
    db_url, settings, fake, org, smtp_server, monkeypatch
):
    monkeypatch.setenv("OPPKIT_SMTP_FROM", "crm@northwind.example")
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    sent = kit.campaigns.send(
        "Data Summit", "Slides from {campaign}", "Hello {first_name}, thanks for coming.",
        html="<p>Hello {name} of {account}</p>",
    )  # fmt: skip
    assert sent.failed == [] and len(sent.messages) == 1
    [mail] = smtp_server.to("bob.smith@acme-robotics.example")
    assert mail["Subject"] == "Slides from Data Summit"
    assert "Hello Bob, thanks for coming." in mail.get_body(("plain",)).get_content()
    external = kit.campaign_activities(account="Acme Robotics", kind="external")
    assert external[["campaign", "activity_kind", "subject", "status"]].values.tolist() == [
        ["Data Summit", "email", "Slides from Data Summit", "sent"]
    ]
    timeline = kit.timeline(account="Acme Robotics").set_index("subject")
    assert timeline.loc["Slides from Data Summit", "direction"] == "outbound"


def test_a_campaign_message_that_cannot_be_sent_shows_failed_and_is_retried(
    db_url, settings, fake, org, smtp_server, monkeypatch
):
    from tests.servers.net import free_port

    monkeypatch.setenv("OPPKIT_SMTP_FROM", "crm@northwind.example")
    real_port = os.environ["OPPKIT_SMTP_PORT"]
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(free_port()))  # nobody listens there
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    sent = kit.campaigns.send("Data Summit", "Slides", "Hello {first_name}")
    assert sent.failed == sent.messages
    assert kit.campaign_activities(kind="external")["status"].tolist() == ["failed"]
    monkeypatch.setenv("OPPKIT_SMTP_PORT", real_port)
    kit.workflow.deliver()
    assert kit.campaign_activities(kind="external")["status"].tolist() == ["sent"]
    assert len(smtp_server.to("bob.smith@acme-robotics.example")) == 1


def test_frames_lead_from_campaigns_to_their_deals_and_people(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()
    spring = kit.campaigns.create("Spring push")
    kit.people(account="Acme Robotics").oppkit.add_to_campaign(spring, create_deals=False)
    local = kit.workflow.create("Acme sensors", account="Acme Robotics")
    deals = kit.opportunities()
    deals[deals["id"] == local].oppkit.assign_campaign(spring)
    chosen = kit.campaigns().query("name == 'Spring push'")
    assert chosen.oppkit.opportunities()["name"].tolist() == ["Acme sensors"]
    assert sorted(chosen.oppkit.people()["email"]) == sorted(
        kit.people(account="Acme Robotics")["email"]
    )
