"""Every activity on the right deal: mail and Salesforce activities matched to the deal that
was live when they happened and whose people took part, else to the account only; matched
again, incrementally, when deals or members change. On SQLite and PostgreSQL.

The org: Wayne Foods has a lost pilot (autumn 2025), a private board-reporting deal won
on 2 Feb 2026 and a public renewal open since August 2025; Globex has two open deals,
"analytics" and "expansion" (Hank is the expansion's decision maker, Gina is on both);
Acme one open deal with a contact; Initech one open deal without any.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, select

import oppkit
from oppkit.actions import NotAllowed, add_member, link_activity, set_private
from oppkit.db.schema import activities
from oppkit.errors import OppkitError
from oppkit.scope import NotFoundError
from oppkit.sync import sync_mail, sync_salesforce_export
from tests.support import make_email, write_csv, write_mbox

AVA = "ava.patel@northwind.example"  # owns the public deals
BEN = "ben.okafor@northwind.example"  # owns the private board deal
BRUCE = "bruce@wayne-foods.example"  # the board deal's decision maker
ALFRED = "alfred@wayne-foods.example"  # the renewal's contact
LUCIUS = "lucius@wayne-foods.example"  # the lost pilot's contact
HANK = "hank@globex.example"  # decision maker of "Globex expansion"
GINA = "gina@globex.example"  # contact of both Globex deals
IVY = "ivy@globex.example"  # on no deal (yet)
JO = "jo@acme.example"  # contact of "Acme pilot"
KIM = "kim@acme.example"  # Jo's colleague, on no deal
PAT = "pat@initech.example"  # Initech's deal has no contact roles

BOARD = "Wayne Foods — Board reporting pack"
WON = datetime(2026, 2, 2, 16, tzinfo=UTC)  # the board deal's move to Closed Won


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_org(d: Path, tasks: list[list[str]] | None = None) -> Path:
    """A Salesforce Data Export of the org above (with CreatedDate and stage history)."""
    d.mkdir(parents=True, exist_ok=True)
    write_csv(d / "OpportunityStage.csv", "Id,MasterLabel,IsActive,SortOrder,IsClosed,IsWon,DefaultProbability", [
        ["01J000000000001AAA", "Prospecting", "true", "1", "false", "false", "10"],
        ["01J000000000003AAA", "Closed Won", "true", "3", "true", "true", "100"],
        ["01J000000000004AAA", "Closed Lost", "true", "4", "true", "false", "0"],
    ])  # fmt: skip
    write_csv(d / "User.csv", "Id,Name,Email,Title,IsActive", [
        ["005000000000001AAA", "Ava Patel", AVA, "AE", "true"],
        ["005000000000002AAA", "Ben Okafor", BEN, "AE", "true"],
    ])  # fmt: skip
    write_csv(d / "Account.csv", "Id,Name,Website,OwnerId", [
        ["001000000000001AAA", "Wayne Foods", "wayne-foods.example", "005000000000001AAA"],
        ["001000000000002AAA", "Globex", "globex.example", "005000000000001AAA"],
        ["001000000000003AAA", "Acme", "acme.example", "005000000000001AAA"],
        ["001000000000004AAA", "Initech", "initech.example", "005000000000001AAA"],
    ])  # fmt: skip
    write_csv(d / "Contact.csv", "Id,AccountId,Name,Email,Title", [
        ["003000000000001AAA", "001000000000001AAA", "Bruce", BRUCE, "CFO"],
        ["003000000000002AAA", "001000000000001AAA", "Alfred", ALFRED, "COO"],
        ["003000000000003AAA", "001000000000001AAA", "Lucius", LUCIUS, "CTO"],
        ["003000000000004AAA", "001000000000002AAA", "Hank", HANK, "CEO"],
        ["003000000000005AAA", "001000000000002AAA", "Gina", GINA, "Analyst"],
        ["003000000000006AAA", "001000000000002AAA", "Ivy", IVY, "Buyer"],
        ["003000000000007AAA", "001000000000003AAA", "Jo", JO, "CTO"],
        ["003000000000008AAA", "001000000000003AAA", "Kim", KIM, "Ops"],
        ["003000000000009AAA", "001000000000004AAA", "Pat", PAT, "CIO"],
    ])  # fmt: skip
    ava, ben = "005000000000001AAA", "005000000000002AAA"
    write_csv(d / "Opportunity.csv", "Id,Name,AccountId,OwnerId,StageName,Amount,CloseDate,IsPrivate,CreatedDate", [
        ["006000000000001AAA", "Wayne pilot", "001000000000001AAA", ava, "Closed Lost", "5000", "2025-11-14", "false", "2025-09-01T09:00:00.000Z"],
        ["006000000000002AAA", BOARD, "001000000000001AAA", ben, "Closed Won", "15000", "2026-02-02", "true", "2025-12-01T09:00:00.000Z"],
        ["006000000000003AAA", "Wayne renewal", "001000000000001AAA", ava, "Prospecting", "40000", "2026-06-30", "false", "2025-08-01T09:00:00.000Z"],
        ["006000000000004AAA", "Globex analytics", "001000000000002AAA", ava, "Prospecting", "", "2026-06-30", "false", "2025-11-01T09:00:00.000Z"],
        ["006000000000005AAA", "Globex expansion", "001000000000002AAA", ava, "Prospecting", "", "2026-06-30", "false", "2025-11-01T09:00:00.000Z"],
        ["006000000000006AAA", "Acme pilot", "001000000000003AAA", ava, "Prospecting", "", "2026-06-30", "false", "2025-10-01T09:00:00.000Z"],
        ["006000000000007AAA", "Initech rollout", "001000000000004AAA", ava, "Prospecting", "", "2026-06-30", "false", "2025-10-01T09:00:00.000Z"],
    ])  # fmt: skip
    write_csv(d / "OpportunityContactRole.csv", "Id,OpportunityId,ContactId,Role,IsPrimary", [
        ["00K000000000001AAA", "006000000000002AAA", "003000000000001AAA", "Decision Maker", "true"],
        ["00K000000000002AAA", "006000000000003AAA", "003000000000002AAA", "Business User", "true"],
        ["00K000000000003AAA", "006000000000001AAA", "003000000000003AAA", "Technical Buyer", "true"],
        ["00K000000000004AAA", "006000000000005AAA", "003000000000004AAA", "Decision Maker", "true"],
        ["00K000000000005AAA", "006000000000004AAA", "003000000000005AAA", "Evaluator", "true"],
        ["00K000000000007AAA", "006000000000005AAA", "003000000000005AAA", "Evaluator", "false"],
        ["00K000000000006AAA", "006000000000006AAA", "003000000000007AAA", "Technical Buyer", "true"],
    ])  # fmt: skip
    write_csv(d / "OpportunityHistory.csv", "Id,OpportunityId,StageName,Amount,CloseDate,CreatedDate,CreatedById", [
        ["008000000000001AAA", "006000000000001AAA", "Prospecting", "5000", "2025-11-14", "2025-09-01T09:00:00.000Z", ava],
        ["008000000000002AAA", "006000000000001AAA", "Closed Lost", "5000", "2025-11-14", "2025-11-14T12:00:00.000Z", ava],
        ["008000000000003AAA", "006000000000002AAA", "Prospecting", "15000", "2026-02-02", "2025-12-01T09:00:00.000Z", ben],
        ["008000000000004AAA", "006000000000002AAA", "Closed Won", "15000", "2026-02-02", _ts(WON), ben],
    ])  # fmt: skip
    write_csv(d / "Task.csv", "Id,WhoId,WhatId,AccountId,OwnerId,Subject,Description,ActivityDate,Status,IsClosed,TaskSubtype,CompletedDateTime,CreatedDate", tasks or [])  # fmt: skip
    return d


def mail(
    sender: str, to: str, subject: str, when: datetime, body: str = "Hello.", cc: str | None = None
) -> object:
    return make_email(sender=sender, to=[to], subject=subject, body=body, when=when,
                      message_id=f"{subject.replace(' ', '-')}@test", cc=[cc] if cc else None)  # fmt: skip


def sync(db_url: str, settings, tmp_path: Path, mails: list, name: str = "m") -> oppkit.Kit:  # noqa: ANN001
    sync_mail(write_mbox(tmp_path / f"{name}.mbox", mails), settings=settings)
    return oppkit.connect(db_url)


def deal_of(kit, subject: str) -> str | None:  # noqa: ANN001
    """The deal an activity is on (as its owner sees it), None when on the account only."""
    tl = oppkit.connect(kit.engine.url.render_as_string(hide_password=False), user=BEN)
    row = tl.timeline().set_index("subject").loc[subject]
    return None if pd.isna(row["opportunity"]) else row["opportunity"]


@pytest.fixture
def org(db_url: str, settings, tmp_path: Path) -> str:
    sync_salesforce_export(write_org(tmp_path / "sf"), settings=settings)
    return db_url


def links(db_url: str) -> dict[str, tuple[int | None, str | None]]:
    """subject -> (opportunity_id, opportunity_link) of every activity."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(
            select(activities.c.subject, activities.c.opportunity_id, activities.c.opportunity_link)
        ).all()
    engine.dispose()
    return {s: (o, link) for s, o, link in rows}


