"""Bad files benchmark: every malformed calendar and Salesforce export input, synced by the
real commands (``oppkit sync calendar --ics`` and ``oppkit sync salesforce-export``) on
SQLite and PostgreSQL, with a tally per backend.

The inputs are those of ``tests/bad_files_corpus.py`` (shared with tests/test_bad_files.py),
built at run time by a worker subprocess (nothing large is committed, and this process
stays small): endless and huge recurrence rules, broken rules, an event without DTSTART, a
file cut off inside an event, unparseable lines and terminal escape sequences, fields over
131,072 characters and over 10 MB, unterminated quotes, BOM / UTF-16 / Windows-1252, a NUL
byte, duplicate Ids, missing and extra columns, quoted newlines. Each input is synced into
a fresh SQLite file and a fresh PostgreSQL database, in its own subprocess, with a time
limit and a peak-RSS limit (measured as in benchmarks/bad_mail.py, whose runner this uses).

A run *held* when it finished within the time limit with the expected exit code, printed
no traceback and nothing on stderr but the expected number of one-line reports (a skipped
row or a notice, printable), the good records landed (the rows expected in the input's
table) and its peak RSS stayed under the limit. Anything else *failed*, with the reason.

    .venv/bin/python benchmarks/bad_files.py                    # SQLite and PostgreSQL
    .venv/bin/python benchmarks/bad_files.py --pg URL           # another PostgreSQL
    .venv/bin/python benchmarks/bad_files.py --no-pg --only quote
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import bad_mail  # benchmarks/bad_mail.py, next to this file: the measured subprocess runner
import mail_ingest

ROOT = Path(__file__).resolve().parents[1]
PG_DEFAULT = os.environ.get(
    "OPPKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REPORT = re.compile(r"^WARNING oppkit\.sync\.runner: (skipped|notice) \S.*$")


@dataclass(frozen=True)
class Input:
    name: str
    command: str
    table: str
    lands: int
    lines: int
    code: int


@dataclass
class Run:
    input: Input
    backend: str
    seconds: float
    rss_mb: float
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    landed: int | None

    def problems(self, max_rss: float) -> list[str]:
        """Why the run did not hold; empty when it held."""
        found = []
        lines = self.stderr.splitlines()
        if self.code is None:
            found.append("timed out")
        elif self.code != self.input.code:
            found.append(f"exit {self.code}")
        if "Traceback" in self.stderr:
            found.append("traceback")
        elif unclear := [x for x in lines if not (REPORT.match(x) and x.isprintable())]:
            found.append(f"unclear stderr: {unclear[0][:60]!r}")
        elif len(lines) != self.input.lines:
            found.append(f"{len(lines)} report lines, expected {self.input.lines}")
        if self.landed != self.input.lands:
            found.append(f"landed {self.landed}, expected {self.input.lands}")
        if self.rss_mb >= max_rss:
            found.append(f"peak RSS {self.rss_mb:.0f} MB")
        return found

    def summary(self) -> str:
        line = next((x for x in self.stdout.splitlines() if ": read " in x), "")
        text = re.sub(r"^[\w-]+: | \(\d+\.\d+s\)", "", line)
        notices = [x.rpartition(": ")[2] for x in self.stderr.splitlines() if " notice " in x]
        return f"{text}: {notices[0]}" if notices else text


# --- inputs (listed and written by a worker subprocess) -----------------------------


BASELINES = [  # good input only: what the command costs on this box without any bad file
    Input("baseline: 2 good meetings", "calendar", "activities", 2, 0, 0),
    Input("baseline: a good export", "salesforce-export", "opportunities", 5, 0, 0),
]


def worker(command: str, name: str = "", folder: str = "") -> int:
    """``list``: one JSON line per input; ``write``: build one, print the path to sync."""
    sys.path.insert(0, str(ROOT))
    from tests.bad_files_corpus import BadFile, bad_files, calendar_around, export

    found = bad_files() + [
        BadFile(
            BASELINES[0].name, "calendar", lambda d: _good_calendar(d, calendar_around("")), 2, 0
        ),
        BadFile(BASELINES[1].name, "salesforce-export", export(), 5, 0, "opportunities"),
    ]
    if command == "list":
        for bad in found:
            print(json.dumps([bad.name, bad.command, bad.table, bad.lands, bad.lines, bad.code]))
    else:
        [bad] = [b for b in found if b.name == name]
        print(bad.write(Path(folder)))
    return 0


def _good_calendar(folder: Path, text: str) -> Path:
    path = folder / "good.ics"
    path.write_text(text, encoding="utf-8")
    return path


def _worker(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": bad_mail.pythonpath()}
    cmd = [sys.executable, __file__, "--worker", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def inputs() -> list[Input]:
    names = {b.name for b in BASELINES}
    found = [Input(*json.loads(line)) for line in _worker("list").splitlines()]
    return [i for i in found if i.name not in names]


def command_args(bad: Input, path: str) -> list[str]:
    if bad.command == "calendar":
        return ["sync", "calendar", "--ics", path]
    return ["sync", "salesforce-export", path]


# --- one run ----------------------------------------------------------------------


def run(bad: Input, path: str, backend: str, args: argparse.Namespace, workdir: Path) -> Run:
    if backend == "sqlite":
        db, url = None, f"sqlite:///{workdir / (uuid.uuid4().hex + '.sqlite')}"
    else:
        db = bad_mail.FreshPostgres(args.pg, prefix="oppkit_bad_files")
        url = db.url
    try:
        seconds, rss, code, out, err = bad_mail.run_oppkit(command_args(bad, path), url, args.limit)
        return Run(bad, backend, seconds, rss, code, out, err, bad_mail.landed(url, bad.table))
    finally:
        if db is not None:
            db.drop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", metavar="URL", default=PG_DEFAULT,
                    help=f"PostgreSQL to create fresh databases on (default {PG_DEFAULT})")  # fmt: skip
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds per run (default 120)")
    ap.add_argument(
        "--max-rss", type=float, default=300.0, help="peak RSS MB per run (default 300)"
    )
    ap.add_argument("--only", help="inputs whose name contains this text")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)

    todo = [b for b in inputs() if not args.only or args.only.lower() in b.name.lower()]
    backends = ["sqlite"] + ([] if args.no_pg else ["postgresql"])
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-bad-files-"))
    print(f"bad files, {len(todo)} inputs x {', '.join(backends)}, code {mail_ingest.revision()} "
          f"(shared box); limit {args.limit:.0f} s and {args.max_rss:.0f} MB a run")  # fmt: skip
    print(
        "measured: wall seconds and peak RSS of one `oppkit sync calendar|salesforce-export` subprocess"
    )
    runs: list[Run] = []
    try:
        for i, good in enumerate(BASELINES):
            path = _worker("write", good.name, str(workdir / f"baseline{i}")).strip()
            for backend in backends:
                r = run(good, path, backend, args, workdir)
                print(f"{good.name} ({backend}): {r.seconds:.1f} s, {r.rss_mb:.0f} MB peak RSS; "
                      f"{'; '.join(r.problems(args.max_rss)) or r.summary()}", flush=True)  # fmt: skip
        print(f"\n{'':6} {'input':<38} {'db':<10} {'s':>6} {'MB':>5}  summary")
        print("-" * 110)
        for i, bad in enumerate(todo):
            folder = workdir / f"input{i}"
            path = _worker("write", bad.name, str(folder)).strip()
            for backend in backends:
                r = run(bad, path, backend, args, workdir)
                runs.append(r)
                problems = r.problems(args.max_rss)
                verdict = "held" if not problems else "FAILED"
                detail = "; ".join(problems) if problems else r.summary()
                print(f"{verdict:<6} {bad.name[:38]:<38} {backend:<10} {r.seconds:6.1f} {r.rss_mb:5.0f}  "
                      f"{detail[:120]}", flush=True)  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("-" * 110)
    print("held: within the time and RSS limits, the expected exit code, the good records landed,"
          " one printable line per bad input and nothing else on stderr")  # fmt: skip
    for backend in backends:
        mine = [r for r in runs if r.backend == backend]
        held = sum(not r.problems(args.max_rss) for r in mine)
        print(f"{backend}: tried {len(mine)}, held {held}, failed {len(mine) - held}")
    held = sum(not r.problems(args.max_rss) for r in runs)
    print(f"all: tried {len(runs)}, held {held}, failed {len(runs) - held}")
    return 0 if held == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
