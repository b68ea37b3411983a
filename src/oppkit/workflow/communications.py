"""Communication triggers: emails (SMTP) and SMS queued by a transition, sent after commit.

Why an outbox: a message must never go out for a transition that was rolled back, and a
mail server that is down must not undo a transition. So a transition renders its
messages into ``outbox`` rows inside its transaction; after the commit
:func:`deliver` sends them with retries (tenacity) and records the outcome on each row
(status sent/failed, attempts, sent_at, last_error). ``kit.workflow.deliver()`` or
``oppkit workflow deliver`` retries what failed.

Templates are ``str.format`` style with plain names only (``{name}``, ``{amount:,.0f}``,
``{contact_email}``; see :func:`oppkit.workflow.engine.opportunity_values`). In ``html``
templates every value is HTML-escaped; a placeholder without a value renders empty, and
a message whose recipient renders empty is skipped.

Email goes through :mod:`oppkit.mailout` (``[smtp]`` in oppkit.toml, ``OPPKIT_SMTP_*``
overriding it, the password only from ``OPPKIT_SMTP_PASSWORD``; port 587 with STARTTLS
unless told otherwise), one connection per :func:`deliver` run. SMS (or another email
route) plugs in by channel::

    from oppkit.workflow import register_sender

    @register_sender("sms")
    def send_sms(message):           # an OutboxMessage; raise to fail (and be retried)
        my_gateway.send(message.recipient, message.body)
"""

from __future__ import annotations

import html as html_lib
import mimetypes
import string
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from tenacity import Retrying, stop_after_attempt, wait_exponential

from ..config import Settings
from ..db.engine import write_transaction
from ..db.schema import activities, activity_people, outbox, people
from ..identity import normalise_email
from ..mailout import Mailer, SmtpSettings
from ..matching import SOURCE_LINK
from ..redact import one_line
from .model import Communication

_formatter = string.Formatter()


@dataclass(frozen=True)
class OutboxMessage:
    """One queued message as a sender receives it."""

    id: int
    channel: str
    recipient: str
    subject: str | None
    body: str
    html: str | None
    attachments: tuple[str, ...] = ()  # files to attach (paths), e.g. an interaction's


Sender = Callable[[OutboxMessage], None]
_SENDERS: dict[str, Sender] = {}


def register_sender(channel: str) -> Callable[[Sender], Sender]:
    """Decorator: send messages of ``channel`` (``sms``, or ``email`` to replace SMTP)."""

    def decorate(fn: Sender) -> Sender:
        _SENDERS[channel] = fn
        return fn

    return decorate


def unregister_sender(channel: str) -> None:
    _SENDERS.pop(channel, None)


def template_problem(template: str) -> str | None:
    """Why ``template`` is not a usable template, or None."""
    try:
        fields = [f for _, f, _, _ in _formatter.parse(template) if f is not None]
    except ValueError as exc:
        return str(exc)
    for name in fields:
        if not name.isidentifier():
            return f"placeholder {{{name}}} is not a plain name"
    return None


def render(template: str, values: dict[str, Any], *, escape: bool = False) -> str:
    """Fill ``template`` from ``values``; with ``escape`` every value is HTML-escaped."""
    out = []
    for literal, name, spec, conversion in _formatter.parse(template):
        out.append(literal)
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain name")
        value = values.get(name)
        if value is None:
            text = ""
        else:
            if conversion == "r":
                value = repr(value)
            try:
                text = format(value, spec or "")
            except (TypeError, ValueError):
                text = str(value)
        out.append(html_lib.escape(text) if escape else text)
    return "".join(out)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def record_outbound(
    conn: Connection, *, channel: str, recipient: str, subject: str | None, body: str,
    opportunity_id: int | None = None, account_id: int | None = None,
    campaign_id: int | None = None, sender_id: int | None = None, when: datetime | None = None,
    attachments: Iterable[str] = (),
) -> int:  # fmt: skip
    """The activity on the timeline that stands for one message oppkit sends: kind
    ``email`` or ``sms``, status ``queued`` until :func:`deliver` marks it sent or failed;
    outbound, or internal when it goes to a colleague. Its id (the outbox row's
    ``activity_id``). ``attachments`` are files (paths) the email carries: the activity
    lists them (name, content type, size, path) and :func:`deliver` attaches them."""
    person = None
    if channel == "email":
        person = conn.execute(
            select(people.c.id, people.c.account_id, people.c.is_internal).where(
                people.c.email == (normalise_email(recipient) or "")
            )
        ).first()
    if account_id is None and person is not None and not person.is_internal:
        account_id = person.account_id
    activity_id = conn.execute(
        insert(activities)
        .values(
            kind=channel if channel in ("email", "sms") else "email",
            subject=subject,
            snippet=_one_line(body)[:300],
            occurred_at=when or datetime.now(UTC),
            direction="internal" if person is not None and person.is_internal else "outbound",
            account_id=account_id,
            opportunity_id=opportunity_id,
            opportunity_link=SOURCE_LINK if opportunity_id is not None else None,
            campaign_id=campaign_id,
            sender_id=sender_id,
            status="queued",
            attachments=[_attachment(path) for path in attachments] or None,
            source="oppkit",
            source_id=f"message:{uuid.uuid4().hex}",
        )  # fmt: skip
        .returning(activities.c.id)
    ).scalar_one()
    if person is not None:
        conn.execute(
            insert(activity_people).values(activity_id=activity_id, person_id=person.id, role="to")
        )
    return activity_id