def test_a_lost_deals_mail_stays_on_the_lost_deal_with_its_risk(org: str, settings, tmp_path):
    kit = sync(org, settings, tmp_path, [
        mail(LUCIUS, AVA, "pilot results", datetime(2025, 11, 3, 10, tzinfo=UTC)),
        mail(LUCIUS, AVA, "pilot decision", datetime(2025, 11, 12, 10, tzinfo=UTC),
             body="Thanks for everything. We have decided not to move forward with the pilot."),
        mail(ALFRED, AVA, "renewal terms", datetime(2025, 11, 12, 11, tzinfo=UTC)),
    ])  # fmt: skip
    assert deal_of(kit, "pilot results") == "Wayne pilot"
    assert deal_of(kit, "pilot decision") == "Wayne pilot"
    assert deal_of(kit, "renewal terms") == "Wayne renewal"
    risks = kit.alerts(opportunity="Wayne pilot")
    assert list(risks["rule"]) == ["risk.not_proceeding"]
    assert kit.alerts(opportunity="Wayne renewal").empty  # the open deal raises no false alarm


def test_two_open_deals_the_decision_makers_mail_goes_to_hers_nobodys_to_the_account(
    org: str, settings, tmp_path
):
    # Ava works both Globex deals: our own people tell the two apart no more
    add_member(oppkit.connect(org), "Globex analytics", AVA)
    add_member(oppkit.connect(org), "Globex expansion", AVA)
    when = datetime(2026, 3, 2, 9, tzinfo=UTC)
    kit = sync(org, settings, tmp_path, [
        mail(HANK, AVA, "proposal questions", when, cc=GINA),
        mail(AVA, HANK, "Re: proposal questions", when + timedelta(hours=2)),
        mail(IVY, AVA, "general inquiry", when),
        mail(GINA, AVA, "data questions", when),
    ])  # fmt: skip
    # Hank is on the expansion only; Gina, in copy, is on both
    assert deal_of(kit, "proposal questions") == "Globex expansion"
    assert deal_of(kit, "Re: proposal questions") == "Globex expansion"
    assert deal_of(kit, "general inquiry") is None  # neither deal's people: the account only
    assert deal_of(kit, "data questions") is None  # on both deals: not a guess
    assert kit.timeline(kind="email").set_index("subject").loc["general inquiry", "account"] == (
        "Globex"
    )
    assert len(kit.timeline(opportunity="Globex expansion")) == 2
    assert kit.timeline(opportunity="Globex analytics").empty


