"""The demo's truth, and how a synced database compares with it.

Why: linking mail and meetings to deals, and merging the records several systems keep of
one event, are guesses until they are measured. :func:`oppkit.demo_data.write_demo_files`
knows where everything it writes belongs and says so in ``truth.json`` beside the export
files; ``benchmarks/matching_eval.py`` syncs the files and scores the database with
:func:`score`.

``truth.json`` (format ``oppkit-demo-truth/1``) holds ``seed``, ``today``, ``users`` (the
demo company's people), ``accounts`` and ``opportunities`` (Salesforce ``id``, ``key``,
``name``, ``account_id``, ``stage``, ``created``, ``close_date``), and ``events``: one
per real-world event (an email, one meeting or occurrence of a series, a call, a to-do)::

    {"event": "e0042", "kind": "email", "occurred_at": "2026-01-12T09:14:00.000Z",
     "subject": "Proposal: ...", "opportunity_id": "0068d00000...", "opportunity": "acme-pm",
     "account_id": "0018d00000...", "tags": ["thread", "in Salesforce too"],
     "records": [
       {"source": "mail", "source_id": "1a2b.0042@mail.northwind.example",
        "message_id": "<1a2b.0042@mail.northwind.example>", "mailboxes": ["anna.keller.mbox"]},
       {"source": "salesforce", "source_id": "00T8d00000...", "object": "Task"}]}

``opportunity_id`` is the Salesforce Opportunity Id of the deal the event belongs to, or
null when it belongs to the account only (``account_id``) or to nothing. Each record is
keyed as oppkit keys a synced row (``source``, ``source_id``): a message by its
Message-ID without angle brackets (null for the one message without a Message-ID: it is
found by subject and time), a meeting by its calendar UID, an occurrence of a series by
``UID/<original start, %Y%m%dT%H%M%SZ in UTC>`` (``uid`` and ``start`` are given too), a
Salesforce Task or Event by its Id (``is_deleted`` when the export marks it deleted).
Several records in one event are the same real-world event reported by different
sources. ``tags`` name the awkward cases an event shows (``forward``, ``after close, in
grace``, ``several live deals``...).

Example::

    truth = load_truth(files.root)
    result = score(truth, kit.timeline(), kit.opportunities())
    result.precision, result.recall, result.duplicates
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "TARGETS",
    "TRUTH_FILE",
    "TRUTH_FORMAT",
    "Score",
    "activity_keys",
    "load_truth",
    "record_key",
    "score",
]

TRUTH_FILE = "truth.json"
TRUTH_FORMAT = "oppkit-demo-truth/1"
# What matching and merging must reach on the demo: shares for precision and recall,
# counts for duplicates and merges.
TARGETS = {"precision": 0.98, "recall": 0.90, "duplicates": 0, "merges": 0}
_FALLBACK_SECONDS = 60


def load_truth(path: str | Path) -> dict[str, Any]:
    """The truth file, given it or the folder it is in."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    truth = json.loads(path.read_text(encoding="utf-8"))
    if truth.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: not an {TRUTH_FORMAT} file")
    return truth


def record_key(record: dict[str, Any]) -> str | None:
    """``source:source_id`` as oppkit keys the synced row, or None when it has no id."""
    return f"{record['source']}:{record['source_id']}" if record.get("source_id") else None


def activity_keys(row: Any) -> list[str]:
    """Every ``source:source_id`` an activity stands for.

    A merged activity lists them in ``sources`` (a list of ``"source:source_id"`` strings,
    ``(source, source_id)`` pairs or dicts, or one string of them separated by commas,
    semicolons or whitespace); otherwise it is its own ``source`` and ``source_id``.
    """
    keys: list[str] = []
    sources = row.get("sources") if hasattr(row, "get") else None
    if isinstance(sources, str):
        keys = [k for k in re.split(r"[,;\s]+", sources) if k]
    elif isinstance(sources, dict):
        keys = [f"{sources['source']}:{sources['source_id']}"]
    elif sources is not None and not _is_missing(sources):
        for item in sources:
            if isinstance(item, str):
                keys.append(item)
            elif isinstance(item, dict):
                keys.append(f"{item['source']}:{item['source_id']}")
            else:
                keys.append(f"{item[0]}:{item[1]}")
    keys = [k for k in keys if ":" in k]  # bare source names ("calendar,salesforce") say no id
    if not _is_missing(row.get("source_id")):
        own = f"{row['source']}:{row['source_id']}"
        keys = keys if own in keys else [own, *keys]
    return keys


def _is_missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: not missing
        return False


@dataclass
class Score:
    """A database compared with the truth (see :func:`score`)."""

    activities: int  # activities in the database (not deleted)
    known: int  # of them, those the truth knows
    linked: int  # known activities linked to a deal
    linked_right: int  # ... to a deal their event belongs to
    should_link: int  # known activities whose event belongs to a deal
    found: int  # ... linked to that deal
    events: int  # real-world events in the truth
    duplicates: list[str]  # events that show as more than one activity
    merges: list[int]  # activities holding records of different events
    missing: list[str]  # events no activity shows
    unknown: list[int]  # activities the truth does not know
    wrong: pd.DataFrame  # activities linked to a deal they do not belong to
    missed: pd.DataFrame  # activities not linked to the deal they belong to
    by_tag: pd.DataFrame = field(repr=False)

    @property
    def precision(self) -> float:
        return self.linked_right / self.linked if self.linked else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.should_link if self.should_link else 1.0

    def figures(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall,
                "duplicates": len(self.duplicates), "merges": len(self.merges)}  # fmt: skip

    def failures(self, targets: dict[str, float] | None = None) -> list[str]:
        """The figures that miss their target (shares at least, counts at most)."""
        targets = TARGETS if targets is None else targets
        figures, failed = self.figures(), []
        for name, target in targets.items():
            ok = (
                figures[name] >= target
                if name in ("precision", "recall")
                else (figures[name] <= target)
            )
            if not ok:
                failed.append(name)
        return failed


