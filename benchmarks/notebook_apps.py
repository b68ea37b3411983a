"""Notebook apps benchmark: PipelineReview and OpportunityView on a large SQLite database.

Builds an SQLite file with 10,000 opportunities and 1,000,000 activities (1,000 accounts,
20,000 people, 1-3 activity_people rows per activity, members, alerts, and 3-6
stage_history rows per deal), with the schema from ``connect_engine`` (Alembic) and rows
bulk-inserted with SQLAlchemy Core executemany (accounts, people and deals come from
``timeline_query.World``; activities span the last three years up to today, so "quiet"
and "engaged" flags have something to find). Then ANALYZE.

It measures, beside a baseline timed in the same run:

- ``PipelineReview(kit)`` built and first drawn (the flags over all deals, the funnel,
  the deal grid of every deal with its change markers since the baseline, the table) — baseline: the bare ``kit.opportunities()`` it starts from;
- ``OpportunityView(kit, id)`` built and first drawn for random deals — baseline: the bare
  ``kit.timeline(opportunity=id)`` + ``kit.alerts(opportunity=id)`` it is built on;
- for information: the People tab (members, suggested people) loaded on first view.

The first PipelineReview of a process also imports matplotlib and ipywidgets; that cold
figure is printed separately, the target applies to the median of warm builds.

Targets: PipelineReview < 1 s, OpportunityView < 300 ms.

    .venv/bin/python benchmarks/notebook_apps.py            # 1M activities
    .venv/bin/python benchmarks/notebook_apps.py --quick    # 50k / 500, smoke run
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
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from timeline_query import CHUNK, USERS, WORDS, World, insert_rows  # noqa: E402

import oppkit  # noqa: E402
from oppkit.db.engine import connect_engine  # noqa: E402
from oppkit.db.schema import (  # noqa: E402
    accounts,
    activities,
    activity_people,
    alerts,
    opportunities,
    opportunity_people,
    people,
    stage_history,
    stages,
)

STAGES = [  # timeline_query.World's stages: name, status, order, probability
    ("Qualify", "open", 1, 10), ("Discover", "open", 2, 30), ("Propose", "open", 3, 60),
    ("Negotiate", "open", 4, 80), ("Closed Won", "won", 5, 100), ("Closed Lost", "lost", 6, 0),
]  # fmt: skip
NOW = datetime.now(UTC).replace(tzinfo=None)
SPAN = 3 * 365 * 86400


def recent(world: World) -> None:
    """Close dates and creation times around today (World's are fixed in 2025-2026)."""
    rng = world.rng
    for o in world.opps:
        o["close_date"] = NOW.date() + timedelta(days=rng.randrange(-90, 365))
        o["created_at"] = o["updated_at"] = NOW - timedelta(days=rng.randrange(30, 900))


def activity_rows(world: World, n: int) -> Iterator[tuple[list[dict], list[dict]]]:
    """Chunks of (activities, activity_people) over the last three years."""
    rng, opps, start = world.rng, world.opps, NOW - timedelta(seconds=SPAN)
    acts: list[dict] = []
    links: list[dict] = []
    for i in range(1, n + 1):
        opp = rng.choice(opps)
        staff = world.staff[opp["account_id"]]
        user, customer = rng.randint(1, USERS), rng.choice(staff)
        outbound = rng.random() < 0.5
        sender, to = (user, customer) if outbound else (customer, user)
        recipients = {to, rng.choice(staff)} if rng.random() < 0.5 else {to}
        when = start + timedelta(seconds=rng.randrange(SPAN))
        acts.append(
            {"id": i, "kind": "email" if i % 10 else "meeting",
             "subject": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}",
             "snippet": f"Could we review the {rng.choice(WORDS)} before Friday? " * 3,
             "occurred_at": when, "direction": "outbound" if outbound else "inbound",
             "thread_id": f"t{i // 4}@mail.example", "account_id": opp["account_id"],
             "opportunity_id": opp["id"] if rng.random() < 0.9 else None,
             "sender_id": sender, "is_planned": False, "is_auto": False, "attachments": None,
             "source": "mail", "source_id": f"m{i}@mail.example", "created_at": when,
             "updated_at": when, "is_deleted": False}
        )  # fmt: skip
        links.append({"activity_id": i, "person_id": sender, "role": "from"})
        links += [{"activity_id": i, "person_id": r, "role": "to"} for r in recipients - {sender}]
        if len(acts) == CHUNK:
            yield acts, links
            acts, links = [], []
    if acts:
        yield acts, links