def test_a_closed_private_deals_mail_stays_on_it_and_hidden_from_the_public_deal(
    org: str, settings, tmp_path
):
    start = datetime(2026, 1, 12, 9, tzinfo=UTC)
    board = [
        mail(BRUCE if i % 2 == 0 else BEN, BEN if i % 2 == 0 else BRUCE, f"board pack {i}",
             start + timedelta(days=3 * i))
        for i in range(6)
    ]  # fmt: skip
    sync(org, settings, tmp_path, [*board, mail(ALFRED, AVA, "renewal", start)])
    ben = oppkit.connect(org, user=BEN)
    assert sorted(ben.timeline(opportunity=BOARD)["subject"]) == [
        f"board pack {i}" for i in range(6)
    ]
    ava = oppkit.connect(org, user=AVA)  # neither owner nor member of the private deal
    assert list(ava.timeline(opportunity="Wayne renewal")["subject"]) == ["renewal"]
    assert list(ava.timeline(account="wayne-foods.example")["subject"]) == ["renewal"]


def test_salesforces_own_link_wins_and_is_never_matched_again(
    db_url: str, settings, tmp_path: Path
):
    # after the lost pilot's grace period, the renewal's contact is on a task that
    # Salesforce filed under the lost pilot: it stays there
    tasks = [
        ["00T000000000001AAA", "003000000000002AAA", "006000000000001AAA", "001000000000001AAA",
         "005000000000001AAA", "Filed under the pilot", "", "2026-03-02", "Completed", "true",
         "Call", "2026-03-02T10:00:00.000Z", "2026-03-02T10:00:00.000Z"],
        ["00T000000000002AAA", "003000000000002AAA", "", "001000000000001AAA",
         "005000000000001AAA", "Filed under the account", "", "2026-03-02", "Completed", "true",
         "Call", "2026-03-02T11:00:00.000Z", "2026-03-02T11:00:00.000Z"],
    ]  # fmt: skip
    sync_salesforce_export(write_org(tmp_path / "sf", tasks), settings=settings)
    kit = oppkit.connect(db_url)
    ids = kit.opportunities().set_index("name")["id"]
    before = links(db_url)
    assert before["Filed under the pilot"] == (ids["Wayne pilot"], "source")
    assert before["Filed under the account"] == (ids["Wayne renewal"], "matched")
    add_member(kit, "Wayne renewal", BEN)  # re-matches Wayne Foods in the renewal's window
    add_member(kit, "Wayne pilot", ALFRED)
    assert links(db_url) == before


