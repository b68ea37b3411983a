"""Which deal an activity belongs to, when its source does not say: matching and re-matching.

Why shared (not in ``oppkit.sync``): a sync matches what it writes, but deals, members and
windows also change in oppkit itself (``oppkit.actions.add_member``, a workflow
transition that closes a deal), and the activities they affect must follow.

The rule, for an activity of account A at time t with participants P:

1. **The source's own link wins.** A Salesforce Task/Event's WhatId (a record's
   ``opportunity_ref``) or a note written on a deal is kept as it is
   (``activities.opportunity_link = 'source'``) and never matched again; so is the
   deal a person chose (``'person'``, :func:`oppkit.actions.link_activity`, from the
   choices :func:`possible_deals` offers where step 3 to 5 leave several).
2. **Only deals live at t count**: every deal of A, open or closed (privacy plays no
   part), from its creation (``created_at``, Salesforce's CreatedDate; unknown: since
   ever) to its close plus a grace period. The close is the time the deal entered a
   won/lost/archived stage (``stage_history``), else the end of its close date, else
   unknown (the deal stays a candidate: a doubt, never a reason to link). Open deals are
   live until now. Grace: :func:`grace_period`, 14 days by default
   (``[matching] grace_days`` in oppkit.toml, ``OPPKIT_MATCH_GRACE_DAYS`` wins).
3. **Their contacts decide**: the members (``opportunity_people``, kind ``member``, not
   deleted; contact roles are members) who are not internal. If exactly one live deal has
   a contact in P, it is that deal. If several have, the contacts in P who are on only
   one of them decide, when they all point at the same deal (the decision maker of one
   deal writes, with a colleague on both in copy); when there are none (only people on
   both took part), our own people break the tie if exactly one of those deals has an
   internal member in P; else the account only.
4. **No live deal's contact took part**:

   * if someone in P is a contact of a deal of A that is *not* live at t (an earlier,
     lost deal; a later one), the activity goes to the account only: its people belong
     to another deal, and the live one is a guess;
   * else our own people decide alone when exactly one live deal has an internal member
     in P (a rep on one deal of the account only);
   * else, if exactly one deal is live, it is that deal: the account has one deal in
     flight and nobody on the activity belongs to another (a colleague of its contact
     writes; the deal has no contact roles yet);
   * else the account only: several deals are live and nothing tells them apart.
5. **Where step 3 or 4 leaves several deals possible, the subject may decide**: when it
   names the topic of exactly one of them (the deal's name without the account's, e.g.
   "Predictive maintenance pilot" in "Fwd: Proposal: Predictive maintenance pilot"),
   it is that deal; else the account only. The subject never overrides people.

Re-matching: when deals, members or windows change, :func:`rematch_opportunities` (or
:func:`rematch` with the affected accounts and time spans) matches the activities of the
affected accounts in the affected spans again, never the whole timeline, and moves the
alerts found in an activity with it. Only activities that matching linked
(``opportunity_link = 'matched'``) or left unlinked are touched.

Example::

    matcher = Matcher()
    deal_id = matcher.match(conn, account_id, occurred_at, person_ids)   # or None
    rematch_opportunities(conn, [deal_id], members_only=True)  # after a member was added
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from .config import Settings, env_setting, load_settings
from .db.ownership import PERSON_LINK  # a person chose the deal (or none): kept
from .db.schema import (
    accounts,
    activities,
    activity_people,
    alerts,
    opportunities,
    opportunity_people,
    people,
    stage_history,
    stages,
)
from .errors import ConfigError

DEFAULT_GRACE_DAYS = 14.0
SOURCE_LINK = "source"  # activities.opportunity_link: the record's own link (a WhatId, a note)
MATCHED_LINK = "matched"  # set by this module; may be matched again
CHUNK = 500  # ids per IN list
ACCOUNT_LIMIT = 50_000  # accounts a Matcher remembers before it starts over
MIN_TOPIC = 8  # characters a deal's topic needs before a subject naming it may decide

Span = tuple[datetime | None, datetime | None]  # (from, to); None: unbounded


def grace_period(settings: Settings | None = None) -> timedelta:
    """How long after its close a deal still takes activities (default 14 days).

    ``OPPKIT_MATCH_GRACE_DAYS`` wins over ``[matching] grace_days`` in oppkit.toml.

    >>> grace_period()
    datetime.timedelta(days=14)
    """
    value: Any = env_setting("MATCH_GRACE_DAYS")
    where = "OPPKIT_MATCH_GRACE_DAYS"
    if value in (None, ""):
        settings = settings or load_settings()
        table = (settings.extra or {}).get("matching") or {}
        if not isinstance(table, dict):
            raise ConfigError(f"{settings.config_path}: [matching] must be a table")
        value, where = table.get("grace_days"), f"{settings.config_path}: [matching] grace_days"
    if value in (None, ""):
        return timedelta(days=DEFAULT_GRACE_DAYS)
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number of days, not {value!r}") from None
    if not days >= 0:
        raise ConfigError(f"{where} must be 0 or more days, not {value!r}")
    return timedelta(days=days)


@dataclass(frozen=True, slots=True)
class DealWindow:
    """One deal as matching sees it: when it was live, and who is on it."""

    id: int
    start: datetime | None  # created; None: unknown, live since ever
    end: datetime | None  # closed + grace; None: open (or closed at an unknown time)
    contacts: frozenset[int]  # members who are not internal
    team: frozenset[int]  # internal members
    topic: str = ""  # what the deal is about: its name without the account's, folded

    def live_at(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at <= self.end)

    @property
    def span(self) -> Span:
        return self.start, self.end


def choose(
    deals: Iterable[DealWindow], at: datetime, people_ids: Iterable[int], subject: str | None = None
) -> int | None:
    """The deal (of one account) an activity at ``at`` with ``people_ids`` belongs to, or None.

    The rule is the module's docstring, steps 2 to 5.
    """
    remaining = possible(deals, at, people_ids, subject)
    return remaining[0] if len(remaining) == 1 else None


def possible(
    deals: Iterable[DealWindow], at: datetime, people_ids: Iterable[int], subject: str | None = None
) -> list[int]:
    """The deals an activity may belong to after steps 2 to 5: one is the match; several
    are what a person may choose between (:func:`possible_deals`); none: the account's.

    Empty where the evidence points away from every live deal (its people are on a deal
    that is not live): offering the live ones would be offering a guess.
    """
    deals = list(deals)
    taking_part = set(people_ids)
    live = [d for d in deals if d.live_at(at)]
    if not live:
        return []
    by_contact = [d for d in live if d.contacts & taking_part]
    if by_contact:
        if len(by_contact) == 1:
            return [by_contact[0].id]
        own = [
            d
            for d in by_contact
            if any(
                not any(p in other.contacts for other in by_contact if other is not d)
                for p in d.contacts & taking_part
            )
        ]  # deals with someone in P who is on none of the other candidates
        if own:
            return _named(own, subject)
        by_team = [d for d in by_contact if d.team & taking_part]
        return _named(by_team or by_contact, subject)
    if any(d.contacts & taking_part for d in deals):  # people of a deal that is not live
        return []
    by_team = [d for d in live if d.team & taking_part]
    return _named(by_team or live, subject)


def _named(candidates: list[DealWindow], subject: str | None) -> list[int]:
    """Step 5: of several deals that remain possible, the one whose topic the subject
    names; else all of them (one candidate is returned as it is)."""
    if len(candidates) > 1 and subject:
        said = _fold(subject)
        named = [d for d in candidates if len(d.topic) >= MIN_TOPIC and d.topic in said]
        if len(named) == 1:
            return [named[0].id]
    return [d.id for d in candidates]


def _fold(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


def deal_topic(deal_name: str | None, account_name: str | None) -> str:
    """What a deal is about, as a subject would say it: "Acme Robotics — Predictive
    maintenance pilot" is "predictive maintenance pilot" (folded: lower case, words only)."""
    name = _fold(deal_name or "")
    account = _fold(account_name or "")
    if account and name.startswith(account + " "):
        name = name[len(account) + 1 :]
    return name


