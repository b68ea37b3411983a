"""Twins: the same real-world meeting or email reported by Salesforce and by a calendar
or a mailbox, found so that the writer keeps it as one activity.

Who looks for whom (the partner of a source):

* a Salesforce Event (kind ``meeting``) and a calendar meeting (ics, CalDAV, Exchange);
* a Salesforce Task logged from an email (``TaskSubtype`` Email: kind ``email``) and the
  message in a mailbox.

A record looks only when it is new (its own (source, source_id) is not yet known) and
only for activities that its partner source reports and its own source does not.

When two are twins (precision first: a miss leaves two rows, as before; a wrong match
would hide a meeting):

* meetings: the same start, and either the same iCalendar UID (a calendar's thread_id;
  Salesforce's ``ICalUId`` where the org has it) or a similar subject and at least one
  person who took part in both. Two different UIDs are never twins.
* emails: within :data:`EMAIL_SLACK` of each other, a similar subject ("Email: ",
  "Re: " and the like ignored) and the message's sender among the people of the
  Salesforce Task (its owner or its contact).

Set-wise per batch: one query for the candidates of all new meetings (start ``IN``) or
emails (time ranges ``OR``-ed), one for the sources and one for the people of those
candidates; never a query per record.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select

from ..db.schema import activities, activity_people, activity_sources

SALESFORCE = "salesforce"
# a logged email vs its Date header: logging may lag (an Outlook add-in, Einstein Activity
# Capture); within it, the surest and then the closest pair wins
EMAIL_SLACK = timedelta(hours=2)
CHUNK = 400  # values (or ranges) per query
# Salesforce's kind -> the source that reports the same thing
_CRM_PARTNER = {"meeting": "calendar", "email": "mail"}
# source -> the sources whose records it may share an activity with
PARTNERS = {
    SALESFORCE: tuple(_CRM_PARTNER.values()),
    **{s: (SALESFORCE,) for s in _CRM_PARTNER.values()},
}
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|fw|fwd|wg|tr|email|e-mail|mail|meeting|event|invitation|updated invitation)"
    r"\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")


def partner_of(source: str, kind: str) -> str | None:
    """The source whose activities a record of ``source`` and ``kind`` may be a twin of."""
    if source == SALESFORCE:
        return _CRM_PARTNER.get(kind)
    if _CRM_PARTNER.get(kind) == source:
        return SALESFORCE
    return None


def subject_words(subject: str | None) -> tuple[str, ...]:
    """The words of a subject, without reply/forward/"Email:" prefixes, case-folded."""
    return tuple(_WORD.findall(_PREFIX.sub("", subject or "").casefold()))


def similar_subjects(a: str | None, b: str | None) -> bool:
    """The same subject, give or take prefixes, punctuation and a few words.

    Equal words; or one subject's words (two or more) all in the other's (Salesforce
    cuts subjects at 255 characters; a calendar adds the account); or at least 60 %
    of the words shared.
    """
    wa, wb = subject_words(a), subject_words(b)
    if not wa or not wb:
        return False
    if wa == wb:
        return True
    sa, sb = set(wa), set(wb)
    small, big = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
    if len(small) >= 2 and small <= big:
        return True
    return len(sa & sb) / len(sa | sb) >= 0.6


@dataclass(slots=True)
class Seeker:
    """A new meeting or email of one batch, as the writer resolved it."""

    source: str
    source_id: str
    kind: str
    occurred_at: datetime
    subject: str | None
    uid: str | None  # iCalendar UID (meetings)
    people: frozenset[int]  # everyone who took part, resolved to people ids
    sender: int | None  # the sender of a message (mail)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)


@dataclass(slots=True)
class _Candidate:
    id: int
    occurred_at: datetime
    subject: str | None
    uid: str | None
    sender: int | None
    people: set[int]


def find_twins(conn: Connection, seekers: Sequence[Seeker]) -> dict[tuple[str, str], int]:
    """(source, source_id) of a seeker -> the id of the activity it is a twin of.

    Each activity takes at most one seeker of a batch: the best by UID, then an equal
    subject, then the most people in common, then the nearest time.
    """
    found: dict[tuple[str, str], int] = {}
    groups: dict[tuple[str, str, str], list[Seeker]] = {}
    for s in seekers:
        partner = partner_of(s.source, s.kind)
        if partner:
            groups.setdefault((s.kind, s.source, partner), []).append(s)
    for (kind, own, partner), group in groups.items():
        candidates = _candidates(conn, kind, own, partner, group)
        if candidates:
            found.update(_pair(kind, own, group, candidates))
    return found


def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _windows(times: Iterable[datetime], slack: timedelta) -> list[tuple[datetime, datetime]]:
    """Time ranges around ``times``, overlapping ones merged."""
    merged: list[list[datetime]] = []
    for t in sorted(times):
        if merged and t - slack <= merged[-1][1]:
            merged[-1][1] = t + slack
        else:
            merged.append([t - slack, t + slack])
    return [(lo, hi) for lo, hi in merged]


def _candidates(
    conn: Connection, kind: str, own: str, partner: str, group: list[Seeker]
) -> dict[int, _Candidate]:
    """Activities of ``kind`` that ``partner`` reports (and ``own`` does not) near the
    seekers' times, with the people who took part."""
    a, s = activities, activity_sources
    # EXISTS, not a join: the time index drives, each hit probes its sources (a join
    # may start from every activity of the partner source instead)
    reported = select(s.c.activity_id).where(s.c.activity_id == a.c.id, s.c.source == partner)
    base = select(a.c.id, a.c.occurred_at, a.c.subject, a.c.thread_id, a.c.sender_id).where(
        a.c.kind == kind, reported.exists()
    )
    if kind == "meeting":
        conditions = [
            a.c.occurred_at.in_(part) for part in _chunks(sorted({x.occurred_at for x in group}))
        ]
    else:
        windows = _windows((x.occurred_at for x in group), EMAIL_SLACK)
        conditions = [
            or_(*(a.c.occurred_at.between(lo, hi) for lo, hi in part))
            for part in _chunks(windows, 100)
        ]
    found: dict[int, _Candidate] = {}
    for condition in conditions:
        for row in conn.execute(base.where(condition)):
            found[row.id] = _Candidate(row.id, row.occurred_at, row.subject, row.thread_id,
                                       row.sender_id, set())  # fmt: skip
    if not found:
        return found
    ids = list(found)
    for part in _chunks(ids):
        taken = select(s.c.activity_id).where(s.c.activity_id.in_(part), s.c.source == own)
        for (activity_id,) in conn.execute(taken):
            found.pop(activity_id, None)  # already has its own record of this source
    for part in _chunks(list(found)):
        people = select(activity_people.c.activity_id, activity_people.c.person_id).where(
            activity_people.c.activity_id.in_(part)
        )
        for activity_id, person_id in conn.execute(people):
            found[activity_id].people.add(person_id)
    return found