def score(truth: dict[str, Any], timeline: pd.DataFrame, opportunities: pd.DataFrame) -> Score:
    """Compare activities (a ``kit.timeline()`` frame) with the truth.

    ``opportunities`` maps the timeline's ``opportunity_id`` to the Salesforce Opportunity
    Id (its ``id`` and ``source_id`` columns, as ``kit.opportunities()`` has them). An
    activity belongs to the deals of the events its records belong to; precision is the
    share of linked activities linked to one of those, recall the share of activities
    whose event belongs to a deal that are linked to it. An event is duplicated when its
    records show as more than one activity; an activity merges events when its records
    belong to different events.
    """
    events = truth["events"]
    names = {o["id"]: o["name"] for o in truth.get("opportunities", [])}
    sf_id = dict(zip(opportunities["id"].astype(int), opportunities["source_id"], strict=True))
    by_key: dict[str, int] = {}
    unkeyed: list[tuple[int, dict[str, Any]]] = []
    for n, event in enumerate(events):
        for record in event["records"]:
            key = record_key(record)
            if key is None:
                unkeyed.append((n, record))
            else:
                by_key[key] = n

    rows = timeline.reset_index(drop=True)
    row_events: list[set[int]] = []
    row_keys: list[list[str]] = []
    for _, row in rows.iterrows():
        keys = activity_keys(row)
        row_keys.append(keys)
        row_events.append({by_key[k] for k in keys if k in by_key})
    for n, record in unkeyed:  # found by source, subject and time among the unknown rows
        event, when = events[n], pd.Timestamp(events[n]["occurred_at"])
        for i, row in rows.iterrows():
            if row_events[i] or row.get("source") != record["source"]:
                continue
            if row.get("subject") != event["subject"]:
                continue
            if abs((pd.Timestamp(row["occurred_at"]) - when).total_seconds()) <= _FALLBACK_SECONDS:
                row_events[i].add(n)

    shown: dict[int, set[int]] = defaultdict(set)
    wrong, missed, stats = [], [], []
    linked = linked_right = should_link = found = 0
    for i, row in rows.iterrows():
        mine = row_events[i]
        for n in mine:
            shown[n].add(int(row["id"]))
        if not mine:
            continue
        opp = row.get("opportunity_id")
        deal = None if _is_missing(opp) else sf_id.get(int(opp), f"local:{int(opp)}")
        deals = {events[n]["opportunity_id"] for n in mine}
        right = deal is not None and deal in deals
        belongs = any(d is not None for d in deals)
        linked += deal is not None
        linked_right += right
        should_link += belongs
        found += belongs and right
        tags = sorted({t for n in mine for t in events[n]["tags"]})
        line = {
            "activity": int(row["id"]),
            "occurred_at": row.get("occurred_at"),
            "kind": row.get("kind"),
            "source": ", ".join(row_keys[i]) if len(row_keys[i]) > 1 else row.get("source"),
            "subject": row.get("subject"),
            "linked": None if deal is None else names.get(deal, row.get("opportunity") or deal),
            "truth": " / ".join(sorted(_deal_name(events[n], names) for n in mine)),
            "tags": ", ".join(tags),
        }
        if deal is not None and not right:
            wrong.append(line)
        if belongs and not right:
            missed.append(line)
        stats.append((tags, deal is not None, right, belongs))

    duplicates = [events[n]["event"] for n in sorted(shown) if len(shown[n]) > 1]
    merges = [int(rows.loc[i, "id"]) for i, mine in enumerate(row_events) if len(mine) > 1]
    return Score(
        activities=len(rows),
        known=sum(1 for mine in row_events if mine),
        linked=linked,
        linked_right=linked_right,
        should_link=should_link,
        found=found,
        events=len(events),
        duplicates=duplicates,
        merges=merges,
        missing=[e["event"] for n, e in enumerate(events) if n not in shown],
        unknown=[int(rows.loc[i, "id"]) for i, mine in enumerate(row_events) if not mine],
        wrong=pd.DataFrame(wrong, columns=_LINE_COLUMNS),
        missed=pd.DataFrame(missed, columns=_LINE_COLUMNS),
        by_tag=_by_tag(stats, events, shown),
    )


_LINE_COLUMNS = ["activity", "occurred_at", "kind", "source", "subject", "linked", "truth", "tags"]


def _deal_name(event: dict[str, Any], names: dict[str, str]) -> str:
    if event["opportunity_id"]:
        return names.get(event["opportunity_id"], event["opportunity_id"])
    return "account only" if event.get("account_id") else "no deal"


def _by_tag(
    stats: list[tuple[list[str], bool, bool, bool]],
    events: list[dict[str, Any]],
    shown: dict[int, set[int]],
) -> pd.DataFrame:
    """Per tag: activities, linked, linked right, belonging to a deal, found; duplicates."""
    table: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for tags, is_linked, right, belongs in stats:
        for tag in tags:
            cells = table[tag]
            cells[0] += 1
            cells[1] += is_linked
            cells[2] += right
            cells[3] += belongs
            cells[4] += belongs and right
    for n, ids in shown.items():
        for tag in events[n]["tags"]:
            table[tag][5] += len(ids) > 1
    columns = ["activities", "linked", "linked_right", "belong_to_deal", "found", "duplicated"]
    frame = pd.DataFrame.from_dict(table, orient="index", columns=columns).sort_index()
    frame.index.name = "tag"
    return frame