def _chunks(items: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1)


def _closed_statuses(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(stages.c.name, stages.c.status)).all())


def deal_windows(
    conn: Connection,
    grace: timedelta,
    *,
    account_ids: Iterable[int] = (),
    opportunity_ids: Iterable[int] = (),
) -> dict[int, list[DealWindow]]:
    """The deals (not deleted) of these accounts, or these deals, per account."""
    status = _closed_statuses(conn)
    columns = (
        opportunities.c.id,
        opportunities.c.account_id,
        opportunities.c.created_at,
        opportunities.c.stage,
        opportunities.c.close_date,
        opportunities.c.name,
        accounts.c.name.label("account_name"),
    )
    rows = []
    for column, ids in (
        (opportunities.c.account_id, account_ids),
        (opportunities.c.id, opportunity_ids),
    ):
        for part in _chunks(set(ids) - {None}):
            rows += conn.execute(
                select(*columns)
                .outerjoin(accounts, accounts.c.id == opportunities.c.account_id)
                .where(
                    column.in_(part),
                    opportunities.c.is_deleted.is_(False),
                    opportunities.c.account_id.is_not(None),
                )
            ).all()
    rows = list({r.id: r for r in rows}.values())
    closed = [r.id for r in rows if status.get(r.stage or "", "open") != "open"]
    closed_at: dict[int, datetime | None] = {}
    for part in _chunks(closed):
        history = conn.execute(
            select(
                stage_history.c.opportunity_id,
                stage_history.c.new_value,
                stage_history.c.changed_at,
            )
            .where(stage_history.c.field == "stage", stage_history.c.opportunity_id.in_(part))
            .order_by(stage_history.c.changed_at, stage_history.c.id)
        ).all()
        for opp_id, stage, changed_at in history:
            if status.get(stage or "", "open") == "open":
                closed_at[opp_id] = None  # reopened: its close is a later row
            elif closed_at.get(opp_id) is None:
                closed_at[opp_id] = changed_at
    contacts: dict[int, set[int]] = defaultdict(set)
    team: dict[int, set[int]] = defaultdict(set)
    for part in _chunks([r.id for r in rows]):
        for opp_id, person_id, internal in conn.execute(
            select(opportunity_people.c.opportunity_id, people.c.id, people.c.is_internal)
            .join(people, people.c.id == opportunity_people.c.person_id)
            .where(
                opportunity_people.c.opportunity_id.in_(part),
                opportunity_people.c.kind == "member",
                opportunity_people.c.is_deleted.is_(False),
            )
        ):
            (team if internal else contacts)[opp_id].add(person_id)
    by_account: dict[int, list[DealWindow]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.id):
        end = None
        if r.id in closed:
            close = closed_at.get(r.id) or (_end_of(r.close_date) if r.close_date else None)
            end = close + grace if close is not None else None
        by_account[r.account_id].append(
            DealWindow(
                r.id,
                r.created_at,
                end,
                frozenset(contacts[r.id]),
                frozenset(team[r.id]),
                deal_topic(r.name, r.account_name),
            )  # fmt: skip
        )
    return by_account


