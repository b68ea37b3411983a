"""Mail ingest benchmark: ``oppkit.sync.sync_mail`` against the standard library.

Generates an mbox of realistic messages (~200 customer domains, ~2,000 people, 30
internal users on northwind.example, threads with In-Reply-To/References and quoted
replies, some HTML-only or multipart, some with Cc) and measures, each in a fresh
subprocess so that its peak RSS is the ingest's alone (``VmHWM`` of that process; not
``ru_maxrss``, which on Linux keeps the RSS of the parent it was forked from):

* baseline: ``mailbox.mbox`` + the standard library's parser with its fast ``compat32``
  policy (``BytesParser(policy=compat32)``), touching From, To, Subject and the text
  part of every message (the first text/plain part, else text/html, decoded to str):
  reading and parsing the messages and nothing more (see :func:`touch`). Until #16 the
  baseline used ``policy=default``, about ten times slower than compat32, which
  flattered oppkit;
* oppkit: ``sync_mail`` into a fresh SQLite file, then a re-run over the unchanged file.
  Since #14 the sync parses in worker processes (``OPPKIT_PARSE_WORKERS``, default: the
  CPUs): their summed RSS is sampled and reported beside the sync's own peak RSS, and the
  memory target holds for the two together.

Targets (#16): oppkit time / baseline time <= 1.5; peak RSS < 300 MB and not growing from
the small to the large mbox (checked as: less than 20 % above the small run); re-run
< 10 % of the first run. The number of activities
in the database must equal the number of messages.

    .venv/bin/python benchmarks/mail_ingest.py            # 100,000 and 20,000 messages
    .venv/bin/python benchmarks/mail_ingest.py --quick    # smoke run
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
from collections import deque
from pathlib import Path

INTERNAL = "northwind.example"
WORDS = (
    "pilot rollout pricing contract renewal licence integration sensor dashboard "
    "maintenance forecast budget security review proposal demo onboarding invoice "
    "timeline milestone workshop feedback data export migration support training"
).split()
FIRST = "ava ben chloe dan emma finn grace hugo isla jack kate leo mia noah olivia paul".split()
LAST = "patel smith jones garcia muller rossi novak kim silva dubois berg walsh ito".split()
SENTENCES = [
    f"{a.capitalize()} {b}: could we {c} the {d} before {e}?"
    for a, b, c, d, e in zip(
        ["thanks", "quick", "following", "regarding", "about", "re", "one"] * 9,
        ["question", "update", "note", "point", "item", "idea", "reminder"] * 9,
        ["review", "discuss", "finalise", "move", "confirm", "share", "check", "plan", "sign"] * 7,
        WORDS * 3,
        ["Friday", "next week", "the call", "end of month", "the board meeting", "Q3"] * 11,
        strict=False,
    )
] + [
    f"The {w} numbers look {v}; I have attached nothing, but see the shared folder."
    for w in WORDS
    for v in ("good", "off", "promising")
]


def _name(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first.title()} {last.title()}", f"{first}.{last}"


def _people(rng: random.Random) -> tuple[list[str], list[list[str]]]:
    """(internal addresses, customer addresses per domain) as 'Name <addr>' strings."""
    internal = []
    for i in range(30):
        name, local = _name(rng)
        internal.append(f"{name} <{local}{i}@{INTERNAL}>")
    domains = []
    for d in range(200):
        domain = f"{rng.choice(WORDS)}-{rng.choice(LAST)}-{d}.example"
        staff = []
        for p in range(10):
            name, local = _name(rng)
            staff.append(f"{name} <{local}{p}@{domain}>" if p % 4 else f"{local}{p}@{domain}")
        domains.append(staff)
    return internal, domains


def _text(rng: random.Random) -> str:
    size, lines = rng.randint(300, 2000), []
    while sum(map(len, lines)) < size:
        lines.append(rng.choice(SENTENCES))
        if rng.random() < 0.2:
            lines.append("")
    return "\n".join(lines)


def generate_mbox(path: Path, n: int, seed: int = 7) -> int:
    """Write ``n`` messages to ``path`` as an mbox; returns the file size."""
    rng = random.Random(seed)
    internal, domains = _people(rng)
    threads: deque[dict] = deque(maxlen=300)  # replies go to one of the recent threads
    ts = 1_700_000_000.0
    with path.open("wb", buffering=1 << 20) as fh:
        for i in range(n):
            ts += rng.expovariate(1 / 300)
            date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))
            mid = f"m{i}.{rng.getrandbits(32):08x}@mail.example"
            body = _text(rng)
            if threads and rng.random() < 0.6:
                t = rng.choice(threads)
                sender, to = t["to"][0], [t["from"], *t["to"][1:]]
                quoted = "\n".join("> " + line for line in t["body"].splitlines()[:40])
                body += f"\n\nOn {t['date']}, {t['from'].split(' <')[0]} wrote:\n{quoted}"
                refs = [*t["refs"], t["id"]][-10:]
                subject = "Re: " + t["subject"]
                extra = [f"In-Reply-To: <{t['id']}>", f"References: <{'> <'.join(refs)}>"]
                t.update(to=to, refs=refs)
            else:
                staff = rng.choice(domains)
                customer, rep = rng.choice(staff), rng.choice(internal)
                sender, to = (rep, [customer]) if rng.random() < 0.5 else (customer, [rep])
                if rng.random() < 0.4:
                    to.append(rng.choice(staff))
                subject, extra = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}", []
                t = {"to": to, "refs": []}
                threads.append(t)
            t.update(
                {
                    "from": sender,
                    "id": mid,
                    "subject": subject.removeprefix("Re: "),
                    "date": date,
                    "body": body,
                }
            )
            headers = [f"From: {sender}", f"To: {', '.join(to[:1])}"]
            if len(to) > 1 or rng.random() < 0.25:
                headers.append(f"Cc: {', '.join(to[1:] or [rng.choice(internal)])}")
            headers += [
                f"Subject: {subject}",
                f"Date: {date}",
                f"Message-ID: <{mid}>",
                *extra,
                "MIME-Version: 1.0",
            ]
            kind = rng.random()
            html = (
                "<html><body><p>"
                + body.replace("\n\n", "</p><p>").replace("\n", "<br>\n")
                + "</p></body></html>"
            )
            if kind < 0.1:  # HTML only
                headers.append('Content-Type: text/html; charset="utf-8"')
                payload = html
            elif kind < 0.25:  # plain + HTML alternative
                b = f"b{i}"
                headers.append(f'Content-Type: multipart/alternative; boundary="{b}"')
                payload = (
                    f'--{b}\nContent-Type: text/plain; charset="utf-8"\n\n{body}\n'
                    f'--{b}\nContent-Type: text/html; charset="utf-8"\n\n{html}\n--{b}--'
                )
            else:
                headers.append('Content-Type: text/plain; charset="utf-8"')
                payload = body
            from_line = time.strftime(
                "From sender@mail.example %a %b %d %H:%M:%S %Y", time.gmtime(ts)
            )
            fh.write(f"{from_line}\n{chr(10).join(headers)}\n\n{payload}\n\n".encode())
    return path.stat().st_size


# --- workers (run in a subprocess) -------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


class ChildrenRss:
    """The peak of this process's children's summed RSS (oppkit's parse workers), sampled
    every 50 ms in a thread: the workers' memory counts too. A child that has not yet
    exec'd (still this process's image, its pages shared) is not counted."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        own = Path("/proc/self/cmdline").read_bytes()
        while not self._done.wait(0.05):
            total = 0
            for task in Path("/proc/self/task").glob("*"):
                try:
                    pids = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    try:  # a child between fork and exec shares our pages: not counted
                        if Path(f"/proc/{pid}/cmdline").read_bytes() == own:
                            continue
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1])
                    except OSError:
                        pass
            self.peak_mb = max(self.peak_mb, total / 1024)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


