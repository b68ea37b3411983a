"""Signals benchmark: ``oppkit.signal_rules.find_signals`` on the labelled set, against a baseline.

Scores every message of ``tests/data/signals_eval.jsonl`` against its hand-written
labels. Per kind it prints TP/FP/FN, precision, recall, and due-date accuracy among the
true positives whose label has a date. It also counts "due set, label has none", i.e. a
date invented where the label has none. Signals are matched per message and kind,
dates first, so one extra or missing signal costs one FP or FN.

Rows are split into ``dev``, labelled before the rules were written, and ``holdout``
(``"split": "holdout"``), written after the first version of the rules and scored
untuned. Both splits are reported, and so is the whole set.

The baseline, scored in the same run, is a naive keyword matcher. It splits sentences on
``.!?`` and newlines, and uses the same direction gating but no quote, auto-reply or
negation handling. An inbound sentence with send/share/provide/please/need/"could you"/
"can you" is a request; an outbound one with send/share/will/'ll is a commitment; an
inbound or internal one with budget/postpone/hold/cancel/competitor/vendor/freeze/reorg/
paused/priority is a risk. Its due date is "by <weekday>" (the next such day) or
"tomorrow".

Target: precision >= 0.9 for each kind (the exit status is 1 otherwise). Throughput is
measured over the set repeated to ~20,000 messages.

Speed (#16): the rules as they were before the anchor prefilter, frozen verbatim in
``tests/signals_reference.py``, are scored and timed in the same run, interleaved with
the current ones (best of several rounds each, so that a shared box's noise hits both).
The script prints both throughputs and the speed-up, on the labelled set and on
mail-sized messages (ten labelled messages joined, ~700 characters, and 7 KB messages
of benchmarks/mail_ingest.py's kind), and checks that every table is unchanged: the
exit status is 1 if any count differs.

    .venv/bin/python benchmarks/signals_eval.py
    .venv/bin/python benchmarks/signals_eval.py --quick    # ~2,000 messages for throughput
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta

from oppkit.signal_rules import find_signals

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/signals_reference.py: the rules before #16
from tests import signals_reference  # noqa: E402

EVAL = ROOT / "tests" / "data" / "signals_eval.jsonl"
KINDS = ("request", "commitment", "risk")
TARGET_PRECISION = 0.9
Finder = Callable[[dict], list[tuple[str, str | None]]]


def load() -> list[dict]:
    return [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]


def rules(row: dict, find: Callable[..., list] = find_signals) -> list[tuple[str, str | None]]:
    found = find(
        row["text"],
        occurred_at=datetime.fromisoformat(row["occurred_at"]),
        direction=row["direction"],
        subject=row.get("subject"),
        is_auto=row.get("is_auto", False),
    )
    return [(s.kind, s.due_at.date().isoformat() if s.due_at else None) for s in found]


def old_rules(row: dict) -> list[tuple[str, str | None]]:
    return rules(row, signals_reference.find_signals)


WEEKDAY = {"mon": MO, "tue": TU, "wed": WE, "thu": TH, "fri": FR, "sat": SA, "sun": SU}
KEYWORDS = {
    "request": re.compile(r"\b(?:send|share|provide|please|need|could you|can you)\b", re.I),
    "commitment": re.compile(r"\b(?:send|share|will)\b|'ll\b", re.I),
    "risk": re.compile(
        r"budget|postpone|hold|cancel|competitor|vendor|freeze|reorg|paused|priority", re.I
    ),
}
BASELINE_KINDS = {
    "inbound": ("request", "risk"),
    "outbound": ("commitment",),
    "internal": ("risk",),
}


def baseline(row: dict) -> list[tuple[str, str | None]]:
    today = datetime.fromisoformat(row["occurred_at"]).astimezone(UTC).date()
    out = []
    for sentence in re.split(r"[.!?\n]+", row["text"]):
        for kind in BASELINE_KINDS[row["direction"]]:
            if not KEYWORDS[kind].search(sentence):
                continue
            due: date | None = None
            if m := re.search(r"\bby\s+(mon|tue|wed|thu|fri|sat|sun)[a-z]*day\b", sentence, re.I):
                due = today + relativedelta(weekday=WEEKDAY[m[1].lower()])
            elif re.search(r"\btomorrow\b", sentence, re.I):
                due = today + timedelta(days=1)
            out.append((kind, due.isoformat() if due and kind != "risk" else None))
    return out


def score(rows: list[dict], finder: Finder) -> dict[str, Counter]:
    """Per kind: tp, fp, fn, dated (TPs whose label has a date), due_ok, spurious_due."""
    stats = {kind: Counter() for kind in KINDS}
    for row in rows:
        found = finder(row)
        for kind in KINDS:
            expected = Counter(e["due"] for e in row["expected"] if e["kind"] == kind)
            predicted = Counter(due for k, due in found if k == kind)
            same = expected & predicted  # pair equal dates first, then the rest in any order
            pairs = [(d, d) for d in same.elements()]
            pairs += zip((expected - same).elements(), (predicted - same).elements(), strict=False)
            tp = len(pairs)
            stats[kind].update(
                tp=tp, fp=predicted.total() - tp, fn=expected.total() - tp,
                dated=sum(e is not None for e, _ in pairs),
                due_ok=sum(e is not None and e == p for e, p in pairs),
                spurious_due=sum(e is None and p is not None for e, p in pairs),
            )  # fmt: skip
    return stats


def ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def table(title: str, stats: dict[str, Counter]) -> None:
    print(f"\n{title}")
    print(f"  {'kind':<11}{'TP':>4}{'FP':>4}{'FN':>4}  {'prec':>6}  {'recall':>6}  "
          f"{'due ok':>12}  {'due invented':>12}")  # fmt: skip
    for kind, s in stats.items():
        due = (
            f"{s['due_ok']}/{s['dated']} {ratio(s['due_ok'], s['dated']):.0%}"
            if s["dated"]
            else "-"
        )
        print(f"  {kind:<11}{s['tp']:>4}{s['fp']:>4}{s['fn']:>4}  "
              f"{ratio(s['tp'], s['tp'] + s['fp']):>6.3f}  {ratio(s['tp'], s['tp'] + s['fn']):>6.3f}  "
              f"{due:>12}  {s['spurious_due']:>12}")  # fmt: skip


def throughput(rows: list[dict], finder: Finder, target: int) -> tuple[int, float]:
    batch = rows * (target // len(rows) + 1)
    start = time.perf_counter()
    for row in batch:
        finder(row)
    return len(batch), len(batch) / (time.perf_counter() - start)


def speed(rows: list[dict], target: int, rounds: int = 5) -> tuple[float, float]:
    """(old, current) messages/s over ``rows`` repeated to ~``target``: best of ``rounds``
    interleaved rounds each."""
    batch = rows * (target // len(rows) + 1)
    best = {old_rules: 0.0, rules: 0.0}
    for _ in range(rounds):
        for finder in best:
            start = time.perf_counter()
            for row in batch:
                finder(row)
            best[finder] = max(best[finder], len(batch) / (time.perf_counter() - start))
    return best[old_rules], best[rules]


def mail_sized(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Messages of realistic size: ten labelled messages joined (one direction), and the
    7 KB bodies of benchmarks/mail_ingest.py (quoted history and all)."""
    joined = []
    for i in range(0, len(rows) - 10, 10):
        group = rows[i : i + 10]
        joined.append({**group[0], "text": "\n\n".join(r["text"] for r in group)})
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mailbox
    import tempfile

    import mail_ingest

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.mbox"
        mail_ingest.generate_mbox(path, 300)
        bodies = []
        for msg in mailbox.mbox(path):
            part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
            text = (part or msg).get_payload(decode=True).decode()
            bodies.append({"text": text, "occurred_at": "2026-03-04T10:00:00+00:00",
                           "direction": ("inbound", "outbound")[len(bodies) % 2]})  # fmt: skip
    return joined, bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="throughput over ~2,000 messages")
    args = parser.parse_args()
    rows = load()
    dev = [r for r in rows if r.get("split", "dev") == "dev"]
    holdout = [r for r in rows if r.get("split") == "holdout"]
    negatives = sum(not r["expected"] for r in rows)
    print(f"{EVAL.name}: {len(rows)} messages ({len(dev)} dev, {len(holdout)} holdout), "
          f"{negatives} ({negatives / len(rows):.0%}) with no signal")  # fmt: skip

    stats = score(rows, rules)
    table("oppkit.signal_rules rules, all messages", stats)
    table("oppkit.signal_rules rules, dev split", score(dev, rules))
    table("oppkit.signal_rules rules, holdout split", score(holdout, rules))
    table("baseline keyword matcher, all messages", score(rows, baseline))

    n, rate = throughput(rows, rules, 2_000 if args.quick else 20_000)
    n_base, rate_base = throughput(rows, baseline, 2_000 if args.quick else 20_000)
    print(f"\nthroughput: rules {rate:,.0f} messages/s over {n:,} messages; "
          f"baseline {rate_base:,.0f} messages/s over {n_base:,}")  # fmt: skip

    same = all(score(part, rules) == score(part, old_rules) for part in (rows, dev, holdout))
    joined, bodies = mail_sized(rows)
    same_found = all(rules(r) == old_rules(r) for r in rows + joined + bodies)
    print(
        "\nspeed against the rules before #16 (tests/signals_reference.py), same run, "
        "best of 5 interleaved rounds:"
    )
    print(f"  {'messages':<44}{'before/s':>10}{'now/s':>10}{'speed-up':>10}")
    scale = 10 if args.quick else 1
    for label, part, target in (
        (f"labelled set ({len(rows)}, ~65 chars)", rows, 20_000 // scale),
        (f"ten labelled joined ({len(joined)}, ~700 chars)", joined, 4_000 // scale),
        (f"mail_ingest bodies ({len(bodies)}, ~7 KB)", bodies, 1_200 // scale),
    ):
        old, new = speed(part, target)
        print(f"  {label:<44}{old:>10,.0f}{new:>10,.0f}{new / old:>9.1f}x")
    print(
        f"precision/recall/due tables identical to before: {'yes' if same else 'NO'}; "
        f"same signals on every message: {'yes' if same_found else 'NO'}"
    )

    failed = [k for k, s in stats.items() if ratio(s["tp"], s["tp"] + s["fp"]) < TARGET_PRECISION]
    print(f"target precision >= {TARGET_PRECISION} per kind: "
          f"{'FAILED for ' + ', '.join(failed) if failed else 'met'}")  # fmt: skip
    return 1 if failed or not same or not same_found else 0


if __name__ == "__main__":
    sys.exit(main())
