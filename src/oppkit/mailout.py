"""Mail out over SMTP: one settings object, one sender; digests and workflow emails use it.

Why one module: every email oppkit sends (follower digests, workflow communications,
interaction results) must agree on where the server is, whether it speaks STARTTLS,
which CA to trust and who logs in. The settings are read here and nowhere else.

Settings: ``[smtp]`` in oppkit.toml (``host``, ``port``, ``from``, ``user``,
``starttls``, ``ca_file``), each overridden by ``OPPKIT_SMTP_HOST``, ``_PORT``,
``_FROM``, ``_USER``, ``_STARTTLS``, ``_CA_FILE``. The password only ever comes from
``OPPKIT_SMTP_PASSWORD``; it is never read from the file, stored or shown. Defaults: port
587 with STARTTLS; ``starttls = false`` (``OPPKIT_SMTP_STARTTLS=0``) without a port
means port 25. ``ca_file`` is the CA trusted for the server's certificate under STARTTLS.

The :class:`Mailer` opens the connection on the first message and reuses it for the rest
of a run; SMTP and network failures become one-line
:class:`~oppkit.errors.SourceError` messages ("SMTP server host:port failed: ...").

Example::

    from oppkit.mailout import Mailer, SmtpSettings

    smtp = SmtpSettings.from_settings()          # oppkit.toml [smtp] + OPPKIT_SMTP_*
    with Mailer(smtp) as mailer:
        for message in messages:                 # email.message.EmailMessage
            mailer.send(message)
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from .config import Settings, env_setting, load_settings
from .errors import ConfigError, SourceError

SUBMISSION_PORT = 587  # with STARTTLS
PLAIN_PORT = 25  # without
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail. ``password`` is left out of ``repr`` and ``str``.

    >>> SmtpSettings(host="mail.northwind.example", sender="crm@northwind.example").port
    587
    """

    host: str | None = None
    port: int = SUBMISSION_PORT
    sender: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    ca_file: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SmtpSettings:
        """Read ``[smtp]`` from ``settings`` (default: :func:`~oppkit.config.load_settings`)
        and ``OPPKIT_SMTP_*`` from the environment, which wins; the password from the
        environment only.

        >>> SmtpSettings.from_settings(load_settings())
        SmtpSettings(host='mail.northwind.example', port=587, sender=..., starttls=True, ...)
        """
        settings = settings or load_settings()
        table = (settings.extra or {}).get("smtp") or {}
        if not isinstance(table, dict):
            raise ConfigError(f"{settings.config_path}: [smtp] must be a table")

        def setting(name: str) -> Any:  # noqa: ANN401 - TOML values or environment text
            value = env_setting(f"SMTP_{name.upper()}")
            return value if value not in (None, "") else table.get(name)

        starttls = _flag(setting("starttls"), default=True)
        return cls(
            host=setting("host") or None,
            port=_port(setting("port"), default=SUBMISSION_PORT if starttls else PLAIN_PORT),
            sender=setting("from") or None,
            user=setting("user") or None,
            password=env_setting("SMTP_PASSWORD"),
            starttls=starttls,
            ca_file=setting("ca_file") or None,
        )

    @property
    def address(self) -> str:
        """``host:port``, as error messages name the server."""
        return f"{self.host}:{self.port}"


def _flag(value: Any, *, default: bool) -> bool:  # noqa: ANN401
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _YES or text in _NO:
        return text in _YES
    raise ConfigError(f"SMTP starttls must be true or false, not {value!r}")


def _port(value: Any, *, default: int) -> int:  # noqa: ANN401
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"SMTP port is not a number: {value!r}") from exc


def _one_line(exc: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused`` — the first line only."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Mailer:
    """One SMTP connection for a run: opened on the first message, reused, closed at exit.

    A failed send closes the connection (the next send opens a new one) and raises
    :class:`~oppkit.errors.SourceError`; no server configured is a
    :class:`~oppkit.errors.ConfigError`.

    >>> with Mailer(SmtpSettings.from_settings()) as mailer:
    ...     mailer.send(message)
    """

    def __init__(self, smtp: SmtpSettings) -> None:
        self.smtp = smtp
        self._server: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, message: EmailMessage) -> None:
        """Send ``message`` (its own From, To and Subject headers) over the run's connection."""
        if not self.smtp.host:
            raise ConfigError("no SMTP server configured (set OPPKIT_SMTP_HOST)")
        try:
            if self._server is None:
                self._server = self._connect()
            self._server.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SourceError(f"SMTP server {self.smtp.address} failed: {_one_line(exc)}") from exc

    def _connect(self) -> smtplib.SMTP:
        smtp = self.smtp
        server = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        try:
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context(cafile=smtp.ca_file))
            if smtp.password is not None:
                server.login(smtp.user or smtp.sender or "", smtp.password)
        except BaseException:
            server.close()
            raise
        return server

    def close(self) -> None:
        """Say goodbye to the server, if connected; safe to call more than once."""
        server, self._server = self._server, None
        if server is not None:
            try:
                server.quit()
            except (smtplib.SMTPException, OSError):
                server.close()