def test_adding_a_member_moves_their_activities_and_alerts_and_nothing_else(
    org: str, settings, tmp_path
):
    when = datetime(2026, 3, 3, 9, tzinfo=UTC)
    kit = sync(org, settings, tmp_path, [
        mail(IVY, AVA, "budget", when, body="Unfortunately we have a budget freeze until Q3."),
        mail(IVY, AVA, "before the deals", datetime(2025, 10, 15, tzinfo=UTC)),
        mail(GINA, AVA, "analytics", when),
        mail(HANK, AVA, "expansion", when),
        mail(JO, AVA, "acme", when),
    ])  # fmt: skip
    before = links(org)
    risk = kit.alerts().set_index("rule").loc["risk.budget_freeze"]
    assert pd.isna(risk["opportunity_id"]) and deal_of(kit, "budget") is None

    add_member(kit, "Globex expansion", IVY)

    after = links(org)
    expansion = int(kit.opportunities().set_index("name").loc["Globex expansion", "id"])
    assert after["budget"] == (expansion, "matched")
    assert {s: v for s, v in after.items() if s != "budget"} == {
        s: v for s, v in before.items() if s != "budget"
    }  # the mail from before the deal existed stays on the account, the rest stays put
    assert list(kit.alerts(opportunity="Globex expansion")["rule"]) == ["risk.budget_freeze"]


def test_a_closed_deal_takes_mail_for_its_grace_period_only(org: str, settings, tmp_path):
    kit = sync(org, settings, tmp_path, [
        mail(BRUCE, BEN, "invoice question", WON + timedelta(days=8)),
        mail(BRUCE, BEN, "new year plans", WON + timedelta(days=90)),
    ])  # fmt: skip
    assert deal_of(kit, "invoice question") == BOARD
    # long closed: not the board deal, and not the renewal either (Bruce is not on it)
    assert deal_of(kit, "new year plans") is None


