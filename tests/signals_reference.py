"""The rules of oppkit.signal_rules before the prefilter (#16), frozen as the reference.

tests/test_signals_speed.py checks that the fast implementation finds exactly what this
one finds (signals, rules, texts and due dates). Do not edit it to make a test pass: it
is the old behaviour, verbatim from commit dc4a273.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta

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


# --------------------------------------------------------------------------- dates
WEEKDAYS = {"mon": MO, "tue": TU, "wed": WE, "thu": TH, "fri": FR, "sat": SA, "sun": SU}
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "few": 3, "couple of": 2}
_WD = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\b"
_MON = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
DATE_RE = re.compile(
    rf"""(?P<prep>\b(?:by|until|till|before|no\ later\ than|latest)\s+(?:the\s+)?)?(?:
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
PERIOD_RE = re.compile(r"\b(?:extend\w*|extension|prolong\w*|valid)\b", re.IGNORECASE)


def _month(name: str) -> int:
    return MONTHS.index(name[:3].lower()) + 1


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


def _resolve(m: re.Match[str], today: date) -> date | None:
    g = m.groupdict()
    next_monday = today + relativedelta(days=+1, weekday=MO(+1))
    if g["iso"]:
        return date.fromisoformat(g["iso"])
    if g["num"]:
        a, b = int(g["num"]), int(g["num2"])
        if a == b or (a > 12 and b <= 12):  # 15/03: day first
            return _upcoming(today, b, a) if b else None
        return _upcoming(today, a, b) if b > 12 and a else None  # 03/15; 12/03 is ambiguous
    if g["dm"]:
        return _upcoming(today, _month(g["dm_mon"]), int(g["dm"]))
    if g["md"]:
        return _upcoming(today, _month(g["md_mon"]), int(g["md"]))
    if g["eom_mon"]:
        first = _upcoming(today, _month(g["eom_mon"]), 1)
        return first + relativedelta(day=31) if first else None
    if g["eom"] is not None:
        return today + relativedelta(day=31)
    if g["eonm"] is not None:
        return today + relativedelta(months=+1, day=31)
    if g["nextweek"] is not None:
        return next_monday + relativedelta(weekday=FR)
    if g["thisweek"] is not None:
        return today + relativedelta(weekday=FR)
    if g["next_wd"] or g["wd_next"]:
        return next_monday + relativedelta(
            weekday=WEEKDAYS[(g["next_wd"] or g["wd_next"])[:3].lower()]
        )
    if g["wd"]:
        return today + relativedelta(weekday=WEEKDAYS[g["wd"][:3].lower()])
    if g["tomorrow"]:
        return today + timedelta(days=1)
    if g["today"]:
        return today
    if g["n"]:
        n = int(g["n"]) if g["n"].isdigit() else NUMBERS[g["n"].lower()]
        return today + timedelta(days=n * (7 if g["unit"].lower() == "week" else 1))
    if g["nth"]:
        day = int(g["nth"])
        for months in (0, 1, 2):  # relativedelta clamps day 31 to 30; skip such months
            found = today + relativedelta(months=+months, day=day)
            if found.day == day and found >= today:
                return found
    return None


def resolve_due(sentence: str, occurred_at: datetime, start: int = 0) -> datetime | None:
    """The first date phrase after ``start`` (else one before it that starts with
    "by"/"until"/...), as 17:00 UTC on that day; None if there is none."""
    today = _as_utc(occurred_at).date()
    period = PERIOD_RE.search(sentence) is not None
    matches = [m for m in DATE_RE.finditer(sentence)
               if not (period and (m["prep"] or "").lower().startswith(("until", "till")))]  # fmt: skip
    for m in sorted(matches, key=lambda m: (m.start() < start, m.start())):
        if (m.start() < start and not m["prep"]) or PAST_REF.search(sentence[: m.start()]):
            continue
        found = _resolve(m, today)
        if found is not None:
            return datetime.combine(found, DUE_TIME)
    return None


# --------------------------------------------------------------------------- rules
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


def _rule(rule_id: str, regex: str, **kw: object) -> Rule:
    return Rule(rule_id, rule_id.split(".")[0], re.compile(regex, re.IGNORECASE), **kw)  # type: ignore[arg-type]


def _not_let_know_if(sentence: str, m: re.Match[str]) -> bool:
    # "let me know if you have questions" is a pleasantry; "let us know the lead time" is not
    pleasantry = re.match(
        r"\s+(?:if|when|whether)\s+(?:you|there|anything|any)\b", sentence[m.end() :], re.I
    )
    return not (m.group().lower().endswith("know") and pleasantry)


def _asks_us(sentence: str, m: re.Match[str]) -> bool:
    time_off = r"\bneed\s+(?:the|a|an)\s+(?:weekend|week|day|few|couple|moment|bit)\b"
    return re.search(rf"\binternal(?:ly)?\b|\bfrom\s+our\b|{time_off}", sentence, re.I) is None


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

# One alternation per kind: a sentence that none of a kind's rules can match is passed
# over with one search instead of one per rule (most sentences match no rule at all).
ANY_OF_KIND = {
    kind: re.compile("|".join(f"(?:{r.pattern.pattern})" for r in RULES if r.kind == kind), re.I)
    for kind in {r.kind for r in RULES}
}

# --------------------------------------------------------------------------- text
AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic\s+reply|auto(?:matic)?[- ]?reply|auto:|out\s+of\s+(?:the\s+)?office"
    r"|undeliverable|undelivered|delivery\s+status\s+notification|mail\s+delivery\s+failed)",
    re.IGNORECASE,
)
HISTORY = re.compile(r"^(?:On\s.{0,200}\swrote:|-{2,}\s*(?:Original|Forwarded)\s+Message)", re.I)
SENTENCE_END = re.compile(
    r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bvs\.)(?<=[.!?])\s+"
    r"(?=[\"'“(]?[A-Z0-9])"
)
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def split_sentences(text: str) -> list[str]:
    """Sentences of the unquoted text: paragraphs (and bullets) joined, then split."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if HISTORY.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        if not stripped or BULLET.match(stripped):
            chunks.append([])
        if stripped:
            chunks[-1].append(BULLET.sub("", stripped))
    sentences = []
    for chunk in chunks:
        joined = " ".join(chunk)
        sentences += [s.strip() for s in SENTENCE_END.split(joined) if s.strip()]
    return sentences


def _blocked(rule: Rule, sentence: str, m: re.Match[str]) -> bool:
    """Negations in the clause before the match, hypotheticals anywhere before it."""
    before = sentence[: m.start()]
    clause = before[CLAUSE_START.match(before).end() :] if CLAUSE_START.match(before) else before
    if rule.negatable and (NEGATION.search(clause) or NEGATION.search(m.group())):
        return True
    if HYPOTHETICAL.search(before):
        return True
    if rule.kind == "risk" and (sentence.rstrip().endswith("?") or RESOLVED.search(sentence)):
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
    kinds = KINDS_BY_DIRECTION[direction]
    signals: list[Signal] = []
    for sentence in split_sentences(text[:MAX_INPUT]):
        if len(signals) >= MAX_SIGNALS:
            break
        for kind in kinds:
            if not ANY_OF_KIND[kind].search(sentence):
                continue
            for rule in RULES:
                if rule.kind != kind:
                    continue
                m = next((m for m in rule.pattern.finditer(sentence) if not _blocked(rule, sentence, m)), None)  # fmt: skip
                if m is None:
                    continue
                due = None if kind == "risk" else resolve_due(sentence, occurred_at, m.start())
                if rule.needs_date and due is None:
                    continue
                clean = " ".join(sentence.split())
                if len(clean) > MAX_TEXT:
                    clean = clean[: MAX_TEXT - 1].rstrip() + "…"
                signals.append(Signal(kind, clean, rule.id, due))
                break
    return signals[:MAX_SIGNALS]