class Matcher:
    """Deal windows per account, loaded once (per batch of accounts) and remembered.

    Call :meth:`invalidate` after deals, members, stages or their history changed.
    """

    def __init__(self, grace: timedelta | None = None) -> None:
        self._grace = grace
        self._by_account: dict[int, list[DealWindow]] = {}

    @property
    def grace(self) -> timedelta:
        if self._grace is None:
            self._grace = grace_period()
        return self._grace

    def invalidate(self) -> None:
        self._by_account.clear()

    def prepare(self, conn: Connection, account_ids: Iterable[int | None]) -> None:
        """Load the deals of these accounts (those not loaded yet) in a few queries."""
        missing = {a for a in account_ids if a is not None and a not in self._by_account}
        if not missing:
            return
        if len(self._by_account) + len(missing) > ACCOUNT_LIMIT:
            self._by_account.clear()
        found = deal_windows(conn, self.grace, account_ids=missing)
        for account_id in missing:
            self._by_account[account_id] = found.get(account_id, [])

    def match(
        self, conn: Connection, account_id: int | None, at: datetime, people_ids: Iterable[int],
        subject: str | None = None,
    ) -> int | None:  # fmt: skip
        """The one deal this account, time, people (and subject) point at, or None."""
        if account_id is None or at is None:
            return None
        self.prepare(conn, [account_id])
        return choose(self._by_account[account_id], at, people_ids, subject)


