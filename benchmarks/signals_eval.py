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

EVAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "signals_eval.jsonl"
KINDS = ("request", "commitment", "risk")
TARGET_PRECISION = 0.9
Finder = Callable[[dict], list[tuple[str, str | None]]]


def load() -> list[dict]:
    return [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]


def rules(row: dict) -> list[tuple[str, str | None]]:
    found = find_signals(
        row["text"],
        occurred_at=datetime.fromisoformat(row["occurred_at"]),
        direction=row["direction"],
        subject=row.get("subject"),
        is_auto=row.get("is_auto", False),
    )
    return [(s.kind, s.due_at.date().isoformat() if s.due_at else None) for s in found]


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

    failed = [k for k, s in stats.items() if ratio(s["tp"], s["tp"] + s["fp"]) < TARGET_PRECISION]
    print(f"target precision >= {TARGET_PRECISION} per kind: "
          f"{'FAILED for ' + ', '.join(failed) if failed else 'met'}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
