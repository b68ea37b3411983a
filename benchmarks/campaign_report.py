"""Campaign report benchmark: ``kit.campaign_report()`` on a large org, SQLite and PostgreSQL.

Builds 100 campaigns, 50,000 opportunities (90% stamped with a campaign, 3% private,
six stages: four open, won, lost), 500,000 campaign members (80% contacts, 20% leads, 1%
deleted), 100,000 leads (20% converted to a contact), 100,000 contacts at 2,000 accounts
and a contact member (plus, for one in ten, a colleague) on every deal; the schema from
``connect_engine`` (Alembic), rows bulk-inserted (SQLAlchemy Core executemany on SQLite,
COPY on PostgreSQL), then ANALYZE (VACUUM ANALYZE on PostgreSQL).

It then times, as an internal user (so privacy is the full condition: public, or owned
by the user, or the user is a member), the median of several runs after warm-up of

* ``kit.campaign_report()``: every campaign, to a typed DataFrame with the ratios;
* the bare SQL aggregate: the same figures as one hand-written GROUP BY query (deals
  grouped by campaign with the same privacy condition, members grouped by campaign, the
  union of lead members and converted leads whose contact is a member grouped by
  campaign, all left-joined to campaigns), run through the same DB-API driver and
  fetched as tuples: no SQLAlchemy, no pandas.

Both must give the same figures (checked). Targets: the report under 500 ms, and at most
2x the bare SQL. ``kit.campaign_report(since=...)`` and a report of 5 named campaigns are
shown for information. Every call is timed in rounds, the order rotating each round, so a
busy spell on a shared machine falls on all of them alike; the load average is printed.

PostgreSQL: a fresh database ``oppkit_bench_<random>`` is created from ``--pg-url`` and
dropped at the end (as benchmarks/timeline_query.py does); when the server is unreachable
it is skipped with a note.

    .venv/bin/python benchmarks/campaign_report.py            # 50k deals / 500k members
    .venv/bin/python benchmarks/campaign_report.py --quick    # a tenth of that, smoke run
"""

from __future__ import annotations

import argparse
import math
import os
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
from oppkit.db.schema import (
    accounts,
    campaign_members,
    campaigns,
    leads,
    opportunities,
    opportunity_people,
    people,
    stages,
)

CHUNK = 20_000
USERS = 50  # internal people on northwind.example; the report runs as the first
USER = "user1@northwind.example"
T0 = datetime(2024, 1, 1)
SPAN_S = 2 * 365 * 86400
STAGES = [  # name, status, weight
    ("Prospecting", "open", 20), ("Qualification", "open", 15),
    ("Proposal/Price Quote", "open", 10), ("Negotiation/Review", "open", 5),
    ("Closed Won", "won", 25), ("Closed Lost", "lost", 25),
]  # fmt: skip
TYPES = ["Webinar", "Trade Show", "Email", "Advertisement", "Partners"]
RUNS, WARM = 9, 2  # timed rounds, warm-up rounds

BARE_SQL = """
SELECT c.id, c.name, c.campaign_type, c.status, c.start_date,
       COALESCE(m.members, 0), COALESCE(l.leads, 0), COALESCE(l.converted, 0),
       COALESCE(d.opps, 0), COALESCE(d.pipeline, 0), COALESCE(d.won_amount, 0),
       COALESCE(d.won, 0), COALESCE(d.lost, 0), d.avg_days, c.budgeted_cost, c.actual_cost
FROM campaigns c
LEFT JOIN (
    SELECT o.campaign_id, COUNT(*) AS opps,
           SUM(CASE WHEN COALESCE(s.status, 'open') = 'open' THEN o.amount END) AS pipeline,
           SUM(CASE WHEN s.status = 'won' THEN o.amount END) AS won_amount,
           COUNT(CASE WHEN s.status = 'won' THEN 1 END) AS won,
           COUNT(CASE WHEN s.status = 'lost' THEN 1 END) AS lost,
           AVG(CASE WHEN s.status = 'won' THEN {days} END) AS avg_days
    FROM opportunities o LEFT JOIN stages s ON s.name = o.stage
    WHERE NOT o.is_deleted AND o.campaign_id IS NOT NULL
      AND (NOT o.is_private OR o.owner_id = {uid} OR EXISTS (
           SELECT 1 FROM opportunity_people op WHERE op.opportunity_id = o.id
           AND op.person_id = {uid} AND op.kind = 'member' AND NOT op.is_deleted))
    GROUP BY o.campaign_id
) d ON d.campaign_id = c.id
LEFT JOIN (
    SELECT campaign_id, COUNT(*) AS members FROM campaign_members
    WHERE NOT is_deleted GROUP BY campaign_id
) m ON m.campaign_id = c.id
LEFT JOIN (
    SELECT x.campaign_id, COUNT(*) AS leads,
           COUNT(CASE WHEN x.is_converted THEN 1 END) AS converted
    FROM (SELECT cm.campaign_id, le.id, le.is_converted
          FROM leads le JOIN campaign_members cm ON cm.lead_id = le.id
          WHERE cm.lead_id IS NOT NULL AND NOT le.is_deleted AND NOT cm.is_deleted
          UNION
          SELECT cm.campaign_id, le.id, le.is_converted
          FROM leads le JOIN campaign_members cm ON cm.person_id = le.converted_person_id
          WHERE le.converted_person_id IS NOT NULL AND NOT le.is_deleted
            AND NOT cm.is_deleted) x
    GROUP BY x.campaign_id
) l ON l.campaign_id = c.id
WHERE NOT c.is_deleted
ORDER BY c.start_date DESC, c.name, c.id
"""
DAYS = {
    "sqlite": "julianday(o.close_date) - julianday(date(o.created_at))",
    "postgresql": "o.close_date - CAST(o.created_at AS DATE)",
}


