"""Signal rules: the text rules that find requests, commitments and deal risks in mail.

Pure functions, no database: :mod:`oppkit.sync.alert_writer` stores what they find as
alerts while syncing.

A pure function over the newest part of one email or meeting note. It tries to be
precise rather than complete, because a wrong alert costs trust. Each rule is a compiled
regex plus guards. The guards reject negations ("we don't need ..."), hypotheticals
("if the project were postponed ..."), questions about risks, and risks that are already
resolved ("the freeze has been lifted").

* ``request``: something a customer asks *us* to do or deliver (inbound only);
* ``commitment``: something *we* promise to a customer (outbound only);
* ``risk``: a threat to the deal (inbound and internal notes). A question such as
  "Is the project postponed?" is not a risk: it is not a statement, and precision
  comes first.

Due dates are resolved against the UTC date of ``occurred_at``. A date without a time
gets 17:00 UTC (close of business), so "today", "EOD" and "by Friday" all mean
17:00 UTC on that day. "by Friday" is the next Friday on or after that date; "next
Tuesday" is the Tuesday of next week (ISO weeks, Monday first); "next week" and "end of
next week" are the Friday of next week; "this week"/"end of week" are this week's Friday;
"end of (the) month"/"end of April" are the last day of the month; "in two weeks" is
+14 days; "by the 20th" is the next 20th; "12 March"/"March 12" are the next such day.
Numeric dates are read only when they are unambiguous (15/03, 03/15, 2026-03-12); "12/03"
gives no date. "until <date>" after "extend"/"valid" is a period, not a deadline. Risks
carry no due date.

>>> from datetime import datetime, UTC
>>> wed = datetime(2026, 3, 4, 10, tzinfo=UTC)
>>> [s] = find_signals("I'll send the revised contract by Friday.", occurred_at=wed,
...                    direction="outbound")
>>> s.kind, s.rule, s.due_at.isoformat()
('commitment', 'commitment.i_will', '2026-03-06T17:00:00+00:00')
"""

from __future__ import annotations

import re
from bisect import bisect_right
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE

__all__ = ["Signal", "find_signals", "resolve_due"]

DUE_TIME = time(17, 0, tzinfo=UTC)
MAX_TEXT = 300
# Bounded work and a bounded number of alerts per message, whatever it holds: the rules
# read its first MAX_INPUT characters (the newest part of an email is far shorter) and
# give at most MAX_SIGNALS signals.
MAX_INPUT = 20_000
MAX_SIGNALS = 10
KINDS_BY_DIRECTION = {
    "inbound": ("request", "risk"),
    "outbound": ("commitment",),
    "internal": ("risk",),
}


@dataclass(frozen=True)
class Signal:
    kind: str  # "request" (asked of us), "commitment" (we promised), "risk"
    text: str  # the triggering sentence, plain text, <= 300 characters
    rule: str  # id of the rule that fired, e.g. "request.could_you"
    due_at: datetime | None  # aware UTC, 17:00 on the due day; None without a date


_new = object.__new__


def _signal(kind: str, text: str, rule: str, due_at: datetime | None) -> Signal:
    """``Signal(kind, text, rule, due_at)``: the same object, without the frozen
    dataclass's ``__init__``, which sets each field through ``object.__setattr__`` (as
    much time as the rest of a short message's signal takes)."""
    signal = _new(Signal)
    signal.__dict__.update(kind=kind, text=text, rule=rule, due_at=due_at)
    return signal