def _merge(into: dict[int, Span], account_id: int, span: Span) -> None:
    """Widen the account's span in ``into`` to cover ``span`` too."""
    if account_id in into:
        (a, b), (c, d) = into[account_id], span
        lo = None if a is None or c is None else min(a, c)
        span = (lo, None if b is None or d is None else max(b, d))
    into[account_id] = span


def _taking_part(conn: Connection, activity_ids: Iterable[int]) -> dict[int, list[int]]:
    """Activity id -> the people who took part in it."""
    taking_part: dict[int, list[int]] = defaultdict(list)
    for part in _chunks(activity_ids):
        for activity_id, person_id in conn.execute(
            select(activity_people.c.activity_id, activity_people.c.person_id).where(
                activity_people.c.activity_id.in_(part)
            )
        ):
            taking_part[activity_id].append(person_id)
    return taking_part


def rematch(
    conn: Connection,
    spans: Mapping[int, Span],
    *,
    opportunity_ids: Iterable[int] = (),
    matcher: Matcher | None = None,
) -> int:
    """Match again the activities of these accounts within their spans; how many moved.

    ``spans`` maps an account id to (from, to) (None: unbounded). Activities that
    matching linked to one of ``opportunity_ids`` are matched again wherever they are (a
    deal that was deleted or moved to another account). Links a source set
    (``opportunity_link = 'source'``), and deals set on an activity by someone else, stay.
    Alerts found in a moved activity move with it.
    """
    matcher = matcher or Matcher()
    matcher.invalidate()
    rematchable = or_(
        activities.c.opportunity_link == MATCHED_LINK,
        and_(
            activities.c.opportunity_link.is_(None),
            activities.c.opportunity_id.is_(None),
            activities.c.campaign_id.is_(None),  # campaign work stays on the account
        ),
    )
    found: dict[int, Any] = {}
    columns = (
        activities.c.id,
        activities.c.account_id,
        activities.c.occurred_at,
        activities.c.opportunity_id,
        activities.c.subject,
    )
    # one plain query per chunk of accounts (an OR of thousands of spans compiles slowly);
    # each account's own span is applied here
    for part in _chunks(spans):
        starts = [spans[a][0] for a in part]
        stmt = select(*columns).where(rematchable, activities.c.account_id.in_(part))
        if None not in starts:
            stmt = stmt.where(activities.c.occurred_at >= min(starts))
        for row in conn.execute(stmt):
            lo, hi = spans[row.account_id]
            if (lo is None or row.occurred_at >= lo) and (hi is None or row.occurred_at <= hi):
                found[row.id] = row
    deal_ids = list(set(opportunity_ids))
    for part in _chunks(deal_ids):
        for row in conn.execute(
            select(*columns).where(
                activities.c.opportunity_link == MATCHED_LINK,
                activities.c.opportunity_id.in_(part),
            )
        ):
            found[row.id] = row
    if not found:
        return 0
    taking_part = _taking_part(conn, found)
    matcher.prepare(conn, {row.account_id for row in found.values()})
    moves = []
    for row in found.values():
        deal = matcher.match(
            conn, row.account_id, row.occurred_at, taking_part[row.id], row.subject
        )
        if deal != row.opportunity_id:
            moves.append({"_id": row.id, "_deal": deal, "_link": MATCHED_LINK if deal else None})
    if moves:
        conn.execute(
            update(activities)
            .where(activities.c.id == bindparam("_id"))
            .values(opportunity_id=bindparam("_deal"), opportunity_link=bindparam("_link")),
            moves,
        )
        conn.execute(
            update(alerts)
            .where(alerts.c.activity_id == bindparam("_id"))
            .values(opportunity_id=bindparam("_deal")),
            [{"_id": m["_id"], "_deal": m["_deal"]} for m in moves],
        )
    return len(moves)


