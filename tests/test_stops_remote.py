"""Clean stops of the agents that talk to a server: the Salesforce API agent (real
simple-salesforce against tests/fakes/salesforce.py over HTTPS) and the Exchange mail
agent (real exchangelib against tests/fakes/ews.py over HTTPS).

SIGINT and SIGTERM at each point of a sync -- connecting (the first request), logging in
(Salesforce by password: the main thread itself waits on the server), reading a page
(the agent has nothing left to do but wait for it), between pages (a page-ahead fetch in
flight while the page before it is processed), writing (the source's rows committed at
a checkpoint while pages keep coming) and sleeping between runs of ``--every`` -- end the
agent within 2 s with one line and exit 130 / 143, keep what was committed, and the next
``--once`` run holds every record of the source exactly once.

Each test waits for its moment by a condition (the fake holds the agent's request, rows
are in the database, a run's line was printed, the agent's CPU is idle), never for a
fixed time. The fakes' holds (tests/fakes/holds.py) keep the agent waiting on the
network for as long as the test needs.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from oppkit.db.schema import activities
from tests.fakes.ews import FakeEws, FakeMailbox
from tests.fakes.holds import Holds
from tests.fakes.salesforce import FakeOrg, FakeSalesforce
from tests.support import AVA, Agent, assert_clean, make_email

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
TASKS = 2000  # Salesforce: ten Task pages of 200 (and a User, an Account, a deal before)
MESSAGES = 100  # Exchange: ten SyncFolderItems pages of 10
EWS_PAGE = 10
SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
POINTS = ["connecting", "reading", "between-pages", "writing", "sleeping"]
SLOW = 0.4  # seconds each page takes in "writing": the pages outlast the 2 s checkpoint


@dataclass
class Remote:
    """A fake server with its data, and how to run the agent against it."""

    script: str
    args: list[str]
    env: dict[str, str]
    holds: Holds
    records: int  # activities the source holds
    prefix: str  # of the line a finished run prints
    page: str  # what the description of a page request holds
    pages: int  # page requests of a whole run
    login: dict[str, str] | None = None  # env of a login by password, where there is one

    def agent(self, db: str, *more: str, login: bool = False) -> Agent:
        env = self.login if login and self.login is not None else self.env
        return Agent(self.script, *self.args, "--db", db, *more, env=env)


@contextmanager
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    org = FakeOrg(now=T0)
    ava = org.add("User", FirstName="Ava", LastName="Patel", Email=AVA, Username="ava")
    acme = org.add("Account", Name="Acme", Website="acme-robotics.example", OwnerId=ava)
    deal = org.add("Opportunity", Name="Acme pilot", AccountId=acme, OwnerId=ava,
                   StageName="Prospecting", CloseDate=date(2026, 3, 31))  # fmt: skip
    org.add_many("Task", [
        {"WhatId": deal, "OwnerId": ava, "Subject": f"task {i}", "Status": "Completed",
         "Priority": "Normal", "ActivityDate": date(2026, 1, 1)}
        for i in range(TASKS)
    ])  # fmt: skip
    with FakeSalesforce(org, page_size=200) as fake:
        env = {
            "OPPKIT_SF_INSTANCE_URL": fake.url,
            "OPPKIT_SF_SESSION_ID": fake.session_id,
            "OPPKIT_SF_CA_BUNDLE": fake.ca_path,  # the fake's own CA, not the system's
            "OPPKIT_SF_RETRY_MAX_WAIT": "0.05",
        }
        login = {  # the SOAP login at login.salesforce.com reaches the fake through its proxy
            "OPPKIT_SF_INSTANCE_URL": "", "OPPKIT_SF_SESSION_ID": "",
            "OPPKIT_SF_USERNAME": fake.username, "OPPKIT_SF_PASSWORD": fake.password,
            "OPPKIT_SF_SECURITY_TOKEN": fake.token, "HTTPS_PROXY": fake.proxy_url, "NO_PROXY": "",
        }  # fmt: skip
        args = ["--objects", "User,Account,Opportunity,Task"]
        # the Task pages after the first follow nextRecordsUrl: /queryAll/<locator>-<n>
        yield Remote("salesforce_agent.py", args, env, fake.holds, TASKS, "salesforce:",
                     "/queryAll/01g", TASKS // 200 - 1, {**env, **login})  # fmt: skip


@contextmanager
def exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    box = FakeMailbox()
    for i in range(MESSAGES):
        mime = make_email(sender=f"c{i % 20}@cust{i % 5}.example", to=[AVA], subject=f"ews {i}",
                          body=f"Body {i}\n" * 10, when=T0 + timedelta(minutes=i),
                          message_id=f"stop-{i}@cust.example")  # fmt: skip
        box.add_message("inbox", mime.as_bytes())
    with FakeEws({AVA: box}, tls=True, page_size=EWS_PAGE) as ews:
        args = ["--ews-url", ews.url, "--ews-mailbox", AVA, "--ews-auth", "noauth",
                "--ews-folder", "inbox", "--ews-ca-file", str(ews.ca_path)]  # fmt: skip
        yield Remote("mail_agent.py", args, {}, ews.holds, MESSAGES, "mail:",
                     "SyncFolderItems", MESSAGES // EWS_PAGE)  # fmt: skip


SOURCES = {"salesforce": salesforce, "exchange": exchange}


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime of every thread


def wait_idle(agent: Agent, timeout: float = 30) -> None:
    """Wait (with a deadline) until the agent uses no CPU for 0.3 s: it has done all it
    can and waits on the network."""
    deadline = time.monotonic() + timeout
    last, since = _cpu_ticks(agent.proc.pid), time.monotonic()
    while time.monotonic() - since < 0.3:
        assert agent.alive() and time.monotonic() < deadline, "the agent never went idle"
        time.sleep(0.05)  # polling interval of the wait
        ticks = _cpu_ticks(agent.proc.pid)
        if ticks != last:
            last, since = ticks, time.monotonic()


def reach(point: str, remote: Remote, db: str) -> Agent:
    """Start the agent and return it once it stands at ``point`` (still running)."""
    holds = remote.holds
    if point == "connecting":  # the agent's very first request to the server
        hold = holds.hold()
    elif point == "logging-in":  # a login by password: the main thread waits on it
        hold = holds.hold("/services/Soap/u/")
    elif point == "reading":  # the third page: the agent has nothing left but to wait
        hold = holds.hold(remote.page, nth=3)
    elif point == "between-pages":  # page 2's page-ahead fetch, as page 1 is processed
        hold = holds.hold(remote.page, nth=2)
    elif point == "writing":  # slow pages; the last one held keeps the run going
        holds.delay(SLOW, remote.page)
        hold = holds.hold(remote.page, nth=remote.pages)
    else:
        hold = None
    if point == "sleeping":
        agent = remote.agent(db, "--every", "1h")
        agent.wait_for_line(remote.prefix)  # the first run is done; it sleeps for an hour
        return agent
    agent = remote.agent(db, "--once", login=point == "logging-in")
    if point == "writing":  # the source's rows are committed at a checkpoint, pages go on
        wait_for_rows(db, agent)
    else:
        assert hold is not None
        try:
            hold.wait(alive=agent.alive)
        except AssertionError:
            raise AssertionError(_why(agent)) from None
        if point == "reading":
            wait_idle(agent)  # every page before the held one is processed
    assert agent.alive(), _why(agent)
    return agent


def _why(agent: Agent) -> str:
    if agent.alive():
        return "the agent never got there"
    return f"the agent ended ({agent.proc.returncode}): {agent.proc.stderr.read()}"  # type: ignore[union-attr]


def wait_for_rows(db: str, agent: Agent, timeout: float = 60) -> None:
    """Wait (with a deadline) until the agent has committed some of the source's rows."""
    deadline = time.monotonic() + timeout
    while rows(db) == 0:
        assert agent.alive() and time.monotonic() < deadline, "no rows were committed"
        time.sleep(0.05)  # polling interval of the wait


