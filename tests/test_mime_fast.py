"""The native MIME parser (#16) gives the records the standard library's parser gives.

``parse_message(raw, where, native=True)`` reads what it can with ``fast_mail_parser``
(:mod:`oppkit.sources.mime_fast`) and the rest with the standard library;
``native=False`` reads everything with the standard library, as before #16. Both must
give equal records on every message: CPython's email corpus, crafted messages of every
kind the holdout cases name (charsets, encoded words, 8-bit headers, folded headers,
broken MIME, HTML only, attachments, nested and attached messages), mail of the
benchmark's and the test agents' kind, and thousands of random mutations of them (lines
dropped, repeated, cut, upper-cased; delimiters, headers and bytes put in).
"""

from __future__ import annotations

import random
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from oppkit.sources import mime_fast
from oppkit.sources.mail import iter_mbox, parse_message
from tests.support import customer_emails

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "tests" / "data" / "email_corpus").glob("msg_*.txt"))
HEAD = b"From: Ann <ann@cust.example>\nTo: bob@northwind.example\nSubject: hello\nDate: Mon, 2 Mar 2026 09:30:00 +0000\nMessage-ID: <m1@cust.example>\nMIME-Version: 1.0\n"  # fmt: skip


def multipart(kind: str, *parts: bytes, boundary: str = "b1", head: bytes = HEAD) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\n" + part + b"\n" for part in parts)
    return (
        head
        + f'Content-Type: multipart/{kind}; boundary="{boundary}"\n\npreamble\n'.encode()
        + body
        + b"--"
        + boundary.encode()
        + b"--\nepilogue\n"
    )


