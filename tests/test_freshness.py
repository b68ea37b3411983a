"""Freshness you can see: ``oppkit status`` / ``kit.sync_status()`` tell per source the
last success, its age, the last run's counts and error, and flag stale or failing
sources; a run killed outright shows as interrupted, never as running forever; ``oppkit
agents run`` runs every ``[[agents]]`` entry on its schedule, backs off after failures
and stops cleanly.

Processes are waited for with deadlines on what they record (sync_runs rows, log
lines), never with a sleep that hopes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text

import oppkit
from oppkit.agents_command import Job, run_jobs
from oppkit.cli import main
from oppkit.db.engine import create_oppkit_engine, migrate, write_transaction
from oppkit.db.schema import sync_runs
from oppkit.sources.agents_config import AgentEntry
from tests.support import big_mbox, count, engine_at, stop_process, wait_for_checkpoint

STOP_WITHIN = 2.0  # seconds from the signal to the exit


def _runs(url: str) -> list:
    """Every sync_runs row, oldest first."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.execute(select(sync_runs).order_by(sync_runs.c.id)).all()
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return []
    finally:
        engine.dispose()


def _wait_for_runs(url: str, proc: subprocess.Popen, enough, timeout: float = 120) -> list:  # noqa: ANN001
    """Wait (with a deadline) until ``enough(rows)`` holds for the sync_runs rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _runs(url)
        if enough(rows):
            return rows
        assert proc.poll() is None, f"the process ended with {proc.returncode}"
        time.sleep(0.1)  # polling interval, not a guess at timing
    raise AssertionError(f"not reached in {timeout}s: {[(r.target, r.status) for r in rows]}")


def _status_row(kit, target: Path, **kwargs):  # noqa: ANN001, ANN202
    status = kit.sync_status(**kwargs)
    rows = status[status["target"] == str(target.resolve())]
    assert len(rows) == 1, status[["agent", "source", "target"]]
    return rows.iloc[0]


def _config(folder: Path, *entries: str) -> Path:
    path = folder / "oppkit.toml"
    path.write_text("\n".join(entries), encoding="utf-8")
    return path


def _mail_entry(mbox: Path, every: str, name: str | None = None) -> str:
    named = f'name = "{name}"\n' if name else ""
    return (
        f'[[agents]]\nsource = "mail"\n{named}options = ["--mbox", "{mbox}"]\nevery = "{every}"\n'
    )


# --- status after runs ------------------------------------------------------------------


def test_status_shows_a_mail_sync_with_its_counts_and_age(db_url: str, tmp_path: Path, capsys):
    mbox = big_mbox(tmp_path / "ava.mbox", 20)
    assert main(["sync", "mail", "--mbox", str(mbox), "--db", db_url]) == 0
    capsys.readouterr()

    row = _status_row(oppkit.connect(db_url), mbox)
    assert (row.agent, row.source, row.last_status) == ("mail", "file", "done")
    assert (row.last_read, row.last_written, row.last_skipped) == (20, 20, 0)
    assert timedelta(0) <= row.age < timedelta(minutes=1)
    assert row.last_success > datetime.now(UTC) - timedelta(minutes=1)
    assert not row.stale and not row.failing and row.warning is None
    assert pd_isna(row.schedule)  # not configured: no schedule, never stale

    assert main(["status", "--db", db_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["SOURCE", "TARGET", "LAST", "SUCCESS"]
    line = next(line for line in out if str(mbox.resolve()) in line)
    assert line.startswith("mail/file") and " done " in line and line.endswith("ok")
    assert " 20 " in line  # the rows of the last run


def test_a_failed_run_shows_its_error(db_url: str, tmp_path: Path, capsys):
    missing = tmp_path / "gone.mbox"
    assert main(["sync", "mail", "--mbox", str(missing), "--db", db_url]) == 2
    assert capsys.readouterr().err.strip() == f"oppkit: error: mailbox not found: {missing}"

    row = _status_row(oppkit.connect(db_url), missing)
    assert row.last_status == "failed" and row.failing
    assert row.last_error == f"mailbox not found: {missing}"
    assert row.last_error_at > datetime.now(UTC) - timedelta(minutes=1)
    assert pd_isna(row.last_success)
    assert row.warning == f"failing: mailbox not found: {missing}"

    assert main(["status", "--check", "--db", db_url]) == 1  # monitoring: something is wrong
    line = next(line for line in capsys.readouterr().out.splitlines() if "gone.mbox" in line)
    assert "never" in line and "failed" in line and "! failing: mailbox not found" in line

    # the mailbox appears: the next success clears the flag, the error stays on record
    big_mbox(missing, 2)
    assert main(["sync", "mail", "--mbox", str(missing), "--db", db_url]) == 0
    row = _status_row(oppkit.connect(db_url), missing)
    assert row.last_status == "done" and not row.failing and row.warning is None
    assert row.last_error.startswith("mailbox not found")
    assert main(["status", "--check", "--db", db_url]) == 0


def test_a_source_older_than_its_schedule_is_stale(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    synced, never = big_mbox(tmp_path / "a.mbox", 3), tmp_path / "b.mbox"
    monkeypatch.chdir(tmp_path)  # oppkit.toml here gives the schedules
    _config(tmp_path, _mail_entry(synced, "15m"), _mail_entry(never, "1h"))
    assert main(["sync", "mail", "--mbox", str(synced), "--db", db_url]) == 0
    kit = oppkit.connect(db_url)
    now = datetime.now(UTC)

    fresh = _status_row(kit, synced, now=now + timedelta(minutes=20))
    assert fresh.schedule == timedelta(minutes=15) and fresh["name"] == "mail"
    assert not fresh.stale  # a run may be late; twice the schedule is not over yet

    old = _status_row(kit, synced, now=now + timedelta(hours=2))
    assert old.stale and not old.failing
    assert old.age > timedelta(hours=1, minutes=59)
    assert old.warning == "stale: last success 2h ago, schedule 15m"

    nothing = _status_row(kit, never, now=now)  # configured, never run: stale, no data yet
    assert (nothing.last_status, nothing.stale, nothing["name"]) == ("never", True, "mail#2")
    assert nothing.warning == "stale: no successful run yet"
    assert list(kit.sync_status()["target"]) == [str(synced.resolve()), str(never.resolve())]


# --- a run killed outright --------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seconds of work for a sync (written once for both backends: writing it takes long)."""
    return big_mbox(tmp_path_factory.mktemp("big") / "big.mbox", 12_000)


