"""Mail server sync benchmark: ``sync_imap`` (real dovecot) and ``sync_exchange`` (fake EWS).

Messages come from ``mail_ingest.py``'s generator (threads with quoted replies, Cc, some
HTML-only or multipart/alternative), with longer bodies so that they are about 2-20 KB.
IMAP: a real dovecot on free ports of 127.0.0.1 (``tests/servers/dovecot.py``), read over
IMAPS. The mailbox is written as Maildir files before dovecot first opens it, then indexed by
one SELECT + FETCH of sizes (one APPEND per message took 431 s for 20,000: each APPEND
re-scans the growing Maildir); the 100 new messages of the re-sync arrive by IMAP APPEND.
EWS: the wire-level fake (``tests/fakes/ews.py``) in its own process so that its memory is
not counted, over plain HTTP (no TLS on either side), default page size (100). The fake
derives an item's properties from its MIME on every request (3-4 ms a message, on the same
2 cores as the client); here each message is parsed once as the server loads, as Exchange
keeps them stored (``--fake-parses`` turns that off).
Each measured phase runs in a fresh subprocess; its peak RSS is that process's ``VmHWM``
(not ``ru_maxrss``, which on Linux keeps the RSS of the parent):

* baseline IMAP: imaplib ``IMAP4_SSL``, ``UID SEARCH ALL``, ``UID FETCH`` of 200 at a
  time ``(BODY.PEEK[])``, then each message parsed with the standard library's compat32
  policy and its From, To, Subject and text part touched (``mail_ingest.touch``);
* baseline EWS: exchangelib ``account.inbox.sync_items(only_fields=["mime_content"])``
  consumed whole, each MIME parsed and touched the same way.
  (Until #16 the baselines fetched and parsed nothing: no fair comparison for a sync
  that must parse every message.)
* oppkit: ``sync_imap`` / ``sync_exchange`` into a fresh SQLite file (IMAP parses in
  worker processes since #14: their summed RSS is sampled and reported beside the sync's
  own, and the memory target holds for the two together);
* re-sync: 100 new messages arrive; the same sync again on the same database.

Targets (#16), per server, at the large size: oppkit time / baseline time <= 1.5; re-sync < 1 s;
peak RSS < 300 MB at the small and the large size and flat (less than 20 % growth);
activities in the database equal the messages (before and after the re-sync).

    .venv/bin/python benchmarks/mail_sync.py            # 5,000 and 20,000 messages
    .venv/bin/python benchmarks/mail_sync.py --quick    # 500 and 2,000, smoke run
    .venv/bin/python benchmarks/mail_sync.py --profile  # cProfile of the oppkit IMAP sync
"""

from __future__ import annotations

import argparse
import functools
import json
import mailbox
import math
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mail_ingest  # benchmarks/mail_ingest.py, next to this file

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = mail_ingest.INTERNAL
NEW = 100  # messages arriving before the re-sync
USER = "ava.patel"  # the mailbox, on dovecot and (with the domain) on the fake EWS
ADDRESS = f"{USER}@{INTERNAL}"
NO_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
          "http_proxy", "ALL_PROXY", "all_proxy")  # fmt: skip
ENV = {k: v for k, v in os.environ.items() if k not in NO_ENV}  # for servers and workers


# --- messages ----------------------------------------------------------------------------


def _longer_text(rng: random.Random) -> str:
    """mail_ingest's body text, 1.7-8 KB (log-uniform) instead of 0.3-2 KB."""
    size, lines = int(math.exp(rng.uniform(math.log(1700), math.log(8000)))), []
    while sum(map(len, lines)) < size:
        lines.append(rng.choice(mail_ingest.SENTENCES))
        if rng.random() < 0.2:
            lines.append("")
    return "\n".join(lines)


def generate(path: Path, n: int) -> list[bytes]:
    """Write an mbox of ``n`` messages (the first k the same for every n); return them."""
    mail_ingest._text = _longer_text
    mail_ingest.generate_mbox(path, n)
    return read_messages(path, n)


def read_messages(path: str | Path, n: int) -> list[bytes]:
    """The first ``n`` messages of the mbox, raw (LF line ends)."""
    box = mailbox.mbox(str(path), create=False)
    return [box.get_bytes(key) for key in box.keys()[:n]]


# --- the fake EWS (``--serve``, its own process) -----------------------------------------


