"""oppkit.redact: no secret in what oppkit prints, logs or stores (the end-to-end checks
are in test_salesforce_sync.py, test_write_back.py and test_exchange_sync.py)."""

from __future__ import annotations

import base64
import io
import logging

import pytest

from oppkit.redact import MASK, RedactingFilter, error_line, one_line, redact, remember

SESSION = "00D5g000004XyZa!AQ4AQFZ.Kq9rT_ab3-xyz"


@pytest.mark.parametrize(("text", "secret"), [
    (f"request headers: Authorization: Bearer {SESSION}; Accept: */*", SESSION),
    ("{'Authorization': 'Basic c3ZjOnNlY3JldA==', 'X': 'y'}", "c3ZjOnNlY3JldA=="),
    ("Authorization=OAuth tok3n.value", "tok3n.value"),
    (f"Cookie: sid={SESSION[:20]}; lang=en", SESSION[:20]),
    ("https://bob:hunter22@proxy.example:3128", "hunter22"),
    ("<n1:password>pw-1234</n1:password>", "pw-1234"),
    ('{"access_token": "eyJhbGciOi.xyz", "instance_url": "https://x"}', "eyJhbGciOi.xyz"),
    (f"INVALID_SESSION_ID: session {SESSION} expired", SESSION),
    ("token endpoint said: Bearer abc123def456", "abc123def456"),
])  # fmt: skip
def test_secret_shapes_are_masked(text, secret):
    masked = redact(text)
    assert secret not in masked and MASK in masked


@pytest.mark.parametrize("text", [
    "INVALID_SESSION_ID: Session expired or invalid",
    "Basic authentication failed; OAuth settings are missing",
    "Exchange refused the login of svc (wrong user or password)",
    "Salesforce answered 400 (MALFORMED_QUERY: unexpected token: 'FORM')",
])  # fmt: skip
def test_ordinary_words_stay(text):
    assert redact(text) == text


def test_secret_environment_values_and_remembered_ones_are_masked(monkeypatch):
    monkeypatch.setenv("OPPKIT_IMAP_PASSWORD", "imap-pw-42")
    monkeypatch.setenv("OPPKIT_SF_CONSUMER_SECRET", "consumer-secret-7")
    monkeypatch.setenv("OPPKIT_SF_PRIVATE_KEY_FILE", "/home/ava/key.pem")  # a path, not a secret
    monkeypatch.setenv("OPPKIT_EWS_USER", "svc-account")  # not a secret
    remember("handed-over-99", None, "")
    text = "imap-pw-42 consumer-secret-7 /home/ava/key.pem svc-account handed-over-99"
    assert redact(text) == f"{MASK} {MASK} /home/ava/key.pem svc-account {MASK}"


def test_one_line_is_printable_and_bounded():
    line = one_line("first\nsecond\r\n\tthird\x1b[31m" + "x" * 500)
    assert line.startswith("first second third?xxx") and line.isprintable()
    assert len(line) == 300 and line.endswith("…")
    assert error_line(KeyError()) == "KeyError"


def test_the_log_filter_masks_messages_arguments_and_tracebacks(monkeypatch):
    monkeypatch.setenv("OPPKIT_EWS_PASSWORD", "Sup3r-s3cret!")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        basic = base64.b64encode(b"svc:Sup3r-s3cret!").decode()
        logger.warning("Request headers: %(h)s", {"h": {"Authorization": f"Basic {basic}"}})
        try:
            raise RuntimeError("login with Sup3r-s3cret! failed")
        except RuntimeError:
            logger.exception("failed for %s", "Sup3r-s3cret!")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "Sup3r-s3cret!" not in out and basic not in out
    assert "Authorization': 'Basic ***'" in out and "RuntimeError: login with *** failed" in out
