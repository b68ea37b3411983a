"""The fast latest-reply cut (#16) gives what mailparser_reply's ``parse_reply`` gives.

``oppkit.sources.text.latest_reply`` skips the work ``parse_reply`` throws away
(disclaimers and signatures of every reply, every header after the first reply, the
header pattern rebuilt per message). Here both run over crafted replies in the five
languages oppkit reads (wrapped "On ... wrote:" lines, Outlook header blocks, quoted and
starred fields, "Original Message", a header first, non-ASCII and odd case) and over
thousands of random texts made of such lines: the results must be equal.
"""

from __future__ import annotations

import random

import pytest

from oppkit.sources import text

LINES = [
    "Thanks, see you Monday.", "Could you send the revised quote by Friday?", "",
    "On Mon, 3 Mar 2026 at 10:00, Bob Smith <bob@x.example> wrote:",
    "On Mon, 3 Mar 2026 at 10:00, Bob Smith", "<bob@x.example> wrote:", "On", "wrote:",
    "> On Tue, Ann wrote:", ">> quoted text", "> more quoted", "From: Bob <bob@x.example>",
    "Sent: Monday, March 3, 2026 10:00", "To: Ann <ann@y.example>", "Subject: RE: pricing",
    "Date: 3 Mar 2026", "Cc: team@x.example", "*From:* Bob", "*Sent:* Monday",
    "> From: Bob", "> To: Ann", "Am 03.03.2026 um 10:00 schrieb Bob Smith <bob@x.example>:",
    "Von: Bob", "Gesendet: Montag", "An: Ann", "Betreff: Angebot",
    "Le lun. 3 mars 2026 à 10:00, Bob <bob@x.example> a écrit :", "De : Bob",
    "Envoyé : lundi", "À : Ann", "Objet : devis", "El lun, 3 mar 2026, Bob escribió:",
    "De: Bob", "Enviado: lunes", "Para: Ann", "Asunto: oferta", "Organización: X",
    "Op ma 3 mrt 2026 om 10:00 schreef Bob <bob@x.example>:", "Van: Bob", "Aan: Ann",
    "Onderwerp: offerte", "-----Original Message-----", "----- Original Message -----",
    "Best regards,", "Ava", "-- ", "Sent from my iPhone", "Update: the date: moved",
    "question: could we review it?", "up to: 3 people", "ſubject: odd", "FROM: BOB",
    "TO: ANN", "ÉNVOYÉ : lundi", "  : empty field", "The price is 12,000 EUR.",
    "________________________________", "Confidentiality notice: this e-mail is private.",
]  # fmt: skip