def serve(mbox: str, n: int, cache: bool) -> int:
    """Serve a mailbox of ``n`` messages; print its URL; ``add`` puts in the next 100."""
    sys.path.insert(0, str(ROOT))
    import tests.fakes.ews as fake

    if cache:  # Exchange keeps an item's properties; the fake re-parses MIME on every request
        parse = functools.lru_cache(maxsize=None)(fake._message_props)
        fake._message_props = lambda mime: dict(parse(mime))
    raw, box = read_messages(mbox, n + NEW), fake.FakeMailbox()
    for message in raw[:n]:
        box.add_message("inbox", message)
    for message in raw if cache else ():  # parsed before any client asks: none pays for it
        fake._message_props(message)
    with fake.FakeEws({ADDRESS: box}, tls=False) as ews:
        print(json.dumps({"url": ews.url}), flush=True)
        for line in sys.stdin:
            if line.split() == ["add"]:
                for message in raw[n:]:
                    box.add_message("inbox", message)
            print("ok", flush=True)
    return 0


class Server:
    """A ``--serve`` subprocess: ``info`` is its JSON line; ``send`` a command."""

    def __init__(self, mbox: Path, n: int, cache: bool) -> None:
        cmd = [sys.executable, __file__, "--serve", str(mbox), str(n), str(int(cache))]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=ENV)  # fmt: skip
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


def imap_baseline(info: dict) -> dict:
    import imaplib
    import ssl

    started = time.perf_counter()
    context = ssl.create_default_context(cafile=info["ca"])
    conn = imaplib.IMAP4_SSL(info["host"], info["port"], ssl_context=context)
    conn.login(info["user"], info["password"])
    conn.select("INBOX", readonly=True)
    import email.policy

    parse = functools.partial(email.message_from_bytes, policy=email.policy.compat32)
    uids = conn.uid("SEARCH", "ALL")[1][0].split()
    n = size = 0
    for start in range(0, len(uids), 200):
        batch = b",".join(uids[start : start + 200]).decode()
        for item in conn.uid("FETCH", batch, "(BODY.PEEK[])")[1]:
            if isinstance(item, tuple):
                n, size = n + 1, size + len(item[1])
                mail_ingest.touch(parse(item[1]))
    conn.logout()
    return {"seconds": time.perf_counter() - started, "summary": f"{n} messages, {size >> 20} MB"}


def ews_baseline(info: dict) -> dict:
    from exchangelib import DELEGATE, Account, Build, Configuration, Credentials, Version
    from exchangelib.protocol import FaultTolerance
    from exchangelib.transport import NOAUTH

    started = time.perf_counter()
    config = Configuration(service_endpoint=info["url"], credentials=Credentials("svc", "p"),
                           auth_type=NOAUTH, version=Version(build=Build(15, 1)),
                           retry_policy=FaultTolerance(max_wait=60))  # fmt: skip
    account = Account(ADDRESS, config=config, autodiscover=False, access_type=DELEGATE)
    import email.policy

    parse = functools.partial(email.message_from_bytes, policy=email.policy.compat32)
    n = size = 0
    for _change, item in account.inbox.sync_items(only_fields=["mime_content"]):
        n, size = n + 1, size + len(item.mime_content or b"")
        mail_ingest.touch(parse(item.mime_content or b""))
    return {"seconds": time.perf_counter() - started, "summary": f"{n} messages, {size >> 20} MB"}


def oppkit_sync(info: dict) -> dict:
    import oppkit
    from oppkit.sync import sync_exchange, sync_imap

    settings = oppkit.Settings(database_url=info["db"], internal_domains=(INTERNAL,))
    if info["server"] == "imap":
        from oppkit.sources.imap import ImapSettings

        server = ImapSettings(host=info["host"], port=info["port"], username=info["user"],
                              password=info["password"], security="tls", ca_file=info["ca"],
                              folders=("INBOX",))  # fmt: skip
        run = lambda: sync_imap(server, settings=settings, progress=False)  # noqa: E731
    else:
        from oppkit.sources.exchange import ExchangeSettings

        server = ExchangeSettings(endpoint=info["url"], mailboxes=(ADDRESS,), username="svc",
                                  password="p", auth="noauth", folders=("inbox",),
                                  ca_file=None)  # fmt: skip
        run = lambda: sync_exchange(server, settings=settings, progress=False)  # noqa: E731
    imported_mb, children = peak_rss_mb(), mail_ingest.ChildrenRss()
    started = time.perf_counter()
    summary = run()
    return {"seconds": time.perf_counter() - started, "summary": summary.line(),
            "import_rss_mb": imported_mb, "workers_rss_mb": children.stop()}  # fmt: skip


