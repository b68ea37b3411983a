"""Requests, commitments and risks found in single messages, and the labelled evaluation set."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from oppkit.signal_rules import Signal, find_signals

EVAL = Path(__file__).parent / "data" / "signals_eval.jsonl"
WED = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # Wednesday
FRI = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # Friday


def signals(text: str, direction: str = "inbound", when: datetime = WED, **kw) -> list[Signal]:
    return find_signals(text, occurred_at=when, direction=direction, **kw)


def only(text: str, direction: str = "inbound", when: datetime = WED, **kw) -> Signal:
    found = signals(text, direction, when, **kw)
    assert len(found) == 1, found
    return found[0]


def test_commitment_by_friday_sent_on_wednesday() -> None:
    s = only("Hi Jürgen,\nthanks for the call. I'll send the revised contract by Friday.\nBest, Ava",
             "outbound")  # fmt: skip
    assert (s.kind, s.rule) == ("commitment", "commitment.i_will")
    assert s.due_at == datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
    assert s.text == "I'll send the revised contract by Friday."


@pytest.mark.parametrize(
    ("text", "rule", "due"),
    [
        ("Could you send the security questionnaire?", "request.could_you", None),
        ("Can you share the pricing?", "request.could_you", None),
        ("Please send over the SOC 2 report.", "request.please", None),
        ("We need the signed NDA by Monday.", "request.we_need", date(2026, 3, 9)),
        ("Would it be possible to get a trial licence for the team?", "request.possible", None),
        ("Would you mind sending the checklist again?", "request.would_you_mind", None),
        ("Send me the final quote, please.", "request.imperative", None),
        ("Please let us know the lead time for 200 sensors.", "request.please", None),
    ],
)
def test_requests(text: str, rule: str, due: date | None) -> None:
    s = only(text)
    assert (s.kind, s.rule) == ("request", rule)
    assert (s.due_at.date() if s.due_at else None) == due


@pytest.mark.parametrize(
    ("text", "rule", "due"),
    [
        ("We will get back to you with the revised quote tomorrow.", "commitment.i_will", date(2026, 3, 5)),
        ("I will share the deck by end of week.", "commitment.i_will", date(2026, 3, 6)),
        ("Will send the NDA over EOD.", "commitment.will_do", date(2026, 3, 4)),
        ("Let me check with our product team and get back to you.", "commitment.let_me", None),
        ("Our legal team will send the redlines by Thursday.", "commitment.our_team", date(2026, 3, 5)),
        ("You'll receive the order confirmation next week.", "commitment.you_will_receive", date(2026, 3, 13)),
        ("I can send you the updated deck tomorrow.", "commitment.can_with_date", date(2026, 3, 5)),
    ],
)  # fmt: skip
def test_commitments(text: str, rule: str, due: date | None) -> None:
    s = only(text, "outbound")
    assert (s.kind, s.rule) == ("commitment", rule)
    assert (s.due_at.date() if s.due_at else None) == due


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Unfortunately we have a budget freeze until the end of the year.", "risk.budget_freeze"),
        ("The project has been postponed to next quarter.", "risk.postponed"),
        ("Management decided to put the rollout on hold.", "risk.on_hold"),
        ("After careful consideration we went with another vendor.", "risk.competitor"),
        ("We chose a competitor whose product fits our stack.", "risk.competitor"),
        ("The dashboard project is no longer a priority for us.", "risk.deprioritised"),
        ("We have to cancel the project.", "risk.cancelled"),
        ("Our department lost funding after the merger.", "risk.lost_funding"),
        ("There is a big reorg going on.", "risk.reorg"),
        ("Procurement paused all new vendor onboarding.", "risk.paused"),
        ("Unfortunately we won't be moving forward with the purchase.", "risk.not_proceeding"),
    ],
)
def test_risks(text: str, rule: str) -> None:
    s = only(text)
    assert (s.kind, s.rule, s.due_at) == ("risk", rule, None)
    assert only(text, "internal").rule == rule


def test_direction_gates_each_kind() -> None:
    request = "Could you send the signed NDA by Friday?"
    commitment = "I'll send the contract by Friday."
    risk = "The project has been put on hold."
    assert [s.kind for s in signals(request, "inbound")] == ["request"]
    assert signals(request, "outbound") == []  # we ask the customer: not a task for us
    assert signals(request, "internal") == []
    assert [s.kind for s in signals(commitment, "outbound")] == ["commitment"]
    assert signals(commitment, "inbound") == []  # the customer's promise, not ours
    assert signals(commitment, "internal") == []
    assert [s.kind for s in signals(risk, "internal")] == ["risk"]
    assert signals(risk, "outbound") == []
    with pytest.raises(ValueError, match="direction"):
        signals(request, "sideways")


def test_auto_replies_and_bounces_give_nothing() -> None:
    text = "I am out of the office. Could you send urgent requests to helpdesk@acme.example?"
    assert signals(text, is_auto=True) == []
    assert signals(text, subject="Automatic reply: Pricing") == []
    assert signals(text, subject="Undeliverable: Contract") == []
    assert signals(text, subject="Re: Pricing") != []  # the same text, not an auto-reply
    assert signals(None) == [] and signals("") == []


def test_quoted_lines_and_history_are_ignored() -> None:
    quoted = (
        "Sounds good, talk tomorrow.\n\n> Could you send the questionnaire by Friday?\n> Jürgen"
    )
    assert signals(quoted) == []
    history = "Thanks!\n\nOn Tue, 3 Mar 2026 at 10:00, Jürgen wrote:\nCould you send the NDA?"
    assert signals(history) == []
    assert [s.rule for s in signals("Could you send the NDA?\n> old line")] == ["request.could_you"]


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("We don't need the questionnaire anymore.", "inbound"),
        ("No need to send the SOC 2 report, we have it.", "inbound"),
        ("No budget freeze this year, good news!", "inbound"),
        ("If the project were postponed, we would let you know.", "inbound"),
        ("Is the project postponed?", "internal"),  # questions are not risk statements
        ("We are not going with another vendor, don't worry.", "inbound"),
        ("Good news: the budget freeze has been lifted.", "inbound"),
        ("Nothing is on hold on our side.", "inbound"),
        ("I won't be able to send it before Monday.", "outbound"),
        ("I will not send a new quote until procurement confirms.", "outbound"),
        ("If you sign by Friday, I will send the discount approval.", "outbound"),
        ("I sent the contract on Friday.", "outbound"),
        ("I've attached the revised quote.", "outbound"),
        ("Should I send the contract to you or to procurement?", "outbound"),
        ("Our procurement team will send you the purchase order next week.", "inbound"),
        ("Thanks for sending the contract yesterday.", "inbound"),
    ],
)
def test_negations_hypotheticals_and_near_misses_do_not_fire(text: str, direction: str) -> None:
    assert signals(text, direction) == []


@pytest.mark.parametrize(
    "text",
    [
        "Could you believe the weather in Munich this week?",
        "Let me know if you have any questions.",
        "Can you hear me? I think I was muted.",
        "Please don't hesitate to reach out.",
        "Please find attached our requirements.",
        "Do you send invoices monthly or quarterly?",
        "We need the weekend to think about it.",
    ],
)
def test_pleasantries_and_questions_about_us_do_not_fire(text: str) -> None:
    assert signals(text) == []


@pytest.mark.parametrize(
    ("when", "phrase", "due"),
    [
        (WED, "by Friday", date(2026, 3, 6)),
        (FRI, "by Friday", date(2026, 3, 6)),  # sent on a Friday: that same day
        (FRI, "on Monday", date(2026, 3, 9)),
        (WED, "tomorrow", date(2026, 3, 5)),
        (WED, "today", date(2026, 3, 4)),
        (WED, "by EOD", date(2026, 3, 4)),
        (WED, "by end of day", date(2026, 3, 4)),
        (WED, "next week", date(2026, 3, 13)),  # the Friday of next week
        (WED, "by end of next week", date(2026, 3, 13)),
        (WED, "by end of the week", date(2026, 3, 6)),
        (WED, "this week", date(2026, 3, 6)),
        (WED, "by the end of the month", date(2026, 3, 31)),
        (WED, "by end of April", date(2026, 4, 30)),
        (WED, "by March 12", date(2026, 3, 12)),
        (WED, "by 12 March", date(2026, 3, 12)),
        (WED, "by 12th of March", date(2026, 3, 12)),
        (WED, "by 12/03", None),  # ambiguous: 12 March or 3 December
        (WED, "by 15/03", date(2026, 3, 15)),  # unambiguous day first
        (WED, "by 2026-03-20", date(2026, 3, 20)),
        (WED, "next Tuesday", date(2026, 3, 10)),
        (datetime(2026, 3, 2, 9, tzinfo=UTC), "next Thursday", date(2026, 3, 12)),  # next week's
        (WED, "in two weeks", date(2026, 3, 18)),
        (WED, "by the 27th", date(2026, 3, 27)),
        (datetime(2026, 3, 5, 0, 30, tzinfo=timezone(timedelta(hours=1))), "tomorrow", date(2026, 3, 5)),
        (datetime(2026, 3, 4, 10, 30), "tomorrow", date(2026, 3, 5)),  # naive = UTC
        (WED, "when you can", None),
    ],
)  # fmt: skip
def test_due_dates(when: datetime, phrase: str, due: date | None) -> None:
    s = only(f"Could you send the signed order form {phrase}?", when=when)
    assert s.kind == "request"
    if due is None:
        assert s.due_at is None
    else:
        assert s.due_at == datetime(due.year, due.month, due.day, 17, 0, tzinfo=UTC)


def test_dates_that_are_not_deadlines() -> None:
    assert only("Please share the recording of today's session.").due_at is None
    assert only("Can you send me the recording from Tuesday?").due_at is None
    assert (
        only("Would it be possible to extend our trial until the end of the month?").due_at is None
    )
    # the date after the trigger wins over an earlier one
    s = only("I sent the summary yesterday, and I'll send the report by Thursday.", "outbound")
    assert s.due_at is not None and s.due_at.date() == date(2026, 3, 5)


def test_one_signal_per_sentence_and_kind_in_text_order() -> None:
    text = ("Our budget is frozen until Q3. Could you send a smaller proposal anyway? "
            "Also, please share the case study.")  # fmt: skip
    assert [(s.kind, s.rule) for s in signals(text)] == [
        ("risk", "risk.budget_freeze"),
        ("request", "request.could_you"),
        ("request", "request.please"),
    ]


def test_module_docstring_example_runs() -> None:
    import doctest

    import oppkit.signal_rules

    result = doctest.testmod(oppkit.signal_rules)
    assert result.attempted >= 3 and result.failed == 0


def test_text_is_plain_and_trimmed() -> None:
    long = "Could you   send the\nsecurity questionnaire " + "and the appendix " * 30 + "?"
    s = only(long)
    assert len(s.text) <= 300 and "  " not in s.text and "\n" not in s.text
    assert s.text.startswith("Could you send the security questionnaire")


# --------------------------------------------------------------------- evaluation set
def _score(rows: list[dict]) -> dict[str, Counter]:
    stats = {kind: Counter() for kind in ("request", "commitment", "risk")}
    for row in rows:
        found = find_signals(
            row["text"], occurred_at=datetime.fromisoformat(row["occurred_at"]),
            direction=row["direction"], subject=row.get("subject"), is_auto=row.get("is_auto", False),
        )  # fmt: skip
        for kind, s in stats.items():
            expected = Counter(e["due"] for e in row["expected"] if e["kind"] == kind)
            predicted = Counter(
                x.due_at.date().isoformat() if x.due_at else None for x in found if x.kind == kind
            )
            same = expected & predicted
            pairs = [(d, d) for d in same.elements()]
            pairs += zip((expected - same).elements(), (predicted - same).elements(), strict=False)
            s.update(tp=len(pairs), fp=predicted.total() - len(pairs), fn=expected.total() - len(pairs),
                     dated=sum(e is not None for e, _ in pairs), due_ok=sum(e is not None and e == p for e, p in pairs))  # fmt: skip
    return stats


@pytest.fixture(scope="module")
def eval_rows() -> list[dict]:
    return [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]


def test_eval_set_is_large_and_varied(eval_rows: list[dict]) -> None:
    assert len(eval_rows) >= 150
    assert len({r["id"] for r in eval_rows}) == len(eval_rows)
    negatives = sum(not r["expected"] for r in eval_rows) / len(eval_rows)
    assert 0.3 <= negatives <= 0.5
    kinds = Counter(e["kind"] for r in eval_rows for e in r["expected"])
    assert min(kinds.values()) >= 30 and set(kinds) == {"request", "commitment", "risk"}
    weekdays = {
        datetime.fromisoformat(r["occurred_at"]).astimezone(UTC).weekday() for r in eval_rows
    }
    assert weekdays == set(range(7))


def test_eval_set_precision_per_kind(eval_rows: list[dict]) -> None:
    stats = _score(eval_rows)
    for kind, s in stats.items():
        precision = s["tp"] / (s["tp"] + s["fp"])
        recall = s["tp"] / (s["tp"] + s["fn"])
        print(f"{kind:<11} TP={s['tp']:>3} FP={s['fp']:>3} FN={s['fn']:>3} "
              f"precision={precision:.3f} recall={recall:.3f} due={s['due_ok']}/{s['dated']}")  # fmt: skip
        assert precision >= 0.9, kind
        assert recall >= 0.7, kind  # precision alone would reward finding nothing
    dated = sum(s["dated"] for s in stats.values())
    assert sum(s["due_ok"] for s in stats.values()) / dated >= 0.9


def test_auto_rows_in_eval_set_give_nothing(eval_rows: list[dict]) -> None:
    auto = [r for r in eval_rows if r.get("is_auto")]
    assert auto and all(
        find_signals(r["text"], occurred_at=datetime.fromisoformat(r["occurred_at"]),
                     direction=r["direction"], is_auto=True) == []
        for r in auto
    )  # fmt: skip