# --------------------------------------------------------------------------- dates
WEEKDAYS = {"mon": MO, "tue": TU, "wed": WE, "thu": TH, "fri": FR, "sat": SA, "sun": SU}
WEEKDAY_NUMBERS = {name: weekday.weekday for name, weekday in WEEKDAYS.items()}  # Monday 0
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "few": 3, "couple of": 2}
_WD = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\b"
_MON = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
# Every date phrase starts at a word boundary with one of these characters: the leading
# assertion lets the search skip every other position at once (no new match, no lost one).
DATE_RE = re.compile(
    rf"""\b(?=[\dbcdefijlmnostuw])(?P<prep>\b(?:by|until|till|before|no\ later\ than|latest)\s+(?:the\s+)?)?(?:
      (?P<iso>\b\d{{4}}-\d{{2}}-\d{{2}}\b)
    | (?P<num>\b\d{{1,2}})[/.](?P<num2>\d{{1,2}})\b(?:[/.]\d{{2,4}}\b)?
    | (?P<dm>\b\d{{1,2}}){_ORD}\s+(?:of\s+)?(?P<dm_mon>{_MON})
    | (?P<md_mon>\b{_MON})\s+(?P<md>\d{{1,2}}){_ORD}\b
    | \bend\s+of\s+(?:the\s+)?(?P<eom_mon>{_MON})
    | \b(?:end\s+of\s+(?:the\s+|this\s+)?month|eom)\b(?P<eom>)
    | \bend\s+of\s+next\s+month\b(?P<eonm>)
    | \b(?:end\s+of\s+next\s+week|next\s+week)\b(?P<nextweek>)
    | \b(?:end\s+of\s+(?:the\s+|this\s+)?week|this\s+week|eow)\b(?P<thisweek>)
    | \bnext\s+(?P<next_wd>{_WD}) | \b(?P<wd_next>{_WD})\s+next\s+week\b
    | \b(?:this\s+)?(?P<wd>{_WD})
    | \b(?P<tomorrow>tomorrow)\b
    | \b(?P<today>(?:later\s+)?today(?!['’]s)|eod|end\s+of\s+(?:the\s+)?day|cob|tonight
        |close\s+of\s+business|this\s+(?:afternoon|evening))\b
    | \b(?:in|within)\s+(?P<n>\d+|a|one|two|three|four|few|couple\ of)\s+(?P<unit>day|week)s?\b
    | \bthe\s+(?P<nth>\d{{1,2}})(?:st|nd|rd|th)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
PAST_REF = re.compile(r"\b(?:from|since|last|of)\s+$", re.IGNORECASE)
PAST_WORD = re.compile(r"\b(?:from|since|last|of)\Z", re.IGNORECASE)
# The literal words one of the date phrases needs: a sentence without any has no date.
DATE_HINT = re.compile(
    r"\d|\b(?:by|until|till|before|no|latest|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
    r"|end|eom|eow|next|this|mon|tue|wed|thu|fri|sat|sun|tomorrow|later|today|eod|cob|tonight"
    r"|close|in|within|the)",
    re.IGNORECASE,
)
PERIOD_RE = re.compile(r"\b(?:extend\w*|extension|prolong\w*|valid)\b", re.IGNORECASE)
# The only characters that IGNORECASE matches to an ASCII letter but str.lower() does not
# turn into it (or turns into two characters). A text without them may be lower-cased and
# searched with the same patterns compiled without IGNORECASE (their literals are lower
# case): the same matches at the same positions, in half the time.
UNFOLDED = ("İ", "ı", "ſ")
ASCII_FOLD = str.maketrans({"İ": "i", "ı": "i", "ſ": "s", "K": "k"})
DATE_LOWER = re.compile(DATE_RE.pattern, re.VERBOSE)
DATE_HINT_LOWER = re.compile(DATE_HINT.pattern)
PERIOD_LOWER = re.compile(PERIOD_RE.pattern)


# Where in a lower-cased sentence a date phrase can start: the first words of each of
# DATE_RE's alternatives, as far as they are literal ("this" only before "week", a weekday
# or "afternoon"; a number only before "-", "/" or ".", or a month; "in" only before a
# number...), and its prepositions. Every phrase DATE_RE finds starts so; the look-ahead
# lets the search pass over every other word at once, so DATE_FAST finds exactly DATE_RE's
# matches in a fraction of the time. It is a trie on the first letter (each alternative
# starts with its own literal, which the regex engine checks before entering it).
_WEEKDAY = "mon|tue|wed|thu|fri|sat|sun"
_MONTH = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_NUMBER = r"\d|a|one|two|three|four|few|couple"
DATE_GUARD = rf"""\d(?:\d\d\d-|\d?(?:[/.]\d|(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTH})))
    |b(?:y|efore)\s
    |until\s
    |t(?:ill\s|his\s+(?:week|afternoon|evening|{_WEEKDAY})|he\s+\d|ue|hu|o(?:morrow|day|night))
    |late(?:r\s+today|st\s)
    |n(?:o\s+later\s|ext\s+(?:week|{_WEEKDAY})|ov[a-z]*\.?\s+\d)
    |j(?:an|u[nl])[a-z]*\.?\s+\d
    |f(?:eb[a-z]*\.?\s+\d|ri)
    |m(?:a[ry][a-z]*\.?\s+\d|on)
    |a(?:pr|ug)[a-z]*\.?\s+\d
    |s(?:ep[a-z]*\.?\s+\d|at|un)
    |oct[a-z]*\.?\s+\d
    |dec[a-z]*\.?\s+\d
    |e(?:nd\s+of\s|o[mwd]\b)
    |in\s+(?:{_NUMBER})
    |w(?:ithin\s+(?:{_NUMBER})|ed)
    |c(?:lose\s+of\s+business|ob)"""
DATE_FAST = re.compile(rf"\b(?={DATE_GUARD}){DATE_LOWER.pattern}", re.VERBOSE)
# The first place DATE_FAST can match, found in the sentence after one space: a non-word
# character stands for the word boundary, so the search jumps from one non-word character
# to the next (a pattern starting with ``\b`` is tried at every position instead). Its
# start in the padded sentence is the start of the word after it in the sentence itself.
DATE_START = re.compile(rf"\W(?={DATE_GUARD})", re.VERBOSE)


def _folded(name: str) -> str:
    """``name`` lower-cased as IGNORECASE matched it: "FRıDAY" is "friday" (the old
    ``.lower()`` raised KeyError on such a name)."""
    return name.lower() if name.isascii() else name.translate(ASCII_FOLD).lower()


def _month(name: str) -> int:
    return MONTHS.index(_folded(name)[:3]) + 1


def _upcoming(today: date, month: int, day: int) -> date | None:
    """``month``/``day`` this year, or next year if that is within ~6 months (a date just
    gone by is a past reference, not a deadline a year ahead)."""
    try:
        found = date(today.year, month, day)
        if found < today:
            found = date(today.year + 1, month, day)
    except ValueError:
        return None
    return found if found - today <= timedelta(days=183) else None


# Plain date arithmetic for what relativedelta did (the same days, a tenth of the time).
def _next_monday(today: date) -> date:
    """The Monday after ``today`` (a week on, if today is a Monday)."""
    return today + timedelta(days=7 - today.weekday())


def _on_or_after(day: date, weekday: int) -> date:
    """The first ``weekday`` (0 is Monday) on or after ``day``."""
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _month_end(year: int, month: int) -> date:
    if month > 12:
        year, month = year + 1, month - 12
    return date(year, month, monthrange(year, month)[1])


def _resolve(m: re.Match[str], today: date) -> date | None:
    """The day a date match names. Each alternative of DATE_RE ends with its own group, so
    ``m.lastgroup`` tells which one matched (one look-up instead of testing all twenty)."""
    last = m.lastgroup
    if last == "wd":  # the most frequent ("by Friday")
        return _on_or_after(today, WEEKDAY_NUMBERS[_folded(m["wd"])[:3]])
    if last == "today":
        return today
    if last == "tomorrow":
        return today + timedelta(days=1)
    if last == "nextweek":
        return _on_or_after(_next_monday(today), FR.weekday)
    if last == "thisweek":
        return _on_or_after(today, FR.weekday)
    if last == "next_wd" or last == "wd_next":
        return _on_or_after(_next_monday(today), WEEKDAY_NUMBERS[_folded(m[last])[:3]])
    if last == "iso":
        try:
            return date.fromisoformat(m["iso"])
        except ValueError:  # 2026-02-30: no date (the old rules raised)
            return None
    if last == "num2":
        a, b = int(m["num"]), int(m["num2"])
        if a == b or (a > 12 and b <= 12):  # 15/03: day first
            return _upcoming(today, b, a) if b else None
        return _upcoming(today, a, b) if b > 12 and a else None  # 03/15; 12/03 is ambiguous
    if last == "dm_mon":
        return _upcoming(today, _month(m["dm_mon"]), int(m["dm"]))
    if last == "md":
        return _upcoming(today, _month(m["md_mon"]), int(m["md"]))
    if last == "eom_mon":
        first = _upcoming(today, _month(m["eom_mon"]), 1)
        return _month_end(first.year, first.month) if first else None
    if last == "eom":
        return _month_end(today.year, today.month)
    if last == "eonm":
        return _month_end(today.year, today.month + 1)
    if last == "unit":
        n = int(m["n"]) if m["n"].isdigit() else NUMBERS[_folded(m["n"])]
        return today + timedelta(days=n * (7 if m["unit"].lower() == "week" else 1))
    if last == "nth":
        day = int(m["nth"])
        for months in (0, 1, 2):  # this month or the next two that have such a day
            year, month = divmod(today.year * 12 + today.month - 1 + months, 12)
            if 1 <= day <= monthrange(year, month + 1)[1]:
                found = date(year, month + 1, day)
                if found >= today:
                    return found
    return None


def _past_ref(text: str, end: int) -> bool:
    """``PAST_REF.search(text[:end])`` ("since", "from" ... right before), looking only at
    the end: the whitespace run before ``end`` and the word before it."""
    if not end or not text[end - 1].isspace():
        return False  # no whitespace before the date phrase (most: "by Friday")
    head = text[:end].rstrip()
    tail = head[-2:]
    if tail.isascii() and tail.lower() not in ("om", "ce", "st", "of"):
        return False  # no such word before the whitespace
    return PAST_WORD.search(head, max(0, len(head) - 5)) is not None


def resolve_due(sentence: str, occurred_at: datetime, start: int = 0) -> datetime | None:
    """The first date phrase after ``start`` (else one before it that starts with
    "by"/"until"/...), as 17:00 UTC on that day; None if there is none."""
    odd = not sentence.isascii() and any(ch in sentence for ch in UNFOLDED)
    return _due(sentence if odd else sentence.lower(), odd, occurred_at, start)


def _due(text: str, odd: bool, occurred_at: datetime, start: int) -> datetime | None:
    """:func:`resolve_due` of a sentence already lower-cased (``odd``: kept as it was,
    because it holds a character of UNFOLDED)."""
    if odd:
        dates = list(DATE_RE.finditer(text)) if DATE_HINT.search(text) else []
    elif (first := DATE_START.search(" " + text)) is None:  # most sentences: no date
        return None
    else:  # the same patterns without IGNORECASE over the lower-cased sentence: faster
        dates = list(DATE_FAST.finditer(text, first.start()))  # none starts before it
    if not dates:  # most sentences: no date phrase at all
        return None
    if len(dates) > 1:  # those from ``start`` on first, then those before it, each in order
        dates = [m for m in dates if m.start() >= start] + [m for m in dates if m.start() < start]
    period, today = None, None  # worked out when first needed
    for m in dates:
        prep = m["prep"]
        if m.start() < start and not prep:
            continue
        if prep and prep.lower().startswith(("until", "till")):
            if period is None:
                period = (PERIOD_RE if odd else PERIOD_LOWER).search(text) is not None
            if period:  # "extend until <date>": a period, not a deadline
                continue
        if _past_ref(text, m.start()):
            continue
        if today is None:  # a naive moment is UTC already: its date, without a copy
            today = (
                occurred_at.date() if occurred_at.tzinfo is None else _as_utc(occurred_at).date()
            )
        found = _resolve(m, today)
        if found is not None:
            return datetime.combine(found, DUE_TIME)
    return None


# --------------------------------------------------------------------------- rules
# The guards' definitions; they are searched in the padded forms of GUARDS below
# (tests/test_signals_speed.py checks that both find something in the same texts).
NEGATION = re.compile(
    r"\b(?:not|no|never|nothing|none|without|cannot|unable)\b|n['’]t\b", re.IGNORECASE
)
HYPOTHETICAL = re.compile(
    r"\b(?:if|unless|whether|in\s+case|suppose|assuming|were\s+to|should\s+the)\b", re.IGNORECASE
)
RESOLVED = re.compile(
    r"\b(?:lifted|last\s+year['’]?s?|behind\s+us)\b"
    r"|\b(?:reorg\w*|restructuring)\s+(?:is|was)\s+(?:now\s+)?(?:over|finished|done|complete)",
    re.IGNORECASE,
)
# The guards as they are searched: in the sentence after one space, each alternative after
# a non-word character instead of ``\b`` (``n't`` after its apostrophe). The search then
# jumps from one non-word character to the next (a pattern starting with ``\b`` is tried
# at every position), and finds something exactly where the plain form above does; only
# whether it does matters. ``GUARDS[odd]``: (negation, hypothetical, resolved, either),
# for lower-cased text (False) or with IGNORECASE (True).
_NEGATION = r"(?:not|no|never|nothing|none|without|cannot|unable)\b|(?<=n['’])t\b"
_HYPOTHETICAL = r"(?:if|unless|whether|in\s+case|suppose|assuming|were\s+to|should\s+the)\b"
_RESOLVED = (
    r"(?:lifted|last\s+year['’]?s?|behind\s+us)\b"
    r"|(?:reorg\w*|restructuring)\s+(?:is|was)\s+(?:now\s+)?(?:over|finished|done|complete)"
)
GUARDS = {
    odd: tuple(
        re.compile(rf"\W(?:{words})", re.IGNORECASE if odd else 0)
        for words in (_NEGATION, _HYPOTHETICAL, _RESOLVED, f"{_NEGATION}|{_HYPOTHETICAL}")
    )
    for odd in (False, True)
}
CLAUSE_START = re.compile(r".*(?:[,;:(–—]|\s-\s|\bbut\b|\band\b|\bso\b)", re.I | re.DOTALL)

REQ_VERBS = (
    r"(?:send|share|provide|forward|re-?send|prepare|update|revise|confirm|extend|give"
    r"|get\s+(?:us|me|the|it|this|that|them|a|an|our|your)|arrange|walk|submit|deliver|countersign|sign|review|comment|advise|check|clarify|fill"
    r"|complete|e-?mail|draft|put|include|quote|explain|set\s+up|schedule|organi[sz]e|add"
    r"|adjust|amend|correct|return|reply|respond|look\s+into|follow\s+up|introduce|issue"
    r"|book|upload|approve|let\s+(?:us|me)\s+know|tell\s+(?:us|me)|remind)\b"
)
COMMIT_VERBS = (
    r"(?:send|share|get\s+back|come\s+back|revert|follow\s+up|circle\s+back|prepare|provide"
    r"|forward|draft|review|call|loop\s+in|set\s+up|schedule|arrange|ship|deliver|update"
    r"|check|confirm|fill|complete|circulate|put\s+together|make\s+sure"
    r"|get\s+(?:you|it|the|this|that|them|these|those|our|my|a|an|back|started)|reach\s+out"
    r"|e-?mail|submit|issue|book|organi[sz]e|finali[sz]e|re-?send|correct|fix|look\s+into"
    r"|find\s+out|investigate|have\s+[\w\s-]{1,40}?\s+ready|introduce|extend|sort\s+out"
    r"|work\s+on|hand\s+over|walk|refund|let\s+you\s+know"
    r"|be\s+(?:send|shar|prepar|ship|deliver|circulat)ing)\b"
)
FUTURE = (
    r"\b(?:I|we)\s*(?:['’]ll|\s+will|\s+shall)"
    r"|\b(?:I['’]m|I\s+am|we['’]re|we\s+are)\s+going\s+to"
)
ADVERBS = r"(?:\s+(?:also|then|now|definitely|certainly|quickly|personally|gladly|try\s+to))*"
DEAL = (
    r"(?:project|rollout|roll-out|pilot|decision|purchase|deal|initiative|approval|signature"
    r"|signing|contract|order|evaluation|implementation|go-live|investments?|program(?:me)?"
    r"|migration|budget|opportunity|procurement|purchasing|everything)"
)


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    pattern: re.Pattern[str]
    guard: Callable[[str, re.Match[str]], bool] | None = None  # extra check: True keeps
    negatable: bool = True  # False when the phrase itself is negative ("no longer ...")
    needs_date: bool = False  # fires only together with a due date
    # ``pattern`` for lower-cased text: without IGNORECASE, its one capital ("I") in lower
    # case. The same matches on ``text.lower()`` as ``pattern`` on a text without UNFOLDED.
    lower: re.Pattern[str] | None = None


def _rule(rule_id: str, regex: str, **kw: object) -> Rule:
    lower = re.compile(re.sub(r"(?<!\\)I", "i", regex))
    return Rule(rule_id, rule_id.split(".")[0], re.compile(regex, re.IGNORECASE), lower=lower, **kw)  # type: ignore[arg-type]


PLEASANTRY = re.compile(r"\s+(?:if|when|whether)\s+(?:you|there|anything|any)\b", re.I)
NOT_US = re.compile(
    r"\binternal(?:ly)?\b|\bfrom\s+our\b"
    r"|\bneed\s+(?:the|a|an)\s+(?:weekend|week|day|few|couple|moment|bit)\b",
    re.I,
)


def _not_let_know_if(sentence: str, m: re.Match[str]) -> bool:
    # "let me know if you have questions" is a pleasantry; "let us know the lead time" is not
    if not m.group().lower().endswith("know"):
        return True
    return PLEASANTRY.match(sentence, m.end()) is None


def _asks_us(sentence: str, m: re.Match[str]) -> bool:
    return NOT_US.search(sentence) is None


RULES: tuple[Rule, ...] = (
    _rule("request.could_you", rf"\b(?:could|can|would|will)\s+you\s+(?:please\s+|kindly\s+|also\s+|maybe\s+)*{REQ_VERBS}", guard=_not_let_know_if),
    _rule("request.would_you_mind", r"\bwould\s+you\s+mind\s+\w+ing\b"),
    _rule("request.possible", rf"\b(?:would|will)\s+(?:you(?:\s+guys|\s+all)?\s+be\s+able|it\s+be\s+possible)\s+to\s+(?:please\s+)?{REQ_VERBS}"),
    _rule("request.appreciate", rf"\b(?:I|we)(?:['’]d|\s+would)\s+appreciate\s+(?:it\s+)?if\s+you\s+could\s+{REQ_VERBS}"),
    _rule("request.please", rf"\b(?:please|kindly|pls)\s+(?:could\s+you\s+|be\s+so\s+kind\s+(?:and|as\s+to)\s+)?(?:also\s+)?{REQ_VERBS}", guard=_not_let_know_if),
    _rule("request.imperative", r"^\s*(?:send|share|forward|resend|provide)\s+(?:me|us|over)\b"),
    _rule("request.we_need", r"\b(?:we|I)\s+(?:would\s+|will\s+|still\s+|urgently\s+|['’]d\s+)?(?:need|require)\s+(?:a|an|the|your)\b", guard=_asks_us),
    _rule("request.look_forward", r"\blook(?:ing)?\s+forward\s+to\s+(?:receiving|getting)\s+(?:your|the)\b"),
    _rule("commitment.i_will", rf"(?:{FUTURE}){ADVERBS}\s+{COMMIT_VERBS}"),
    _rule("commitment.will_do", rf"^\s*(?:will|shall)\s+{COMMIT_VERBS}"),
    _rule("commitment.let_me", r"\blet\s+me\s+(?:check|find\s+out|look\s+into|confirm|get\s+back|follow\s+up|ask)\b"),
    _rule("commitment.our_team", rf"\bour\s+(?:[\w-]+\s+){{0,2}}(?:team|department|engineers?|colleagues?|lawyers?|legal|finance|support)\s+will\s+{COMMIT_VERBS}"),
    _rule("commitment.you_will_receive", r"\byou(?:['’]ll|\s+will)\s+(?:receive|get|have)\b(?!\s+to\b)"),
    _rule("commitment.expect_from_me", r"\bexpect\s+(?:[\w-]+\s+){1,5}from\s+(?:me|us)\b"),
    _rule("commitment.can_with_date", rf"\b(?:I|we)\s+can\s+{COMMIT_VERBS}", needs_date=True),
    _rule("commitment.sending", r"\b(?:I['’]m|I\s+am|we['’]re|we\s+are)\s+(?:sending|shipping|sharing)\b", needs_date=True),
    _rule("risk.budget_freeze", r"\b(?:budget|spending|hiring|investment)s?\s+(?:is\s+|are\s+|has\s+been\s+|was\s+)?(?:freeze|frozen)\b|\bfr(?:eeze|oze|ozen)\s+(?:all\s+|the\s+|our\s+)?(?:[\w-]+\s+)?(?:budgets?|spending|investments?|hiring)\b"),
    _rule("risk.postponed", rf"\b(?!order){DEAL}\b[^.;?!]{{0,40}}?\b(?:postponed|delayed|pushed|deferred|slip(?:ped|ping|s)?)\b|\b(?:postpon(?:e|ing)|delay(?:ing)?|defer(?:ring)?|push(?:ing)?\s+back)\s+(?:the\s+|our\s+|this\s+)?(?:[\w-]+\s+)?{DEAL}\b|\bpush(?:ing)?\s+(?:the\s+|our\s+)?{DEAL}\s+(?:back|out|to|until|into)\b|\b(?:postponed|pushed|moved|delayed|deferred)\s+(?:back\s+)?(?:to|until|till|into)\s+(?:next\s+(?:quarter|year|fiscal\s+year)|q[1-4]\b|the\s+(?:second|next)\s+half)"),
    _rule("risk.on_hold", rf"\b{DEAL}s?\b[^.;?!]{{0,40}}?\bon\s+(?:hold|ice)\b|\bput\s+(?!(?:me|you|us|him|her|them)\b)(?:all\s+|the\s+|our\s+)?(?:[\w-]+\s+){{0,3}}on\s+(?:hold|ice)\b"),
    _rule("risk.paused", rf"\b(?:{DEAL}|talks|discussions?|onboarding|spending)\b[^.;?!]{{0,30}}?\bpaused\b|\bpaused\s+(?:all\s+|the\s+|our\s+)?(?:[\w-]+\s+){{0,3}}(?:{DEAL}|onboarding|spending)\b|\bpause\s+(?:the|all|our)\s+(?:[\w-]+\s+)?(?:discussions?|talks|{DEAL})\b"),
    _rule("risk.competitor", r"\b(?:went|go|going|gone|decided\s+to\s+go)\s+with\s+(?:another|a\s+different|a\s+competing|one\s+of\s+your\s+competitors|a\s+competitor)\b|\b(?:chose|chosen|selected|picked|opted\s+for|decided\s+on)\s+(?:a\s+|another\s+|one\s+of\s+your\s+)?(?:competitor|different\s+(?:vendor|provider|supplier|solution))"),
    _rule("risk.deprioritised", r"\bno\s+longer\s+(?:a\s+)?(?:[\w-]+\s+)?(?:priority|interested)\b|\bdeprioriti[sz]ed\b", negatable=False),
    _rule("risk.not_proceeding", r"\b(?:won['’]t|will\s+not|not)\s+(?:be\s+)?(?:moving|move|going)\s+(?:forward|ahead)\b|\bdecided\s+not\s+to\s+(?:proceed|continue|go\s+ahead|move\s+forward)\b", negatable=False),
    _rule("risk.cancelled", rf"\bcancel(?:l?ed|l?ing|s)?\s+(?:the\s+|this\s+|our\s+|the\s+whole\s+)?(?:[\w-]+\s+)?{DEAL}\b|\b{DEAL}\b[^.;?!]{{0,30}}?\b(?:cancell?ed|scrapped|shelved|terminated)\b"),
    _rule("risk.lost_funding", r"\b(?:lost|losing)\s+(?:the\s+|our\s+|its\s+)?(?:funding|budget)\b|\b(?:funding|budget)\s+(?:[\w-]+\s+){0,3}(?:was|has\s+been|were|got|is\s+being)\s+(?:cut|slashed|reduced|withdrawn|pulled)\b"),
    _rule("risk.reorg", r"\b(?:re-?org|reorgani[sz]ation|restructuring(?!\s+(?:the|our|its|this|that)\b))\b"),
    _rule("risk.champion_leaving", r"\b(?:is|are|will\s+be)\s+leaving\s+(?:the\s+company|the\s+firm|us)\b|\bhas\s+left\s+the\s+company\b|\b(?:champion|sponsor)\b[^.;?!]{0,30}?\b(?:left|quit|resigned)\b"),
)  # fmt: skip

# Anchors: for each rule, words of which every match of its pattern contains at least one:
# a whole word ("you"), a word starting so ("postpon*"), or "'ll" after anything. They come
# from reading each pattern: "request.could_you" cannot match without the word "you",
# "request.imperative" not without "me", "us" or "over" after its verb. One search for all
# anchors of a direction over the whole message tells which rules can fire in which
# sentence, so a sentence without an anchor costs nothing and a rule runs only where its
# words are. tests/test_signals_speed.py checks that no hit of the full rules is lost
# (the labelled set, the examples, every rule's own matches) and that the results equal
# the old implementation's.
ANCHORS: dict[str, tuple[str, ...]] = {
    "request.could_you": ("you",),
    "request.would_you_mind": ("mind",),
    "request.possible": ("able", "possible"),
    "request.appreciate": ("appreciate",),
    "request.please": ("please", "kindly", "pls"),
    "request.imperative": ("me", "us", "over"),
    "request.we_need": ("need", "require"),
    "request.look_forward": ("forward",),
    "commitment.i_will": ("will", "shall", "going", "'ll", "’ll"),
    "commitment.will_do": ("will", "shall"),
    "commitment.let_me": ("let",),
    "commitment.our_team": ("will",),
    "commitment.you_will_receive": ("you",),
    "commitment.expect_from_me": ("expect",),
    "commitment.can_with_date": ("can",),
    "commitment.sending": ("sending", "shipping", "sharing"),
    "risk.budget_freeze": ("freeze", "frozen", "froze"),
    "risk.postponed": ("postpon*", "delay*", "push*", "defer*", "slip*", "moved"),
    "risk.on_hold": ("hold", "ice"),
    "risk.paused": ("pause", "paused"),
    "risk.competitor": ("another", "different", "competi*"),
    "risk.deprioritised": ("longer", "deprioriti*"),
    "risk.not_proceeding": ("forward", "ahead", "decided"),
    "risk.cancelled": ("cancel*", "scrapped", "shelved", "terminated"),
    "risk.lost_funding": ("lost", "losing", "cut", "slashed", "reduced", "withdrawn", "pulled"),
    "risk.reorg": ("reorg*", "re-org", "restructuring"),
    "risk.champion_leaving": ("leaving", "left", "quit", "resigned"),
}


def _fold_anchors(kinds: tuple[str, ...]) -> dict[tuple[str, bool], int]:
    """``(word, is_prefix) -> rule bitmask`` for ``kinds``; bit ``i`` is ``RULES[i]``.

    Anchors that could match at the same position are folded into the more general one
    (a prefix into a shorter prefix; a whole word into a prefix it starts with), so at any
    position at most one can match and none is shadowed by another.
    """
    masks: dict[tuple[str, bool], int] = {}
    for i, rule in enumerate(RULES):
        if rule.kind in kinds:
            for anchor in ANCHORS[rule.id]:
                key = (anchor.rstrip("*"), anchor.endswith("*"))
                masks[key] = masks.get(key, 0) | 1 << i
    for key in sorted(masks, key=lambda k: (len(k[0]), not k[1])):
        general = [
            k for k in masks if k != key and k[1] and key[0].startswith(k[0])
        ]  # a prefix anchor matching wherever ``key`` does
        if general:
            masks[general[0]] |= masks.pop(key)
    return masks


def _anchor_search(
    kinds: tuple[str, ...],
) -> tuple[re.Pattern[str], re.Pattern[str], dict[str, int]]:
    """Patterns finding the anchors of ``kinds`` (lower-case text; any text with
    IGNORECASE) and each named group's rule bitmask.

    They search the text after one space: each hit is a non-word
    character followed by an anchor, so the search jumps from one non-word character to
    the next, and the word boundary before an anchor is that character. A hit starts
    where its word starts in the text itself (for "'ll", the apostrophe is the non-word
    character). After it, the anchors form a trie of literals, each alternative starting
    with its own letter, which the regex engine checks before entering it.
    """
    masks = _fold_anchors(kinds)
    groups: dict[str, int] = {}
    trie: dict = {}
    for n, ((word, prefix), mask) in enumerate(sorted(masks.items())):
        groups[f"a{n}"] = mask
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = f"(?P<a{n}>)" + ("" if prefix else r"\b")

    def emit(node: dict, root: bool = False) -> str:
        parts = []
        for ch, child in sorted(node.items()):
            if ch == "":
                parts.append(child)
            elif root and not (ch.isalnum() or ch == "_"):  # the non-word character itself
                parts.append(f"(?<={re.escape(ch)})" + emit(child))
            else:
                parts.append(re.escape(ch) + emit(child))
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    pattern = r"\W" + emit(trie, root=True)
    return re.compile(pattern), re.compile(pattern, re.IGNORECASE), groups


ANCHOR_SEARCH = {
    direction: _anchor_search(kinds) for direction, kinds in KINDS_BY_DIRECTION.items()
}

# --------------------------------------------------------------------------- text
AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic\s+reply|auto(?:matic)?[- ]?reply|auto:|out\s+of\s+(?:the\s+)?office"
    r"|undeliverable|undelivered|delivery\s+status\s+notification|mail\s+delivery\s+failed)",
    re.IGNORECASE,
)
HISTORY = re.compile(r"^(?:On\s.{0,200}\swrote:|-{2,}\s*(?:Original|Forwarded)\s+Message)", re.I)
# The cheap look-behind first: the others run only after a full stop, "!" or "?".
SENTENCE_END = re.compile(
    r"(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bvs\.)\s+"
    r"(?=[\"'“(]?[A-Z0-9])"
)
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
# What str.splitlines() splits on: a text without any is one line. None of them is
# printable, so a printable text (most) is one line without a search.
LINE_BREAK = re.compile("[\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029]")
# A full stop, "!" or "?" before a space: SENTENCE_END needs one.
SENTENCE_GAP = re.compile(r"[.!?]\s")
HISTORY_STARTS = frozenset({"On", "on", "ON", "oN", "--"})  # all HISTORY can match first


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def split_sentences(text: str) -> list[str]:
    """Sentences of the unquoted text: paragraphs (and bullets) joined, then split."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped[:1] in "oO-" and HISTORY.match(stripped):  # it starts "On" or "--"
            break
        if stripped.startswith(">"):
            continue
        if not stripped:
            chunks.append([])
            continue
        if (stripped[0] in "-*•" or stripped[0].isdigit()) and (bullet := BULLET.match(stripped)):
            chunks.append([])
            stripped = stripped[bullet.end() :]
        chunks[-1].append(stripped)
    sentences = []
    for chunk in chunks:
        if not chunk:
            continue
        joined = " ".join(chunk)
        if "." in joined or "!" in joined or "?" in joined:
            sentences += [s.strip() for s in SENTENCE_END.split(joined) if s.strip()]
        elif joined.strip():
            sentences.append(joined.strip())
    return sentences