BASELINE = "mailbox + compat32 parse, From/To/Subject + text part touched"


def touch(msg: object) -> int:
    """What the baseline does with a parsed message (``email.message.Message``): read
    From, To and Subject, and decode the text part (the first text/plain, else
    text/html) to str. Returns a size, so that nothing is optimised away."""
    headers = (msg["From"], msg["To"], msg["Subject"])  # type: ignore[index]
    parts = list(msg.walk())  # type: ignore[attr-defined]
    part = next((p for p in parts if p.get_content_type() == "text/plain"), None) or next(
        (p for p in parts if p.get_content_type() == "text/html"), None
    )
    text = ""
    if part is not None:
        payload = part.get_payload(decode=True) or b""
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
    return len(str(headers)) + len(text)


def worker_baseline(path: str) -> dict:
    import email.parser
    import email.policy
    import mailbox

    parser = email.parser.BytesParser(policy=email.policy.compat32)
    started, n, chars = time.perf_counter(), 0, 0
    for msg in mailbox.mbox(path, factory=parser.parse, create=False):
        chars += touch(msg)
        n += 1
    return {"seconds": time.perf_counter() - started, "messages": n}


def worker_oppkit(path: str, url: str) -> dict:
    import oppkit
    from oppkit.sync import sync_mail

    settings = oppkit.Settings(database_url=url, internal_domains=(INTERNAL,))
    imported_mb = peak_rss_mb()
    children = ChildrenRss()
    started = time.perf_counter()
    summary = sync_mail(path, db=url, settings=settings, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "summary": summary.line(), "import_rss_mb": imported_mb,
            "workers_rss_mb": children.stop()}  # fmt: skip