# --- data ----------------------------------------------------------------------------


def _when(rng: random.Random) -> datetime:
    return T0 + timedelta(seconds=rng.randrange(SPAN_S))


def rows_of(args: argparse.Namespace) -> Iterator[tuple[Table, list[dict]]]:
    """(table, chunk of rows) in insert order, generated from one seed."""
    rng = random.Random(17)
    base = {"created_at": T0, "updated_at": T0, "is_deleted": False}
    yield stages, [
        {"id": i, "name": name, "status": status, "sort_order": i, "is_active": True,
         "source": "salesforce"}
        for i, (name, status, _w) in enumerate(STAGES, start=1)
    ]  # fmt: skip
    yield accounts, [
        {"id": a, "name": f"Account {a}", "domain": f"acct{a}.example", "stage_locked": False,
         "source": "salesforce", "source_id": f"001{a:012d}", **base}
        for a in range(1, args.accounts + 1)
    ]  # fmt: skip
    n_people = USERS + args.contacts
    for start in range(1, n_people + 1, CHUNK):
        chunk = []
        for p in range(start, min(start + CHUNK, n_people + 1)):
            internal = p <= USERS
            email = f"user{p}@northwind.example" if internal else f"p{p}@example.com"
            chunk.append(
                {"id": p, "email": email, "name": f"Person {p}", "is_internal": internal,
                 "account_id": None if internal else rng.randint(1, args.accounts),
                 "stage_locked": False, "source": "salesforce", "source_id": f"003{p:012d}",
                 **base}
            )  # fmt: skip
        yield people, chunk
    yield campaigns, [
        {"id": c, "name": f"Campaign {c:03d}", "status": rng.choice(["Planned", "In Progress", "Completed"]),
         "campaign_type": rng.choice(TYPES), "start_date": date(2024, 1, 1) + timedelta(days=7 * c),
         "budgeted_cost": float(rng.randrange(1_000, 100_000)),
         "actual_cost": None if c % 10 == 0 else float(rng.randrange(1_000, 100_000)),
         "is_active": True, "source": "salesforce", "source_id": f"701{c:012d}", **base}
        for c in range(1, args.campaigns + 1)
    ]  # fmt: skip
    contacts = (USERS + 1, n_people)
    for start in range(1, args.leads + 1, CHUNK):
        chunk = []
        for i in range(start, min(start + CHUNK, args.leads + 1)):
            converted = rng.random() < 0.2
            chunk.append(
                {"id": i, "name": f"Lead {i}", "email": f"lead{i}@prospect.example",
                 "company": f"Prospect {i % 5000}", "status": "Converted" if converted else "Open",
                 "is_converted": converted,
                 "converted_person_id": rng.randint(*contacts) if converted else None,
                 "source": "salesforce", "source_id": f"00Q{i:012d}", "created_at": _when(rng),
                 "updated_at": T0, "is_deleted": False}
            )  # fmt: skip
        yield leads, chunk
    weights = [w for _n, _s, w in STAGES]
    for start in range(1, args.opportunities + 1, CHUNK):
        chunk, members = [], []
        for o in range(start, min(start + CHUNK, args.opportunities + 1)):
            created = _when(rng)
            chunk.append(
                {"id": o, "name": f"Deal {o}", "account_id": rng.randint(1, args.accounts),
                 "owner_id": rng.randint(1, USERS),
                 "stage": rng.choices(STAGES, weights)[0][0],
                 "amount": None if o % 50 == 0 else float(rng.randrange(5_000, 500_000)),
                 "currency": "EUR", "close_date": created.date() + timedelta(days=rng.randrange(10, 200)),
                 "is_private": rng.random() < 0.03,
                 "campaign_id": rng.randint(1, args.campaigns) if rng.random() < 0.9 else None,
                 "source": "salesforce", "source_id": f"006{o:012d}", "created_at": created,
                 "updated_at": created, "is_deleted": o % 200 == 0}
            )  # fmt: skip
            who = [rng.randint(*contacts)] + ([rng.randint(1, USERS)] if rng.random() < 0.1 else [])
            members += [
                {"opportunity_id": o, "person_id": p, "kind": "member", "role": "contact",
                 "is_primary": False, "source": "salesforce", "source_id": f"00K{o:012d}-{p}",
                 **base}
                for p in who
            ]  # fmt: skip
        yield opportunities, chunk
        yield opportunity_people, members
    for start in range(1, args.members + 1, CHUNK):
        chunk = []
        for i in range(start, min(start + CHUNK, args.members + 1)):
            as_lead = rng.random() < 0.2
            chunk.append(
                {"id": i, "campaign_id": rng.randint(1, args.campaigns),
                 "person_id": None if as_lead else rng.randint(*contacts),
                 "lead_id": rng.randint(1, args.leads) if as_lead else None,
                 "status": "Sent", "has_responded": rng.random() < 0.1,
                 "source": "salesforce", "source_id": f"00v{i:012d}", "created_at": _when(rng),
                 "updated_at": T0, "is_deleted": rng.random() < 0.01}
            )  # fmt: skip
        yield campaign_members, chunk


