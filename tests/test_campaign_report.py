"""kit.campaign_report: every figure of a small known org, worked out by hand; privacy,
``since`` and the chart. On SQLite and PostgreSQL.

The org is a Salesforce Data Export synced with the real export agent (so deals, members
and leads carry their CreatedDate), plus a campaign and a deal made in oppkit:

* "Webinar $50 off" (W): cost 4,000 of 5,000. Members: contacts C1, C2, C3 (10 Feb..20
  Feb), C4 (lead L2 converted to C4), leads L1 and L3; one deleted member. Its leads:
  L1, L3 (members), L2 (converted to member C4), L4 (converted to member C3): 4, 2 of them
  converted. Deals: O1 won 10,000 (15 Jan -> 14 Feb: 30 days), O2 won 20,000 (1 Feb 23:30
  UTC -> 21 Feb: 20 days), O3 lost 5,000, O4 open 7,000, O5 open without amount, O6 Ben's
  *private* won 100,000 (16 Jan -> 31 Jan: 15 days), O7 deleted.
* "Trade show" (T): budget 20,000, no actual cost. Members: C1, C4, leads L1 and L2 (L2
  also converted to C4: once). Deals: O8 open 50,000, O9 lost 8,000.
* "Email nurture" (E): planned, nothing yet.
* "Save $5^{ on $10" (local, oppkit): cost 1,000, one open deal of 3,000 made today.
* A deleted campaign, not in the report.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect

import oppkit
from oppkit.campaign_report import REPORT_COLUMNS, campaign_chart
from oppkit.db.schema import campaign_members
from oppkit.sync import sync_salesforce_export
from tests.support import AVA, write_csv

BEN = "ben.okafor@northwind.example"
W, T, E, LOCAL = "Webinar $50 off", "Trade show", "Email nurture", "Save $5^{ on $10"
NA = pd.NA


def _write_org(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write_csv(d / "OpportunityStage.csv", "Id,MasterLabel,IsActive,SortOrder,IsClosed,IsWon,DefaultProbability", [
        ["01J1", "Prospecting", "true", "1", "false", "false", "10"],
        ["01J2", "Proposal/Price Quote", "true", "2", "false", "false", "60"],
        ["01J3", "Closed Won", "true", "3", "true", "true", "100"],
        ["01J4", "Closed Lost", "true", "4", "true", "false", "0"],
    ])  # fmt: skip
    write_csv(d / "User.csv", "Id,Name,Email,IsActive", [
        ["005A", "Ava Patel", AVA, "true"],
        ["005B", "Ben Okafor", BEN, "true"],
    ])  # fmt: skip
    write_csv(d / "Account.csv", "Id,Name,Website,OwnerId", [
        ["001A", "Acme Robotics", "acme-robotics.example", "005A"],
        ["001G", "Globex", "globex.example", "005B"],
    ])  # fmt: skip
    write_csv(d / "Contact.csv", "Id,AccountId,Name,Email", [
        ["003C1", "001A", "Carla One", "carla@acme-robotics.example"],
        ["003C2", "001A", "Carl Two", "carl@acme-robotics.example"],
        ["003C3", "001G", "Gina Three", "gina@globex.example"],
        ["003C4", "001G", "Hank Four", "hank@globex.example"],
        ["003C5", "001G", "Ivy Five", "ivy@globex.example"],
    ])  # fmt: skip
    write_csv(d / "Campaign.csv", "Id,Name,Type,Status,StartDate,BudgetedCost,ActualCost,IsActive,IsDeleted", [
        ["701W", W, "Webinar", "Completed", "2026-01-10", "5000", "4000", "false", "false"],
        ["701T", T, "Trade Show", "In Progress", "2026-03-01", "20000", "", "true", "false"],
        ["701E", E, "Email", "Planned", "2026-05-01", "", "", "true", "false"],
        ["701D", "Gone", "Email", "Aborted", "2026-04-01", "", "900", "false", "true"],
    ])  # fmt: skip
    write_csv(d / "Opportunity.csv", "Id,Name,AccountId,OwnerId,StageName,Amount,CloseDate,Probability,IsPrivate,CampaignId,CreatedDate,IsDeleted,SystemModstamp", [
        ["006O1", "W won A", "001A", "005A", "Closed Won", "10000", "2026-02-14", "100", "false", "701W", "2026-01-15T09:00:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O2", "W won B", "001G", "005B", "Closed Won", "20000", "2026-02-21", "100", "false", "701W", "2026-02-01T23:30:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O3", "W lost", "001A", "005A", "Closed Lost", "5000", "2026-03-01", "0", "false", "701W", "2026-01-20T10:00:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O4", "W open", "001A", "005A", "Prospecting", "7000", "2026-09-30", "10", "false", "701W", "2026-02-10T10:00:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O5", "W open no amount", "001G", "005A", "Proposal/Price Quote", "", "2026-09-30", "60", "false", "701W", "2026-02-12T10:00:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O6", "W secret", "001G", "005B", "Closed Won", "100000", "2026-01-31", "100", "true", "701W", "2026-01-16T10:00:00.000Z", "false", "2026-03-01T00:00:00.000Z"],
        ["006O7", "W deleted", "001G", "005A", "Closed Won", "999", "2026-01-31", "100", "false", "701W", "2026-01-16T10:00:00.000Z", "true", "2026-03-01T00:00:00.000Z"],
        ["006O8", "T open", "001A", "005A", "Prospecting", "50000", "2026-10-31", "10", "false", "701T", "2026-03-05T10:00:00.000Z", "false", "2026-03-06T00:00:00.000Z"],
        ["006O9", "T lost", "001G", "005B", "Closed Lost", "8000", "2026-03-20", "0", "false", "701T", "2026-03-03T10:00:00.000Z", "false", "2026-03-21T00:00:00.000Z"],
        ["006OX", "No campaign", "001G", "005B", "Closed Won", "77000", "2026-03-20", "100", "false", "", "2026-03-03T10:00:00.000Z", "false", "2026-03-21T00:00:00.000Z"],
    ])  # fmt: skip
    write_csv(d / "Lead.csv", "Id,FirstName,LastName,Email,Company,Status,IsConverted,ConvertedDate,ConvertedAccountId,ConvertedContactId,CreatedDate,IsDeleted", [
        ["00QL1", "Lena", "One", "lena@initech.example", "Initech", "Open", "false", "", "", "", "2026-01-05T08:00:00.000Z", "false"],
        ["00QL2", "Hank", "Four", "hank@globex.example", "Globex", "Converted", "true", "2026-01-20", "001G", "003C4", "2026-01-06T08:00:00.000Z", "false"],
        ["00QL3", "Lou", "Three", "lou@hooli.example", "Hooli", "Open", "false", "", "", "", "2026-02-15T08:00:00.000Z", "false"],
        ["00QL4", "Gina", "Three", "gina@globex.example", "Globex", "Converted", "true", "2026-01-25", "001G", "003C3", "2026-01-07T08:00:00.000Z", "false"],
    ])  # fmt: skip
    write_csv(d / "CampaignMember.csv", "Id,CampaignId,ContactId,LeadId,Status,HasResponded,CreatedDate,IsDeleted", [
        ["00vM1", "701W", "003C1", "", "Sent", "false", "2026-01-10T09:00:00.000Z", "false"],
        ["00vM2", "701W", "003C2", "", "Responded", "true", "2026-01-10T09:00:00.000Z", "false"],
        ["00vM3", "701W", "", "00QL1", "Sent", "false", "2026-01-10T09:00:00.000Z", "false"],
        ["00vM4", "701W", "003C4", "00QL2", "Responded", "true", "2026-01-11T09:00:00.000Z", "false"],
        ["00vM5", "701W", "003C3", "", "Sent", "false", "2026-02-20T09:00:00.000Z", "false"],
        ["00vM6", "701W", "", "00QL3", "Sent", "false", "2026-02-16T09:00:00.000Z", "false"],
        ["00vM7", "701W", "003C5", "", "Sent", "false", "2026-02-16T09:00:00.000Z", "true"],
        ["00vM8", "701T", "003C1", "", "Sent", "false", "2026-03-02T09:00:00.000Z", "false"],
        ["00vM9", "701T", "", "00QL1", "Sent", "false", "2026-03-02T09:00:00.000Z", "false"],
        ["00vMA", "701T", "", "00QL2", "Sent", "false", "2026-03-02T09:00:00.000Z", "false"],
        ["00vMB", "701T", "003C4", "", "Sent", "false", "2026-03-02T09:00:00.000Z", "false"],
    ])  # fmt: skip
    return d


@pytest.fixture
def org(db_url: str, settings, tmp_path: Path) -> str:
    """The known org (module docstring) in the database at ``db_url``."""
    summary = sync_salesforce_export(_write_org(tmp_path / "export"), settings=settings)
    assert summary.errors == 0
    kit = oppkit.connect(db_url, user=AVA)
    kit.workflow.load()  # the default workflow: a local deal needs its entry step
    kit.campaigns.create(LOCAL, campaign_type="Event", start_date="2026-06-01", actual_cost=1000)
    kit.workflow.create("Local deal", campaign=LOCAL, amount=3000)
    return db_url


def expected(rows: list[tuple]) -> pd.DataFrame:
    """A report frame from literal rows (every column but ``id``), typed as the report."""
    df = pd.DataFrame(rows, columns=REPORT_COLUMNS[1:])
    df["start_date"] = [date.fromisoformat(d) for d in df["start_date"]]
    for column in ("members", "leads", "leads_converted", "opportunities", "won", "lost"):
        df[column] = df[column].astype("int64")
    for column in ("pipeline_amount", "won_amount"):
        df[column] = df[column].astype("float64")
    for column in ("win_rate", "avg_days_to_close", "budgeted_cost", "actual_cost",
                   "cost_per_won", "return_on_cost"):  # fmt: skip
        df[column] = df[column].astype("Float64")
    return df


def same(report: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        report.drop(columns="id").reset_index(drop=True), want, check_exact=False, rtol=1e-9
    )


COLUMNS = ["name", "campaign_type", "status", "start_date", "members", "leads",
           "leads_converted", "opportunities", "pipeline_amount", "won_amount", "won", "lost",
           "win_rate", "avg_days_to_close", "budgeted_cost", "actual_cost", "cost_per_won",
           "return_on_cost"]  # fmt: skip


def test_every_figure_of_every_campaign(org: str):
    kit = oppkit.connect(org, user=AVA)
    report = kit.campaign_report()
    assert list(report.columns) == REPORT_COLUMNS
    # newest first; the deleted campaign is not there; Ben's private won deal not counted
    same(report, expected([
        # name, type, status, start, members, leads, converted, opps, pipeline, won_amount,
        # won, lost, win_rate, avg days, budget, actual, cost/won, return on cost
        (LOCAL, "Event", "Planned", "2026-06-01", 0, 0, 0, 1, 3000.0, 0.0,
         0, 0, NA, NA, NA, 1000.0, NA, -1.0),
        (E, "Email", "Planned", "2026-05-01", 0, 0, 0, 0, 0.0, 0.0,
         0, 0, NA, NA, NA, NA, NA, NA),
        (T, "Trade Show", "In Progress", "2026-03-01", 4, 2, 1, 2, 50000.0, 0.0,
         0, 1, 0.0, NA, 20000.0, NA, NA, NA),
        (W, "Webinar", "Completed", "2026-01-10", 6, 4, 2, 5, 7000.0, 30000.0,
         2, 1, 2 / 3, 25.0, 5000.0, 4000.0, 2000.0, 6.5),
    ]))  # fmt: skip
    assert report.attrs["oppkit"]["frame"] == "campaign_report"

    # the same campaigns and leads the other frames list
    for name in (W, T, LOCAL):
        row = report.set_index("name").loc[name]
        assert row["leads"] == len(kit.leads(campaign=name))
        assert row["opportunities"] == len(kit.opportunities(campaign=name))
        assert row["members"] == kit.campaigns().set_index("name").loc[name, "members"]


def test_campaigns_named_come_in_the_order_given(org: str):
    kit = oppkit.connect(org, user=AVA)
    report = kit.campaign_report([T, W])
    assert list(report["name"]) == [T, W]
    assert list(report["opportunities"]) == [2, 5]
    by_frame = kit.campaign_report(kit.campaigns(status="Planned"))
    assert sorted(by_frame["name"]) == sorted([LOCAL, E])
    one = kit.campaign_report(W)  # one name, not a list
    assert list(one["won_amount"]) == [30000.0]


def test_a_private_deal_of_another_user_is_neither_counted_nor_summed(org: str):
    ava = oppkit.connect(org, user=AVA).campaign_report(W).iloc[0]
    nobody = oppkit.connect(org).campaign_report(W).iloc[0]
    ben = oppkit.connect(org, user=BEN).campaign_report(W).iloc[0]
    for row in (ava, nobody):
        assert (row["opportunities"], row["won"], row["won_amount"]) == (5, 2, 30000.0)
        assert row["avg_days_to_close"] == 25.0
    # Ben owns the private deal (won 100,000 in 15 days): he sees it counted
    assert (ben["opportunities"], ben["won"], ben["lost"], ben["won_amount"]) == (6, 3, 1, 130000.0)
    assert ben["win_rate"] == 0.75
    assert ben["avg_days_to_close"] == pytest.approx((30 + 20 + 15) / 3)
    assert ben["cost_per_won"] == pytest.approx(4000 / 3)
    assert ben["return_on_cost"] == pytest.approx((130000 - 4000) / 4000)
    assert (ben["members"], ben["leads"]) == (ava["members"], ava["leads"])


def test_since_keeps_deals_members_and_leads_created_on_or_after_it(org: str):
    kit = oppkit.connect(org, user=AVA)
    report = kit.campaign_report(since="2026-02-01")
    same(report, expected([
        # costs stay the campaign's own; the local deal was made today
        (LOCAL, "Event", "Planned", "2026-06-01", 0, 0, 0, 1, 3000.0, 0.0,
         0, 0, NA, NA, NA, 1000.0, NA, -1.0),
        (E, "Email", "Planned", "2026-05-01", 0, 0, 0, 0, 0.0, 0.0,
         0, 0, NA, NA, NA, NA, NA, NA),
        # every member joined in March; both leads were created in January
        (T, "Trade Show", "In Progress", "2026-03-01", 4, 0, 0, 2, 50000.0, 0.0,
         0, 1, 0.0, NA, 20000.0, NA, NA, NA),
        # deals O2 (1 Feb 23:30), O4, O5; members M5, M6; lead L3
        (W, "Webinar", "Completed", "2026-01-10", 2, 1, 0, 3, 7000.0, 20000.0,
         1, 0, 1.0, 20.0, 5000.0, 4000.0, 4000.0, 4.0),
    ]))  # fmt: skip
    same(kit.campaign_report(since=date(2026, 2, 1)), report.drop(columns="id"))
    same(kit.campaign_report(since=datetime(2026, 2, 1)), report.drop(columns="id"))
    # a time counts: 23:31 UTC on 1 Feb leaves O2 out; a time zone is honoured
    late = kit.campaign_report(W, since=datetime(2026, 2, 1, 23, 31, tzinfo=UTC)).iloc[0]
    assert (late["opportunities"], late["won"], late["won_amount"]) == (2, 0, 0.0)
    assert pd.isna(late["win_rate"]) and pd.isna(late["cost_per_won"])
    assert late["return_on_cost"] == -1.0
    earlier = kit.campaign_report(W, since="2026-02-02T00:29:00+01:00").iloc[0]  # 23:29 UTC
    assert earlier["opportunities"] == 3


def test_the_chart_shows_each_campaign_with_dollars_in_names(org: str):
    from matplotlib.figure import Figure

    bad = Figure()
    bad.text(0, 0, LOCAL)
    with pytest.raises(ValueError):  # the name really is bad mathtext
        bad.savefig(io.BytesIO(), format="png")

    report = oppkit.connect(org, user=AVA).campaign_report([W, T, LOCAL])
    fig = campaign_chart(report)
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")  # draws every text: no mathtext error
    ax = fig.axes[0]
    assert [len(bars) for bars in ax.containers] == [3, 3, 3]  # pipeline, won, cost
    assert [t.get_text().replace("\\$", "$") for t in ax.get_xticklabels()] == [W, T, LOCAL]
    pipeline, won, cost = ax.containers
    assert [b.get_height() for b in pipeline] == [7000.0, 50000.0, 3000.0]
    assert [b.get_height() for b in won] == [30000.0, 0.0, 0.0]
    assert [b.get_height() for b in cost] == [4000.0, 0.0, 1000.0]  # no cost drawn as 0

    empty = campaign_chart(report.iloc[0:0], title="Nothing $here")
    empty.savefig(io.BytesIO(), format="png")


def test_the_member_indexes_of_the_schema_are_the_migrated_ones(db_url: str):
    kit = oppkit.connect(db_url)  # migrated to the head
    migrated = {
        (i["name"], tuple(i["column_names"]))
        for i in inspect(kit.engine).get_indexes("campaign_members")
        if i["name"].startswith("ix_")  # PostgreSQL lists the unique constraint too
    }
    declared = {(i.name, tuple(c.name for c in i.columns)) for i in campaign_members.indexes}
    assert migrated == declared
    assert ("ix_campaign_members_lead_id_campaign_id_is_deleted",
            ("lead_id", "campaign_id", "is_deleted")) in migrated  # fmt: skip