def _line_sentences(line: str) -> list[tuple[int, int]]:
    """:func:`split_sentences` of a text without line breaks, as ``(start, end)`` spans of
    it: the same sentences, without the loop over lines and the joining (most messages are
    one line, often one sentence)."""
    stripped = line.strip()
    if not stripped or stripped[0] == ">":
        return []  # blank or quoted
    if stripped[:2] in HISTORY_STARTS and HISTORY.match(stripped):
        return []  # the start of the quoted history
    start = len(line) - len(line.lstrip())
    if (stripped[0] in "-*•" or stripped[0].isdigit()) and (bullet := BULLET.match(stripped)):
        start += bullet.end()
        stripped = stripped[bullet.end() :]
    # One sentence unless a full stop, "!" or "?" is followed by a space: the cheapest
    # checks first (most messages end with their only one; a printable text has no other
    # space than " ").
    body = stripped[:-1]
    if (
        ("." not in body and "!" not in body and "?" not in body)
        or (line.isprintable() and ". " not in body and "! " not in body and "? " not in body)
        or SENTENCE_GAP.search(stripped) is None
    ):
        return [(start, start + len(stripped))]
    # SENTENCE_END takes the whole run of spaces after a full stop, so the sentences
    # between are split_sentences' pieces, already stripped and never empty.
    spans, at = [], 0
    for gap in SENTENCE_END.finditer(stripped):
        spans.append((start + at, start + gap.start()))
        at = gap.end()
    spans.append((start + at, start + len(stripped)))
    return spans


