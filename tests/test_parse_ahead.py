"""Parse-ahead (#14): mail parsed in worker processes gives exactly what the serial parse
gives, in the same order (checkpoints included); a worker's crash costs one message; a
stopped or killed sync leaves no worker behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from oppkit.db.engine import connect_engine
from oppkit.db.schema import activities, activity_people, alerts, people
from oppkit.sources import parse_ahead
from oppkit.sources.mail import parse_message, read_mail, read_mbox
from oppkit.sources.parse_ahead import Parse
from oppkit.sources.records import Checkpoint, Skipped
from oppkit.sync import sync_mail
from tests.support import (
    Agent,
    assert_clean,
    bad_mail,
    big_mbox,
    count,
    raw_mail,
    wait_for_checkpoint,
    write_mbox,
)

CORPUS = Path(__file__).parent / "data" / "email_corpus"


def _mixed_mbox(path: Path) -> Path:
    """CPython's email corpus, the bad-input cases (charsets, encoded words, broken MIME,
    NUL bytes, HTML-only, attachments...) and plain mail: more than one set of chunks."""
    messages: list[bytes] = [p.read_bytes() for p in sorted(CORPUS.glob("msg_*.txt"))]
    for case in bad_mail(big=2**20, html=16 * 2**10):
        if not case.bare:
            messages += case.messages()
    messages += [raw_mail(n, body=f"Could you send the quote {n}?\n" * (n % 9)) for n in range(400)]
    return write_mbox(path, messages)


def _workers_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    started: list[int] = []
    original = parse_ahead._Worker.__init__

    def counted(self, parser: str) -> None:  # noqa: ANN001
        original(self, parser)
        started.append(self.proc.pid)

    monkeypatch.setattr(parse_ahead._Worker, "__init__", counted)
    return started


def test_workers_yield_the_serial_records_and_checkpoints_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    mbox = _mixed_mbox(tmp_path / "m.mbox")
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "0")
    serial = list(read_mbox(mbox, checkpoint_every=7))
    started = _workers_started(monkeypatch)
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "2")
    parallel = list(read_mbox(mbox, checkpoint_every=7))
    assert len(started) == 2  # the workers did the parsing
    assert len(serial) > parse_ahead.SERIAL_BELOW
    assert any(isinstance(r, Skipped) for r in serial)
    assert sum(isinstance(r, Checkpoint) for r in serial) > 60
    assert parallel == serial  # every field of every record, every checkpoint where it was


def test_a_sync_with_workers_stores_what_a_serial_sync_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    mbox = _mixed_mbox(tmp_path / "m.mbox")
    stored, started = [], _workers_started(monkeypatch)
    for workers in ("0", "2"):
        monkeypatch.setenv("OPPKIT_PARSE_WORKERS", workers)
        url = f"sqlite:///{tmp_path / f'w{workers}.sqlite'}"
        summary = sync_mail(mbox, db=url, progress=False)
        stored.append((summary.read, summary.skipped, *_stored(url)))
    assert len(started) == 2
    assert stored[0] == stored[1]


def test_an_exchange_sync_with_workers_stores_what_a_serial_one_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Exchange's conversation ids replace the headers' threads in the workers too."""
    from oppkit.sources.exchange import ExchangeSettings
    from oppkit.sync import sync_exchange
    from tests.fakes.ews import FakeEws, FakeMailbox

    box = FakeMailbox()
    for n in range(parse_ahead.SERIAL_BELOW + 50):
        box.add_message(
            "inbox", raw_mail(n, date=None if n % 40 == 0 else "Mon, 02 Mar 2026 10:00:00 +0000")
        )
    stored, started = [], _workers_started(monkeypatch)
    with FakeEws({"ava.patel@northwind.example": box}, tls=True) as ews:
        for workers in ("0", "2"):
            monkeypatch.setenv("OPPKIT_PARSE_WORKERS", workers)
            server = ExchangeSettings(endpoint=ews.url, mailboxes=("ava.patel@northwind.example",),
                                      username=f"svc{workers}", password="p", auth="noauth",
                                      max_wait=5, ca_file=ews.ca_path)  # fmt: skip
            url = f"sqlite:///{tmp_path / f'w{workers}.sqlite'}"
            summary = sync_exchange(server, db=url, progress=False)
            stored.append((summary.read, summary.skipped, *_stored(url)))
    assert stored[0][0] == parse_ahead.SERIAL_BELOW + 50
    assert len(started) == 2  # the second sync's workers
    assert stored[0] == stored[1]


def _stored(url: str) -> tuple[list, list, list]:
    """Every activity (but its row id and write times), who took part, the alerts."""
    engine = connect_engine(url)
    with engine.connect() as conn:
        rows = [
            tuple(r)[1:]  # all but the row id
            for r in conn.execute(
                select(activities).order_by(activities.c.source, activities.c.source_id)
            )
        ]
        who = sorted(
            conn.execute(
                select(activities.c.source_id, people.c.email, people.c.name, activity_people.c.role)
                .join(activity_people, activity_people.c.activity_id == activities.c.id)
                .join(people, people.c.id == activity_people.c.person_id)
            ).all(),
            key=repr,
        )  # fmt: skip
        found = sorted(conn.execute(select(alerts.c.kind, alerts.c.text)).all(), key=repr)
    engine.dispose()
    return _without_times(rows), who, found


def _without_times(rows: list[tuple]) -> list[tuple]:
    """Rows without the moments the sync wrote them (created/updated now)."""
    return [tuple(v for v in row if not _is_now(v)) for row in rows]


