"""The fast signal rules (#16) find exactly what the old ones found.

``tests/signals_reference.py`` is the implementation before the anchor prefilter,
verbatim. Every check here compares with it: the labelled set in every direction and on
several dates, the rule examples, random sentences made of the labelled set's words,
texts with the characters IGNORECASE treats specially, and ``resolve_due`` on a year of
dates. The prefilter itself is checked to be a superset: wherever a rule's full pattern
matches a sentence, the anchor search credits that rule to that sentence.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oppkit import signal_rules as fast
from tests import signals_reference as ref

EVAL = Path(__file__).parent / "data" / "signals_eval.jsonl"
DIRECTIONS = ("inbound", "outbound", "internal")
WHEN = (
    datetime(2026, 3, 4, 10, 30, tzinfo=UTC),  # a Wednesday
    datetime(2026, 1, 31, 23, 0, tzinfo=UTC),  # a month's last day, a Saturday
    datetime(2025, 12, 28, 8, 0, tzinfo=UTC),  # a Sunday at the turn of the year
)
EXAMPLES = [  # one or more sentences for every rule, and near misses
    "Could you send the security questionnaire?", "Can you share the pricing?",
    "Please send over the SOC 2 report.", "We need the signed NDA by Monday.",
    "Would it be possible to get a trial licence for the team?",
    "Would you mind sending the checklist again?", "Send me the final quote, please.",
    "Please let us know the lead time for 200 sensors.",
    "I'd appreciate it if you could send the invoice by the 20th.",
    "Looking forward to receiving your proposal next week.",
    "We will get back to you with the revised quote tomorrow.",
    "I will share the deck by end of week.", "Will send the NDA over EOD.",
    "Let me check with our product team and get back to you.",
    "Our legal team will send the redlines by Thursday.",
    "You'll receive the order confirmation next week.",
    "I can send you the updated deck tomorrow.", "Expect the quote from us by Friday.",
    "We're sending the hardware on 12 March.", "I’ll circulate the notes in two days.",
    "Unfortunately we have a budget freeze until the end of the year.",
    "They froze all hiring budgets.", "The project has been postponed to next quarter.",
    "We are delaying the rollout.", "The go-live slipped again.",
    "Management decided to put the rollout on hold.", "The pilot is on ice for now.",
    "We paused all onboarding.", "After careful consideration we went with another vendor.",
    "We chose a competitor.", "This is no longer a priority for us.",
    "The migration was deprioritised.", "We won't be moving forward with the purchase.",
    "We decided not to proceed.", "They cancelled the whole evaluation.",
    "The contract was scrapped.", "We lost our funding.",
    "Our budget for this year has been cut.", "There is a re-org going on.",
    "The reorganisation is over.", "Our champion has left the company.",
    "Maria is leaving the company next month.", "Let me know if you have questions.",
    "We don't need a demo.", "If the project were postponed we would tell you.",
    "Is the project postponed?", "The freeze has been lifted.",
    "We need the weekend to think.", "- send me the deck\n- I'll share the notes by 03/15",
    "Hi,\n\nPlease\nsend us the quote\nby Friday.\n\n> Could you send it?\nOn Mon, Ann wrote:\nx",
    "I'll send it by 2026-03-12, not before the 31st. Valid until 30 April.",
    "The deal slipped since last Friday. We will extend it until June 3.",
]  # fmt: skip
ODD = ("İ", "ı", "ſ", "K", "’", "é", "Ⅰ", "١٢")  # special to IGNORECASE, or non-ASCII


def _eval_rows() -> list[dict]:
    return [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]


def _vocabulary() -> list[str]:
    words = set()
    for row in _eval_rows():
        words.update(re.findall(r"[\w'’-]+|[.,;?!]", row["text"]))
    return sorted(words)


def _random_texts(n: int, seed: int = 16) -> list[str]:
    """Sentences of 4-16 of the labelled set's words (and odd characters), in random order
    and case: nonsense, but full of the rules' words in unplanned combinations."""
    rng, vocab = random.Random(seed), _vocabulary()
    texts = []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words)), rng.choice(ODD))
        text = " ".join(w.upper() if rng.random() < 0.05 else w for w in words)
        texts.append(text + rng.choice([".", "?", "!", "", " by Friday."]))
    return texts


def _same(text: str, direction: str, when: datetime, **kw: object) -> None:
    new = fast.find_signals(text, occurred_at=when, direction=direction, **kw)
    try:
        old = ref.find_signals(text, occurred_at=when, direction=direction, **kw)
    except (KeyError, ValueError):  # "Frıday": the old rules crashed, the new ones read it
        assert any(ch in text for ch in fast.UNFOLDED), text
        return
    assert [tuple(vars(s).values()) for s in new] == [tuple(vars(s).values()) for s in old], text