def _blocked(rule: Rule, sentence: str, m: re.Match[str], odd: bool = True) -> bool:
    """Negations in the clause before the match, hypotheticals anywhere before it.

    ``odd`` False: ``sentence`` is lower-cased, and the guards' patterns compiled without
    IGNORECASE (their literals are lower case) find the same, faster. The guards search
    the text after a space (see GUARDS)."""
    negation, hypothetical, resolved, either = GUARDS[odd]
    # One search for both over the sentence up to the match's end: most matches have
    # neither, and a negation in the clause before the match, in the match or a
    # hypothetical before it are all found by it (a match starts at a word boundary, so
    # nothing spans its start).
    if either.search(" " + sentence, 0, m.end() + 1) is None:
        if rule.kind == "risk" and (
            sentence.rstrip().endswith("?") or resolved.search(" " + sentence)
        ):
            return True
        return rule.guard is not None and not rule.guard(sentence, m)
    before = sentence[: m.start()]
    if rule.negatable:
        clause = before[start.end() :] if (start := CLAUSE_START.match(before)) else before
        if negation.search(" " + clause) or negation.search(" " + m.group()):
            return True
    if hypothetical.search(" " + before):
        return True
    if rule.kind == "risk" and (sentence.rstrip().endswith("?") or resolved.search(" " + sentence)):
        return True
    return rule.guard is not None and not rule.guard(sentence, m)


