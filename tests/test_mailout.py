"""The one mail-out module against a real SMTP server (aiosmtpd): settings from oppkit.toml
[smtp] and OPPKIT_SMTP_*, STARTTLS on 587 by default, a CA file, one connection per run,
one-line errors, and a password that never shows."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from oppkit.config import Settings, load_settings
from oppkit.errors import ConfigError, SourceError
from oppkit.mailout import Mailer, SmtpSettings
from tests.servers.net import free_port
from tests.servers.smtp import Inbox

NAMES = ("HOST", "PORT", "FROM", "USER", "PASSWORD", "STARTTLS", "CA_FILE")


class Sessions(Inbox):
    """An Inbox that also notes each message's connection (peer) and whether it was TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[tuple[str, int]] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        self.peers.append(session.peer)
        self.tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(autouse=True)
def _no_smtp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(f"OPPKIT_SMTP_{name}", raising=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


def serve(**options) -> Iterator[tuple[Sessions, int]]:  # noqa: ANN003
    sessions = Sessions()
    controller = Controller(sessions, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield sessions, controller.port
    finally:
        controller.stop()


@pytest.fixture
def tls_server(ca: tuple[trustme.CA, Path]) -> Iterator[tuple[Sessions, int]]:
    """A server that requires STARTTLS with a certificate signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    yield from serve(tls_context=context, require_starttls=True)


@pytest.fixture
def plain_server() -> Iterator[tuple[Sessions, int]]:
    yield from serve()


def mail(to: str, subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "crm@northwind.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hi.")
    return message


def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Settings:
    path = tmp_path / "oppkit.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("OPPKIT_CONFIG", str(path))
    return load_settings()


def test_defaults_from_an_empty_config_are_587_with_starttls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert SmtpSettings.from_settings(Settings()) == SmtpSettings(
        host=None, port=587, sender=None, user=None, password=None, starttls=True, ca_file=None
    )
    assert SmtpSettings.from_settings(toml(tmp_path, monkeypatch, "")).port == 587
    no_tls = SmtpSettings.from_settings(toml(tmp_path, monkeypatch, "[smtp]\nstarttls = false\n"))
    assert (no_tls.port, no_tls.starttls) == (25, False)
    monkeypatch.setenv("OPPKIT_SMTP_STARTTLS", "0")
    assert SmtpSettings.from_settings(Settings()).port == 25
    monkeypatch.setenv("OPPKIT_SMTP_PORT", "2525")
    assert SmtpSettings.from_settings(Settings()).port == 2525


def test_the_environment_overrides_oppkit_toml_smtp_and_the_password_comes_from_env_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = toml(
        tmp_path,
        monkeypatch,
        '[smtp]\nhost = "mail.northwind.example"\nport = 465\nfrom = "crm@northwind.example"\n'
        'user = "crm"\nstarttls = false\nca_file = "/etc/file-ca.pem"\npassword = "not here"\n',
    )
    assert SmtpSettings.from_settings(settings) == SmtpSettings(
        host="mail.northwind.example", port=465, sender="crm@northwind.example", user="crm",
        starttls=False, ca_file="/etc/file-ca.pem",
    )  # fmt: skip
    env = {"HOST": "relay.example", "PORT": "2587", "FROM": "digest@northwind.example",
           "USER": "digest", "STARTTLS": "yes", "CA_FILE": "/etc/env-ca.pem", "PASSWORD": "pw"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(f"OPPKIT_SMTP_{name}", value)
    assert SmtpSettings.from_settings(settings) == SmtpSettings(
        host="relay.example", port=2587, sender="digest@northwind.example", user="digest",
        password="pw", starttls=True, ca_file="/etc/env-ca.pem",
    )  # fmt: skip


def test_bad_values_are_configuration_errors(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPPKIT_SMTP_PORT", "smtp")
    with pytest.raises(ConfigError, match="SMTP port is not a number: 'smtp'"):
        SmtpSettings.from_settings(Settings())
    monkeypatch.delenv("OPPKIT_SMTP_PORT")
    monkeypatch.setenv("OPPKIT_SMTP_STARTTLS", "maybe")
    with pytest.raises(ConfigError, match="starttls must be true or false"):
        SmtpSettings.from_settings(Settings())
    with pytest.raises(ConfigError, match=r"\[smtp\] must be a table"):
        SmtpSettings.from_settings(Settings(extra={"smtp": "mail.example"}))
    with pytest.raises(ConfigError, match="no SMTP server configured"), Mailer(SmtpSettings()) as m:
        m.send(mail("ava.patel@northwind.example"))


def test_starttls_by_default_trusting_the_ca_file_and_a_clear_line_without_it(
    tls_server: tuple[Sessions, int], ca: tuple[trustme.CA, Path], monkeypatch: pytest.MonkeyPatch
):
    sessions, port = tls_server
    monkeypatch.setenv("OPPKIT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(port))
    with Mailer(SmtpSettings.from_settings(Settings())) as mailer:  # no CA: not trusted
        with pytest.raises(SourceError) as failed:
            mailer.send(mail("ava.patel@northwind.example"))
    line = str(failed.value)
    assert line.startswith(f"SMTP server 127.0.0.1:{port} failed: SSLCertVerificationError: ")
    assert "\n" not in line
    assert sessions.received == []

    monkeypatch.setenv("OPPKIT_SMTP_CA_FILE", str(ca[1]))
    with Mailer(SmtpSettings.from_settings(Settings())) as mailer:
        mailer.send(mail("ava.patel@northwind.example"))
    assert [rcpt for rcpt, _ in sessions.received] == [["ava.patel@northwind.example"]]
    assert sessions.tls == [True]


def test_one_connection_is_reused_for_a_run(plain_server: tuple[Sessions, int]):
    sessions, port = plain_server
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False)
    with Mailer(smtp) as mailer:
        for n in range(3):
            mailer.send(mail(f"person{n}@northwind.example", f"Message {n}"))
    with Mailer(smtp) as mailer:  # the next run connects again
        mailer.send(mail("ava.patel@northwind.example"))
    assert [m["Subject"] for _, m in sessions.received] == [
        "Message 0", "Message 1", "Message 2", "Hello",
    ]  # fmt: skip
    first, second = sessions.peers[:3], sessions.peers[3]
    assert len(set(first)) == 1 and second not in first
    assert sessions.tls == [False] * 4


def test_a_plain_server_without_starttls_turned_off_fails_in_one_line(
    plain_server: tuple[Sessions, int],
):
    sessions, port = plain_server
    with pytest.raises(SourceError) as failed, Mailer(SmtpSettings("127.0.0.1", port)) as mailer:
        mailer.send(mail("ava.patel@northwind.example"))
    assert str(failed.value) == (
        f"SMTP server 127.0.0.1:{port} failed: "
        "SMTPNotSupportedError: STARTTLS extension not supported by server."
    )
    assert sessions.received == []


def test_the_password_never_shows(
    tls_server: tuple[Sessions, int], ca: tuple[trustme.CA, Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPPKIT_SMTP_PASSWORD", "s3cret-pw")
    smtp = SmtpSettings.from_settings(Settings())
    assert smtp.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(smtp) and "s3cret-pw" not in str(smtp)
    _, port = tls_server  # accepts no login at all: the error names the server, not the password
    with pytest.raises(SourceError) as failed:
        with Mailer(SmtpSettings("127.0.0.1", port, "crm@northwind.example", password="s3cret-pw",
                                 ca_file=str(ca[1]))) as mailer:  # fmt: skip
            mailer.send(mail("ava.patel@northwind.example"))
    assert str(failed.value).startswith(f"SMTP server 127.0.0.1:{port} failed: ")
    assert "s3cret-pw" not in str(failed.value)