def test_the_grace_period_is_a_setting(
    org: str, settings, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPPKIT_MATCH_GRACE_DAYS", "3")
    kit = sync(
        org, settings, tmp_path, [mail(BRUCE, BEN, "invoice question", WON + timedelta(days=8))]
    )
    assert deal_of(kit, "invoice question") is None


def test_one_live_deal_takes_its_accounts_mail_unless_its_people_belong_to_another_deal(
    org: str, settings, tmp_path
):
    when = datetime(2026, 3, 4, 9, tzinfo=UTC)
    kit = sync(org, settings, tmp_path, [
        mail(JO, AVA, "from the contact", when),
        mail(KIM, AVA, "from a colleague", when),
        mail(PAT, AVA, "initech", when),
        mail(PAT, AVA, "initech before", datetime(2025, 9, 1, tzinfo=UTC)),
        mail(LUCIUS, AVA, "pilot again", when),
        mail("selina@wayne-foods.example", AVA, "renewal colleague", when),
    ])  # fmt: skip
    assert deal_of(kit, "from the contact") == "Acme pilot"
    assert deal_of(kit, "from a colleague") == "Acme pilot"  # the one deal in flight
    assert deal_of(kit, "initech") == "Initech rollout"  # no contact roles: still the one deal
    assert deal_of(kit, "initech before") is None  # before the deal was created
    # only the renewal is live at Wayne Foods now, but Lucius is the lost pilot's man
    assert deal_of(kit, "pilot again") is None
    assert deal_of(kit, "renewal colleague") == "Wayne renewal"


def test_mail_synced_before_its_deal_follows_it_with_its_alert(
    db_url: str, settings, tmp_path: Path
):
    ask = mail(JO, AVA, "questionnaire", datetime(2026, 3, 4, 9, tzinfo=UTC),
               body="Hi Ava,\n\nCould you send the security questionnaire?\n\nThanks")  # fmt: skip
    kit = sync(db_url, settings, tmp_path, [ask])
    assert kit.alerts()["opportunity_id"].isna().all()
    sync_salesforce_export(write_org(tmp_path / "sf"), settings=settings)
    assert deal_of(kit, "questionnaire") == "Acme pilot"
    assert list(kit.alerts(opportunity="Acme pilot")["kind"]) == ["request"]


def test_a_deal_closed_by_a_workflow_transition_lets_go_of_later_mail(org: str, settings, tmp_path):
    kit = oppkit.connect(org, user=AVA)
    kit.workflow.load()
    kit.workflow.create("Initech add-on", account="initech.example")
    add_member(kit, "Initech add-on", PAT)
    later = datetime.now(UTC) + timedelta(days=30)
    sync(org, settings, tmp_path, [mail(PAT, AVA, "add-on scope", later)])
    assert deal_of(kit, "add-on scope") == "Initech add-on"

    kit.workflow.transition("Initech add-on", "Start discovery")
    kit.workflow.transition("Initech add-on", "Close lost", loss_reason="budget")

    # closed today: a month from now is past its grace period, and Pat is its contact
    assert deal_of(kit, "add-on scope") is None


def test_when_people_leave_two_deals_possible_a_subject_naming_one_decides(
    org: str, settings, tmp_path
):
    # Gina is a contact of both Globex deals; only the subject tells which one she means
    when = datetime(2026, 3, 2, 9, tzinfo=UTC)
    kit = sync(org, settings, tmp_path, [
        mail(GINA, AVA, "Fwd: Globex expansion rollout dates", when),
        mail(GINA, AVA, "data questions", when),
        mail(GINA, AVA, "Globex expansion vs Globex analytics?", when),
    ])  # fmt: skip
    assert deal_of(kit, "Fwd: Globex expansion rollout dates") == "Globex expansion"
    assert deal_of(kit, "data questions") is None  # nothing tells them apart
    assert deal_of(kit, "Globex expansion vs Globex analytics?") is None  # names both


# --- what matching leaves to a person: the choice offered, and the choice kept ---------

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _gina_on_both(org: str, settings, tmp_path) -> oppkit.Kit:  # noqa: ANN001
    """Gina (on both Globex deals) asks a question that names neither deal."""
    return sync(org, settings, tmp_path, [
        mail(GINA, AVA, "data questions", WHEN,
             body="Could you send us the pricing? We need it by Friday."),
    ])  # fmt: skip


def test_an_activity_two_deals_may_own_is_offered_with_both(org, settings, tmp_path):
    kit = _gina_on_both(org, settings, tmp_path)
    offered = oppkit.connect(org, user=AVA).possible_deals()
    assert list(offered["subject"]) == ["data questions", "data questions"]
    assert sorted(offered["opportunity"]) == ["Globex analytics", "Globex expansion"]
    assert set(offered["account"]) == {"Globex"}
    assert links(org)["data questions"] == (None, None)
    assert kit.possible_deals(account="Acme").empty


def test_a_persons_choice_is_kept_through_resync_and_rematch(org, settings, tmp_path):
    _gina_on_both(org, settings, tmp_path)
    ava = oppkit.connect(org, user=AVA)
    activity_id = int(ava.possible_deals()["activity_id"].iloc[0])
    link_activity(ava, activity_id, "Globex expansion")
    assert ava.possible_deals().empty
    assert list(ava.timeline(opportunity="Globex expansion")["subject"]) == ["data questions"]
    # the alert found in the email (a request with a deadline) follows it
    assert "Globex expansion" in set(ava.alerts()["opportunity"])
    # the same mailbox synced again, and a member change that re-matches the account
    sync(org, settings, tmp_path, [
        mail(GINA, AVA, "data questions", WHEN,
             body="Could you send us the pricing? We need it by Friday."),
    ], name="again")  # fmt: skip
    add_member(ava, "Globex analytics", AVA)
    expansion = ava.opportunities().set_index("name").loc["Globex expansion", "id"]
    assert links(org)["data questions"] == (expansion, "person")
    # "the account only" is a choice too: kept, never matched again
    link_activity(ava, activity_id, None)
    add_member(ava, "Globex expansion", AVA)
    assert links(org)["data questions"] == (None, "person")
    assert ava.possible_deals().empty


def test_a_choice_involving_a_private_deal_is_offered_to_its_members_only(
    org,
    settings,
    tmp_path,
):
    _gina_on_both(org, settings, tmp_path)
    set_private(oppkit.connect(org, user=AVA), "Globex expansion", True)
    assert len(oppkit.connect(org, user=AVA).possible_deals()) == 2  # Ava owns both
    # Ben sees Globex analytics, but the choice would reveal the private deal
    assert oppkit.connect(org, user=BEN).possible_deals().empty
    activity_id = int(oppkit.connect(org, user=AVA).possible_deals()["activity_id"].iloc[0])
    with pytest.raises(NotFoundError):
        link_activity(oppkit.connect(org, user=BEN), activity_id, "Globex expansion")


def test_a_link_salesforce_owns_is_changed_in_salesforce(org, settings, tmp_path):
    task = ["00T000000000001AAA", "003000000000005AAA", "006000000000004AAA",
            "001000000000002AAA", "005000000000001AAA", "Call Gina", "", "2026-03-02",
            "Completed", "true", "Call", "2026-03-02T10:00:00.000Z", "2026-03-02T10:00:00.000Z"]  # fmt: skip
    sync_salesforce_export(write_org(tmp_path / "sf2", tasks=[task]), settings=settings)
    ava = oppkit.connect(org, user=AVA)
    call = int(ava.timeline().set_index("subject").loc["Call Gina", "id"])
    with pytest.raises(NotAllowed, match="change it there"):
        link_activity(ava, call, "Globex expansion")
    with pytest.raises(OppkitError, match="another account"):
        link_activity(ava, _any_acme_activity(org, settings, tmp_path), "Globex expansion")


def _any_acme_activity(org: str, settings, tmp_path) -> int:  # noqa: ANN001
    kit = sync(org, settings, tmp_path, [mail("jo@acme.example", AVA, "acme hello", WHEN)], "acme")
    return int(kit.timeline().set_index("subject").loc["acme hello", "id"])