PLAIN = b'Content-Type: text/plain; charset="utf-8"\n\nCould you send the quote by Friday?\n'
HTML = b'Content-Type: text/html; charset="utf-8"\n\n<p>Could you <b>send</b> it?</p>\n'
PDF = b'Content-Type: application/pdf; name="q.pdf"\nContent-Disposition: attachment; filename="q.pdf"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n'  # fmt: skip
CRAFTED = [
    HEAD + b"\nplain body\nOn Mon, Bob wrote:\n> old\n",
    HEAD + b"Content-Type: text/html\n\n<html><body><p>Hi</p><blockquote>old</blockquote></body></html>",
    HEAD + b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9 ol=\nd\n",
    HEAD + b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nQ291bGQgeW91IHNlbmQgaXQ/\n",
    HEAD + b"Content-Type: text/plain; charset=x-unknown\n\ncaf\xe9\n",
    HEAD + b"Content-Type: text/plain\n\nraw utf-8 caf\xc3\xa9 and cp1252 \x93quoted\x94\n",
    HEAD.replace(b"Subject: hello", b"Subject: =?utf-8?q?caf=C3=A9?= =?iso-8859-1?q?_na=EFve?=") + b"\nx",
    HEAD.replace(b"From: Ann", b"From: =?utf-8?q?M=C3=BCller=2C_Ann?=") + b"\nx",
    HEAD.replace(b"From: Ann", b"From: M\xc3\xbcller") + b"\nx",
    HEAD.replace(b"To: bob@northwind.example", b"To: bob@northwind.example,\n  Carl <carl@cust.example>,\n\tdan@cust.example") + b"\nx",
    HEAD.replace(b"Subject: hello", b"Subject: a long\n subject line") + b"\nx",
    HEAD + b"cc: one@cust.example\nCc: two@cust.example\nCC: three@cust.example\n\nx",
    HEAD + b"Received: from a by b; Mon, 2 Mar 2026 09:29:00 +0000\n\nx",
    HEAD.replace(b"\n", b"\r\n") + b"\r\nCRLF body\r\nline two\r\n",
    HEAD + b"Auto-Submitted: auto-replied\nContent-Type: text/plain\n\nI am away",
    HEAD + b"Content-Type: text\n\nno subtype",
    HEAD + b"Content-Type: garbage; charset=utf-8\n\nbad type",
    HEAD + b"X-Odd-Line\n\nnot a header line above",
    HEAD + b"Subject: bare\rCR\n\nx",
    b"From nobody Mon Mar  2 09:30:00 2026\n" + HEAD + b"\nunix from first",
    b" Continued: first\n" + HEAD + b"\nx",
    HEAD,  # no body, no blank line
    multipart("alternative", PLAIN, HTML),
    multipart("alternative", PLAIN, HTML).replace(b"\n", b"\r\n"),
    multipart("mixed", PLAIN, PDF),
    multipart("mixed", multipart("alternative", PLAIN, HTML, boundary="b2", head=b"")[:-10], PDF),
    multipart("mixed", PLAIN, b"Content-Type: message/rfc822\n\n" + HEAD + b"\ninner body"),
    multipart("digest", b"\n" + HEAD + b"\ndigest part"),
    multipart("report", PLAIN, b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\nAction: failed\n"),
    multipart("mixed", PLAIN, b"Content-Type: text/plain; name*=utf-8''r%C3%A9sum%C3%A9.txt\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt\n\ncv"),
    multipart("mixed", PLAIN, b'Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="=?utf-8?q?caf=C3=A9.bin?="\n\nxx'),
    multipart("mixed", PLAIN, b"Content-Type: application/octet-stream;\n\tname=\"folded.bin\"\n\nxx"),
    multipart("mixed", PLAIN, b"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n#86)C\n`\nend\n"),
    multipart("mixed", PLAIN, b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8*&^\n"),
    multipart("mixed", PLAIN, b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8\n"),
    multipart("mixed", b"Content-Type: text/plain\nno separator line\n\nbody"),
    multipart("mixed", PLAIN, b"\n--b1X not a delimiter\n"),
    multipart("mixed", PLAIN)[:-20],  # no close delimiter
    HEAD + b"Content-Type: multipart/mixed\n\n--b1\n\nno boundary parameter\n--b1--\n",
    HEAD + b'Content-Type: multipart/mixed; boundary="b1"\n\nno delimiter at all\n',
    HEAD + b'Content-Type: multipart/mixed; boundary="b1"\n\n--b1--\n--b1\n\nafter the close\n--b1--\n',
    multipart("mixed", multipart("alternative", PLAIN, boundary="b1", head=b"")),  # same boundary
    multipart("mixed", multipart("alternative", PLAIN, boundary="b12", head=b"")),  # prefix
]  # fmt: skip


def _benchmark_messages(n: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mail_ingest import generate_mbox

    path = Path(__import__("tempfile").mkdtemp()) / "m.mbox"
    generate_mbox(path, n)
    return [raw for _, _, _, raw in iter_mbox(path)]


def _stdlib_made() -> list[bytes]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Zoë <zoe@cust.example>", "a@b.example", "Grüße"
    msg.set_content("Hallo, könnten Sie das Angebot schicken?\n")
    msg.add_alternative("<p>Hallo</p>", subtype="html")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="Angebot ä.pdf")
    return [msg.as_bytes(), *customer_emails(20)]


def _mutated(raw: bytes, rng: random.Random) -> bytes:
    lines = raw.split(b"\n")
    at, roll = rng.randrange(len(lines)), rng.random()
    if roll < 0.2:
        del lines[at]
    elif roll < 0.35:
        lines.insert(at, lines[rng.randrange(len(lines))])
    elif roll < 0.45:
        return raw[: rng.randrange(len(raw) + 1)]
    elif roll < 0.55:
        lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
    elif roll < 0.7:
        lines.insert(at, rng.choice(INSERTS))
    elif roll < 0.8:
        lines[at] += b"\r"
    elif roll < 0.9:
        at = rng.randrange(len(raw) or 1)
        return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
    else:
        lines[at] = lines[at].upper()
    return b"\n".join(lines)


INSERTS = [
    b"--", b"-- ", b"--b1", b"--b1--", b"--b2", b"--b1 ", b"", b" folded", b"\tfolded",
    b"Content-Type: text/html", b"Content-Type: multipart/mixed; boundary=b1",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Subject: =?utf-8?q?x?=", b"\xc3\xa9", b"From x", b"cc: late@cust.example", b"X: \r y",
]  # fmt: skip


def _same(raw: bytes) -> None:
    native = parse_message(raw, "m", native=True)
    stdlib = parse_message(raw, "m", native=False)
    assert repr(native) == repr(stdlib), raw[:400]


@pytest.fixture(scope="module")
def benchmark_mail() -> list[bytes]:
    return _benchmark_messages(400)


def test_the_native_parser_is_installed_and_reads_plain_mail():
    """The fast path is really taken: a sync that silently fell back to the standard
    library everywhere would pass the equality tests and be as slow as before."""
    assert mime_fast.available()
    plain = [CRAFTED[0], multipart("alternative", PLAIN, HTML), *customer_emails(5)]
    assert all(mime_fast.read(raw) is not None for raw in plain)


def test_most_benchmark_mail_takes_the_fast_path(benchmark_mail: list[bytes]):
    taken = sum(mime_fast.read(raw) is not None for raw in benchmark_mail)
    assert taken == len(benchmark_mail)


@pytest.mark.parametrize("index", range(len(CRAFTED)))
def test_crafted_messages_read_the_same(index: int):
    _same(CRAFTED[index])


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_cpythons_email_corpus_reads_the_same(path: Path):
    _same(path.read_bytes())


def test_benchmark_and_test_agent_mail_reads_the_same(benchmark_mail: list[bytes]):
    for raw in benchmark_mail + _stdlib_made():
        _same(raw)


@pytest.mark.parametrize("seed", range(4))
def test_thousands_of_mutated_messages_read_the_same(seed: int, benchmark_mail: list[bytes]):
    rng = random.Random(seed)
    multiparts = [raw for raw in benchmark_mail if b"multipart/" in raw[:1000]][:60]
    bases = CRAFTED + [p.read_bytes() for p in CORPUS] + multiparts + _stdlib_made()
    for _ in range(2500):
        raw = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            raw = _mutated(raw, rng)
        _same(raw)