def oppkit_profile(info: dict) -> dict:
    import cProfile
    import pstats

    result = (profile := cProfile.Profile()).runcall(oppkit_sync, info)
    pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    return result


WORKERS = {"imap-base": imap_baseline, "ews-base": ews_baseline, "oppkit": oppkit_sync,
           "profile": oppkit_profile}  # fmt: skip


def run_worker(kind: str, info: dict) -> dict:
    """Run this script in ``--worker`` mode (without CA-bundle or proxy variables)."""
    out = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(info)],
                         capture_output=True, text=True, env=ENV, cwd=ROOT)  # fmt: skip
    if out.returncode or kind == "profile":
        print(out.stderr, file=sys.stderr)
    out.check_returncode()
    return json.loads(out.stdout.strip().splitlines()[-1])


def revision() -> str:
    """The git commit of the code under test (with -dirty for local changes)."""
    out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    return out.stdout.strip() or "unknown"


# --- phases ------------------------------------------------------------------------------


def run_phases(info: dict, base: str, db: Path, add_new, profile: bool) -> dict:  # noqa: ANN001
    """Baseline, oppkit full, ``add_new()``, oppkit re-sync; results by phase."""
    db.unlink(missing_ok=True)
    info, res = info | {"db": f"sqlite:///{db}"}, {}
    if profile:
        return run_worker("profile", info)

    def phase(key: str, kind: str) -> None:
        r = res[key] = run_worker(kind, info)
        print(f"  {key:<5} {r['seconds']:7.2f}s {r['peak_rss_mb']:5.0f} MB  {r['summary']}  "
              f"[load {os.getloadavg()[0]:.1f}]")  # fmt: skip

    def count() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM activities").fetchone()[0]

    phase("base", base)
    phase("full", "oppkit")
    res["count_full"] = count()
    add_new()
    phase("incr", "oppkit")
    res["count_incr"] = count()
    return res


def fill_maildir(dovecot, user: str, messages: list[bytes]) -> None:  # noqa: ANN001
    """Write ``messages`` as the user's INBOX Maildir (CRLF, sizes in the names); index it."""
    from tests.servers.dovecot import _mail_user

    home = dovecot.root / "mail" / user
    for sub in ("tmp", "new", "cur"):
        (home / sub).mkdir(parents=True)
    for i, raw in enumerate(messages):
        data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        name = f"{1_700_000_000 + i}.M{i:06d}P1.bench,S={len(data)},W={len(data)}:2,"
        (home / "cur" / name).write_bytes(data)
    if os.geteuid() == 0:  # dovecot runs the mail user as nobody
        for path in [home, *home.rglob("*")]:
            shutil.chown(path, *_mail_user())
    conn = dovecot.client(user)
    conn.select("INBOX")
    conn.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
    conn.logout()


