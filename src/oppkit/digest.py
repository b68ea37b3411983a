"""Follower digests: one email per follower and period with what moved on their deals.

Why: people who follow a deal (a manager, a solutions engineer) want a short daily or
weekly summary — new activities, stage moves, new alerts — not a notebook. Followers are
``opportunity_people`` rows with ``kind='follower'`` and a ``digest_frequency``.

What a digest covers: the period that just ended (yesterday for daily, last Monday to
Monday for weekly, in UTC) — or, when an earlier digest was missed, everything since the
last one sent (at most 30 periods back). Only opportunities the follower may see count
(a private deal only for its owner and members). Nothing new: no email.

Sent once: ``digest_log`` holds a row per (person, frequency, period). A run records the
row, claims it (``sending``), sends, then marks it ``sent``; a re-run skips sent rows.
A failed send puts the row back to ``pending`` (the next run sends it); a run that died
mid-send leaves ``sending``, which another run takes over after ``STALE_CLAIM``. The
Message-ID is derived from (person, frequency, period), so the one window where a crash
can cause a resend (after the server accepted, before ``sent`` was written) produces the
same message id, which mail clients collapse.

Example::

    from oppkit.digest import build_digests, send_digests
    for message in build_digests(kit, "daily"):
        print(message.to, message.subject)
    send_digests(kit, "daily")        # SMTP: oppkit.toml [smtp], OPPKIT_SMTP_* (mailout)
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, or_, select, update

from .config import Settings, load_settings
from .db.engine import write_transaction
from .db.schema import activities, digest_log, opportunities, opportunity_people, people
from .db.upsert import insert_ignore, upsert
from .errors import ConfigError, SourceError
from .frames import alerts as alert_frame
from .frames import stage_history, timeline
from .identity import DomainRules, Resolver, normalise_email
from .mailout import Mailer, SmtpSettings  # SmtpSettings stays importable from here
from .redact import one_line
from .scope import NotFoundError, Scope, ScopeLike, scope_of, to_utc

FREQUENCIES = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
MAX_PERIODS_BACK = 30
STALE_CLAIM = timedelta(minutes=10)
MAX_ACTIVITIES = 50  # per opportunity in one digest; the rest is counted
INVITED = "invited by owner"  # the role of an outside follower the owner invited


@dataclass(frozen=True)
class Period:
    """The period a digest is for: ``[start, end)`` in UTC, with a stable key."""

    frequency: str
    key: str
    start: datetime
    end: datetime


def period_for(frequency: str, now: datetime | None = None) -> Period:
    """The last complete period before ``now``: yesterday, or last week (Monday to Monday).

    >>> period_for("weekly", datetime(2026, 3, 11, 8, tzinfo=UTC)).key
    '2026-W10'
    """
    if frequency not in FREQUENCIES:
        raise ConfigError(f"digest frequency must be daily or weekly, not {frequency!r}")
    now = to_utc(now or datetime.now(UTC))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if frequency == "daily":
        start = midnight - timedelta(days=1)
        return Period(frequency, start.date().isoformat(), start, midnight)
    end = midnight - timedelta(days=midnight.weekday())
    start = end - timedelta(weeks=1)
    year, week, _ = start.isocalendar()
    return Period(frequency, f"{year}-W{week:02d}", start, end)


@dataclass
class OpportunityNews:
    """What happened on one opportunity in the window (frames as the follower may see them)."""

    opportunity_id: int
    name: str
    stage: str | None
    activities: pd.DataFrame
    changes: pd.DataFrame
    alerts: pd.DataFrame

    @property
    def updates(self) -> int:
        return len(self.activities) + len(self.changes) + len(self.alerts)


@dataclass
class DigestMessage:
    """One follower's digest: who, which period, what, and the email text and HTML."""

    person_id: int
    to: str
    name: str | None
    period: Period
    since: datetime
    news: list[OpportunityNews] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str = ""

    @property
    def message_id(self) -> str:
        return f"<oppkit-digest.{self.period.frequency}.{self.period.key}.{self.person_id}@oppkit>"

    def as_email(self, sender: str) -> EmailMessage:
        """A multipart/alternative email (plain text and HTML)."""
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = formataddr((self.name or "", self.to))
        msg["Subject"] = self.subject
        msg["Message-ID"] = self.message_id
        msg["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        return msg


@dataclass
class DigestSummary:
    """What a run did; ``line()`` is what the CLI prints."""

    frequency: str
    period: str
    sent: int = 0
    already_sent: int = 0
    nothing_new: int = 0
    dry_run: bool = False
    messages: list[DigestMessage] = field(default_factory=list)

    def line(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        return (
            f"digest {self.frequency} {self.period}: {verb} {self.sent}, already sent "
            f"{self.already_sent}, nothing new for {self.nothing_new}"
        )


# --- following ---------------------------------------------------------------------


def _follow_key(opportunity_id: int, person_id: int) -> str:
    return f"follow:{opportunity_id}:{person_id}"


def _one_opportunity(scope: Scope, opportunity: Any) -> tuple[int, bool, int | None]:
    ids = scope.opportunity_ids(opportunity)
    if len(ids) != 1:
        raise NotFoundError(f"{opportunity!r} names {len(ids)} opportunities; give its id")
    with scope.engine.connect() as conn:
        row = conn.execute(
            select(opportunities.c.id, opportunities.c.is_private, opportunities.c.owner_id).where(
                opportunities.c.id == ids[0], scope.visible()
            )
        ).first()
    if row is None:
        raise NotFoundError(f"no opportunity matches {opportunity!r}")
    return row[0], bool(row[1]), row[2]


def follow(
    scope: ScopeLike,
    opportunity: Any,
    person_email: str,
    frequency: str = "daily",
    *,
    external: bool = False,
) -> None:
    """Make ``person_email`` a follower of ``opportunity`` with a daily or weekly digest.

    Following again changes the frequency. Someone (``connect(user=...)``) must be
    adding the follower, and may add only people who may see the deal: a private deal
    can be followed by its owner and members only (following never opens a deal to
    anyone). Digests carry internal notes and tasks, so they go to the company's own
    people; an outside address (a customer's) follows only when the deal's owner invites
    it explicitly with ``external=True``.

    >>> follow(kit, "Acme pilot", "ben.okafor@northwind.example", "weekly")
    """
    if frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be daily or weekly, not {frequency!r}")
    email = normalise_email(person_email)
    if not email:
        raise ValueError(f"not an email address: {person_email!r}")
    scope = scope_of(scope)
    if scope.user_id is None:
        raise PermissionError("adding a follower needs a user: connect(user=...)")
    opp_id, is_private, owner_id = _one_opportunity(scope, opportunity)
    rules = DomainRules(load_settings().internal_domains)
    with write_transaction(scope.engine) as conn:
        person = Resolver(rules).people_for_emails(conn, {email: None})[email]
        person_id = person.id
        if not person.is_internal and not (external and scope.user_id == owner_id):
            raise PermissionError(
                f"{email} is outside the company: digests carry internal notes, so only "
                "the deal's owner can invite an outside follower (external=True)"
            )
        if is_private and person_id != owner_id:
            member = conn.scalar(
                select(opportunity_people.c.id).where(
                    opportunity_people.c.opportunity_id == opp_id,
                    opportunity_people.c.person_id == person_id,
                    opportunity_people.c.kind == "member",
                    opportunity_people.c.is_deleted.is_(False),
                )
            )
            if member is None:
                raise PermissionError(
                    f"{email} is not a member of this private opportunity and cannot follow it"
                )
        row = {
            "opportunity_id": opp_id,
            "person_id": person_id,
            "kind": "follower",
            "role": None if person.is_internal else INVITED,
            "digest_frequency": frequency,
            "source": "local",
            "source_id": _follow_key(opp_id, person_id),
            "is_deleted": False,
        }
        upsert(
            conn,
            opportunity_people,
            [row],
            ["source", "source_id"],
            ["role", "digest_frequency", "is_deleted"],
        )


def unfollow(scope: ScopeLike, opportunity: Any, person_email: str) -> None:
    """Stop the digests of ``opportunity`` for ``person_email`` (no error if not following)."""
    email = normalise_email(person_email)
    scope = scope_of(scope)
    opp_id, _private, _owner = _one_opportunity(scope, opportunity)
    with write_transaction(scope.engine) as conn:
        person_id = conn.scalar(select(people.c.id).where(people.c.email == email))
        if person_id is None:
            return
        conn.execute(
            update(opportunity_people)
            .where(
                opportunity_people.c.opportunity_id == opp_id,
                opportunity_people.c.person_id == person_id,
                opportunity_people.c.kind == "follower",
            )
            .values(is_deleted=True)
        )


# --- building ------------------------------------------------------------------------


def _engine(kit_or_engine: ScopeLike | Engine) -> Engine:
    return kit_or_engine if isinstance(kit_or_engine, Engine) else scope_of(kit_or_engine).engine


def _followers(engine: Engine, frequency: str) -> dict[tuple[int, str, str | None], list[int]]:
    """(person id, email, name) -> opportunity ids they follow at this frequency."""
    stmt = (
        select(people.c.id, people.c.email, people.c.name, opportunity_people.c.opportunity_id)
        .select_from(
            opportunity_people.join(people, people.c.id == opportunity_people.c.person_id).join(
                opportunities, opportunities.c.id == opportunity_people.c.opportunity_id
            )
        )
        .where(
            opportunity_people.c.kind == "follower",
            opportunity_people.c.digest_frequency == frequency,
            # internal notes and tasks go to our own people, and to invited guests only
            or_(people.c.is_internal.is_(True), opportunity_people.c.role == INVITED),
            opportunity_people.c.is_deleted.is_(False),
            people.c.is_deleted.is_(False),
            people.c.email.is_not(None),
            opportunities.c.is_deleted.is_(False),
        )
        .order_by(people.c.email, opportunity_people.c.opportunity_id)
    )
    found: dict[tuple[int, str, str | None], list[int]] = defaultdict(list)
    with engine.connect() as conn:
        for pid, email, name, opp in conn.execute(stmt):
            found[(pid, email, name)].append(opp)
    return found


def _last_sent(engine: Engine, frequency: str) -> dict[int, datetime]:
    stmt = select(digest_log.c.person_id, digest_log.c.window_end).where(
        digest_log.c.frequency == frequency, digest_log.c.status == "sent"
    )
    last: dict[int, datetime] = {}
    with engine.connect() as conn:
        for pid, end in conn.execute(stmt):
            last[pid] = max(end, last.get(pid, end))
    return last


def _news(
    scope: Scope, opp_ids: list[int], since: datetime, until: datetime
) -> list[OpportunityNews]:
    """What the follower's scope (their privacy) shows on these deals in ``[since, until)``."""
    with scope.engine.connect() as conn:
        visible = conn.execute(
            select(opportunities.c.id, opportunities.c.name, opportunities.c.stage)
            .where(opportunities.c.id.in_(opp_ids), scope.visible())
            .order_by(opportunities.c.name)
        ).all()
    if not visible:
        return []
    ids = [row[0] for row in visible]
    feed = timeline(scope, opportunity=ids, since=since, until=until)
    feed = feed[~feed["is_auto"]].sort_values(["occurred_at", "id"])  # no bounces
    changes = stage_history(scope, opportunity=ids)
    changes = changes[(changes["changed_at"] >= since) & (changes["changed_at"] < until)]
    changes = changes.sort_values("changed_at")
    alerts = alert_frame(scope, opportunity=ids)
    alerts["raised_at"] = alerts["created_at"]
    with_activity = alerts["activity_id"].dropna().astype(int).tolist()
    if with_activity:
        with scope.engine.connect() as conn:
            when = dict(
                conn.execute(
                    select(activities.c.id, activities.c.occurred_at).where(
                        activities.c.id.in_(with_activity)
                    )
                ).all()
            )
        from_activity = pd.to_datetime(alerts["activity_id"].map(when), utc=True)
        alerts["raised_at"] = from_activity.fillna(alerts["created_at"])
    alerts = alerts[(alerts["raised_at"] >= since) & (alerts["raised_at"] < until)]
    news = []
    for opp_id, name, stage in visible:
        item = OpportunityNews(
            opportunity_id=opp_id,
            name=name,
            stage=stage,
            activities=feed[feed["opportunity_id"] == opp_id],
            changes=changes[changes["opportunity_id"] == opp_id],
            alerts=alerts[alerts["opportunity_id"] == opp_id].sort_values("raised_at"),
        )
        if item.updates:
            news.append(item)
    return news


def build_digests(
    kit_or_engine: ScopeLike | Engine, frequency: str, now: datetime | str | None = None
) -> list[DigestMessage]:
    """The digests due for ``frequency`` as of ``now`` (default: the clock), not sent.

    One message per follower with something new on a deal they follow and may see;
    messages already sent for this period are built again (``send_digests`` skips them).

    >>> [m.subject for m in build_digests(kit, "weekly", now="2026-03-09")]
    """
    engine = _engine(kit_or_engine)
    period = period_for(frequency, to_utc(now) if now is not None else None)
    last_sent = _last_sent(engine, frequency)
    length = FREQUENCIES[frequency]
    messages = []
    for (person_id, email, name), opp_ids in _followers(engine, frequency).items():
        since = period.start
        previous = last_sent.get(person_id)
        if previous is not None and previous < period.start:
            since = max(previous, period.end - MAX_PERIODS_BACK * length)
        news = _news(Scope(engine, user=email), opp_ids, since, period.end)
        if not news:
            continue
        message = DigestMessage(person_id, email, name, period, since, news)
        message.subject, message.text, message.html = render(message)
        messages.append(message)
    return messages


# --- rendering -----------------------------------------------------------------------


def _when(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _s(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _lines(item: OpportunityNews) -> dict[str, list[str]]:
    """Plain-text lines per section (the HTML escapes the same strings)."""
    changes = [
        f"{_s(r.field).replace('_', ' ').capitalize()}: {_s(r.old_value) or '—'} → "
        f"{_s(r.new_value) or '—'} ({_when(r.changed_at)}"
        + (f", {_s(r.changed_by)}" if _s(r.changed_by) else "")
        + ")"
        for r in item.changes.itertuples()
    ]
    alerts = [
        f"[{_s(r.kind)}] {_s(r.text)}"
        + (f" (due {pd.Timestamp(r.due_at):%Y-%m-%d})" if not pd.isna(r.due_at) else "")
        + (f" — {_s(r.status)}" if _s(r.status) != "open" else "")
        for r in item.alerts.itertuples()
    ]
    acts = item.activities
    shown = [
        f"{_when(r.occurred_at)} {_s(r.kind)}: {_s(r.subject) or '(no subject)'}"
        + (f" — {_s(r.sender_name) or _s(r.sender)}" if _s(r.sender) else "")
        + (f": {_s(r.snippet)[:160]}" if _s(r.snippet) else "")
        for r in acts.head(MAX_ACTIVITIES).itertuples()
    ]
    if len(acts) > MAX_ACTIVITIES:
        shown.append(f"… and {len(acts) - MAX_ACTIVITIES} more")
    return {"Stage and deal changes": changes, "New alerts": alerts, "Activities": shown}


def render(message: DigestMessage) -> tuple[str, str, str]:
    """(subject, plain text, HTML). Every string from mail or Salesforce is escaped in HTML."""
    p = message.period
    updates = sum(item.updates for item in message.news)
    n = len(message.news)
    subject = (
        f"oppkit {p.frequency} digest {p.key}: {updates} update{'s' * (updates != 1)} on "
        f"{n} opportunit{'ies' if n != 1 else 'y'}"
    )
    window = f"{_when(message.since)} – {_when(p.end)} UTC"
    hello = f"Hello {message.name or message.to},"
    intro = f"What happened on the opportunities you follow, {window}."
    text = [hello, "", intro, ""]
    parts = [
        '<!DOCTYPE html><html><body style="font-family:sans-serif;font-size:14px">',
        f"<p>{html.escape(hello)}</p><p>{html.escape(intro)}</p>",
    ]
    for item in message.news:
        title = item.name + (f" ({item.stage})" if item.stage else "")
        text += [title, "=" * min(len(title), 72)]
        parts.append(f'<h2 style="font-size:16px">{html.escape(title)}</h2>')
        for section, lines in _lines(item).items():
            if not lines:
                continue
            text += [f"{section}:"] + [f"  - {line}" for line in lines] + [""]
            parts.append(f'<h3 style="font-size:14px">{html.escape(section)}</h3><ul>')
            parts += [f"<li>{html.escape(line)}</li>" for line in lines]
            parts.append("</ul>")
    footer = "You get this because you follow these opportunities in oppkit."
    text += ["--", footer]
    parts.append(f'<p style="color:#666;font-size:12px">{html.escape(footer)}</p></body></html>')
    return subject, "\n".join(text) + "\n", "\n".join(parts) + "\n"


# --- sending -------------------------------------------------------------------------


def _claim(engine: Engine, message: DigestMessage) -> bool:
    """Record the digest and take it for sending; False when sent or taken by another run."""
    p, clock = message.period, datetime.now(UTC)
    key = and_(
        digest_log.c.person_id == message.person_id,
        digest_log.c.frequency == p.frequency,
        digest_log.c.period == p.key,
    )
    with write_transaction(engine) as conn:
        insert_ignore(
            conn,
            digest_log,
            [
                {
                    "person_id": message.person_id, "frequency": p.frequency, "period": p.key,
                    "status": "pending", "window_start": message.since, "window_end": p.end,
                    "message_id": message.message_id, "attempts": 0, "created_at": clock,
                }
            ],
        )  # fmt: skip
        taken = conn.execute(
            update(digest_log)
            .where(
                key,
                (digest_log.c.status == "pending")
                | (
                    (digest_log.c.status == "sending")
                    & (digest_log.c.claimed_at < clock - STALE_CLAIM)
                ),
            )
            .values(
                status="sending",
                claimed_at=clock,
                attempts=digest_log.c.attempts + 1,
                window_start=message.since,
            )
        )
        return taken.rowcount == 1


def _finish(engine: Engine, message: DigestMessage, error: str | None = None) -> None:
    p = message.period
    with write_transaction(engine) as conn:
        conn.execute(
            update(digest_log)
            .where(
                digest_log.c.person_id == message.person_id,
                digest_log.c.frequency == p.frequency,
                digest_log.c.period == p.key,
            )
            .values(
                status="pending" if error else "sent",
                sent_at=None if error else datetime.now(UTC),
                last_error=None if error is None else one_line(error),
            )
        )


def send_digests(
    kit_or_engine: ScopeLike | Engine,
    frequency: str,
    now: datetime | str | None = None,
    *,
    smtp: SmtpSettings | None = None,
    settings: Settings | None = None,
    dry_run: bool = False,
) -> DigestSummary:
    """Build and send the due digests; each (follower, period) is sent once.

    Raises :class:`~oppkit.errors.SourceError` when the SMTP server fails (what was
    sent stays sent; the rest goes out on the next run).

    >>> send_digests(kit, "daily").line()
    'digest daily 2026-03-03: sent 4, already sent 0, nothing new for 1'
    """
    engine = _engine(kit_or_engine)
    period = period_for(frequency, to_utc(now) if now is not None else None)
    messages = build_digests(engine, frequency, now)
    followers = len(_followers(engine, frequency))
    summary = DigestSummary(frequency, period.key, dry_run=dry_run, messages=messages)
    summary.nothing_new = followers - len(messages)
    if dry_run:
        summary.sent = len(messages)
        return summary
    if not messages:
        return summary
    smtp = smtp or SmtpSettings.from_settings(settings)
    if not smtp.host or not smtp.sender:
        raise ConfigError("sending digests needs OPPKIT_SMTP_HOST and OPPKIT_SMTP_FROM")
    with Mailer(smtp) as mailer:
        for message in messages:
            if not _claim(engine, message):
                summary.already_sent += 1
                continue
            try:
                mailer.send(message.as_email(smtp.sender))
            except SourceError as exc:
                _finish(engine, message, error=str(exc))
                raise
            _finish(engine, message)
            summary.sent += 1
    return summary