def rows(db: str) -> int:
    """Activities in the database (0 before the agent made the schema)."""
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(activities)) or 0
    except OperationalError:  # no schema yet (SQLite: no such table)
        return 0
    finally:
        engine.dispose()


def holds_every_record_once(db: str, remote: Remote) -> None:
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    key = (activities.c.source, activities.c.source_id)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(activities))
        distinct = select(*key).distinct().subquery()
        unique = conn.scalar(select(func.count()).select_from(distinct))
    engine.dispose()
    assert n == unique == remote.records  # nothing lost, nothing doubled


def run_case(source: Callable, point: str, signum: int, db: str, monkeypatch) -> None:  # noqa: ANN001
    """Stop the agent at ``point`` with ``signum``; run it again; every record once."""
    with source(monkeypatch) as remote:
        agent = reach(point, remote, db)
        committed = rows(db)
        assert_clean(*agent.stop(signum), signum)
        assert rows(db) >= committed  # what was committed before the signal is kept
        if point in ("writing", "sleeping"):
            assert committed > 0
        remote.holds.release_all()
        remote.holds.delay(0)
        again = remote.agent(db, "--once")
        code, err = again.finish()
        assert code == 0, err
        assert any(line.startswith(remote.prefix) for line in again.seen), again.seen
    holds_every_record_once(db, remote)


