"""Timeline query benchmark: ``Kit.timeline`` on a large database, SQLite and PostgreSQL.

Builds a database of 1,000,000 activities across 10,000 opportunities (1,000 accounts,
20,000 people, an activity_people row for the sender and 1-2 recipients of each
activity), with the schema from ``connect_engine`` (Alembic) and rows bulk-inserted
(SQLAlchemy Core on SQLite, COPY on PostgreSQL), then ANALYZE. It then measures
``oppkit.connect(url).timeline(opportunity=id)`` for random opportunities (after warm-up
calls): median, p95 and rows returned, beside the bare index lookup through the DB-API
driver (``SELECT * FROM activities WHERE opportunity_id = ? ORDER BY occurred_at DESC``).
``timeline(person=email)`` and ``timeline(account=id)`` medians are shown for information.

Targets: median < 20 ms on SQLite, < 50 ms on PostgreSQL.

PostgreSQL: a fresh database ``oppkit_bench_<random>`` is created from ``--pg-url`` and
dropped at the end; when the server is unreachable it is skipped with a note.

    .venv/bin/python benchmarks/timeline_query.py            # 1M activities
    .venv/bin/python benchmarks/timeline_query.py --quick    # 50k / 500, smoke run
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Table, create_engine, text
from sqlalchemy.engine import make_url

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.db.schema import accounts, activities, activity_people, opportunities, people

CHUNK = 20_000
USERS = 50  # internal users on northwind.example
T0 = datetime(2023, 1, 1)
STAGES = ["Qualify", "Discover", "Propose", "Negotiate", "Closed Won", "Closed Lost"]
WORDS = "pilot pricing renewal integration sensor demo budget security rollout".split()
RAW_SQL = "SELECT * FROM activities WHERE opportunity_id = {} ORDER BY occurred_at DESC"


# --- data ----------------------------------------------------------------------------


class World:
    """Accounts, people and opportunities, and activities generated from them."""

    def __init__(self, n_opps: int, n_accounts: int, n_people: int, seed: int = 11) -> None:
        rng = self.rng = random.Random(seed)
        base = {"created_at": T0, "updated_at": T0, "is_deleted": False}
        self.accounts = [
            {"id": a, "name": f"Account {a}", "domain": f"acct{a}.example", "source": "mail",
             "source_id": f"acct{a}.example", **base}
            for a in range(1, n_accounts + 1)
        ]  # fmt: skip
        self.people, self.staff = [], {a: [] for a in range(1, n_accounts + 1)}
        for p in range(1, n_people + 1):
            account = None if p <= USERS else rng.randint(1, n_accounts)
            email = (
                f"user{p}@northwind.example" if account is None else f"p{p}@acct{account}.example"
            )
            self.people.append(
                {"id": p, "email": email, "name": f"Person {p}", "account_id": account,
                 "is_internal": account is None, "source": "mail", "source_id": email, **base}
            )  # fmt: skip
            if account is not None:
                self.staff[account].append(p)
        for staff in self.staff.values():  # every account has someone to write to
            if not staff:
                staff.append(USERS + 1)
        self.opps = [
            {"id": o, "name": f"Opportunity {o}", "account_id": (o - 1) % n_accounts + 1,
             "owner_id": rng.randint(1, USERS), "stage": rng.choice(STAGES),
             "amount": float(rng.randrange(5_000, 500_000)), "currency": "EUR",
             "close_date": date(2025, 1, 1) + timedelta(days=rng.randrange(730)),
             "is_private": rng.random() < 0.02, "source": "salesforce",
             "source_id": f"006{o:012d}", **base}
            for o in range(1, n_opps + 1)
        ]  # fmt: skip

    def activities(self, n: int) -> Iterator[tuple[list[dict], list[dict]]]:
        """Chunks of (activity rows, activity_people rows)."""
        rng, opps, span = self.rng, self.opps, 3 * 365 * 86400
        acts: list[dict] = []
        links: list[dict] = []
        for i in range(1, n + 1):
            opp = rng.choice(opps)
            account, staff = opp["account_id"], self.staff[opp["account_id"]]
            user, customer = rng.randint(1, USERS), rng.choice(staff)
            outbound = rng.random() < 0.5
            sender, to = (user, customer) if outbound else (customer, user)
            recipients = {to, rng.choice(staff)} if rng.random() < 0.5 else {to}
            when = T0 + timedelta(seconds=rng.randrange(span))
            acts.append(
                {"id": i, "kind": "email" if i % 10 else "meeting",
                 "subject": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}",
                 "snippet": f"Could we review the {rng.choice(WORDS)} before Friday? " * 3,
                 "occurred_at": when, "direction": "outbound" if outbound else "inbound",
                 "thread_id": f"t{i // 4}@mail.example", "account_id": account,
                 "opportunity_id": opp["id"] if rng.random() < 0.9 else None,
                 "sender_id": sender, "is_planned": False, "is_auto": False,
                 "attachments": None, "source": "mail", "source_id": f"m{i}@mail.example",
                 "created_at": when, "updated_at": when, "is_deleted": False}
            )  # fmt: skip
            links.append({"activity_id": i, "person_id": sender, "role": "from"})
            links += [
                {"activity_id": i, "person_id": r, "role": "to"} for r in recipients - {sender}
            ]
            if len(acts) == CHUNK:
                yield acts, links
                acts, links = [], []
        if acts:
            yield acts, links


def insert_rows(conn: Connection, table: Table, rows: list[dict]) -> None:
    """Bulk insert: Core executemany on SQLite, COPY on PostgreSQL."""
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def build(url: str, args: argparse.Namespace) -> World:
    engine = connect_engine(url)  # creates the schema (Alembic migration)
    world = World(args.opportunities, args.accounts, args.people)
    with engine.begin() as conn:
        for table, rows in (
            (accounts, world.accounts), (people, world.people), (opportunities, world.opps)
        ):  # fmt: skip
            for start in range(0, len(rows), CHUNK):
                insert_rows(conn, table, rows[start : start + CHUNK])
        for acts, links in world.activities(args.activities):
            insert_rows(conn, activities, acts)
            insert_rows(conn, activity_people, links)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return world


# --- measuring -----------------------------------------------------------------------


def measure(fn: Callable[[object], int], refs: list, warm: list) -> tuple[float, float, float]:
    """(median ms, p95 ms, mean rows) of ``fn`` over ``refs`` after calls on ``warm``."""
    for ref in warm:
        fn(ref)
    times, rows = [], []
    for ref in refs:
        started = time.perf_counter()
        rows.append(fn(ref))
        times.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return statistics.median(times), p95, statistics.mean(rows)


def bench(name: str, url: str, open_raw: Callable, args: argparse.Namespace) -> list[tuple]:
    """Build the database at ``url`` and time the queries; ``open_raw()`` -> DB-API conn."""
    started = time.perf_counter()
    world = build(url, args)
    setup = time.perf_counter() - started
    raw = open_raw()
    sql = RAW_SQL.format("?" if name == "sqlite" else "%s")

    def raw_fetch(opp: int) -> int:
        return len(raw.execute(sql, (opp,)).fetchall())

    print(f"{name}: set-up {setup:.0f}s ({args.activities:,} activities, build + ANALYZE)")
    rng = random.Random(5)
    public = [o["id"] for o in world.opps if not o["is_private"]]
    picked = rng.sample(public, args.samples + 5)
    warm, refs = picked[:5], picked[5:]
    customers = [p["email"] for p in world.people if not p["is_internal"]]
    few = min(args.samples, 50)
    kit = oppkit.connect(url)
    results = [
        (name, "raw SQL by opportunity (DB-API)", *measure(raw_fetch, refs, warm), None),
        (name, "kit.timeline(opportunity=id)",
         *measure(lambda o: len(kit.timeline(opportunity=o)), refs, warm), args.target[name]),
        (name, "kit.timeline(person=email)  [info]",
         *measure(lambda p: len(kit.timeline(person=p)), rng.sample(customers, few), warm=[]), None),
        (name, "kit.timeline(account=id)    [info]",
         *measure(lambda a: len(kit.timeline(account=a)),
                  rng.sample(range(1, args.accounts + 1), few), warm=[]), None),
    ]  # fmt: skip
    kit.engine.dispose()
    raw.close()
    return results


def sqlite_run(workdir: Path, args: argparse.Namespace) -> list[tuple]:
    path = workdir / "timeline.sqlite"
    return bench("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), args)


def postgres_run(args: argparse.Namespace) -> list[tuple]:
    import psycopg

    name = f"oppkit_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure means: no PostgreSQL to use here
        print(
            f"postgresql: skipped, cannot create a database at {args.pg_url} ({type(exc).__name__})"
        )
        admin.dispose()
        return []
    url = make_url(args.pg_url).set(database=name)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return bench(
            "postgresql",
            url.render_as_string(hide_password=False),
            lambda: psycopg.connect(conninfo, autocommit=True),
            args,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activities", type=int, default=1_000_000)
    ap.add_argument("--opportunities", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200, help="timed calls per query")
    ap.add_argument("--quick", action="store_true", help="50,000 activities, 500 opportunities")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--workdir", type=Path, help="where to put the SQLite file")
    args = ap.parse_args()
    if args.quick:
        args.activities, args.opportunities = 50_000, 500
    args.accounts = max(1, args.opportunities // 10)
    args.people = args.opportunities * 2
    args.samples = min(args.samples, int(args.opportunities * 0.9))
    args.target = {"sqlite": 20.0, "postgresql": 50.0}

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-timeline-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = sqlite_run(workdir, args)
        results += [] if args.skip_pg else postgres_run(args)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)

    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    code = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    print(
        f"\ntimeline, {args.activities:,} activities / {args.opportunities:,} opportunities / "
        f"{args.accounts:,} accounts / {args.people:,} people, code {code} (shared 2-core box)"
    )
    print(f"{'backend':<11} {'query':<36} {'median ms':>9} {'p95 ms':>8} {'rows':>7}  target")
    print("-" * 88)
    for backend, query, median, p95, rows, target in results:
        verdict = f"< {target:.0f} ms {'PASS' if median < target else 'FAIL'}" if target else ""
        print(f"{backend:<11} {query:<36} {median:>9.2f} {p95:>8.2f} {rows:>7.0f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