def _random_texts(n: int, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        lines = [rng.choice(LINES) for _ in range(rng.randint(1, 25))]
        sep = "\r\n" if rng.random() < 0.1 else "\n"
        texts.append(sep.join(("  " + line) if rng.random() < 0.05 else line for line in lines))
    return texts


CRAFTED = [
    "Thanks!\n\nOn Mon, 3 Mar 2026, Bob wrote:\n> earlier\n> text",
    "On Mon, 3 Mar 2026, Bob wrote:\n> only quoted",
    "Sure.\nOn Mon,\n3 Mar 2026,\nBob\nwrote:\n> wrapped header",
    "Hi\n\nFrom: Bob\nSent: Monday\nTo: Ann\nSubject: x\n\nold text",
    "From: Bob\nSent: Monday\n\nreply first?\n\nFrom: Carl\nTo: Ann\n\nolder",
    "Danke.\n\nAm 03.03.2026 um 10:00 schrieb Bob <b@x.example>:\n> alt",
    "Merci.\n\nLe lun. 3 mars 2026 à 10:00, Bob <b@x.example> a écrit :\n> ancien",
    "Gracias.\n\nEl lun, 3 mar 2026, Bob escribió:\n> viejo",
    "Dank.\n\nOp ma 3 mrt 2026 om 10:00 schreef Bob <b@x.example>:\n> oud",
    "Yes.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n\nold",
    "No header at all.\nJust two lines.",
    "",
    "\n\n",
    "wrote:",
    "From: a\nTo: b",
]


@pytest.mark.parametrize("body", CRAFTED)
def test_latest_reply_equals_the_parser_on_crafted_replies(body: str) -> None:
    assert text.latest_reply(body) == text._reply_parser.parse_reply(text=body)


def test_latest_reply_equals_the_parser_on_random_texts() -> None:
    for body in _random_texts(3000):
        assert text.latest_reply(body) == text._reply_parser.parse_reply(text=body), body


def test_every_header_holds_a_token_no_more_than_four_lines_after_its_start() -> None:
    # the shortcut's premise, on the texts above: each header the full pattern finds
    # starts at most four lines (and one line break) before a token at or after it
    pattern = text._LatestReply(text="", languages=list(text.REPLY_LANGUAGES)).HEADER_REGEX
    for body in CRAFTED + _random_texts(1000, seed=5):
        body = text._LatestReply(text=body, languages=list(text.REPLY_LANGUAGES)).text
        for match in pattern.finditer(body):
            token = text._first_header_token(body[match.start() :])
            assert token >= 0, match.group()
            assert body[match.start() : match.start() + token].count("\n") <= 5


MBOX_PIECES = [
    b"From a@b Mon Jan  1 00:00:00 2024\n", b"\n", b"\r\n", b"Subject: x\n", b">From me\n",
    b">>From you\n", b"text line\n", b"From not a boundary\n", b"x" * 70_000 + b"\n",
    b"From " + b"y" * 70_000 + b"\n", b"> quoted\n", b"no newline at end", b"\r\nFrom q\r\n",
]  # fmt: skip


def test_the_mapped_mbox_reader_yields_what_the_line_reader_yields(tmp_path) -> None:
    """Boundaries (a From_ line after a blank line, or at the start), From_ lines longer
    than a read chunk, >From un-escaping, the per-message limit, any start offset."""
    from oppkit.sources.mail import iter_mbox, iter_mbox_lines

    rng, path = random.Random(3), tmp_path / "m.mbox"
    for _ in range(1500):
        data = b"".join(rng.choice(MBOX_PIECES) for _ in range(rng.randint(0, 12)))
        path.write_bytes(data)
        for start in {0, rng.randint(0, len(data))}:
            for limit in (100, 100_000):
                assert list(iter_mbox(path, start, limit)) == list(
                    iter_mbox_lines(path, start, limit)
                ), (data[:300], start, limit)


PLAIN_AND_ODD_ADDRESSES = [
    "Ava Patel <ava.patel0@northwind.example>", "mia.kim3@pilot-rossi-12.example",
    '"Smith, J" <j@x.example>', "J. Smith <j@x.example>", "a@b.example (Comment)",
    "Group: a@b.example, c@d.example;", "=?utf-8?q?J=C3=BCrgen?= <j@x.example>",
    "Ann  Lee <ann@x.example>", " ann@x.example ", "ann@x.example,", ",ann@x.example",
    "Ann <ann@x.example>, bob@y.example", "O'Brien <ob@x.example>", "x@y", "<a@b.example>",
    "Ann<ann@x.example>", "Ann <ann @x.example>", "a..b@x.example", "a.@x.example",
    "ann@x..example", "ann@-x.example", "Jürgen <j@x.example>", "ann@x.example bob@y.example",
    "", "Ann\t<ann@x.example>", "Ann <ANN@X.EXAMPLE>", "undisclosed-recipients:;",
    "a@b.example, , c@d.example", "Mr - <m@x.example>", "a+tag@x.example", "Ann <a@x.example",
]  # fmt: skip


def test_plain_address_lists_give_what_getaddresses_gives() -> None:
    from email.utils import getaddresses

    from oppkit.sources.mail import _address_pairs

    rng = random.Random(1)
    cases = [[a] for a in PLAIN_AND_ODD_ADDRESSES]
    cases += [
        [", ".join(rng.choice(PLAIN_AND_ODD_ADDRESSES) for _ in range(rng.randint(1, 4)))]
        for _ in range(3000)
    ]
    cases += [[rng.choice(PLAIN_AND_ODD_ADDRESSES), rng.choice(PLAIN_AND_ODD_ADDRESSES)]] * 50
    for values in cases:
        assert _address_pairs(values) == getaddresses(values), values


def test_strip_quoted_gives_what_it_gave_before_its_quick_checks() -> None:
    """strip_quoted looks for "--" and ">" before running the signature and quoted-line
    patterns (#14); here against the patterns run every time, on random texts."""
    import re

    signature, quoted = re.compile(r"^-- ?$", re.MULTILINE), re.compile(r"^\s*>.*$", re.MULTILINE)

    def before(body: str) -> str:
        body = signature.split(body, maxsplit=1)[0]
        window = body[: text.TEXT_WINDOW]
        if "\n" not in window.strip():
            return quoted.sub("", body)
        try:
            latest = text.latest_reply(window)
        except Exception:  # noqa: BLE001 - as strip_quoted does
            latest = body
        if not latest or not latest.strip():
            latest = body
        return quoted.sub("", latest)

    rng = random.Random(14)
    pieces = ["-- ", "--", "-", ">", " > x", "\n", "\r\n", "text", "On Mon, Bob wrote:",
              "\u2028", "\x85", "\t>", "--\n", " ", "\v>", *LINES[:20]]  # fmt: skip
    for _ in range(20_000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert text.strip_quoted(body) == before(body), body


def test_header_matches_are_finditers_matches_from_any_position() -> None:
    """latest_reply tries the header pattern only at line starts and line breaks (#14)."""
    pattern = text._LatestReply(text="", languages=list(text.REPLY_LANGUAGES)).HEADER_REGEX
    rng = random.Random(7)
    for body in CRAFTED + _random_texts(3000, seed=8):
        body = text._LatestReply(text=body, languages=list(text.REPLY_LANGUAGES)).text
        for pos in {0, rng.randint(0, len(body)), max(0, len(body) - 2)}:
            expected = [m.span() + m.groups() for m in pattern.finditer(body, pos)]
            found = [m.span() + m.groups() for m in text.header_matches(pattern, body, pos)]
            assert found == expected, (body, pos)


def test_the_first_header_field_is_where_the_multiline_pattern_finds_it() -> None:
    for body in CRAFTED + _random_texts(3000, seed=9):
        low = body.lower()
        if not body.isascii():
            continue
        words = [at for word in text._HEADER_WORDS if (at := low.find(word)) >= 0]
        field = text._HEADER_FIELD.search(low)
        expected = min(words + ([field.start()] if field else []), default=-1)
        assert text._first_header_token(body) == expected, body


def test_whitespace_is_normalised_as_the_full_substitution_does() -> None:
    """normalise_whitespace looks for what its pattern matches before running it (#16)."""
    rng = random.Random(4)
    pieces = ["word", " ", "  ", "\t", "\r", "\f", "\v", "\u00a0", "\n", "\n\n", " \n ", "é"]

    def reference(value: str) -> str:
        value = text._BLANKS.sub("\n", text._WS.sub(" ", value))
        return "\n".join(line.strip() for line in value.splitlines()).strip()

    for _ in range(5000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        assert text.normalise_whitespace(value) == reference(value), repr(value)