def rematch_opportunities(
    conn: Connection,
    opportunity_ids: Iterable[int],
    *,
    members_only: bool = False,
    matcher: Matcher | None = None,
) -> int:
    """Match again the activities these deals' changes may affect; how many moved.

    ``members_only``: only the deals' members changed, so only activities within the
    deals' windows are affected. Otherwise the window itself may have changed (a deal
    created, closed, reopened, moved or deleted): every activity of the account from the
    deal's creation on, and those matching had linked to the deal.
    """
    matcher = matcher or Matcher()
    ids = set(opportunity_ids) - {None}
    if not ids:
        return 0
    spans: dict[int, Span] = {}
    if members_only:
        for account_id, deals in deal_windows(conn, matcher.grace, opportunity_ids=ids).items():
            for deal in deals:
                _merge(spans, account_id, deal.span)
    else:  # deleted deals too: the account's other activities may now be clear
        for part in _chunks(ids):
            for account_id, created_at in conn.execute(
                select(opportunities.c.account_id, opportunities.c.created_at).where(
                    opportunities.c.id.in_(part), opportunities.c.account_id.is_not(None)
                )
            ):
                _merge(spans, account_id, (created_at, None))
    return rematch(conn, spans, opportunity_ids=ids, matcher=matcher)


def possible_deals(conn: Connection, activity_ids: Iterable[int]) -> dict[int, list[int]]:
    """The deals each activity left on its account could belong to (two or more), for a
    person to choose between (:func:`oppkit.actions.link_activity`).

    Only activities matching left without a deal count; those a person or a source
    decided, or with a deal, are not in the result, nor those with fewer than two deals.
    """
    wanted = {}
    for part in _chunks(set(activity_ids)):
        for row in conn.execute(
            select(
                activities.c.id, activities.c.account_id, activities.c.occurred_at,
                activities.c.subject,
            ).where(
                activities.c.id.in_(part), activities.c.opportunity_id.is_(None),
                activities.c.opportunity_link.is_(None), activities.c.account_id.is_not(None),
                activities.c.campaign_id.is_(None),
            )
        ):  # fmt: skip
            wanted[row.id] = row
    if not wanted:
        return {}
    taking_part = _taking_part(conn, wanted)
    windows = deal_windows(
        conn, grace_period(), account_ids={r.account_id for r in wanted.values()}
    )
    found = {}
    for row in wanted.values():
        remaining = possible(
            windows.get(row.account_id, []), row.occurred_at, taking_part[row.id], row.subject
        )
        if len(remaining) > 1:
            found[row.id] = remaining
    return found


def follow_activities(conn: Connection, activity_ids: Iterable[int]) -> None:
    """Alerts found in these activities take their activity's deal (after a re-sync linked
    an activity whose alerts were stored before it had a deal)."""
    deal_of = (
        select(activities.c.opportunity_id)
        .where(activities.c.id == alerts.c.activity_id)
        .scalar_subquery()
    )
    for part in _chunks(activity_ids, 1000):
        conn.execute(
            update(alerts)
            .where(
                alerts.c.activity_id.in_(part), alerts.c.opportunity_id.is_distinct_from(deal_of)
            )
            .values(opportunity_id=deal_of)
        )


__all__ = [
    "DEFAULT_GRACE_DAYS",
    "MATCHED_LINK",
    "PERSON_LINK",
    "SOURCE_LINK",
    "DealWindow",
    "Matcher",
    "choose",
    "deal_windows",
    "follow_activities",
    "grace_period",
    "possible",
    "possible_deals",
    "rematch",
    "rematch_opportunities",
]