def test_a_sync_killed_mid_run_shows_as_interrupted_not_running(
    db_url: str, tmp_path: Path, big: Path
):
    mbox = big
    proc = subprocess.Popen(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, "sync", "mail", "--mbox", str(mbox)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_checkpoint(db_url, proc)
    proc.send_signal(signal.SIGKILL)  # no clean-up at all: the row says 'running'
    proc.wait(timeout=30)
    [left] = _runs(db_url)
    assert (left.status, left.pid, left.host) == ("running", proc.pid, socket.gethostname())

    row = _status_row(oppkit.connect(db_url), mbox)
    assert row.last_status == "interrupted" and not row.failing
    assert row.last_error == (
        f"interrupted: its process ({left.host}:{proc.pid}) ended without finishing the run"
    )
    assert "interrupted" in row.warning

    # the next run (of any source) marks it so; resuming is tests/test_stops.py's part
    small = big_mbox(tmp_path / "small.mbox", 2)
    assert main(["sync", "mail", "--mbox", str(small), "--db", db_url]) == 0
    first, second = _runs(db_url)
    assert first.status == "interrupted" and first.message == row.last_error
    assert first.finished_at == first.heartbeat_at  # its last sign of life
    assert second.status == "done"
    again = _status_row(oppkit.connect(db_url), mbox)
    assert again.last_status == "interrupted" and again.last_error == row.last_error


def test_a_run_on_another_host_is_interrupted_once_its_heartbeat_stops(db_url: str):
    engine = create_oppkit_engine(db_url)
    migrate(engine)
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        for target, beat in (
            ("alive", now - timedelta(seconds=20)),
            ("dead", now - timedelta(minutes=10)),
        ):
            conn.execute(insert(sync_runs).values(
                agent="mail", source="imap", target=target, started_at=now - timedelta(hours=1),
                status="running", host="another-host", pid=os.getpid(), heartbeat_at=beat,
            ))  # fmt: skip
    status = oppkit.connect(db_url).sync_status(now=now).set_index("target")
    assert status.loc["alive", "last_status"] == "running"
    assert status.loc["dead", "last_status"] == "interrupted"
    assert status.loc["dead", "last_error"].startswith("interrupted: its process (another-host:")
    engine.dispose()


def test_a_running_sync_beats_its_heartbeat(db_url: str, monkeypatch: pytest.MonkeyPatch):
    import oppkit.sync.runs as runs

    monkeypatch.setattr(runs, "HEARTBEAT_SECONDS", 0.05)
    engine = create_oppkit_engine(db_url)
    migrate(engine)
    with runs.recorded_run(engine, "mail", "file", "/x.mbox") as run:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                row = conn.execute(select(sync_runs).where(sync_runs.c.id == run.id)).one()
            if row.heartbeat_at > row.started_at:
                break
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
    with engine.connect() as conn:
        assert conn.scalar(select(sync_runs.c.status)) == "done"
    engine.dispose()


def test_runs_recorded_before_the_upgrade_keep_their_status(sqlite_url: str):
    engine = engine_at(sqlite_url, "0009")
    with write_transaction(engine) as conn:
        conn.execute(text(
            "INSERT INTO sync_runs (agent, started_at, finished_at, read, written, skipped, errors, status)"
            " VALUES ('mail', '2026-01-05 10:00:00.000000', '2026-01-05 10:01:00.000000', 7, 7, 0, 0, 'done'),"
            " ('calendar', '2026-01-05 10:00:00.000000', NULL, 0, 0, 0, 0, 'running')"
        ))  # fmt: skip
    migrate(engine)
    status = oppkit.connect(sqlite_url).sync_status().set_index("agent")
    assert status.loc["mail", "last_status"] == "done" and status.loc["mail", "last_read"] == 7
    assert status.loc["calendar", "last_status"] == "interrupted"  # no sign of life for months
    assert status.loc["calendar", "last_error"] == (
        "interrupted: its process (an older oppkit) ended without finishing the run"
    )
    engine.dispose()


# --- oppkit agents run ------------------------------------------------------------------


class Agents:
    """``oppkit agents run`` in a subprocess (cwd: the folder with oppkit.toml)."""

    def __init__(self, folder: Path, db_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oppkit.cli", "--db", db_url, "agents", "run", *args],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.out: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.out.append(line.rstrip("\n"))

    def stop(self, signum: int) -> tuple[int, float, str, list[str]]:
        """Send ``signum``; (exit code, seconds to exit, stderr, stdout lines)."""
        code, took = stop_process(self.proc, signum)
        self.reader.join(timeout=30)  # stdout closed with the process: read to its end
        return code, took, self.proc.stderr.read(), self.out  # type: ignore[union-attr]


def _targets(rows: list, path: Path, status: str) -> list:
    return [r for r in rows if r.target == str(path.resolve()) and r.status == status]


def test_agents_run_runs_each_source_on_its_schedule_and_stops_on_sigterm(
    db_url: str, tmp_path: Path
):
    a, b = big_mbox(tmp_path / "a.mbox", 5), big_mbox(tmp_path / "b.mbox", 7)
    _config(tmp_path, _mail_entry(a, "1s", name="ava"), _mail_entry(b, "2s", name="ben"))
    agents = Agents(tmp_path, db_url, "--log-format", "json")
    rows = _wait_for_runs(
        db_url, agents.proc,
        lambda rows: len(_targets(rows, a, "done")) >= 4 and len(_targets(rows, b, "done")) >= 2,
    )  # fmt: skip
    for path, every in ((a, 1.0), (b, 2.0)):  # each on its own schedule, from its start
        starts = [r.started_at for r in _targets(rows, path, "done")]
        gaps = [
            (later - earlier).total_seconds()
            for earlier, later in zip(starts, starts[1:], strict=False)
        ]
        assert all(gap >= every - 0.1 for gap in gaps[1:]), gaps  # (the first run warms up)

    code, took, err, out = agents.stop(signal.SIGTERM)
    assert code == 143, err
    assert took < STOP_WITHIN, f"took {took:.2f}s to stop"
    assert [line for line in err.splitlines() if line.strip()] == [
        "oppkit: stopped (SIGTERM); committed work is kept, the next run resumes"
    ]
    assert count(db_url) == 7  # b holds a's 5 messages and 2 more: each stored once
    assert all(r.status != "running" for r in _runs(db_url))  # a clean stop records its end

    logged = [json.loads(line) for line in out]  # every log line is a JSON object
    assert {"time", "level", "agent", "message"} <= set(logged[0])
    assert logged[0]["message"] == "running 2 agents: ava every 1s, ben every 2s"
    firsts = {e["agent"]: e for e in reversed(logged) if "counts" in e}
    assert firsts["ava"]["counts"]["written"] == 5 and firsts["ben"]["counts"]["read"] == 7
    assert all(e["level"] == "INFO" for e in logged)
    datetime.fromisoformat(logged[-1]["time"])


def test_agents_run_backs_off_after_failures_and_stops_on_sigint(db_url: str, tmp_path: Path):
    good, missing = big_mbox(tmp_path / "good.mbox", 2), tmp_path / "missing.mbox"
    _config(tmp_path, _mail_entry(good, "1s"), _mail_entry(missing, "1s"))
    agents = Agents(tmp_path, db_url)
    rows = _wait_for_runs(
        db_url, agents.proc, lambda rows: len(_targets(rows, missing, "failed")) >= 3
    )
    failed = [r.started_at for r in _targets(rows, missing, "failed")]
    gaps = [later - earlier for earlier, later in zip(failed, failed[1:], strict=False)]
    assert gaps[0] >= timedelta(seconds=1.9) and gaps[1] >= timedelta(seconds=3.9)  # x2, x4
    assert len(_targets(rows, good, "done")) >= 4  # the healthy source keeps its schedule

    code, took, err, out = agents.stop(signal.SIGINT)
    assert code == 130 and took < STOP_WITHIN, (code, took, err)
    assert "Traceback" not in err
    errors = [line for line in out if " ERROR mail#2: " in line]
    assert errors[0].endswith(
        f"ERROR mail#2: mailbox not found: {missing} (failed 1 time in a row; next try in 2s)"
    )
    assert errors[1].endswith("(failed 2 times in a row; next try in 4s)")


def test_backoff_doubles_up_to_eight_schedules_and_resets_on_success():
    outcomes = iter([False, False, False, False, False, True, False])
    now = [0.0]
    ran: list[float] = []

    def run(_args):  # noqa: ANN001, ANN202
        ran.append(now[0])
        if len(ran) > 7:
            raise KeyboardInterrupt
        if not next(outcomes):
            raise oppkit.SourceError("server down")
        return []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    entry = AgentEntry(1, "mail", (), 10.0, "10s", "mail")
    with pytest.raises(KeyboardInterrupt):
        run_jobs([Job(entry, None, run)], clock=lambda: now[0], sleep=sleep)
    gaps = [later - earlier for earlier, later in zip(ran, ran[1:], strict=False)]
    assert gaps == [20.0, 40.0, 80.0, 80.0, 80.0, 10.0, 20.0]


def test_bad_agents_config_exits_2_with_each_problem_on_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, sqlite_url: str
):
    monkeypatch.chdir(tmp_path)
    _config(
        tmp_path,
        '[[agents]]\nsource = "mial"\nevery = "15m"\n',
        '[[agents]]\nsource = "mail"\noptions = ["--mbox", "a.mbox"]\nevery = "soon"\n',
        '[[agents]]\nsource = "mail"\noptions = ["--mbox", "a.mbox", "--mbx", "b"]\nevery = "15m"\n',
        '[[agents]]\nsource = "calendar"\noptions = []\nevery = "1h"\n',
        '[[agents]]\nsource = "digest"\noptions = ["--frequency", "daily"]\nevery = "1d"\n',
        '[[agents]]\nsource = "digest"\nevery = "1d"\nwhen = "now"\n',
    )
    for action in ("run", "check"):
        assert main(["--db", sqlite_url, "agents", action]) == 2
        where = f"oppkit: error: {tmp_path / 'oppkit.toml'}: [[agents]]"
        assert capsys.readouterr().err.splitlines() == [
            f"{where} 1 (mial): unknown source 'mial' (one of: salesforce, mail, calendar, "
            "salesforce-export, digest, report, agreements)",
            f"{where} 2 (mail): every: not a duration: 'soon' (try 15m, 1h, 30s)",
            f"{where} 3 (mail#2): unknown option --mbx",
            f"{where} 4 (calendar): give --ics PATH, --caldav-url URL or --ews-url URL",
            f"{where} 6 (digest#2): unknown key 'when'",
        ]
    _config(tmp_path, '[[agents]]\nsource = "digest"\nevery = "1d"\n')
    assert main(["--db", sqlite_url, "agents", "check"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("[[agents]] 1 (digest): the following arguments are required: --frequency")
    )
    _config(tmp_path, _mail_entry(tmp_path / "a.mbox", "15m"))
    assert main(["--db", sqlite_url, "agents", "check"]) == 0
    assert capsys.readouterr().out == f"mail: mail --mbox {tmp_path / 'a.mbox'} every 15m\n"


def pd_isna(value) -> bool:  # noqa: ANN001
    import pandas as pd

    return bool(pd.isna(value))


# --- many processes, one database ---------------------------------------------------------


def _imap_entry(server, user: str, every: str) -> str:  # noqa: ANN001
    options = ["--imap-host", server.host, "--imap-port", str(server.tls_port),
               "--imap-user", user, "--imap-ca-file", server.ca_path, "--imap-folder", "INBOX"]  # fmt: skip
    return f'[[agents]]\nsource = "mail"\nname = "{user}"\noptions = {json.dumps(options)}\nevery = "{every}"\n'


def _imap_messages(user: str, start: int, n: int) -> list[bytes]:
    from tests.support import make_email

    return [
        make_email(sender=f"buyer@{user}.example", to=["ava.patel@northwind.example"],
                   subject=f"{user} {i}", body="hello", message_id=f"{user}-{i}@{user}.example",
                   when=datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(minutes=i)).as_bytes()
        for i in range(start, start + n)
    ]  # fmt: skip


def test_three_agent_processes_share_thirty_mailboxes_and_take_over_a_killed_ones(
    pg_url: str, tmp_path: Path, monkeypatch
):
    """30 IMAP mailboxes (a real dovecot), the same oppkit.toml in 3 `oppkit agents run`
    processes on one PostgreSQL: no mailbox is synced by two at once or twice in a cycle;
    one process killed mid-cycle, its mailboxes go on with the others; nothing is lost or
    stored twice."""
    from tests.servers.dovecot import Dovecot

    users, every = [f"box{i:02d}" for i in range(30)], 6.0
    monkeypatch.setenv("OPPKIT_IMAP_PASSWORD", "secret")
    with Dovecot() as server:
        for user in users:
            server.append(user, "INBOX", _imap_messages(user, 0, 2))
        _config(tmp_path, *(_imap_entry(server, u, f"{every:g}s") for u in users))
        agents = [Agents(tmp_path, pg_url) for _ in range(3)]

        def boxes_done(rows: list, n: int, after: datetime | None = None) -> bool:
            done = [
                r for r in rows if r.status == "done" and (after is None or r.started_at > after)
            ]
            return all(sum(r.target.startswith(f"{u}@") for r in done) >= n for u in users)

        _wait_for_runs(pg_url, agents[0].proc, lambda rows: boxes_done(rows, 1), timeout=180)
        agents[2].proc.kill()  # SIGKILL mid-cycle: no clean-up, its locks die with it
        agents[2].proc.wait()
        killed_at = datetime.now(UTC)
        for user in users:  # new mail after the kill
            server.append(user, "INBOX", _imap_messages(user, 2, 1))
        rows = _wait_for_runs(
            pg_url, agents[0].proc, lambda rows: boxes_done(rows, 2, killed_at), timeout=240
        )
        for agent in agents[:2]:
            code, _took, err, _out = agent.stop(signal.SIGTERM)
            assert code == 143, err

    assert count(pg_url) == 30 * 3  # every message once, whoever synced it
    for user in users:
        runs = sorted(
            (r for r in rows if r.target.startswith(f"{user}@") and r.status == "done"),
            key=lambda r: r.started_at,
        )
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert later.started_at >= earlier.finished_at, f"{user}: two syncs at once"
            gap = (later.started_at - earlier.started_at).total_seconds()
            assert gap >= every * 0.9 - 0.5, f"{user}: synced twice in one cycle ({gap:.1f}s)"
    hosts = {(r.host, r.pid) for r in rows if r.status == "done"}
    assert len(hosts) >= 2  # the work was spread