def _attachment(path: str) -> dict[str, Any]:
    file = Path(path)
    kind, _ = mimetypes.guess_type(file.name)
    return {"name": file.name, "content_type": kind or "application/octet-stream",
            "size": file.stat().st_size, "path": str(file.resolve())}  # fmt: skip


def queue(
    conn: Connection,
    values: dict[str, Any],
    transition: str,
    communications: Iterable[Communication],
    *,
    sender_id: int | None = None,
) -> list[int]:
    """Render ``communications`` from the opportunity's ``values`` into pending outbox rows,
    each with its outbound activity on the deal's timeline (:func:`record_outbound`)."""
    ids = []
    for c in communications:
        recipient = _one_line(render(c.to, values))
        if not recipient:
            continue
        subject = _one_line(render(c.subject, values)) if c.subject else None
        body = render(c.body, values)
        activity_id = record_outbound(
            conn, channel=c.channel, recipient=recipient, subject=subject, body=body,
            opportunity_id=values.get("id"), account_id=values.get("account_id"),
            sender_id=sender_id,
        )  # fmt: skip
        row = {
            "opportunity_id": values.get("id"),
            "transition": transition,
            "channel": c.channel,
            "recipient": recipient,
            "subject": subject,
            "body": body,
            "html": render(c.html, values, escape=True) if c.html else None,
            "status": "pending",
            "attempts": 0,
            "created_at": datetime.now(UTC),
            "activity_id": activity_id,
        }
        ids.append(conn.execute(insert(outbox).values(**row).returning(outbox.c.id)).scalar_one())
    return ids


def smtp_sender(mailer: Mailer) -> Sender:
    """A sender for the ``email`` channel: each message as an email through ``mailer``."""

    def send(message: OutboxMessage) -> None:
        mail = EmailMessage()
        mail["From"] = mailer.smtp.sender or "oppkit@localhost"
        mail["To"] = message.recipient
        mail["Subject"] = message.subject or ""
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain="oppkit.local")
        mail.set_content(message.body)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        for path in message.attachments:
            file = Path(path)
            kind, _ = mimetypes.guess_type(file.name)
            maintype, subtype = (kind or "application/octet-stream").split("/", 1)
            mail.add_attachment(
                file.read_bytes(), maintype=maintype, subtype=subtype, filename=file.name
            )
        mailer.send(mail)

    return send


def _attached_files(conn: Connection, activity_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Outbound activity id -> the files its message carries (attachments with a path)."""
    found = {}
    for start in range(0, len(activity_ids), 500):
        for activity_id, attached in conn.execute(
            select(activities.c.id, activities.c.attachments).where(
                activities.c.id.in_(activity_ids[start : start + 500]),
                activities.c.attachments.is_not(None),
            )
        ):
            paths = tuple(
                a["path"] for a in attached or () if isinstance(a, dict) and a.get("path")
            )
            if paths:
                found[activity_id] = paths
    return found


def deliver(
    engine: Engine,
    ids: Iterable[int] | None = None,
    *,
    settings: Settings | None = None,
    attempts: int = 3,
    wait_seconds: float = 0.2,
) -> list[dict[str, Any]]:
    """Send pending (and failed) outbox rows, each up to ``attempts`` times; record outcomes.

    Returns one dict per row tried: id, channel, recipient, status, attempts, last_error.

    >>> deliver(kit.engine)            # everything pending or failed
    """
    stmt = select(outbox).where(outbox.c.status.in_(("pending", "failed"))).order_by(outbox.c.id)
    if ids is not None:
        stmt = stmt.where(outbox.c.id.in_(list(ids)))
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
        files = _attached_files(conn, [r["activity_id"] for r in rows if r["activity_id"]])
    senders: dict[str, Sender] = {}
    with ExitStack() as run:  # the email channel keeps one SMTP connection for the run
        results = []
        for row in rows:
            channel = row["channel"]
            if channel not in senders:
                if channel in _SENDERS:
                    senders[channel] = _SENDERS[channel]
                elif channel == "email":
                    smtp = SmtpSettings.from_settings(settings)
                    senders[channel] = smtp_sender(run.enter_context(Mailer(smtp)))
            message = OutboxMessage(
                row["id"], channel, row["recipient"], row["subject"], row["body"], row["html"],
                files.get(row["activity_id"], ()),
            )  # fmt: skip
            tried, error = 0, None
            sender = senders.get(channel)
            if sender is None:
                error = f"no sender registered for channel {channel!r}"
            else:
                try:
                    for attempt in Retrying(
                        stop=stop_after_attempt(max(1, attempts)),
                        wait=wait_exponential(multiplier=wait_seconds, max=10 * wait_seconds),
                        reraise=True,
                    ):
                        with attempt:
                            tried += 1
                            sender(message)
                except Exception as exc:  # noqa: BLE001 - recorded on the row, not raised
                    error = one_line(f"{type(exc).__name__}: {exc}")
            values = {
                "attempts": row["attempts"] + tried,
                "status": "failed" if error else "sent",
                "last_error": error,
                "sent_at": None if error else datetime.now(UTC),
            }
            with write_transaction(engine) as conn:
                conn.execute(update(outbox).where(outbox.c.id == row["id"]).values(**values))
                if row["activity_id"] is not None:  # its outbound activity on the timeline
                    conn.execute(
                        update(activities)
                        .where(activities.c.id == row["activity_id"])
                        .values(status=values["status"])
                    )
            results.append(
                {"id": row["id"], "channel": channel, "recipient": row["recipient"], **values}
            )
    return results