def run_imap(sizes: list[int], raw: list[bytes], workdir: Path, profile: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.servers.dovecot import Dovecot

    out = {}
    with Dovecot(workdir) as dovecot:
        for n in sizes:
            user = f"{USER}{n}"
            t0 = time.perf_counter()
            fill_maildir(dovecot, user, raw[:n])
            print(f"imap: dovecot, {n:,} messages stored in {time.perf_counter() - t0:.0f}s")
            info = {"server": "imap", "host": dovecot.host, "port": dovecot.tls_port,
                    "user": user, "password": dovecot.password, "ca": dovecot.ca_path}  # fmt: skip
            out[n] = run_phases(info, "imap-base", workdir / f"imap-{n}.sqlite",
                                lambda n=n, u=user: dovecot.append(u, "INBOX", raw[n : n + NEW]),
                                profile)  # fmt: skip
    return out


def run_ews(sizes: list[int], mbox: Path, workdir: Path, cache: bool) -> dict:
    out = {}
    for n in sizes:
        t0 = time.perf_counter()
        server = Server(mbox, n, cache)
        print(f"ews: fake EWS, {n:,} messages loaded in {time.perf_counter() - t0:.0f}s")
        try:
            info = {"server": "ews", "url": server.info["url"]}
            out[n] = run_phases(info, "ews-base", workdir / f"ews-{n}.sqlite",
                                lambda s=server: s.send("add"), False)  # fmt: skip
        finally:
            server.close()
    return out


def table(title: str, base_label: str, res: dict, small: int, n: int) -> None:
    big = res[n]
    base, full, incr = big["base"], big["full"], big["incr"]
    ratio = full["seconds"] / base["seconds"]
    rss_s, rss_b = res[small]["full"]["peak_rss_mb"], full["peak_rss_mb"]
    counts, expect = (big["count_full"], big["count_incr"]), (n, n + NEW)
    rows = [  # (measure, value, target, verdict or None)
        ("baseline s", f"{base['seconds']:.1f}", "", None),
        ("oppkit full sync s", f"{full['seconds']:.1f}", "", None),
        ("time ratio oppkit / baseline", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
        (f"re-sync after {NEW} new messages s", f"{incr['seconds']:.2f}", "< 1",
         incr["seconds"] < 1),
        (f"peak RSS MB oppkit @ {small:,}", f"{rss_s:.0f}", "< 300", rss_s < 300),
        (f"peak RSS MB oppkit @ {n:,}", f"{rss_b:.0f}", "< 300, flat (<+20%)",
         rss_b < 300 and rss_b < rss_s * 1.2),
        ("  of which after imports", f"{full['import_rss_mb']:.0f}", "", None),
        (f"  + parse workers' RSS (sum, sampled) @ {n:,}", f"{full['workers_rss_mb']:.0f}",
         "total < 300", rss_b + full["workers_rss_mb"] < 300),
        ("peak RSS MB oppkit re-sync", f"{incr['peak_rss_mb']:.0f}", "", None),
        (f"peak RSS MB baseline @ {n:,}", f"{base['peak_rss_mb']:.0f}", "", None),
        ("activities in db, full / re-sync", "{:,} / {:,}".format(*counts),
         "= {:,} / {:,}".format(*expect), counts == expect),
    ]  # fmt: skip
    print(f"\n{title}, {n:,} messages, SQLite, code {revision()} (shared 2-core box, "
          f"load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"baseline: {base_label}")
    print(f"{'measure':<44} {'value':>15}  {'target':<20} ok")
    print("-" * 86)
    for label, value, target, ok in rows:
        mark = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<44} {value:>15}  {target:<20} {mark}")


# --- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000, help="large mailbox size")
    ap.add_argument("--small", type=int, default=5_000, help="small mailbox size (memory)")
    ap.add_argument("--quick", action="store_true", help="2,000 and 500 messages")
    ap.add_argument("--profile", action="store_true", help="only cProfile the oppkit IMAP sync")
    ap.add_argument("--only", choices=("imap", "ews"), help="one server only")
    ap.add_argument("--workdir", type=Path, help="where to put data (default: a temp dir)")
    ap.add_argument("--fake-parses", action="store_true", help="fake EWS parses MIME per request")
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]), args.serve[2] == "1")
    if args.worker:
        kind, info = args.worker
        result = WORKERS[kind](json.loads(info))
        print(json.dumps(result | {"peak_rss_mb": peak_rss_mb()}))
        return 0
    if args.quick:
        args.messages, args.small = 2_000, 500

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="oppkit-mailsync-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # dovecot's mail user must reach its folder inside
    n, small = args.messages, args.small
    sizes = [n] if args.profile else [small, n]
    try:
        mbox, t0 = workdir / "mail.mbox", time.perf_counter()
        raw = generate(mbox, n + NEW)
        kb = sorted(len(m) / 1024 for m in raw)
        print(f"generated {len(raw):,} messages in {time.perf_counter() - t0:.0f}s: "
              f"{kb[0]:.1f} / {statistics.median(kb):.1f} / {kb[-1]:.1f} KB min / median / max, "
              f"{sum(kb) / 1024:.0f} MB")  # fmt: skip
        imap = run_imap(sizes, raw, workdir, args.profile) if args.only != "ews" else None
        if args.profile:
            return 0
        ews = run_ews(sizes, mbox, workdir, not args.fake_parses) if args.only != "imap" else None
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if imap:
        table("IMAP sync (dovecot, IMAPS)",
              "imaplib UID FETCH BODY.PEEK[] + compat32 parse, From/To/Subject + text part",
              imap, small, n)  # fmt: skip
    if ews:
        table("EWS sync (fake EWS, plain HTTP)",
              "exchangelib sync_items mime_content + compat32 parse, From/To/Subject + text part",
              ews, small, n)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
