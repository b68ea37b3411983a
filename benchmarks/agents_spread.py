"""Many agents, one database: the time of one cycle over N IMAP mailboxes with 1, 2 and 3
``oppkit agents run`` processes sharing one PostgreSQL.

A real dovecot (tests/servers/dovecot.py) holds N mailboxes of M messages; the same
oppkit.toml (one ``[[agents]]`` entry per mailbox) runs in P processes on a fresh
database. One cycle is measured from the processes' start until every mailbox has one
successful run in ``sync_runs``. The baseline is one process: what a team gets without
spreading the work. Each mailbox is also checked to be synced exactly once in the cycle.

    .venv/bin/python benchmarks/agents_spread.py                 # 30 mailboxes x 20 messages
    .venv/bin/python benchmarks/agents_spread.py --mailboxes 10 --messages 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("OPPKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _messages(user: str, n: int) -> list[bytes]:
    from tests.support import make_email

    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return [
        make_email(sender=f"buyer@{user}.example", to=["ava.patel@northwind.example"],
                   subject=f"{user} {i}", body="hello\n" * 20, message_id=f"{user}-{i}@b.example",
                   when=start + timedelta(minutes=i)).as_bytes()
        for i in range(n)
    ]  # fmt: skip


def _config(folder: Path, server, users: list[str]) -> None:  # noqa: ANN001
    entries = []
    for user in users:
        options = ["--imap-host", server.host, "--imap-port", str(server.tls_port),
                   "--imap-user", user, "--imap-ca-file", server.ca_path, "--imap-folder", "INBOX"]  # fmt: skip
        entries.append(f'[[agents]]\nsource = "mail"\nname = "{user}"\n'
                       f"options = {json.dumps(options)}\nevery = \"1h\"\n")  # fmt: skip
    (folder / "oppkit.toml").write_text("\n".join(entries), encoding="utf-8")


def _database() -> str:
    name = f"oppkit_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from oppkit.db.engine import connect_engine

    connect_engine(url).dispose()  # migrated before the clock starts
    return url


def _drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def one_cycle(folder: Path, users: list[str], processes: int) -> tuple[float, float, int, int]:
    """(seconds with start-up, seconds of syncing, mailboxes synced once, processes that
    did work) for one cycle. Syncing: from the first run's start to the last one's end."""
    from oppkit.db.schema import sync_runs

    url = _database()
    env = {**os.environ, "OPPKIT_IMAP_PASSWORD": "secret"}
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "oppkit.cli", "--db", url, "agents", "run"],
                         cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]  # fmt: skip
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(
                    select(sync_runs.c.target, sync_runs.c.pid, sync_runs.c.started_at,
                           sync_runs.c.finished_at).where(sync_runs.c.status == "done")
                ).all()  # fmt: skip
            rows = [(r.target, r.pid) for r in done]
            if len({t.split("@")[0] for t, _pid in rows}) >= len(users):
                break
            time.sleep(0.05)  # polling interval of the wait
        seconds = time.perf_counter() - started
        syncing = (
            max(r.finished_at for r in done) - min(r.started_at for r in done)
        ).total_seconds()
        per_box = {u: sum(t.startswith(f"{u}@") for t, _ in rows) for u in users}
        once = sum(n == 1 for n in per_box.values())
        workers = len({pid for _t, pid in rows})
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        engine.dispose()
        _drop(url)
    return seconds, syncing, once, workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=30)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.servers.dovecot import Dovecot

    users = [f"box{i:02d}" for i in range(args.mailboxes)]
    with tempfile.TemporaryDirectory(prefix="oppkit-spread-") as tmp, Dovecot() as server:
        for user in users:
            server.append(user, "INBOX", _messages(user, args.messages))
        folder = Path(tmp)
        _config(folder, server, users)
        print(f"agents_spread: {len(users)} IMAP mailboxes x {args.messages} messages (dovecot), "
              "one PostgreSQL; one cycle = every mailbox synced once; baseline = 1 process")  # fmt: skip
        print(f"{'processes':>9}  {'cycle s':>8}  {'syncing s':>9}  {'speed-up':>8}  "
              f"{'synced once':>11}  {'working':>7}")  # fmt: skip
        base = None
        for processes in (1, 2, 3):
            seconds, syncing, once, workers = one_cycle(folder, users, processes)
            base = base or syncing
            print(f"{processes:>9}  {seconds:>8.1f}  {syncing:>9.1f}  {base / syncing:>8.2f}  "
                  f"{once:>5}/{len(users):<5}  {workers:>7}")  # fmt: skip
        print(
            "cycle s: from the processes' start (Python and oppkit start-up included); "
            "syncing s: first run's start to last run's end; speed-up: of syncing vs 1"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