def _pair(
    kind: str, own: str, group: list[Seeker], candidates: dict[int, _Candidate]
) -> dict[tuple[str, str], int]:
    ordered = sorted(candidates.values(), key=lambda c: c.occurred_at)
    times = [c.occurred_at for c in ordered]
    slack = timedelta(0) if kind == "meeting" else EMAIL_SLACK
    options = []  # (score, seeker position, candidate id)
    for position, seeker in enumerate(group):
        lo = bisect_left(times, seeker.occurred_at - slack)
        hi = bisect_right(times, seeker.occurred_at + slack)
        for c in ordered[lo:hi]:
            score = _score(kind, own, seeker, c)
            if score is not None:
                options.append((score, position, c.id))
    options.sort(key=lambda o: o[0], reverse=True)
    taken_seekers: set[int] = set()
    taken: set[int] = set()
    pairs = {}
    for _, position, cid in options:
        if position in taken_seekers or cid in taken:
            continue
        taken_seekers.add(position)
        taken.add(cid)
        pairs[group[position].key] = cid
    return pairs


def _score(kind: str, own: str, seeker: Seeker, c: _Candidate) -> tuple | None:
    """How sure (higher is surer) that ``seeker`` and ``c`` are twins; None: they are not."""
    shared = len(seeker.people & c.people)
    gap = -abs((c.occurred_at - seeker.occurred_at).total_seconds())
    same_words = subject_words(seeker.subject) == subject_words(c.subject)
    if kind == "meeting":
        if seeker.uid and c.uid:
            if seeker.uid != c.uid:
                return None
            return (1, same_words, shared, gap)
        if shared and similar_subjects(seeker.subject, c.subject):
            return (0, same_words, shared, gap)
        return None
    # email: the message's sender is the Task's owner or contact
    if own == SALESFORCE:
        sender_ok = c.sender is not None and c.sender in seeker.people
    else:
        sender_ok = seeker.sender is not None and seeker.sender in c.people
    if sender_ok and similar_subjects(seeker.subject, c.subject):
        return (0, same_words, shared, gap)
    return None


__all__ = [
    "EMAIL_SLACK",
    "PARTNERS",
    "Seeker",
    "find_twins",
    "partner_of",
    "similar_subjects",
    "subject_words",
]