def deal_rows(world: World) -> tuple[list[dict], list[dict], list[dict]]:
    """Members (owner + 1-3 contacts), alerts (0-3 per deal) and stage history."""
    rng = world.rng
    members, found, history = [], [], []
    names = [s[0] for s in STAGES]
    for o in world.opps:
        staff = world.staff[o["account_id"]]
        chosen = {o["owner_id"], *rng.sample(staff, min(len(staff), rng.randint(1, 3)))}
        for person in chosen:
            members.append(
                {"opportunity_id": o["id"], "person_id": person, "kind": "member",
                 "role": "Owner" if person == o["owner_id"] else "Contact", "is_primary": False,
                 "source": "bench", "source_id": f"m{o['id']}:{person}", "is_deleted": False}
            )  # fmt: skip
        for k in range(rng.randint(0, 3)):
            found.append(
                {"kind": rng.choice(["request", "commitment", "risk", "task"]),
                 "text": f"Follow up on the {rng.choice(WORDS)}", "status": rng.choice(["open", "done"]),
                 "opportunity_id": o["id"], "rule": "bench", "source": "bench",
                 "source_id": f"a{o['id']}:{k}", "is_deleted": False,
                 "due_at": NOW + timedelta(days=rng.randrange(-20, 40))}
            )  # fmt: skip
        when = o["created_at"]
        position = names.index(o["stage"])
        steps = [("stage", None, names[0])] + [
            ("stage", names[i], names[i + 1]) for i in range(min(position, 3))
        ]
        if position >= 4:
            steps.append(("stage", names[3], o["stage"]))
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            old = o["close_date"] - timedelta(days=rng.randrange(10, 60))
            steps.append(("close_date", old.isoformat(), o["close_date"].isoformat()))
        if rng.random() < 0.3:
            steps.append(("amount", str(o["amount"] * 0.8), str(o["amount"])))
        for k, (field, old, new) in enumerate(steps):
            when = min(when + timedelta(days=rng.randrange(1, 60)), NOW)
            history.append(
                {"opportunity_id": o["id"], "field": field, "old_value": old, "new_value": new,
                 "changed_at": when, "source": "bench", "source_id": f"h{o['id']}:{k}",
                 "is_deleted": False}
            )  # fmt: skip
    return members, found, history


def build(url: str, args: argparse.Namespace) -> World:
    engine = connect_engine(url)
    world = World(args.opportunities, args.accounts, args.people)
    recent(world)
    members, found, history = deal_rows(world)
    with engine.begin() as conn:
        conn.execute(
            stages.insert(),
            [{"name": n, "status": s, "sort_order": i, "probability": p, "is_active": True,
              "source": "bench"} for n, s, i, p in STAGES],
        )  # fmt: skip
        for table, rows in (
            (accounts, world.accounts), (people, world.people), (opportunities, world.opps),
            (opportunity_people, members), (alerts, found), (stage_history, history),
        ):  # fmt: skip
            for start in range(0, len(rows), CHUNK):
                insert_rows(conn, table, rows[start : start + CHUNK])
        for acts, links in activity_rows(world, args.activities):
            insert_rows(conn, activities, acts)
            insert_rows(conn, activity_people, links)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return world


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median ms, max ms) of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def timed_each(fn: Callable[[int], object], refs: list[int]) -> tuple[float, float]:
    times = []
    for ref in refs:
        started = time.perf_counter()
        fn(ref)
        times.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return statistics.median(times), p95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activities", type=int, default=1_000_000)
    ap.add_argument("--opportunities", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="warm PipelineReview builds timed")
    ap.add_argument("--samples", type=int, default=30, help="OpportunityViews timed")
    ap.add_argument("--quick", action="store_true", help="50,000 activities, 500 opportunities")
    ap.add_argument("--workdir", type=Path, help="where to put the SQLite file (kept)")
    args = ap.parse_args()
    if args.quick:
        args.activities, args.opportunities = 50_000, 500
    args.accounts = max(1, args.opportunities // 10)
    args.people = args.opportunities * 2

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-apps-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "notebook_apps.sqlite"
    try:
        if not path.exists():
            started = time.perf_counter()
            build(f"sqlite:///{path}", args)
            print(f"sqlite: set-up {time.perf_counter() - started:.0f}s "
                  f"({args.activities:,} activities, build + ANALYZE)")  # fmt: skip
        url = f"sqlite:///{path}"
        kit = oppkit.connect(url, user="user1@northwind.example")
        rng = random.Random(5)
        visible = kit.opportunities()["id"].tolist()
        refs = rng.sample(visible, min(args.samples + 3, len(visible)))
        warm, refs = refs[:3], refs[3:]

        started = time.perf_counter()
        review = oppkit.PipelineReview(kit)
        cold = (time.perf_counter() - started) * 1000
        rows = [
            ("baseline: kit.opportunities()", *timed(kit.opportunities, args.repeat), None),
            ("PipelineReview(kit) first, cold imports", cold, cold, None),
            ("PipelineReview(kit) built + drawn",
             *timed(lambda: oppkit.PipelineReview(kit), args.repeat), 1000.0),
        ]  # fmt: skip
        for ref in warm:
            oppkit.OpportunityView(kit, ref).load_people()

        def bare(ref: int) -> None:
            kit.timeline(opportunity=ref, limit=300)
            kit.alerts(opportunity=ref)

        rows += [
            ("baseline: kit.timeline + kit.alerts (one deal)", *timed_each(bare, refs), None),
            ("OpportunityView(kit, id) built + drawn",
             *timed_each(lambda r: oppkit.OpportunityView(kit, r), refs), 300.0),
            ("  People tab on first view        [info]",
             *timed_each(lambda r: oppkit.OpportunityView(kit, r).load_people(), refs[:10]), None),
        ]  # fmt: skip
        print(f"review: {len(review.frame):,} deals, {int((review.frame['n_flags'] > 0).sum()):,} "
              f"flagged; {len(review.view()):,} open in view")  # fmt: skip
        kit.engine.dispose()
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)

    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    code = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    print(
        f"\nnotebook apps, SQLite, {args.activities:,} activities / {args.opportunities:,} "
        f"opportunities, code {code}, {date.today()} (shared 2-core box)"
    )
    print(f"{'measure':<48} {'median ms':>9} {'p95/max':>9}  target")
    print("-" * 84)
    for name, median, worst, target in rows:
        verdict = f"< {target:.0f} ms {'PASS' if median < target else 'FAIL'}" if target else ""
        print(f"{name:<48} {median:>9.1f} {worst:>9.1f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
