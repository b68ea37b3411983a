"""Saved reports: a filter over people, kept in oppkit.toml, that fills a campaign each
time it runs (oppkit.people_filter, oppkit.saved_reports, ``oppkit report``), alone or
on a schedule under ``oppkit agents run``; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select

import oppkit
from oppkit.cli import main
from oppkit.db.engine import write_transaction
from oppkit.db.schema import (
    accounts,
    activities,
    activity_people,
    campaign_members,
    opportunities,
    people,
    sync_runs,
)
from oppkit.errors import ConfigError
from oppkit.people_filter import CONDITIONS
from oppkit.saved_reports import SavedReport
from tests.support import run_cli, stop_process

NOW = datetime.now(UTC)
WEBINAR = {"account_industry": "manufacturing", "title_contains": "data", "active_within_days": 30}


def _account(conn, name: str, domain: str, industry: str, kind: str | None = None) -> int:  # noqa: ANN001
    return conn.execute(
        insert(accounts)
        .values(name=name, domain=domain, industry=industry, account_type=kind,
                source="test", source_id=domain)
        .returning(accounts.c.id)
    ).scalar_one()  # fmt: skip


def _person(conn, email: str, title: str, account_id: int | None, **values) -> int:  # noqa: ANN001, ANN003
    return conn.execute(
        insert(people)
        .values(email=email, name=email.split("@")[0].title(), title=title,
                account_id=account_id, source="test", source_id=email, **values)
        .returning(people.c.id)
    ).scalar_one()  # fmt: skip


def _activity(conn, person_id: int, days_ago: float, **values) -> None:  # noqa: ANN001, ANN003
    activity_id = conn.execute(
        insert(activities)
        .values(**{"kind": "email", **values}, subject="hello", source="test",
                occurred_at=NOW - timedelta(days=days_ago), source_id=uuid.uuid4().hex)
        .returning(activities.c.id)
    ).scalar_one()  # fmt: skip
    conn.execute(insert(activity_people).values(activity_id=activity_id, person_id=person_id,
                                                role="from"))  # fmt: skip


def _org(db_url: str) -> oppkit.Kit:
    """Hand-made people; WEBINAR finds exactly ada and cy:

    ada  Head of Data, Acme (Manufacturing), wrote 2 days ago           <- found
    cy   Data Engineer, Initech ("manufacturing"), met 5 days ago       <- found
    bob  CFO at Acme, 40 days ago                                       (title; too long ago)
    dee  Data Analyst at Globex (Retail), yesterday; member of a deal   (industry)
    eve  data scientist at Acme: only an automatic reply yesterday      (no real activity)
    fay  Data Lead at Acme, never in touch                              (not active)
    ava  Data Director, one of us, yesterday                            (internal)
    hal  Data PM at Acme, yesterday, but only on a private deal         (hidden)
    """
    kit = oppkit.connect(db_url)
    kit.workflow.load()
    with write_transaction(kit.engine) as conn:
        acme = _account(conn, "Acme Robotics", "acme.example", "Manufacturing", "Customer")
        initech = _account(conn, "Initech", "initech.example", "manufacturing")
        globex = _account(conn, "Globex", "globex.example", "Retail")
        ada = _person(conn, "ada@acme.example", "Head of Data", acme, lifecycle_stage="Engaged")
        bob = _person(conn, "bob@acme.example", "CFO", acme)
        cy = _person(conn, "cy@initech.example", "Data Engineer", initech)
        dee = _person(conn, "dee@globex.example", "Data Analyst", globex)
        eve = _person(conn, "eve@acme.example", "data scientist", acme)
        _person(conn, "fay@acme.example", "Data Lead", acme)
        ava = _person(conn, "ava@northwind.example", "Data Director", None, is_internal=True)
        hal = _person(conn, "hal@acme.example", "Data PM", acme)
        _activity(conn, ada, 2)
        _activity(conn, bob, 40)
        _activity(conn, cy, 5, kind="meeting")
        _activity(conn, dee, 1)
        _activity(conn, eve, 1, is_auto=True)
        _activity(conn, ava, 1)
        _activity(conn, dee, -3, is_planned=True)  # planned: not activity yet
    kit.workflow.create("Globex rollout", account=globex, contacts=[dee])
    secret = kit.workflow.create("Acme secret", account=acme, private=True,
                                 owner="ava@northwind.example", contacts=[hal])  # fmt: skip
    with write_transaction(kit.engine) as conn:
        _activity(conn, hal, 1, opportunity_id=secret)
    kit.campaigns.create("Spring webinar")
    kit.campaigns.create("Old list")
    kit.campaigns.add_contacts(["bob@acme.example", "cy@initech.example"], "Old list",
                               create_deals=False)  # fmt: skip
    return kit


def _emails(frame) -> list[str]:  # noqa: ANN001
    return sorted(frame["email"])


# --- the filter ------------------------------------------------------------------------


def test_a_filter_finds_exactly_the_people_it_describes(db_url: str):
    kit = _org(db_url)
    found = kit.reports.preview(WEBINAR)
    assert _emails(found) == ["ada@acme.example", "cy@initech.example"]
    assert list(found.columns) == list(kit.people().columns)  # a people frame
    globex_stage = kit.opportunities().set_index("name").loc["Globex rollout", "stage"]
    cases = {
        "email_domain = initech": ({"email_domain": "@Initech.example"}, ["cy"]),
        "account + inactive": ({"account": "acme.example", "inactive_for_days": 30},
                               ["bob", "eve", "fay"]),
        "account_type": ({"account_type": "CUSTOMER"}, ["ada", "bob", "eve", "fay"]),
        "lifecycle_stage": ({"lifecycle_stage": "engaged"}, ["ada"]),
        "lifecycle_category": ({"lifecycle_category": "in progress"}, ["ada"]),
        "deal_stage": ({"deal_stage": globex_stage.lower()}, ["dee"]),
        "deal_status": ({"deal_status": "open"}, ["dee"]),  # hal's deal is private
        "in_campaign": ({"in_campaign": "Old list"}, ["bob", "cy"]),
        "not_in_campaign": ({"not_in_campaign": ["Old list"], "title_contains": "data",
                             "active_within_days": 30}, ["ada", "dee"]),
        "any of a list": ({"title_contains": ["cfo", "engineer"]}, ["bob", "cy"]),
        "nothing": ({}, ["ada", "bob", "cy", "dee", "eve", "fay"]),
        "a LIKE pattern is text": ({"title_contains": "%"}, []),
    }  # fmt: skip
    for case, (where, expected) in cases.items():
        got = [e.split("@")[0] for e in _emails(kit.reports.preview(where))]
        assert got == expected, case
    # a user sees people known from their own private deal
    mine = oppkit.connect(db_url, user="ava@northwind.example")
    assert "hal@acme.example" in _emails(mine.reports.preview(WEBINAR))


def test_conditions_are_checked_and_listed():
    with pytest.raises(ConfigError) as caught:
        SavedReport("x", "Spring webinar", {"titel_contains": "data"})
    assert str(caught.value) == (
        f"unknown condition 'titel_contains' (known: {', '.join(CONDITIONS)})"
    )
    for where, message in [
        ({"active_within_days": "soon"}, "active_within_days takes a number of days (> 0), not 'soon'"),
        ({"active_within_days": 0}, "active_within_days takes a number of days (> 0), not 0"),
        ({"title_contains": []}, "title_contains needs a value"),
        ({"title_contains": 3}, "title_contains takes a text (or a list of them), not 3"),
        ("title_contains", "where must be a table of conditions, not 'title_contains'"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            SavedReport("x", "Spring webinar", where)
        assert str(caught.value) == message
    assert SavedReport("x", "7", {"active_within_days": "30", "in_campaign": "12"}) == (
        SavedReport("x", 7, {"active_within_days": 30, "in_campaign": 12})
    )


def test_misspelt_names_are_errors_not_empty_results(db_url: str):
    kit = _org(db_url)
    with pytest.raises(
        ConfigError, match=r"^deal_stage: no stage 'Prospectin' \(known: Prospecting, "
    ):
        kit.reports.preview({"deal_stage": "Prospectin"})
    with pytest.raises(ConfigError, match=r"^lifecycle_stage: no contact lifecycle stage 'Engagd'"):
        kit.reports.preview({"lifecycle_stage": "Engagd"})
    with pytest.raises(ConfigError, match="^account: no account matches 'nope.example'$"):
        kit.reports.preview({"account": "nope.example"})
    with pytest.raises(ConfigError, match="^deal_status: 'done' is not one of open, won, lost"):
        kit.reports.preview({"deal_status": "done"})


# --- running ---------------------------------------------------------------------------


def test_running_twice_adds_nothing_the_second_time(db_url: str):
    kit = _org(db_url)
    report = SavedReport("webinar-leads", "Spring webinar", WEBINAR)
    first = kit.reports.run(report)
    assert (
        first.line() == "report webinar-leads: 2 found, 2 added to Spring webinar, 2 deals created"
    )
    second = kit.reports.run(report)
    assert (
        second.line() == "report webinar-leads: 2 found, 0 added to Spring webinar, 0 deals created"
    )
    members = kit.campaigns.members("Spring webinar")
    assert sorted(members["email"]) == ["ada@acme.example", "cy@initech.example"]
    deals = kit.opportunities(campaign="Spring webinar")
    assert sorted(deals["account"]) == ["Acme Robotics", "Initech"]
    # without deals: members only
    kit.campaigns.create("Newsletter")
    plain = kit.reports.run(SavedReport("news", "Newsletter", {"lifecycle_stage": "Engaged"},
                                        create_deals=False))  # fmt: skip
    assert plain.line() == "report news: 1 found, 1 added to Newsletter, 0 deals created"


def test_a_run_says_who_found_could_get_no_deal(db_url: str):
    kit = _org(db_url)
    with write_transaction(kit.engine) as conn:
        _person(conn, "ivy.freelance@gmail.com", "Data consultant", None)
    report = SavedReport(
        "data-people", "Spring webinar", {"title_contains": ["head of", "consult"]}
    )
    first = kit.reports.run(report)
    assert first.line() == (
        "report data-people: 2 found, 2 added to Spring webinar, 1 deals created, "
        "1 without a deal (no account)"
    )
    assert [(n.name, n.reason) for n in first.no_deal] == [("Ivy.Freelance", "no account")]
    assert kit.opportunities(campaign="Spring webinar")["name"].tolist() == ["Spring webinar — Ada"]
    second = kit.reports.run(report)
    assert second.line().endswith("0 deals created, 1 without a deal (no account)")


def test_a_report_that_cannot_run_adds_nobody(db_url: str):
    kit = _org(db_url)
    with pytest.raises(
        ConfigError, match=r"^report r: no campaign 'Autumn' \(kit.campaigns.create"
    ):
        kit.reports.run(SavedReport("r", "Autumn", WEBINAR))
    with pytest.raises(ConfigError, match="^report r: owner: no person matches 'zed@x.example'$"):
        kit.reports.run(SavedReport("r", "Spring webinar", WEBINAR, owner="zed@x.example"))
    kit.campaigns.create("Spring webinar")  # a second one of that name
    with pytest.raises(ConfigError, match="2 campaigns are called 'Spring webinar'; give its id"):
        kit.reports.run(SavedReport("r", "Spring webinar", WEBINAR))
    assert len(kit.campaigns.members()) == 2  # Old list's two, nobody else


# --- the command line --------------------------------------------------------------------


def test_cli_add_list_run_round_trip(db_url: str, tmp_path: Path):
    _org(db_url)
    config = tmp_path / "oppkit.toml"
    before = (
        '# our settings\ninternal_domains = ["northwind.example"]  # us\n\n[smtp]\nhost = "mail"\n'
    )
    config.write_text(before, encoding="utf-8")
    cli = ["--db", db_url, "report"]

    added = run_cli(*cli, "add", "webinar-leads", "--campaign", "Spring webinar",
                    "--where", "account_industry=Manufacturing", "--where", "title_contains=data",
                    "--where", "title_contains=analytics", "--where", "active_within_days=30",
                    cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout == (
        f'report webinar-leads saved to {config}: account_industry = "Manufacturing", '
        'title_contains = ["data", "analytics"], active_within_days = 30 -> Spring webinar '
        "(2 found now)\n"
    )
    text = config.read_text(encoding="utf-8")
    assert text.startswith(before)  # everything else kept as it was
    assert text[len(before) :] == (
        '\n[[reports]]\nname = "webinar-leads"\ncampaign = "Spring webinar"\n'
        'where = { account_industry = "Manufacturing", title_contains = ["data", "analytics"], '
        "active_within_days = 30 }\ncreate_deals = true\n"
    )
    again = run_cli(*cli, "add", "webinar-leads", "--campaign", "Old list", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == (
        f"oppkit: error: {config} already has a report called 'webinar-leads': "
        "edit or remove it there\n"
    )

    listed = run_cli(*cli, "list", cwd=tmp_path)
    assert (listed.returncode, listed.stderr) == (0, "")
    assert listed.stdout == (
        'webinar-leads: account_industry = "Manufacturing", title_contains = ["data", '
        '"analytics"], active_within_days = 30 -> Spring webinar (creates deals)\n'
    )

    for added_now, deals in ((2, 2), (0, 0)):
        ran = run_cli(*cli, "run", "webinar-leads", cwd=tmp_path)
        assert (ran.returncode, ran.stderr) == (0, "")
        assert ran.stdout == (
            f"report webinar-leads: 2 found, {added_now} added to Spring webinar, "
            f"{deals} deals created\n"
        )
    engine = create_engine(db_url)
    with engine.connect() as conn:  # each run is recorded: oppkit status shows it
        runs = conn.execute(
            select(sync_runs.c.status, sync_runs.c.read, sync_runs.c.written)
            .where(sync_runs.c.agent == "report", sync_runs.c.target == "webinar-leads")
            .order_by(sync_runs.c.id)
        ).all()  # fmt: skip
    engine.dispose()
    assert [tuple(r) for r in runs] == [("done", 2, 2), ("done", 2, 0)]
    status = run_cli("--db", db_url, "status", cwd=tmp_path)
    assert "report/report  webinar-leads" in status.stdout


def test_bad_input_exits_2_with_one_line(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    _org(db_url)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "oppkit.toml"
    config.write_text(
        '[[reports]]\nname = "typo"\ncampaign = "Spring webinar"\n'
        'where = { titel_contains = "data" }\n\n'
        '[[reports]]\nname = "autumn"\ncampaign = "Autumn"\nwhere = { title_contains = "data" }\n',
        encoding="utf-8",
    )  # fmt: skip
    known = ", ".join(CONDITIONS)
    for args, line in [
        (["run", "typo"], f"[[reports]] 1 (typo): unknown condition 'titel_contains' (known: {known})"),
        (["run", "nope"], f"no report 'nope' in {config} (reports: typo, autumn)"),
        (["run", "autumn"], "report autumn: no campaign 'Autumn' (kit.campaigns.create makes one, "
                            "or sync it from Salesforce)"),
        (["run", "--all"], f"[[reports]] 1 (typo): unknown condition 'titel_contains' (known: {known})"),
        (["run"], "give a report NAME (or several), or --all"),
        (["add", "x", "--campaign", "Spring webinar", "--where", "titel_contains=data"],
         f"unknown condition 'titel_contains' (known: {known})"),
        (["add", "x", "--campaign", "Autumn"], "report x: no campaign 'Autumn' (kit.campaigns."
                                               "create makes one, or sync it from Salesforce)"),
    ]:  # fmt: skip
        before = config.read_text(encoding="utf-8")
        assert main(["--db", db_url, "report", *args]) == 2, args
        out = capsys.readouterr()
        assert out.err == f"oppkit: error: {line}\n", args
        assert config.read_text(encoding="utf-8") == before  # nothing written
    assert main(["--db", db_url, "report", "list"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"oppkit: error: {config}: [[reports]] 1 (typo): unknown condition "
                   f"'titel_contains' (known: {known})"]  # fmt: skip
    assert len(oppkit.connect(db_url).campaigns.members("Spring webinar")) == 0


# --- on a schedule ---------------------------------------------------------------------


def test_agents_run_runs_a_report_on_its_schedule(db_url: str, tmp_path: Path):
    _org(db_url)
    (tmp_path / "oppkit.toml").write_text(
        '[[reports]]\nname = "webinar-leads"\ncampaign = "Spring webinar"\n'
        'where = { account_industry = "Manufacturing", title_contains = "data", '
        "active_within_days = 30 }\n\n"
        '[[agents]]\nsource = "report"\noptions = ["webinar-leads"]\nevery = "1h"\n',
        encoding="utf-8",
    )  # fmt: skip
    checked = run_cli("--db", db_url, "agents", "check", cwd=tmp_path)
    assert (checked.returncode, checked.stdout) == (0, "report: report webinar-leads every 1h\n")

    proc = subprocess.Popen(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, "agents", "run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while not any(" INFO report: report webinar-leads: " in line for line in seen):
            line = lines.get(timeout=120)  # the run's line, or the end of its output
            assert line is not None, (seen, proc.stderr.read())  # type: ignore[union-attr]
            seen.append(line)
    finally:
        code, _took = stop_process(proc, signal.SIGTERM)
    assert seen[-1].endswith(
        "INFO report: report webinar-leads: 2 found, 2 added to Spring webinar, 2 deals created"
    )
    assert code == 143
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(campaign_members)) == 4  # + Old list
        assert conn.scalar(
            select(func.count()).select_from(opportunities).where(opportunities.c.campaign_id.is_not(None))
        ) == 2  # fmt: skip
        run = conn.execute(select(sync_runs).where(sync_runs.c.agent == "report")).one()
    engine.dispose()
    assert (run.status, run.target, run.read, run.written) == ("done", "webinar-leads", 2, 2)
