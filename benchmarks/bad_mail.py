"""Bad mail benchmark: ``oppkit sync mail --mbox`` over every malformed input of the issue.

Each input is built at run time (nothing large is committed): the malformed messages
of ``tests.support.bad_mail`` -- a truncated mbox, a binary message and a binary file,
one 30 MB message, no From or Date header, unknown and lying charsets, NUL bytes,
header injection, dates in year 1 and 9999, multipart nested 200 and 5,000 deep, 1 MB
of ``<div>x``, a 30 MB body of 30 KB lines, an empty Message-ID -- each between good
messages, plus CPython's email test corpus (tests/data/email_corpus) as a folder of
.eml files. Every input is synced by the real command in its own subprocess, into a
fresh SQLite file (and a fresh PostgreSQL database with ``--pg URL``), with a time
limit per run.

Measured per run: wall seconds and the peak RSS of that one subprocess (``ru_maxrss``
of the ``os.wait4`` rusage of the child: ``resource.getrusage(RUSAGE_CHILDREN)`` is the
maximum over all children so far, not one run's; inputs are written by a separate
subprocess, so this process stays small and no child inherits its high-water mark).
The baseline is the same command over an mbox of three good messages.

A run *held* when it finished within the time limit, exited 0 (or 1 with one
``oppkit: error:`` line), printed no traceback and nothing on stderr but one line per
skipped message, the good messages landed (the activities expected), and its peak RSS
stayed under the limit. Anything else *failed*, with the reason.

    .venv/bin/python benchmarks/bad_mail.py                        # SQLite, full sizes
    .venv/bin/python benchmarks/bad_mail.py --pg postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/bad_mail.py --quick                # 3 MB instead of 30 MB
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import mail_ingest  # benchmarks/mail_ingest.py, next to this file

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "email_corpus"
CORPUS_LANDS = 42  # of 48 files: msg_19 has no headers; 5 repeat another's Message-ID
CORPUS_NAME = "CPython email corpus (48 files)"
BASELINE = "baseline: 3 good messages"
CLEAR_LINE = re.compile(r"^(WARNING oppkit[\w.]*: skipped .+|oppkit: error: .+)$")


@dataclass
class Run:
    name: str
    backend: str
    seconds: float
    rss_mb: float
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    landed: int | None
    expected: int

    def problems(self, max_rss: float) -> list[str]:
        """Why the run did not hold; empty when it held."""
        found = []
        lines = self.stderr.splitlines()
        errors = [line for line in lines if line.startswith("oppkit: error:")]
        if self.code is None:
            found.append("timed out")
        elif self.code not in (0, 1) or (self.code == 1 and len(errors) != 1):
            found.append(f"exit {self.code}")
        if "Traceback" in self.stderr:
            found.append("traceback")
        elif unclear := [line for line in lines if not CLEAR_LINE.match(line)]:
            found.append(f"unclear stderr: {unclear[0][:60]!r}")
        if self.landed != self.expected:
            found.append(f"landed {self.landed}, expected {self.expected}")
        if self.rss_mb >= max_rss:
            found.append(f"peak RSS {self.rss_mb:.0f} MB")
        return found

    def summary(self) -> str:
        line = next((x for x in self.stdout.splitlines() if x.startswith("mail:")), "")
        return re.sub(r"^mail: | \(\d+\.\d+s\)", "", line) or self.stderr.strip()[-80:]


# --- inputs (listed and written by a worker subprocess) -----------------------------


def worker(command: str, big: int, html: int, name: str = "", path: str = "") -> int:
    """``list``: "N name" per input (N activities expected); ``write``: one input."""
    sys.path.insert(0, str(ROOT))
    from tests.support import bad_mail, raw_mail, write_mbox

    if command == "list":
        for bad in bad_mail(big, html):
            print(bad.lands, bad.name)
    elif name == BASELINE:
        write_mbox(Path(path), [raw_mail(1), raw_mail(2), raw_mail(3)])
    else:
        [bad] = [b for b in bad_mail(big, html) if b.name == name]
        bad.write(Path(path))
    return 0


def _worker(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    cmd = [sys.executable, __file__, "--worker", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def pythonpath() -> str:
    return os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
    )


def inputs(big: int, html: int) -> list[tuple[str, int]]:
    """(name, activities expected) of every malformed input, without building them."""
    lines = _worker("list", str(big), str(html)).splitlines()
    return [(name, int(n)) for n, name in (line.split(" ", 1) for line in lines)]


def build(name: str, where: Path, big: int, html: int) -> Path:
    if name == CORPUS_NAME:
        where.mkdir()
        for file in sorted(CORPUS.glob("msg_*.txt")):
            shutil.copyfile(file, where / f"{file.stem}.eml")
        return where
    path = where.with_suffix(".mbox")
    _worker("write", str(big), str(html), name, str(path))
    return path


# --- one run ----------------------------------------------------------------------


def sync(mbox: Path, url: str, limit: float) -> tuple[float, float, int | None, str, str]:
    """``oppkit sync mail --mbox`` in a subprocess: see :func:`run_oppkit`."""
    return run_oppkit(["sync", "mail", "--mbox", str(mbox)], url, limit)


def run_oppkit(
    args: list[str], url: str, limit: float
) -> tuple[float, float, int | None, str, str]:
    """``oppkit ARGS --db URL`` in a subprocess: (seconds, peak RSS MB, exit code or None
    when killed at the limit, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cmd = [sys.executable, "-m", "oppkit.cli", *args, "--db", url, "--no-progress"]
        env = {
            **os.environ,
            "PYTHONPATH": pythonpath(),
            "OPPKIT_INTERNAL_DOMAINS": mail_ingest.INTERNAL,
        }
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        code = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - started > limit:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = code if code is not None else -9  # reaped here, not by Popen
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return seconds, usage.ru_maxrss / 1024, code, out.read(), err.read()


def landed(url: str, table: str = "activities") -> int | None:
    """Rows in ``table`` (one of oppkit's, never user input) of the database at ``url``."""
    query = f"SELECT count(*) FROM {table}"  # noqa: S608 - a table name of this script's
    try:
        if url.startswith("sqlite"):
            with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                return conn.execute(query).fetchone()[0]
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            return conn.execute(query).fetchone()[0]
    except Exception:  # noqa: BLE001 - no schema: the run never got that far
        return None


class FreshPostgres:
    """A new database on the server of ``admin`` (a URL), dropped afterwards."""

    def __init__(self, admin: str, prefix: str = "oppkit_bad_mail") -> None:
        import psycopg

        self.admin = admin.replace("postgresql+psycopg://", "postgresql://")
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = (
            "postgresql+psycopg://"
            + self.admin.split("://", 1)[1].rsplit("/", 1)[0]
            + "/"
            + self.name
        )

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run(
    name: str, source: Path, expected: int, backend: str, args: argparse.Namespace, workdir: Path
) -> Run:
    if backend == "sqlite":
        db, url = None, f"sqlite:///{workdir / (uuid.uuid4().hex + '.sqlite')}"
    else:
        db = FreshPostgres(args.pg)
        url = db.url
    try:
        seconds, rss, code, out, err = sync(source, url, args.limit)
        return Run(name, backend, seconds, rss, code, out, err, landed(url), expected)
    finally:
        if db is not None:
            db.drop()


# --- main -------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--pg",
        metavar="URL",
        help="also run on PostgreSQL (a URL of a database to connect to, e.g. postgres)",
    )
    ap.add_argument("--limit", type=float, default=120.0, help="seconds per run (default 120)")
    ap.add_argument(
        "--max-rss", type=float, default=300.0, help="peak RSS MB per run (default 300)"
    )
    ap.add_argument("--quick", action="store_true", help="3 MB instead of 30 MB, 64 KB of <div>x")
    ap.add_argument("--only", help="inputs whose name contains this text")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        command, big, html, *rest = args.worker
        return worker(command, int(big), int(html), *rest)
    big, html = (3 * 2**20, 64 * 2**10) if args.quick else (30 * 2**20, 2**20)

    todo = [*inputs(big, html), (CORPUS_NAME, CORPUS_LANDS)]
    todo = [t for t in todo if not args.only or args.only.lower() in t[0].lower()]
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-bad-mail-"))
    print(f"bad mail, {len(todo)} inputs x {', '.join(backends)}, code {mail_ingest.revision()} "
          f"(shared 2-core box); limit {args.limit:.0f} s and {args.max_rss:.0f} MB a run")  # fmt: skip
    print("measured: wall seconds and peak RSS of one `oppkit sync mail --mbox INPUT` subprocess")
    runs: list[Run] = []
    try:
        good = build(BASELINE, workdir / "good", big, html)
        for backend in backends:
            baseline = run(BASELINE, good, 3, backend, args, workdir)
            print(
                f"baseline ({backend}): {baseline.seconds:.1f} s, {baseline.rss_mb:.0f} MB peak RSS; {baseline.summary()}"
            )
        print(f"\n{'':6} {'input':<32} {'db':<10} {'s':>6} {'MB':>5}  summary")
        print("-" * 100)
        for i, (name, expected) in enumerate(todo):
            source = build(name, workdir / f"input{i}", big, html)
            for backend in backends:
                r = run(name, source, expected, backend, args, workdir)
                runs.append(r)
                problems = r.problems(args.max_rss)
                verdict = "held" if not problems else "FAILED"
                detail = "; ".join(problems) if problems else r.summary()
                print(
                    f"{verdict:<6} {name:<32} {backend:<10} {r.seconds:6.1f} {r.rss_mb:5.0f}  {detail}",
                    flush=True,
                )
            if source.is_dir():
                shutil.rmtree(source, ignore_errors=True)
            else:
                source.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    held = sum(not r.problems(args.max_rss) for r in runs)
    print("-" * 100)
    print(f"tried {len(runs)}, held {held}, failed {len(runs) - held}")
    return 0 if held == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