def revision() -> str:
    """The git commit of the code under test (with -dirty for local changes)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_worker(*args: str) -> dict:
    """Run this script in ``--worker`` mode; returns its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000, help="large mbox size")
    ap.add_argument("--small", type=int, default=20_000, help="small mbox size (memory)")
    ap.add_argument("--quick", action="store_true", help="2,000 and 500 messages")
    ap.add_argument("--workdir", type=Path, help="where to put data (default: a temp dir)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = worker_baseline(*rest) if kind == "baseline" else worker_oppkit(*rest)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    if args.quick:
        args.messages, args.small = 2_000, 500

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-mail-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        res: dict[int, dict] = {}
        for n in (args.small, args.messages):
            mbox = workdir / f"mail-{n}.mbox"
            t0 = time.perf_counter()
            size = generate_mbox(mbox, n)
            print(
                f"generated {n:,} messages, {size / 2**20:.0f} MB, in {time.perf_counter() - t0:.1f}s"
            )
            db = workdir / f"oppkit-{n}.sqlite"
            db.unlink(missing_ok=True)
            url = f"sqlite:///{db}"
            r = res[n] = {"base": run_worker("baseline", str(mbox))}
            r["first"] = run_worker("oppkit", str(mbox), url)
            r["again"] = run_worker("oppkit", str(mbox), url)
            with sqlite3.connect(db) as conn:
                r["count"] = conn.execute("SELECT count(*) FROM activities").fetchone()[0]
            for key in ("base", "first", "again"):
                print(f"  {n:>7,} {key:<5} {r[key]['seconds']:7.1f}s  {r[key].get('summary', '')}")

        big, small = res[args.messages], res[args.small]
        n = args.messages
        ratio = big["first"]["seconds"] / big["base"]["seconds"]
        rerun = big["again"]["seconds"] / big["first"]["seconds"] * 100
        rss_s, rss_b = small["first"]["peak_rss_mb"], big["first"]["peak_rss_mb"]
        base_rss = f"{small['base']['peak_rss_mb']:.0f} / {big['base']['peak_rss_mb']:.0f}"
        rows = [  # (measure, value, target, verdict or None)
            ("baseline msgs/s", f"{n / big['base']['seconds']:,.0f}", "", None),
            ("oppkit sync_mail msgs/s", f"{n / big['first']['seconds']:,.0f}", "", None),
            ("time ratio oppkit / baseline", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
            (f"peak RSS MB oppkit @ {args.small:,}", f"{rss_s:.0f}", "< 300", rss_s < 300),
            (f"peak RSS MB oppkit @ {n:,}", f"{rss_b:.0f}", "< 300, not growing",
             rss_b < 300 and rss_b < rss_s * 1.2),
            ("  of which after `import oppkit`", f"{big['first']['import_rss_mb']:.0f}", "", None),
            (f"  + parse workers' RSS (sum, sampled) @ {n:,}", f"{big['first']['workers_rss_mb']:.0f}",
             "total < 300", rss_b + big["first"]["workers_rss_mb"] < 300),
            (f"peak RSS MB baseline @ {args.small:,} / {n:,}", base_rss, "", None),
            ("re-run (unchanged file) s", f"{big['again']['seconds']:.2f}", "", None),
            ("re-run % of first run", f"{rerun:.1f}%", "< 10%", rerun < 10),
            (f"activities in db (expect {n:,})", f"{big['count']:,}", f"= {n:,}", big["count"] == n),
        ]  # fmt: skip
        print(f"\nmail ingest, {n:,} messages, SQLite file, code {revision()} (shared 2-core box, "
              f"load {os.getloadavg()[0]:.1f})")  # fmt: skip
        print(f"baseline: {BASELINE}")
        print(f"{'measure':<40} {'value':>12}  {'target':<20} ok")
        print("-" * 80)
        for label, value, target, ok in rows:
            mark = "" if ok is None else ("PASS" if ok else "FAIL")
            print(f"{label:<40} {value:>12}  {target:<20} {mark}")
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
