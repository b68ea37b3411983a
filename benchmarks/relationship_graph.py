"""Relationship graph benchmark: ``kit.relationship_graph(account=...)`` on SQLite and PostgreSQL.

Builds one account with 1,000 people (50 of them ours) and 100,000 interactions over a
year, plus 20,000 interactions on other accounts that must be filtered out. Each customer
works with 3 of our people and sits in a team of 10 colleagues: 90% of interactions are
emails between a customer and one of their reps (55% outbound), with 0-2 team mates on
cc; 10% are meetings organised by a rep with the customer and 1-3 team mates. The
schema comes from ``connect_engine`` (Alembic); rows are bulk-inserted, then ANALYZE.

Measured (median of ``--repeat`` runs, after one warm-up):

* baseline: a plain pandas read of the same ``activity_people`` rows
  (``pd.read_sql`` of the account's participation rows, no scoring);
* ``kit.relationship_graph(account=id)``: read, score, build the networkx graph;
* ``rel.html()``: the offline page, and its size.

Targets: graph built in < 1 s, HTML < 5 MB.

    .venv/bin/python benchmarks/relationship_graph.py
    .venv/bin/python benchmarks/relationship_graph.py --skip-pg --repeat 3
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Table, create_engine, text
from sqlalchemy.engine import make_url

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.db.schema import accounts, activities, activity_people, people

T0 = datetime(2025, 3, 1)
CHUNK = 20_000
BASELINE_SQL = (
    "SELECT ap.activity_id, ap.person_id, ap.role, a.occurred_at, a.kind "
    "FROM activity_people ap JOIN activities a ON a.id = ap.activity_id "
    "WHERE a.account_id = 1"
)


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


def build(url: str, n_people: int, n_interactions: int, noise: int) -> None:
    rng = random.Random(3)
    base = {"created_at": T0, "updated_at": T0, "is_deleted": False}
    engine = connect_engine(url)
    account_rows = [
        {"id": a, "name": f"Account {a}", "domain": f"acct{a}.example", "source": "mail",
         "source_id": f"acct{a}.example", **base}
        for a in range(1, 11)
    ]  # fmt: skip
    person_rows, ours, theirs = [], [], {a: [] for a in range(1, 11)}
    for p in range(1, n_people + 1 + 9 * 50):
        internal = p <= 50
        account = None if internal else (1 if p <= n_people else 2 + p % 9)
        email = f"rep{p}@northwind.example" if internal else f"p{p}@acct{account}.example"
        person_rows.append(
            {"id": p, "email": email, "name": f"Person {p}", "account_id": account,
             "is_internal": internal, "source": "mail", "source_id": email, **base}
        )  # fmt: skip
        (ours if internal else theirs[account]).append(p)
    reps = {p: rng.sample(ours, 3) for staff in theirs.values() for p in staff}
    span = 365 * 86400

    def interactions(account: int, n: int, first_id: int):  # noqa: ANN202
        acts, links = [], []
        for i in range(first_id, first_id + n):
            customer = rng.choice(theirs[account])
            rep = rng.choice(reps[customer])
            when = T0 + timedelta(seconds=rng.randrange(span))
            meeting = rng.random() < 0.1
            acts.append(
                {"id": i, "kind": "meeting" if meeting else "email", "subject": f"s{i}",
                 "occurred_at": when, "account_id": account, "is_planned": False,
                 "is_auto": False, "asks_question": False, "source": "mail",
                 "source_id": f"m{i}", **base}
            )  # fmt: skip
            if meeting:
                links.append({"activity_id": i, "person_id": rep, "role": "organizer"})
                team = theirs[account][(theirs[account].index(customer) // 10) * 10 :][:10]
                guests = {customer, *rng.sample(team, min(len(team), rng.randint(1, 3)))}
                links += [{"activity_id": i, "person_id": g, "role": "attendee"} for g in guests]
                continue
            sender, to = (rep, customer) if rng.random() < 0.55 else (customer, rep)
            links.append({"activity_id": i, "person_id": sender, "role": "from"})
            links.append({"activity_id": i, "person_id": to, "role": "to"})
            team = theirs[account][(theirs[account].index(customer) // 10) * 10 :][:10]
            for cc in {rng.choice(team) for _ in range(rng.randint(0, 2))} - {sender, to}:
                links.append({"activity_id": i, "person_id": cc, "role": "cc"})
        return acts, links

    with engine.begin() as conn:
        insert_rows(conn, accounts, account_rows)
        insert_rows(conn, people, person_rows)
        next_id = 1
        for account, n in [(1, n_interactions)] + [(a, noise // 9) for a in range(2, 11)]:
            for start in range(0, n, CHUNK):
                acts, links = interactions(account, min(CHUNK, n - start), next_id)
                next_id += len(acts)
                insert_rows(conn, activities, acts)
                insert_rows(conn, activity_people, links)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def bench(name: str, url: str, args: argparse.Namespace) -> list[tuple]:
    started = time.perf_counter()
    build(url, args.people, args.interactions, args.noise)
    print(f"{name}: set-up {time.perf_counter() - started:.0f}s")
    kit = oppkit.connect(url)
    baseline_ms, rows = timed(lambda: pd.read_sql(BASELINE_SQL, kit.engine), args.repeat)
    graph_ms, rel = timed(lambda: kit.relationship_graph(account=1), args.repeat)
    html_ms, page = timed(lambda: rel.html(), max(1, args.repeat // 2))
    size_mb = len(page.encode()) / 1e6
    g = rel.graph
    kit.engine.dispose()
    return [
        (name, "baseline: pd.read_sql of the rows", baseline_ms, f"{len(rows):,} rows", None),
        (name, "kit.relationship_graph(account=)", graph_ms,
         f"{g.number_of_nodes():,} nodes, {g.number_of_edges():,} edges",
         f"< 1000 ms {'PASS' if graph_ms < 1000 else 'FAIL'}"),
        (name, "rel.html()", html_ms, f"{size_mb:.2f} MB",
         f"< 5 MB {'PASS' if size_mb < 5 else 'FAIL'}"),
    ]  # fmt: skip


def postgres_run(args: argparse.Namespace) -> list[tuple]:
    name = f"oppkit_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure means: no PostgreSQL to use here
        print(f"postgresql: skipped, cannot create a database ({type(exc).__name__})")
        return []
    try:
        url = make_url(args.pg_url).set(database=name)
        return bench("postgresql", url.render_as_string(hide_password=False), args)
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
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--noise", type=int, default=20_000, help="interactions on other accounts")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--skip-pg", action="store_true")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="oppkit-graph-"))
    try:
        results = bench("sqlite", f"sqlite:///{workdir / 'graph.sqlite'}", args)
        results += [] if args.skip_pg else postgres_run(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    code = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    print(
        f"\nrelationship graph, one account of {args.people:,} people and "
        f"{args.interactions:,} interactions (+{args.noise:,} elsewhere), code {code}, "
        "shared 2-core box"
    )
    print(f"{'backend':<11} {'step':<34} {'median ms':>9} {'x read':>7}  {'size':<28} target")
    print("-" * 108)
    baseline: dict[str, float] = {}
    for backend, step, ms, size, target in results:
        baseline.setdefault(backend, ms)
        ratio = ms / baseline[backend]
        print(f"{backend:<11} {step:<34} {ms:>9.1f} {ratio:>7.2f}  {size:<28} {target or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