def insert_rows(conn: Connection, table: Table, rows: list[dict]) -> None:
    """Bulk insert: Core executemany on SQLite, COPY on PostgreSQL (as timeline_query.py)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def build(url: str, args: argparse.Namespace) -> None:
    engine = connect_engine(url)  # creates the schema (Alembic migration)
    with engine.begin() as conn:
        for table, rows in rows_of(args):
            insert_rows(conn, table, rows)
    # statistics, and on PostgreSQL the visibility map autovacuum would have set by now
    # (without it an index-only scan reads the table too)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE")
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


# --- measuring -----------------------------------------------------------------------


def measure(calls: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float, object]]:
    """name -> (median wall ms, median CPU ms of this process, last result): WARM rounds,
    then RUNS rounds calling each in turn (the order rotating), so a busy spell on the
    shared box falls on all of them alike."""
    names = list(calls)
    for _ in range(WARM):
        for name in names:
            calls[name]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, object] = {}
    for r in range(RUNS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started, started_cpu = time.perf_counter(), time.process_time()
            last[name] = calls[name]()
            wall[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), last[n]) for n in names}


def _close(a: object, b: object) -> bool:
    a = None if a is None or (isinstance(a, float) and math.isnan(a)) else a
    b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)


def check_same(report, rows: list[tuple]) -> None:  # noqa: ANN001
    """The report's figures are the bare query's (the ratios aside: they are derived)."""
    columns = ["members", "leads", "leads_converted", "opportunities", "pipeline_amount",
               "won_amount", "won", "lost", "avg_days_to_close", "budgeted_cost", "actual_cost"]  # fmt: skip
    assert list(report["id"]) == [r[0] for r in rows], "campaigns differ"
    for (_i, got), row in zip(report[columns].iterrows(), rows, strict=True):
        for column, want in zip(columns, row[5:], strict=True):
            value = got[column]
            value = None if value is None or value is getattr(value, "_NA", object()) else value
            try:
                value = None if value != value else value  # NaN/NA
            except TypeError:
                value = None
            assert _close(value, want), f"campaign {row[0]} {column}: {value} != {want}"


def bench(name: str, url: str, open_raw: Callable, args: argparse.Namespace) -> list[tuple]:
    """Build the database at ``url`` and time the report and the bare query."""
    started = time.perf_counter()
    build(url, args)
    setup = time.perf_counter() - started
    print(
        f"{name}: set-up {setup:.0f}s ({args.campaigns} campaigns, {args.opportunities:,} "
        f"opportunities, {args.members:,} members, {args.leads:,} leads; bulk insert + ANALYZE)"
    )
    raw = open_raw()
    sql = BARE_SQL.format(days=DAYS[name], uid=1)  # user1 is people.id 1

    def bare() -> list[tuple]:
        cur = raw.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        cur.close()
        return rows

    def bare_without_jit() -> list[tuple]:
        with raw.transaction():  # what the report does on PostgreSQL
            raw.execute("SET LOCAL jit = off")
            return raw.execute(sql).fetchall()

    kit = oppkit.connect(url, user=USER)
    assert kit.scope.user_id == 1
    picked = [f"Campaign {c:03d}" for c in (3, 14, 27, 58, 91)]
    calls = {"bare": bare, "report": kit.campaign_report}
    if name == "postgresql":
        calls["bare, jit off"] = bare_without_jit
    calls["since"] = lambda: kit.campaign_report(since="2025-01-01")
    calls["five"] = lambda: kit.campaign_report(picked)
    load = os.getloadavg()[0]
    got = measure(calls)
    load = max(load, os.getloadavg()[0])
    check_same(got["report"][2], got["bare"][2])
    assert len(got["five"][2]) == 5
    kit.engine.dispose()
    raw.close()
    baseline = min(got[n][0] for n in calls if n.startswith("bare"))
    rows = [(name, "bare SQL aggregate (DB-API, tuples)", *got["bare"][:2], None, None)]
    if name == "postgresql":
        rows.append((name, "bare SQL aggregate, SET LOCAL jit = off", *got["bare, jit off"][:2],
                     None, None))  # fmt: skip
    return [
        *rows,
        (name, "kit.campaign_report()", *got["report"][:2], 500.0, baseline),
        (name, "kit.campaign_report(since=...) [info]", *got["since"][:2], None, None),
        (name, "kit.campaign_report(5 named)   [info]", *got["five"][:2], None, None),
        (name, f"(load average during the runs: {load:.1f} on {os.cpu_count()} cores)", None,
         None, None, None),
    ]  # fmt: skip


def sqlite_run(workdir: Path, args: argparse.Namespace) -> list[tuple]:
    path = workdir / "campaign_report.sqlite"
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
    ap.add_argument("--campaigns", type=int, default=100)
    ap.add_argument("--opportunities", type=int, default=50_000)
    ap.add_argument("--members", type=int, default=500_000)
    ap.add_argument("--quick", action="store_true", help="a tenth of the rows, smoke run")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--workdir", type=Path, help="where to put the SQLite file")
    args = ap.parse_args()
    if args.quick:
        args.opportunities, args.members = args.opportunities // 10, args.members // 10
    args.leads = args.members // 5
    args.contacts = args.members // 5
    args.accounts = 2_000

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-campaigns-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = [] if args.skip_sqlite else sqlite_run(workdir, args)
        results += [] if args.skip_pg else postgres_run(args)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)

    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    code = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    print(
        f"\ncampaign report, {args.campaigns} campaigns / {args.opportunities:,} opportunities / "
        f"{args.members:,} members / {args.leads:,} leads, as {USER} (privacy on), median of "
        f"{RUNS} runs after {WARM}, code {code} (shared 2-core box)"
    )
    print(
        "baseline: one hand-written SQL query giving the same per-campaign figures (deals "
        "grouped by campaign under the same privacy condition, members grouped by campaign, "
        "the UNION of lead members and converted leads whose contact is a member grouped by "
        "campaign, left-joined to campaigns), run through the same DB-API driver and fetched "
        "as tuples; the report gives the same figures (checked) plus ratios, as a DataFrame"
    )
    print(
        "PostgreSQL: the report turns JIT off for its read (compiling the plan took longer "
        "than running it); the bare query is timed both ways and the faster one is the "
        "baseline. CPU ms is this process's (all of SQLite's work; on PostgreSQL only the "
        "client's)."
    )
    print(f"{'backend':<11} {'query':<42} {'median ms':>9} {'CPU ms':>7}  target")
    print("-" * 110)
    for backend, query, median, cpu, target, baseline in results:
        if median is None:
            print(f"{backend:<11} {query}")
            continue
        verdict = ""
        if target:
            ratio = median / baseline
            ok = median < target and ratio <= 2.0
            verdict = (
                f"< {target:.0f} ms and <= 2x bare: {ratio:.2f}x bare  {'PASS' if ok else 'FAIL'}"
            )
        print(f"{backend:<11} {query:<42} {median:>9.1f} {cpu:>7.1f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