def find_signals(
    text: str | None,
    *,
    occurred_at: datetime,
    direction: str,
    subject: str | None = None,
    is_auto: bool = False,
) -> list[Signal]:
    """Signals in the newest part of one message (quoted history already removed).

    At most one signal per sentence and kind, in text order, and at most
    :data:`MAX_SIGNALS` from the first :data:`MAX_INPUT` characters. Lines starting with ">"
    and anything after an "On ... wrote:" line are ignored. Auto-replies and bounces
    (``is_auto``, or a subject such as "Automatic reply:"/"Undeliverable:") give none.
    ``direction`` must be "inbound", "outbound" or "internal"; a naive ``occurred_at``
    is taken as UTC.
    """
    if direction not in KINDS_BY_DIRECTION:
        raise ValueError(f"direction must be one of {sorted(KINDS_BY_DIRECTION)}: {direction!r}")
    if not text or is_auto or (subject and AUTO_SUBJECT.match(subject)):
        return []
    text = text[:MAX_INPUT]
    lower, folding, groups = ANCHOR_SEARCH[direction]
    odd = not text.isascii() and any(ch in text for ch in UNFOLDED)
    # rare: IGNORECASE on the text itself; else the patterns without it on text.lower()
    search, folded = (folding, text) if odd else (lower, text.lower())
    # Which rules can match in which sentence: one anchor search (after a space, see
    # _anchor_search), each hit credited to the sentence it is in.
    candidates: dict[int, int] = {}
    spans: list[tuple[int, int]] = []  # one line: its sentences, sliced when read
    sentences_cased: list[str] = []  # else: the sentences (and lower-cased unless odd)
    sentences = sentences_cased
    if (printable := text.isprintable()) or LINE_BREAK.search(text) is None:  # one line
        hits = search.finditer(" " + folded)
        if (first := next(hits, None)) is None:  # no rule can match anywhere
            return []
        spans = _line_sentences(text)
        if len(spans) == 1:  # one sentence: every hit is in it
            mask = groups[first.lastgroup]  # type: ignore[index]
            for hit in hits:
                mask |= groups[hit.lastgroup]  # type: ignore[index]
            candidates[0] = mask
        elif spans:  # hits are inside words, never in the space between sentences
            starts = [start for start, _ in spans]
            for hit in chain((first,), hits):
                at = bisect_right(starts, hit.start()) - 1
                candidates[at] = candidates.get(at, 0) | groups[hit.lastgroup]  # type: ignore[index]
    else:
        if search.search(" " + folded) is None:  # no rule can match anywhere
            return []
        sentences_cased = split_sentences(text)
        sentences = sentences_cased if odd else [s.lower() for s in sentences_cased]
        starts, offset = [], 0  # the sentences joined by a line break (in no anchor)
        for sentence in sentences:
            starts.append(offset)
            offset += len(sentence) + 1
        for hit in search.finditer(" " + "\n".join(sentences)):
            at = bisect_right(starts, hit.start()) - 1
            candidates[at] = candidates.get(at, 0) | groups[hit.lastgroup]  # type: ignore[index]
    signals: list[Signal] = []
    for at in sorted(candidates):
        if len(signals) >= MAX_SIGNALS:
            break
        if spans:
            start, end = spans[at]
            cased, sentence = text[start:end], folded[start:end]
        else:
            cased, sentence = sentences_cased[at], sentences[at]
        mask, done = candidates[at], ""
        while mask:  # the candidate rules in RULES order, as before: kinds, then rules
            bit = mask & -mask
            mask ^= bit
            rule = RULES[bit.bit_length() - 1]
            if rule.kind == done:
                continue
            for m in (rule.pattern if odd else rule.lower).finditer(sentence):  # type: ignore[union-attr]
                if not _blocked(rule, sentence, m, odd):
                    break
            else:
                continue
            kind = rule.kind
            due = None if kind == "risk" else _due(sentence, odd, occurred_at, m.start())
            if rule.needs_date and due is None:
                continue
            # a sentence is stripped, and a printable text has no other space than " "
            clean = cased if printable and "  " not in cased else " ".join(cased.split())
            if len(clean) > MAX_TEXT:
                clean = clean[: MAX_TEXT - 1].rstrip() + "…"
            signals.append(_signal(kind, clean, rule.id, due))
            done = kind
    return signals[:MAX_SIGNALS]