@SIGNALS
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("source", list(SOURCES))
def test_a_remote_agent_stops_cleanly_at_any_point_and_resumes_without_loss(
    source: str, point: str, signum: int, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
):
    run_case(SOURCES[source], point, signum, sqlite_url, monkeypatch)


@SIGNALS
def test_the_salesforce_agent_stops_cleanly_while_it_logs_in(
    signum: int, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
):
    run_case(salesforce, "logging-in", signum, sqlite_url, monkeypatch)


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_remote_agent_stopped_while_it_writes_to_postgresql_resumes_without_loss(
    source: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
):
    run_case(SOURCES[source], "writing", signal.SIGTERM, pg_url, monkeypatch)


@pytest.mark.parametrize(
    ("source", "signum"),
    [("salesforce", signal.SIGINT), ("exchange", signal.SIGTERM)],
    ids=["salesforce-SIGINT", "exchange-SIGTERM"],
)
def test_a_remote_agent_waiting_on_a_locked_postgresql_table_stops_cleanly(
    source: str, signum: int, pg_url: str, monkeypatch: pytest.MonkeyPatch
):
    """Someone else locks the timeline (a long report, a migration) after the agent's first
    commit: its next commit waits in the database driver, with rows of its own uncommitted
    (and, when it is not the last commit, a page in flight)."""
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with SOURCES[source](monkeypatch) as remote:
        remote.holds.delay(SLOW, remote.page)  # pages keep coming after the first commit
        agent = remote.agent(pg_url, "--once")
        wait_for_rows(pg_url, agent)
        with engine.connect() as conn, conn.begin() as locked:
            conn.execute(text("LOCK TABLE activities IN ACCESS EXCLUSIVE MODE"))
            committed = conn.scalar(select(func.count()).select_from(activities))
            wait_blocked(engine, agent)
            assert_clean(*agent.stop(signum), signum)
            locked.rollback()
        assert rows(pg_url) >= committed > 0  # the committed rows are kept
        remote.holds.delay(0)
        code, err = remote.agent(pg_url, "--once").finish()
        assert code == 0, err
    engine.dispose()
    holds_every_record_once(pg_url, remote)


def wait_blocked(engine, agent: Agent, timeout: float = 60) -> str:  # noqa: ANN001
    """Wait (with a deadline) until a PostgreSQL session waits for a lock; its query."""
    waiting = text(
        "SELECT query FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    deadline = time.monotonic() + timeout
    with engine.connect() as watch:
        while not (query := watch.execute(waiting).scalar()):
            watch.rollback()  # pg_stat_activity is read once per transaction
            assert agent.alive() and time.monotonic() < deadline, _why(agent)
            time.sleep(0.05)  # polling interval of the wait
    return query
