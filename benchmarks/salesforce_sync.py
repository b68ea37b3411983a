"""Salesforce sync benchmark: ``oppkit.sync.sync_salesforce`` against a plain pandas load.

A fake org (``tests/fakes/salesforce.py``: the Salesforce REST API over HTTPS, run in its
own process so that its memory is not counted) holds 20 users on northwind.example, 2,000
accounts, 5,000 contacts, 50,000 opportunities and 500,000 tasks (WhatId an opportunity,
WhoId a contact of its account, ~100-character descriptions), modified over 29 days up to
a frozen clock. Each measured phase runs in a fresh subprocess; its peak RSS is that
process's ``VmHWM`` (not ``ru_maxrss``, which on Linux keeps the RSS of the parent):

* baseline: simple-salesforce ``query_all_iter`` -> ``pandas.DataFrame`` -> ``to_sql``
  into SQLite for User, Account, Contact, Opportunity and Task, selecting the fields
  oppkit selects (its ``WANTED`` that the org has), with no processing;
* oppkit: ``sync_salesforce`` of the same objects into a fresh SQLite file (baseline
  and oppkit take turns ``--repeat`` times, 3 by default; their medians are compared,
  because this shared VM's speed drifts by a third between minutes);
* incremental: the org's clock moves 10 minutes and 100 opportunities change; then
  ``sync_salesforce`` again on the same database;
* memory: an oppkit full sync of a second org with 50,000 tasks.

Targets: oppkit time / baseline time <= 1.5; incremental < 3 s; peak RSS < 300 MB at
50,000 and 500,000 tasks and flat (less than 20 % growth); opportunities and activities
in the database equal the org's, and the 100 changes landed.

    .venv/bin/python benchmarks/salesforce_sync.py            # 50k opportunities, 500k tasks
    .venv/bin/python benchmarks/salesforce_sync.py --quick    # 5k / 20k (2k), smoke run
    .venv/bin/python benchmarks/salesforce_sync.py --profile  # cProfile of the oppkit sync
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = "northwind.example"
OBJECTS = ["User", "Account", "Contact", "Opportunity", "Task"]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPAN = 29 * 24 * 60  # minutes over which the records were last modified
CHANGED_AMOUNT = 777_777.0  # what `change` sets; initial amounts are multiples of 500
STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
          "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"]  # fmt: skip
WORDS = (
    "pilot rollout pricing contract renewal licence integration sensor dashboard "
    "maintenance forecast budget security review proposal demo onboarding invoice "
    "timeline milestone workshop feedback data export migration support training"
).split()
FIRST = "ava ben chloe dan emma finn grace hugo isla jack kate leo mia noah olivia paul".split()
LAST = "patel smith jones garcia muller rossi novak kim silva dubois berg walsh ito".split()
NO_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
          "all_proxy")  # fmt: skip


# --- the fake org (``--serve``, its own process) ----------------------------------------


def build_org(n_opps: int, n_tasks: int, seed: int = 7):  # noqa: ANN201
    """A FakeOrg with users, accounts, contacts, opportunities and tasks; (org, opp Ids)."""
    from tests.fakes.salesforce import FakeOrg

    rng, org = random.Random(seed), FakeOrg(now=T0)

    def stamps(i: int, n: int) -> dict:  # ascending, whole minutes, the newest at T0
        at = T0 - timedelta(minutes=(n - 1 - i) * SPAN // max(n, 1))
        return {"CreatedDate": at, "LastModifiedDate": at, "SystemModstamp": at}

    def person(i: int, n: int, domain: str) -> dict:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email, title = f"{first}.{last}{i}@{domain}", rng.choice(("AE", "CTO", "VP"))
        return {"FirstName": first.title(), "LastName": last.title(), "Email": email,
                "Title": title, **stamps(i, n)}  # fmt: skip

    users = org.add_many("User", ({**person(i, 20, INTERNAL), "Username": f"u{i}",
                                   "IsActive": True} for i in range(20)))  # fmt: skip
    domains = [f"{rng.choice(WORDS)}-{rng.choice(LAST)}-{a}.example" for a in range(2000)]
    accounts = org.add_many("Account", (
        {"Name": d.split(".")[0].replace("-", " ").title(), "Website": f"https://www.{d}",
         "Industry": "Energy", "Type": "Customer", "OwnerId": rng.choice(users), **stamps(a, 2000)}
        for a, d in enumerate(domains)))  # fmt: skip
    contacts = org.add_many("Contact", (
        {**person(c, 5000, domains[c % 2000]), "OwnerId": rng.choice(users),
         "AccountId": accounts[c % 2000]} for c in range(5000)))  # fmt: skip
    opp_account = [rng.randrange(2000) for _ in range(n_opps)]
    opps = org.add_many("Opportunity", (
        {"Name": f"{rng.choice(WORDS).title()} #{o}", "AccountId": accounts[a],
         "OwnerId": rng.choice(users), "StageName": rng.choice(STAGES),
         "Amount": rng.randrange(1000, 500_000, 500) if o % 10 else None,
         "CloseDate": T0.date() + timedelta(days=rng.randint(-200, 200)), **stamps(o, n_opps)}
        for o, a in enumerate(opp_account)))  # fmt: skip

    def task(t: int) -> dict:  # about an opportunity, with a contact of its account
        o = rng.randrange(n_opps)
        a = opp_account[o]
        return {"WhatId": opps[o], "AccountId": accounts[a], "OwnerId": rng.choice(users),
                "WhoId": contacts[a + 2000 * rng.randrange(2)],
                "Subject": f"{rng.choice(WORDS).title()} call", "Priority": "Normal",
                "Status": rng.choice(("Completed", "Not Started", "In Progress")),
                "TaskSubtype": rng.choice(("Task", "Call", "Email")),
                "ActivityDate": T0.date() - timedelta(days=rng.randrange(365)),
                "Description": " ".join(rng.choices(WORDS, k=13))[:100],
                **stamps(t, n_tasks)}  # fmt: skip

    org.add_many("Task", (task(t) for t in range(n_tasks)))
    return org, opps


def serve(n_opps: int, n_tasks: int) -> int:
    """Serve the org; print its address as JSON; obey ``change N`` lines until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from oppkit.sources.salesforce import WANTED
    from tests.fakes.salesforce import FakeSalesforce

    started = time.perf_counter()
    org, opps = build_org(n_opps, n_tasks)
    names = {obj: {f["name"] for f in org.fields[obj]} for obj in OBJECTS}
    fields = {obj: [f for f in WANTED[obj] if f in names[obj]] for obj in OBJECTS}
    with FakeSalesforce(org) as fake:
        info = {"url": fake.url, "session_id": fake.session_id, "ca": fake.ca_path,
                "fields": fields, "build_seconds": time.perf_counter() - started}  # fmt: skip
        print(json.dumps(info), flush=True)
        for line in sys.stdin:
            cmd, *arg = line.split()
            if cmd == "change":
                org.advance(minutes=10)
                for oid in random.Random(11).sample(opps, int(arg[0])):
                    org.update("Opportunity", oid, Amount=CHANGED_AMOUNT, StageName="Closed Won")
            print("ok", flush=True)
    return 0


