"""The Salesforce agent: the real simple-salesforce client against the wire-level fake org
(tests/fakes/salesforce.py) over HTTPS, into SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.errors import SourceError
from oppkit.sources.salesforce_client import SalesforceSettings
from oppkit.sync import sync_salesforce
from oppkit.sync.locks import sync_lock
from tests.fakes.salesforce import FakeOrg, FakeSalesforce

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = FakeOrg(now=T0)
    ava = org.add(
        "User",
        FirstName="Ava",
        LastName="Patel",
        Email="Ava.Patel@northwind.example",
        Username="ava",
        Title="AE",
    )
    acme = org.add(
        "Account", Name="Acme Robotics", Website="https://www.acme-robotics.example", OwnerId=ava
    )
    jm = org.add(
        "Contact",
        AccountId=acme,
        FirstName="Jürgen",
        LastName="Müller",
        Email="jm@acme-robotics.example",
        Title="CTO",
    )
    pilot = org.add(
        "Opportunity",
        Name="Acme pilot",
        AccountId=acme,
        OwnerId=ava,
        StageName="Prospecting",
        Amount=100000,
        CloseDate=date(2026, 3, 31),
    )
    org.add(
        "Opportunity",
        Name="Acme no amount",
        AccountId=acme,
        OwnerId=ava,
        StageName="Qualification",
        CloseDate=date(2026, 4, 30),
    )
    org.add(
        "OpportunityContactRole",
        OpportunityId=pilot,
        ContactId=jm,
        Role="Technical Buyer",
        IsPrimary=True,
    )
    org.add(
        "OpportunityHistory",
        OpportunityId=pilot,
        StageName="Prospecting",
        Amount=100000,
        CloseDate=date(2026, 3, 31),
        CreatedDate=T0,
    )
    org.add(
        "Task",
        WhatId=pilot,
        WhoId=jm,
        OwnerId=ava,
        Subject="Call about pricing",
        Status="Completed",
        Priority="Normal",
        TaskSubtype="Call",
        ActivityDate=date(2026, 1, 4),
    )
    org.add(
        "Event",
        WhatId=pilot,
        WhoId=jm,
        OwnerId=ava,
        Subject="Demo",
        StartDateTime=T0 - timedelta(days=2),
        EndDateTime=T0 - timedelta(days=2, hours=-1),
        DurationInMinutes=60,
    )
    camp = org.add("Campaign", Name="Spring webinar", Status="Completed", Type="Webinar")
    org.add("CampaignMember", CampaignId=camp, ContactId=jm, Status="Responded")
    org.ids = {"ava": ava, "acme": acme, "jm": jm, "pilot": pilot}  # type: ignore[attr-defined]
    return org


def sf_settings(fake: FakeSalesforce) -> SalesforceSettings:
    return SalesforceSettings(
        instance_url=fake.url, session_id=fake.session_id, ca_bundle=fake.ca_path
    )


def sf_env(fake: FakeSalesforce) -> dict[str, str]:
    return {
        **os.environ,
        "OPPKIT_SF_INSTANCE_URL": fake.url,
        "OPPKIT_SF_SESSION_ID": fake.session_id,
        "OPPKIT_SF_CA_BUNDLE": fake.ca_path,
        "OPPKIT_SF_RETRY_MAX_WAIT": "0.05",
    }


def run(db_url, settings, fake, **kw):  # noqa: ANN001, ANN003, ANN201
    return sync_salesforce(db_url, settings, salesforce=sf_settings(fake), **kw)


def timeline_indexes(db_url: str) -> set[str]:
    """The secondary indexes of the timeline tables that the database holds."""
    from sqlalchemy import inspect

    engine = connect_engine(db_url)
    try:
        found = inspect(engine)
        return {i["name"] for t in ("activities", "activity_people") for i in found.get_indexes(t)}
    finally:
        engine.dispose()


def schema_timeline_indexes() -> set[str]:
    from oppkit.db.schema import activities, activity_people

    return {i.name for t in (activities, activity_people) for i in t.indexes if not i.unique}


def test_full_sync_lands_opportunities_people_history_and_timeline(db_url, settings, fake, org):
    summary = run(db_url, settings, fake)
    assert summary.errors == 0 and summary.skipped == 0
    # the first load into an empty timeline builds its indexes at the end: all there
    assert schema_timeline_indexes() <= timeline_indexes(db_url)
    kit = oppkit.connect(db_url)
    opps = kit.opportunities().set_index("name")
    assert opps.loc["Acme pilot", "account"] == "Acme Robotics"
    assert opps.loc["Acme pilot", "owner"] == "Ava Patel"
    assert opps.loc["Acme pilot", "amount"] == 100000
    assert pd.isna(opps.loc["Acme no amount", "amount"])  # null stays null
    assert opps.loc["Acme pilot", "close_date"] == date(2026, 3, 31)
    assert list(kit.pipeline()["stage"][:3]) == ["Prospecting", "Qualification", "Needs Analysis"]
    assert set(kit.stages().query("status != 'open'")["status"]) == {"won", "lost"}
    tl = kit.timeline(opportunity="Acme pilot")
    assert list(tl["subject"]) == ["Call about pricing", "Demo"]
    assert set(tl["kind"]) == {"call", "meeting"}
    members = kit.people(opportunity="Acme pilot")
    assert list(members["email"]) == ["jm@acme-robotics.example"]
    assert members["role"].iloc[0] == "Technical Buyer"
    people = kit.people().set_index("email")
    assert people.loc["ava.patel@northwind.example", "is_internal"]
    assert people.loc["jm@acme-robotics.example", "name"] == "Jürgen Müller"
    history = kit.stage_history(opportunity="Acme pilot")
    assert list(history["new_value"]) == ["Prospecting"]


def test_incremental_run_reads_only_what_changed(db_url, settings, fake, org):
    first = run(db_url, settings, fake)
    org.advance(minutes=30)
    org.update("Opportunity", org.ids["pilot"], StageName="Proposal/Price Quote", Amount=120000)
    org.add(
        "OpportunityHistory",
        OpportunityId=org.ids["pilot"],
        StageName="Proposal/Price Quote",
        Amount=120000,
        CloseDate=date(2026, 3, 31),
        CreatedDate=org.now(),
    )
    run(db_url, settings, fake)
    org.advance(minutes=30)
    fake.requests.clear()
    third = run(db_url, settings, fake)  # nothing new: only the 5-minute overlap is re-read
    assert third.read <= first.read
    opportunity_queries = [
        q for _m, q in fake.requests if "FROM+Opportunity+" in q or "FROM%20Opportunity%20" in q
    ]
    assert opportunity_queries and all(
        "2026-01-05T09%3A25%3A00Z" in q or "2026-01-05T09:25:00Z" in q for q in opportunity_queries
    )
    kit = oppkit.connect(db_url)
    assert (
        kit.opportunities().set_index("name").loc["Acme pilot", "stage"] == "Proposal/Price Quote"
    )
    changes = kit.stage_history(opportunity="Acme pilot")
    assert set(zip(changes["field"], changes["old_value"], changes["new_value"], strict=True)) >= {
        ("stage", "Prospecting", "Proposal/Price Quote"),
        ("amount", "100000.0", "120000.0"),
    }
    assert len(changes) == 3  # re-reads never duplicate history
    assert len(kit.opportunities()) == 2


def test_late_commit_inside_the_overlap_is_picked_up(db_url, settings, fake, org):
    run(db_url, settings, fake)
    org.advance(minutes=10)
    run(db_url, settings, fake)  # cursor moves on
    # a transaction that started earlier commits now, stamped 3 minutes in the past
    late = org.add("Opportunity", Name="Late deal", AccountId=org.ids["acme"], StageName="Prospecting",
                   CloseDate=date(2026, 5, 1), SystemModstamp=org.now() - timedelta(minutes=3))  # fmt: skip
    assert late
    run(db_url, settings, fake)
    names = set(oppkit.connect(db_url).opportunities()["name"])
    assert "Late deal" in names


def test_ties_across_a_page_boundary_and_a_crash_lose_nothing(db_url, settings, org):
    for i in range(7):  # seven deals with the same SystemModstamp, pages of 2
        org.add(
            "Opportunity",
            Name=f"Tie {i}",
            AccountId=org.ids["acme"],
            StageName="Prospecting",
            CloseDate=date(2026, 6, 1),
        )
    with FakeSalesforce(org, page_size=2) as fake:
        fake.fail_next(500, times=50, path_contains="/queryAll/01g")  # dies after the first page
        with pytest.raises(SourceError, match="kept failing"):
            run(db_url, settings, fake, objects=["User", "Account", "Opportunity"])
        done = len(oppkit.connect(db_url).opportunities())
        assert 0 < done < 9
        fake.clear_faults()
        run(db_url, settings, fake, objects=["User", "Account", "Opportunity"])
    opps = oppkit.connect(db_url).opportunities()
    assert len(opps) == 9
    assert opps["source_id"].is_unique


def test_deletes_disappear_and_history_stays_consistent(db_url, settings, fake, org):
    gone = org.add(
        "Opportunity",
        Name="Gone",
        AccountId=org.ids["acme"],
        StageName="Prospecting",
        CloseDate=date(2026, 6, 1),
    )
    purged = org.add(
        "Opportunity",
        Name="Purged",
        AccountId=org.ids["acme"],
        StageName="Prospecting",
        CloseDate=date(2026, 6, 1),
    )
    run(db_url, settings, fake)
    org.advance(minutes=20)
    org.delete("Opportunity", gone)
    org.delete("Opportunity", purged)
    del org.records["Opportunity"][purged]  # emptied from the recycle bin: only getDeleted knows
    org.delete("Task", next(iter(org.records["Task"])))
    org.advance(minutes=1)  # getDeleted covers whole minutes up to the server's clock
    run(db_url, settings, fake)
    kit = oppkit.connect(db_url)
    names = set(kit.opportunities()["name"])
    assert "Gone" not in names and "Purged" not in names and "Acme pilot" in names
    assert list(kit.timeline(opportunity="Acme pilot")["subject"]) == ["Demo"]
    assert kit.stage_history()["opportunity"].isin(kit.opportunities()["name"]).all()


def test_a_503_once_is_retried(db_url, settings, fake, org):
    fake.fail_next(503, times=1, path_contains="/query")
    summary = run(db_url, settings, fake)
    assert summary.errors == 0
    assert len(oppkit.connect(db_url).opportunities()) == 2


def test_org_without_some_fields_or_objects_still_syncs(db_url, settings, fake, org):
    org.drop_field("Opportunity", "Type")
    org.drop_field("Opportunity", "LeadSource")
    del org.fields["OpportunityFieldHistory"]
    run(db_url, settings, fake)
    assert len(oppkit.connect(db_url).opportunities()) == 2
    assert not any("OpportunityFieldHistory" in q and "query" in q for _m, q in fake.requests)


def test_malformed_record_is_counted_and_the_rest_syncs(db_url, settings, fake, org):
    org.add("Event", WhatId=org.ids["pilot"], Subject="No start at all")  # no usable date
    summary = run(db_url, settings, fake)
    assert summary.skipped == 1
    assert "Demo" in set(oppkit.connect(db_url).timeline()["subject"])


def test_custom_fields_map_to_opportunity_attributes(db_url, fake, org, tmp_path, monkeypatch):
    org.add_field("Opportunity", "Region__c", "string")
    org.update("Opportunity", org.ids["pilot"], Region__c="EMEA")
    (tmp_path / "oppkit.toml").write_text(
        '[salesforce.opportunity_attributes]\nRegion__c = "region"\n'
    )
    monkeypatch.chdir(tmp_path)
    settings = oppkit.load_settings(db_url)
    sync_salesforce(db_url, settings, salesforce=sf_settings(fake))
    engine = connect_engine(db_url)
    from sqlalchemy import select

    from oppkit.db.schema import opportunities

    with engine.connect() as conn:
        attrs = conn.scalar(
            select(opportunities.c.attributes).where(opportunities.c.name == "Acme pilot")
        )
    assert attrs == {"region": "EMEA"}
    assert (
        oppkit.connect(db_url).opportunities().set_index("name").loc["Acme pilot", "region"]
        == "EMEA"
    )


def test_unknown_stage_is_kept_and_shown_after_the_known_ones(db_url, settings, fake, org):
    org.add(
        "Opportunity",
        Name="Odd",
        AccountId=org.ids["acme"],
        StageName="Legal review",
        CloseDate=date(2026, 6, 1),
        Amount=5,
    )
    run(db_url, settings, fake)
    kit = oppkit.connect(db_url)
    assert kit.opportunities().set_index("name").loc["Odd", "stage"] == "Legal review"
    pipeline = kit.pipeline()
    assert pipeline["stage"].iloc[-1] == "Legal review" and pipeline["count"].iloc[-1] == 1


def cli(db_url: str, fake: FakeSalesforce, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, "sync", "salesforce", *args],
        capture_output=True, text=True, env=sf_env(fake), timeout=120,
    )  # fmt: skip


def test_request_limit_stops_at_once_keeps_work_and_resumes(db_url, fake, org):
    fake.fail_next(
        403,
        times=1,
        path_contains="OpportunityContactRole",
        code="REQUEST_LIMIT_EXCEEDED",
        msg="TotalRequests Limit exceeded.",
    )
    result = cli(db_url, fake)
    assert result.returncode == 1
    assert "REQUEST_LIMIT_EXCEEDED" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(oppkit.connect(db_url).opportunities()) == 2  # committed before the limit
    again = cli(db_url, fake)
    assert again.returncode == 0, again.stderr
    assert len(oppkit.connect(db_url).timeline()) == 2


def test_bad_session_is_a_clear_message(db_url, fake):
    fake.expire_session()
    result = cli(db_url, fake)
    assert result.returncode == 1
    assert "INVALID_SESSION_ID" in result.stderr and "Traceback" not in result.stderr
    assert SalesforceSettings().session_id is None
    assert fake.session_id not in result.stderr  # the secret never appears


@pytest.mark.parametrize(("status", "code", "message"), [
    (400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    (400, "MALFORMED_QUERY", "unexpected token: 'FORM'"),
    (404, "NOT_FOUND", "The requested resource does not exist"),
    (405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed"),
    (300, "MULTIPLE_CHOICES", "more than one record"),
])  # fmt: skip
def test_any_upstream_error_is_one_line_and_exit_1(db_url, fake, status, code, message):
    fake.fail_next(status, path_contains="/query", code=code, msg=message)
    result = cli(db_url, fake)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("oppkit: error: ") and code in result.stderr


def run_messages(db_url: str) -> list[str]:
    from sqlalchemy import select

    from oppkit.db.schema import sync_runs

    engine = connect_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.scalars(select(sync_runs.c.message).where(sync_runs.c.status == "failed"))
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(("status", "times", "text"), [
    (400, 1, False),  # Salesforce's JSON error list, not retried
    (400, 1, True),  # a proxy's text page
    (503, 50, False),  # retried (each retry logged) until the client gives up
])  # fmt: skip
def test_an_error_echoing_the_session_id_shows_and_stores_it_nowhere(
    db_url, fake, status, times, text
):
    fake.fail_next(status, times=times, path_contains="/query", code="BAD_REQUEST",
                   msg="rejected by the gateway\n", echo_headers=True, text=text)  # fmt: skip
    result = cli(db_url, fake)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("oppkit: error: ") and "rejected by the gateway" in error
    assert len(error) <= 320 and error.isprintable()
    messages = run_messages(db_url)
    assert messages and all("rejected by the gateway" in m for m in messages)
    assert all(len(m) <= 300 and m.isprintable() for m in messages)
    secret = fake.session_id.split("!")[1]  # "s3cr3t-session-token"
    for text_seen in [result.stdout, result.stderr, *messages]:
        assert secret not in text_seen and fake.session_id not in text_seen


def test_second_agent_on_the_same_org_exits_with_a_message(db_url, fake):
    engine = connect_engine(db_url)
    with sync_lock(engine, f"salesforce:{fake.url}"):
        result = cli(db_url, fake)
    assert result.returncode == 1
    assert "another agent is running salesforce:" in result.stderr
    assert cli(db_url, fake).returncode == 0


def test_agent_killed_half_way_resumes_without_loss(db_url, org):
    org.add_many("Task", [
        {"WhatId": org.ids["pilot"], "OwnerId": org.ids["ava"], "Subject": f"task {i}", "Status": "Completed",
         "Priority": "Normal", "ActivityDate": date(2026, 1, 1)}
        for i in range(3000)
    ])  # fmt: skip
    with FakeSalesforce(org, page_size=200) as fake:
        fake.latency = 0.25  # 16 Task pages take 4 s: the agent commits (every 2 s) on the way
        proc = subprocess.Popen(
            [sys.executable, "agents/salesforce_agent.py", "--db", db_url, "--once", "--objects", "User,Account,Opportunity,Task"],
            env=sf_env(fake), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        from tests.support import count, wait_for_checkpoint

        deadline = datetime.now() + timedelta(seconds=120)
        while datetime.now() < deadline and proc.poll() is None:
            if fake.call_count("/queryAll/01g") >= 3:  # a few Task pages in
                break
        wait_for_checkpoint(db_url, proc)
        proc.kill()
        proc.wait()
        from oppkit.db.schema import activities

        before = count(db_url, activities)
        # killed during the first load, before its indexes were rebuilt
        assert not schema_timeline_indexes() <= timeline_indexes(db_url)
        result = subprocess.run(
            [sys.executable, "agents/salesforce_agent.py", "--db", db_url, "--once", "--objects", "User,Account,Opportunity,Task"],
            env=sf_env(fake), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert before < 3001
    assert count(db_url, activities) == 3001  # the fixture task + 3000 (Event not synced here)
    assert schema_timeline_indexes() <= timeline_indexes(db_url)  # the next run rebuilt them


@pytest.mark.parametrize(
    "credentials",
    [
        {
            "OPPKIT_SF_USERNAME": "user@example.com",
            "OPPKIT_SF_PASSWORD": "password",
            "OPPKIT_SF_SECURITY_TOKEN": "TOKEN",
        },
        {
            "OPPKIT_SF_CONSUMER_KEY": "CONSUMER_KEY",
            "OPPKIT_SF_CONSUMER_SECRET": "CONSUMER_SECRET",
            "OPPKIT_SF_DOMAIN": "acme.my",
        },
    ],
    ids=["username-password-token", "connected-app-client-credentials"],
)
def test_login_flows_from_the_environment(sqlite_url, fake, credentials):
    env = {
        k: v
        for k, v in sf_env(fake).items()
        if k not in ("OPPKIT_SF_INSTANCE_URL", "OPPKIT_SF_SESSION_ID")
    }
    env |= credentials | {"HTTPS_PROXY": fake.proxy_url, "NO_PROXY": ""}
    result = subprocess.run(
        [sys.executable, "-m", "oppkit.cli", "--db", sqlite_url, "sync", "salesforce"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(oppkit.connect(sqlite_url).opportunities()) == 2
    for secret in credentials.values():
        if secret not in ("user@example.com", "acme.my", "CONSUMER_KEY"):
            assert secret not in result.stdout + result.stderr


def test_wrong_password_is_a_clear_message(sqlite_url, fake):
    env = {
        k: v
        for k, v in sf_env(fake).items()
        if k not in ("OPPKIT_SF_INSTANCE_URL", "OPPKIT_SF_SESSION_ID")
    }
    env |= {
        "OPPKIT_SF_USERNAME": "user@example.com",
        "OPPKIT_SF_PASSWORD": "wrong",
        "HTTPS_PROXY": fake.proxy_url,
        "NO_PROXY": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "oppkit.cli", "--db", sqlite_url, "sync", "salesforce"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Salesforce login failed" in result.stderr and "Traceback" not in result.stderr
    assert "wrong" not in result.stderr


@pytest.mark.parametrize(("deals", "accounts", "private"), [
    ("None", "Edit", True),  # org-wide default Private: each deal is its owner's
    ("ControlledByParent", "None", True),  # deals follow accounts, which are Private
    ("Read", "Read", False),  # public read: each deal's IsPrivate decides
])  # fmt: skip
def test_deals_private_in_salesforce_arrive_private(
    db_url, settings, fake, org, deals, accounts, private
):
    org.define_object(
        "Organization", "00D",
        "Name:string DefaultOpportunityAccess:picklist~ DefaultAccountAccess:picklist~",
    )  # fmt: skip
    org.add("Organization", Name="Northwind", DefaultOpportunityAccess=deals,
            DefaultAccountAccess=accounts)  # fmt: skip
    run(db_url, settings, fake)
    anyone = oppkit.connect(db_url)
    owner = oppkit.connect(db_url, user="ava.patel@northwind.example")
    assert len(owner.opportunities()) == 2
    assert (len(anyone.opportunities()) == 0) is private