def test_same_signals_on_the_labelled_set_in_every_direction_and_on_several_dates() -> None:
    for row in _eval_rows():
        kw = {"subject": row.get("subject"), "is_auto": row.get("is_auto", False)}
        _same(row["text"], row["direction"], datetime.fromisoformat(row["occurred_at"]), **kw)
        for direction in DIRECTIONS:
            for when in WHEN:
                _same(row["text"], direction, when, **kw)


@pytest.mark.parametrize("text", EXAMPLES)
def test_same_signals_on_the_rule_examples(text: str) -> None:
    for variant in (text, text.upper(), text.replace("s", "ſ"), text.replace("i", "ı"),
                    text.replace("k", "K"), text.replace("I", "İ"), "Ⅰ " + text):  # fmt: skip
        for direction in DIRECTIONS:
            for when in WHEN:
                _same(variant, direction, when)


def test_same_signals_on_random_sentences_of_the_labelled_words() -> None:
    for i, text in enumerate(_random_texts(1500)):
        _same(text, DIRECTIONS[i % 3], WHEN[i % 3])


def test_same_signals_on_long_messages_and_at_the_limits() -> None:
    texts = _random_texts(400, seed=7)
    long_text = "\n\n".join(" ".join(texts[i : i + 5]) for i in range(0, 400, 5))
    for direction in DIRECTIONS:
        _same(long_text, direction, WHEN[0])  # more than MAX_SIGNALS, beyond MAX_INPUT
        _same(long_text[:20_500], direction, WHEN[1])


def _sentences() -> list[str]:
    texts = [row["text"] for row in _eval_rows()] + EXAMPLES + _random_texts(1500)
    return [s for text in texts for s in ref.split_sentences(text)]


def test_prefilter_never_drops_a_hit_of_the_full_rules() -> None:
    """Wherever a rule's full pattern matches a sentence (blocked or not), the anchor
    search over that sentence credits the rule, in every direction that has its kind."""
    checked = 0
    for sentence in _sentences():
        for direction, kinds in fast.KINDS_BY_DIRECTION.items():
            lower, folding, groups = fast.ANCHOR_SEARCH[direction]
            odd = any(ch in sentence for ch in fast.UNFOLDED)
            search, text = (folding, sentence) if odd else (lower, sentence.lower())
            credited = 0
            for hit in search.finditer(" " + text):  # it searches after a space
                credited |= groups[hit.lastgroup]
            for i, rule in enumerate(fast.RULES):
                if rule.kind in kinds and rule.pattern.search(sentence):
                    checked += 1
                    assert credited >> i & 1, (rule.id, sentence)
    assert checked > 500  # the corpus exercises the rules


def test_a_weekday_or_month_written_with_a_dotless_i_or_long_s_is_read() -> None:
    # the old rules raised KeyError/ValueError here (IGNORECASE matched, .lower() did not)
    [s] = fast.find_signals(
        "Could you send it by FRıDAY?", occurred_at=WHEN[0], direction="inbound"
    )
    assert s.due_at == datetime(2026, 3, 6, 17, tzinfo=UTC)
    assert fast.resolve_due("by 12 aprıl", WHEN[0]) == datetime(2026, 4, 12, 17, tzinfo=UTC)
    with pytest.raises(KeyError):
        ref.resolve_due("by FRıDAY", WHEN[0])


def test_an_impossible_iso_date_gives_no_date_instead_of_an_error() -> None:
    with pytest.raises(ValueError):
        ref.resolve_due("We need it by 2026-02-30.", WHEN[0])
    assert fast.resolve_due("We need it by 2026-02-30.", WHEN[0]) is None
    [s] = fast.find_signals(
        "Could you send it by 2026-02-30?", occurred_at=WHEN[0], direction="inbound"
    )
    assert (s.rule, s.due_at) == ("request.could_you", None)


def test_anchors_cover_every_rule_and_never_overlap() -> None:
    assert set(fast.ANCHORS) == {rule.id for rule in fast.RULES}
    words = {a.rstrip("*") for anchors in fast.ANCHORS.values() for a in anchors}
    # An anchor that could start inside another's hit would be swallowed by it: one
    # inside a word starts at no word boundary, so only one after a non-word character
    # ("org" in "re-org") or one needing no boundary ("'ll") could be.
    for a in words:
        for b in words:
            for k in range(1, len(b)):
                if b.startswith(a, k):
                    assert a[0].isalnum() and b[k - 1].isalnum(), (a, b)