class Server:
    """A ``--serve`` subprocess: ``info`` is its JSON line; ``send`` a command."""

    def __init__(self, n_opps: int, n_tasks: int) -> None:
        cmd = [sys.executable, __file__, "--serve", str(n_opps), str(n_tasks)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- workers (run in a subprocess) -------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def worker_baseline(url: str, info: dict) -> dict:
    import pandas as pd
    import requests
    from simple_salesforce import Salesforce
    from sqlalchemy import create_engine

    session = requests.Session()
    session.verify = info["ca"]  # the workers run without REQUESTS_CA_BUNDLE, which would win
    started, rows = time.perf_counter(), {}
    engine = create_engine(url)
    sf = Salesforce(instance_url=info["url"], session_id=info["session_id"], session=session,
                    version="59.0")  # fmt: skip
    for obj, fields in info["fields"].items():
        soql = f"SELECT {', '.join(fields)} FROM {obj}"  # noqa: S608 (names from WANTED)
        df = pd.DataFrame(list(sf.query_all_iter(soql)))
        df.drop(columns="attributes").to_sql(obj, engine, if_exists="replace", index=False,
                                             chunksize=10_000)  # fmt: skip
        rows[obj] = len(df)
        del df
    return {"seconds": time.perf_counter() - started, "summary": f"rows {rows}"}


def worker_oppkit(url: str, info: dict) -> dict:
    import oppkit
    from oppkit.sources.salesforce_client import SalesforceSettings
    from oppkit.sync import sync_salesforce

    settings = oppkit.Settings(database_url=url, internal_domains=(INTERNAL,))
    sf = SalesforceSettings(instance_url=info["url"], session_id=info["session_id"],
                            ca_bundle=info["ca"])  # fmt: skip
    imported_mb = peak_rss_mb()
    started = time.perf_counter()
    summary = sync_salesforce(url, settings, salesforce=sf, objects=OBJECTS, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "summary": summary.line(), "import_rss_mb": imported_mb}


def worker_profile(url: str, info: dict) -> dict:
    import cProfile
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(worker_oppkit, url, info)
    profile.dump_stats(Path(tempfile.gettempdir()) / "oppkit-salesforce-sync.prof")
    stats = pstats.Stats(profile, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    return result


def _spread(phase: dict) -> str:
    times = sorted(r["seconds"] for r in phase["all"])
    return "" if len(times) < 2 else f"({times[0]:.1f}-{times[-1]:.1f})"


def revision() -> str:
    """The git commit of the code under test (with -dirty for local changes)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, cwd=ROOT)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_worker(kind: str, url: str, info: dict) -> dict:
    """Run this script in ``--worker`` mode (without CA-bundle or proxy variables)."""
    env = {k: v for k, v in os.environ.items() if k not in NO_ENV}
    out = subprocess.run([sys.executable, __file__, "--worker", kind, url, json.dumps(info)],
                         capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    if out.returncode or kind == "profile":
        print(out.stderr, file=sys.stderr)
    out.check_returncode()
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_org(args: argparse.Namespace, tasks: int, workdir: Path) -> dict[str, dict]:
    """Serve an org with ``tasks`` tasks and run the phases against it; results by phase."""
    large, res = tasks == args.tasks, {}
    server = Server(args.opportunities, tasks)
    info = server.info
    print(f"org: {args.opportunities:,} opportunities, {tasks:,} tasks "
          f"(built in {info['build_seconds']:.0f}s)")  # fmt: skip
    dbs = {key: workdir / f"{key}-{tasks}.sqlite" for key in ("base", "oppkit")}
    for db in dbs.values():
        db.unlink(missing_ok=True)

    def phase(key: str, kind: str, db: str, fresh: bool = True) -> None:
        if fresh:
            dbs[db].unlink(missing_ok=True)
        r = run_worker(kind, f"sqlite:///{dbs[db]}", info)
        print(f"  {key:<5} {r['seconds']:7.1f}s {r['peak_rss_mb']:5.0f} MB  {r['summary']}")
        runs = res.setdefault(key, {"all": []})["all"]
        runs.append(r)
        seconds = sorted(x["seconds"] for x in runs)
        res[key] |= {**r, "seconds": seconds[len(seconds) // 2],  # the median run's time
                     "peak_rss_mb": max(x["peak_rss_mb"] for x in runs)}  # fmt: skip

    try:
        if args.profile:
            run_worker("profile", f"sqlite:///{dbs['oppkit']}", info)
            return res
        # Baseline and oppkit take turns, so a slow spell of this shared VM hits both.
        for _ in range(args.repeat if large else 1):
            if large:
                phase("base", "baseline", "base")
            phase("full", "oppkit", "oppkit")
        if large:
            server.send("change 100")
            phase("incr", "oppkit", "oppkit", fresh=False)
            with sqlite3.connect(dbs["oppkit"]) as conn:
                for key, sql in (("opps", "SELECT count(*) FROM opportunities"),
                                 ("acts", "SELECT count(*) FROM activities")):  # fmt: skip
                    res[key] = conn.execute(sql).fetchone()[0]
                sql = "SELECT count(*) FROM opportunities WHERE amount = ?"
                res["changed"] = conn.execute(sql, (CHANGED_AMOUNT,)).fetchone()[0]
    finally:
        server.close()
    return res


# --- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opportunities", type=int, default=50_000)
    ap.add_argument("--tasks", type=int, default=500_000, help="tasks in the large org")
    ap.add_argument("--small-tasks", type=int, default=50_000, help="tasks in the memory org")
    ap.add_argument("--repeat", type=int, default=3,
                    help="baseline and full-sync runs, taken in turns; medians are compared")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="5,000 opps, 20,000 and 2,000 tasks")
    ap.add_argument("--profile", action="store_true", help="only cProfile the oppkit full sync")
    ap.add_argument("--workdir", type=Path, help="where to put the databases (default: temp)")
    ap.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(*args.serve)
    if args.worker:
        kind, url, info = args.worker
        work = {"baseline": worker_baseline, "oppkit": worker_oppkit, "profile": worker_profile}
        result = work[kind](url, json.loads(info))
        print(json.dumps(result | {"peak_rss_mb": peak_rss_mb()}))
        return 0
    if args.quick:
        args.opportunities, args.tasks, args.small_tasks = 5_000, 20_000, 2_000

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-sf-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        big = run_org(args, args.tasks, workdir)
        if args.profile:
            return 0
        small = run_org(args, args.small_tasks, workdir)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)

    n, t, s = args.opportunities, args.tasks, args.small_tasks
    base, full, incr = big["base"], big["full"], big["incr"]
    ratio = full["seconds"] / base["seconds"]
    rss_s, rss_b = small["full"]["peak_rss_mb"], full["peak_rss_mb"]
    rows = [  # (measure, value, target, verdict or None)
        (f"baseline (query_all_iter->pandas->to_sql) s, median of {len(base['all'])}",
         f"{base['seconds']:.1f}", _spread(base), None),
        (f"oppkit sync_salesforce full s, median of {len(full['all'])}",
         f"{full['seconds']:.1f}", _spread(full), None),
        ("time ratio oppkit / baseline", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
        ("incremental, 100 changed opportunities s", f"{incr['seconds']:.2f}", "< 3",
         incr["seconds"] < 3),
        (f"peak RSS MB oppkit @ {s:,} tasks", f"{rss_s:.0f}", "< 300", rss_s < 300),
        (f"peak RSS MB oppkit @ {t:,} tasks", f"{rss_b:.0f}", "< 300, flat (<+20%)",
         rss_b < 300 and rss_b < rss_s * 1.2),
        ("  of which after `import oppkit`", f"{full['import_rss_mb']:.0f}", "", None),
        ("peak RSS MB oppkit incremental", f"{incr['peak_rss_mb']:.0f}", "", None),
        (f"peak RSS MB baseline @ {t:,} tasks", f"{base['peak_rss_mb']:.0f}", "", None),
        (f"opportunities in db (expect {n:,})", f"{big['opps']:,}", f"= {n:,}", big["opps"] == n),
        (f"activities in db (expect {t:,})", f"{big['acts']:,}", f"= {t:,}", big["acts"] == t),
        ("changed opportunities in db", f"{big['changed']}", "= 100", big["changed"] == 100),
    ]  # fmt: skip
    print(f"\nsalesforce sync, {n:,} opportunities + {t:,} tasks, fake org over HTTPS, SQLite, "
          f"code {revision()} (shared 2-core box)")  # fmt: skip
    print(f"{'measure':<52} {'value':>10}  {'target':<20} ok")
    print("-" * 90)
    for label, value, target, ok in rows:
        mark = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<52} {value:>10}  {target:<20} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