def _is_now(value: object) -> bool:
    from datetime import UTC, datetime, timedelta

    if not isinstance(value, datetime):
        return False
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=10)


def test_a_folder_of_eml_files_is_parsed_by_the_workers_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "eml"
    folder.mkdir()
    for n in range(parse_ahead.SERIAL_BELOW + 20):
        (folder / f"{n:04}.eml").write_bytes(raw_mail(n))
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "0")
    serial = list(read_mail(folder))
    started = _workers_started(monkeypatch)
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "2")
    assert list(read_mail(folder)) == serial
    assert started


def test_few_messages_are_parsed_without_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mbox = write_mbox(tmp_path / "m.mbox", [raw_mail(n) for n in range(100)])
    started = _workers_started(monkeypatch)
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "2")
    took = time.perf_counter()
    assert sum(1 for r in read_mbox(mbox) if not isinstance(r, Checkpoint)) == 100
    assert started == []
    assert time.perf_counter() - took < 1


def test_a_worker_that_dies_costs_only_the_message_that_killed_it():
    jobs: list[object] = []
    for n in range(700):  # the first SERIAL_BELOW are parsed in this process: no crash there
        raw = b"crash" if n in (350, 351, 620) else raw_mail(n)
        jobs.append(Parse((raw, f"m{n}")))
        if n % 100 == 99:
            jobs.append(Checkpoint("x", {"n": n}))
    out = list(
        parse_ahead.parse_ahead(
            jobs, "tests.crashing_parser:parse", lambda args: Skipped("crashed", args[1]), 2
        )
    )
    checkpoints = [r.cursor["n"] for r in out if isinstance(r, Checkpoint)]
    assert checkpoints == [99 + 100 * i for i in range(7)]
    records = [r for r in out if not isinstance(r, Checkpoint)]
    expected = [
        Skipped("crashed", job.args[1]) if job.args[0] == b"crash" else parse_message(*job.args)
        for job in jobs
        if isinstance(job, Parse)
    ]
    assert records == expected


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def _gone(pids: set[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_a_stopped_sync_leaves_no_worker_behind_and_resumes(
    sqlite_url: str, tmp_path: Path, signum: int
):
    n = 12_000
    mbox = big_mbox(tmp_path / "big.mbox", n)
    agent = Agent("mail_agent.py", "--mbox", str(mbox), "--db", sqlite_url,
                  env={"OPPKIT_PARSE_WORKERS": "2"})  # fmt: skip
    wait_for_checkpoint(sqlite_url, agent.proc)
    workers = _children(agent.proc.pid)
    assert len(workers) == 2, workers
    if signum == signal.SIGKILL:
        agent.proc.kill()
        agent.proc.wait(timeout=10)
    else:
        assert_clean(*agent.stop(signum), signum)
    assert _gone(workers, within=2.0), [p for p in workers if _alive(p)]
    assert 0 < count(sqlite_url) < n
    again = Agent("mail_agent.py", "--mbox", str(mbox), "--db", sqlite_url)
    assert again.proc.wait(timeout=300) == 0
    assert count(sqlite_url) == n  # resumed: nothing lost, nothing doubled
    assert os.path.exists(mbox)


@pytest.mark.parametrize("fails_after", [100, 500], ids=["before the workers", "with workers"])
def test_a_source_that_fails_gives_every_record_before_the_failure(fails_after: int):
    """As a dropped IMAP connection: what was read before it is still written."""

    def jobs():
        for n in range(fails_after):
            yield Parse((raw_mail(n), f"m{n}"))
            if n % 50 == 49:
                yield Checkpoint("x", {"n": n})
        raise ConnectionError("dropped")

    out = []
    with pytest.raises(ConnectionError):
        for record in parse_ahead.parse_ahead(
            jobs(), "oppkit.sources.mail:parse_message", lambda args: None, 2
        ):
            out.append(record)
    assert sum(not isinstance(r, Checkpoint) for r in out) == fails_after
    assert out[-1] == Checkpoint("x", {"n": fails_after - 1})


def test_without_an_interpreter_to_start_the_messages_are_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    mbox = write_mbox(tmp_path / "m.mbox", [raw_mail(n) for n in range(400)])
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "0")
    serial = list(read_mbox(mbox))
    monkeypatch.setenv("OPPKIT_PARSE_WORKERS", "2")
    monkeypatch.setattr(parse_ahead.sys, "executable", str(tmp_path / "no-python"))
    assert list(read_mbox(mbox)) == serial


def test_workers_that_cannot_start_leave_the_parsing_to_this_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """A parser the workers cannot import: one warning, every message parsed here, no
    worker started per message."""
    jobs = [Parse((raw_mail(n), f"m{n}")) for n in range(500)]
    expected = [parse_message(*job.args) for job in jobs]
    started = []
    original = parse_ahead._Worker.__init__

    def counted(self, parser: str) -> None:  # noqa: ANN001
        original(self, parser)
        started.append(parser)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parse_ahead._Worker, "__init__", counted)
        # importable here (the tests' path), but the workers are told to look elsewhere
        patch.setattr(parse_ahead.sys, "path", [str(tmp_path)])
        patch.setattr(parse_ahead.Path, "resolve", lambda self: tmp_path / "a" / "b")
        out = list(parse_ahead.parse_ahead(jobs, "oppkit.sources.mail:parse_message", None, 2))
    assert out == expected
    assert len(started) == 2
    assert "parse workers cannot start; parsing in this process" in caplog.text