@pytest.mark.parametrize(
    "phrase",
    ["by Friday", "next Tuesday", "tuesday next week", "next week", "end of next week",
     "this week", "EOW", "end of the month", "end of April", "end of next month", "in two weeks",
     "within 3 days", "by the 20th", "the 31st", "the 0th", "12 March", "March 12th", "15/03",
     "03/15", "12/03", "2026-03-12", "today", "EOD", "later today's", "tomorrow", "COB",
     "until Monday", "since Monday", "from 3 May", "extend until June 3", "valid till Friday",
     "no later than the 5th", "latest 1st of June", "sept 30", "by Fri.", "Sept. 30th",
     "in a week", "within a couple of days", "in few days", "this afternoon", "close of business",
     "later today", "end of the day", "the 5th of May", "before 1.4.", "this Thursday", "eom",
     "by 3rd of jan", "on dec 24", "on 24 dec", "2026-02-30", "sun", "in 2 weeks"],
)  # fmt: skip
def test_resolve_due_is_unchanged_over_a_year_of_dates(phrase: str) -> None:
    start = datetime(2025, 12, 1, 12, tzinfo=UTC)
    for sentence in (f"We need it {phrase}.", f"{phrase} works, we need it.", phrase.upper()):
        for day in range(400):
            when = start + timedelta(days=day)
            for at in (0, 8):
                new = fast.resolve_due(sentence, when, at)
                try:
                    old = ref.resolve_due(sentence, when, at)
                except ValueError:  # 2026-02-30: the old rules raised; no date now
                    assert new is None
                    continue
                assert new == old


# One-line texts (most messages) take a path of their own: sentences as spans of the text,
# one anchor search, and a printable text's shortcuts. Texts with line breaks of every
# kind, tabs and other spaces, odd casing and bullets, quotes and history lines check it.
BREAKS = ("\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029")
ONE_LINE = [  # fmt: skip
    "- send me the deck", "1. Send us the quote by Friday.", "* please share it", "• I'll send it",
    "> Could you send it?", "On Mon, Ann wrote: could you send it?", "on it, could you send it?",
    "-- Original Message -- Could you send it?", "--- please send it", "   Please send it.   ",
    "Please send it.\tI'll share the deck by Friday.", "Please send it.\u00a0I'll share it.",
    "Please  send   it by  Friday.", "E.g. please send it. Mr. Smith will share it by Friday!",
    'He said "Could you send it?" And we will send it. (We will share it.) 2 pilots paused.',
    "Could you send it by FRıDAY?", "İ will send it by Friday.", "Could you send it by ſunday?",
    "We need the NDA by 12 March... We will send it?! Is the project postponed? It is.",
    "I’ll send it by Friday.I'll share it by Monday. We decided not to proceed.",
]  # fmt: skip


def test_one_line_sentences_are_split_sentences() -> None:
    texts = ONE_LINE + EXAMPLES + [row["text"] for row in _eval_rows()] + _random_texts(500)
    checked = 0
    for text in texts:
        for variant in (text, text.upper(), " " + text + " ", text.replace(" ", "  ")):
            if fast.LINE_BREAK.search(variant) is None:
                spans = fast._line_sentences(variant)
                assert [variant[a:b] for a, b in spans] == ref.split_sentences(variant), variant
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("text", ONE_LINE + EXAMPLES)
def test_same_signals_on_one_line_texts_and_with_line_breaks(text: str) -> None:
    variants = [text, text.upper(), text.lower(), text.replace(" ", "\t"), "  " + text]
    variants += [text.replace(". ", "." + br) for br in BREAKS]
    variants += [text.replace(" ", br, 2) for br in BREAKS]
    for variant in variants:
        for direction in DIRECTIONS:
            _same(variant, direction, WHEN[0])


def test_padded_guards_find_what_the_plain_ones_find() -> None:
    plain = (fast.NEGATION, fast.HYPOTHETICAL, fast.RESOLVED)
    sentences = _sentences() + ["don't", "DON’T send", "n't", "'t", "in case", "was it lifted"]
    for sentence in sentences:
        for odd, text in ((True, sentence), (False, sentence.lower())):
            negation, hypothetical, resolved, either = fast.GUARDS[odd]
            for end in range(len(text) + 1):
                flags = [p.search(text, 0, end) is not None for p in plain]
                padded = [
                    p.search(" " + text, 0, end + 1) is not None
                    for p in (negation, hypothetical, resolved)
                ]
                assert padded == flags, (text, end)
                assert (either.search(" " + text, 0, end + 1) is not None) == any(flags[:2])


def test_the_date_guard_passes_every_date_phrase() -> None:
    """DATE_FAST finds DATE_RE's matches, and DATE_START the first of them (or one before)."""
    for sentence in _sentences():
        text = sentence.lower()
        spans = [m.span() for m in fast.DATE_LOWER.finditer(text)]
        assert [m.span() for m in fast.DATE_FAST.finditer(text)] == spans, text
        first = fast.DATE_START.search(" " + text)
        if spans:  # a candidate at or before the first date ("in a" may be none)
            assert first is not None and first.start() <= spans[0][0], text
            assert [m.span() for m in fast.DATE_FAST.finditer(text, first.start())] == spans
