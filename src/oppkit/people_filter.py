"""Choose people without SQL: a few named conditions, their values plain data.

Why: a saved report (:mod:`oppkit.saved_reports`) is written into oppkit.toml or a
notebook by people who do not write SQL, and runs unattended for months. Each condition
is a small, documented piece of SQLAlchemy whose values are bound parameters, so no value
ever becomes SQL text; a name that is not a condition, or a value of the wrong kind, is
refused with a message that lists what there is.

A filter is a table of conditions, all of which must hold. A condition given a list
holds when any of its items does:

===================== ===================== ============================================
condition             value                 finds people ...
===================== ===================== ============================================
account               name, domain or id    of these accounts
account_industry      text                  whose account's industry is this
account_type          text                  whose account's type is this
account_stage         text                  whose account is at this lifecycle stage
email_domain          domain                whose email is at this domain
title_contains        text                  whose title contains this
lifecycle_stage       text                  at this contact lifecycle stage
lifecycle_category    succeeded, in         whose lifecycle stage is of this category
                      progress, not
                      succeeded
active_within_days    days (a number)       who took part in an email, meeting, call...
                                            in the last N days
inactive_for_days     days (a number)       who took part in none in the last N days
deal_stage            a stage's name        members of a deal at this stage
deal_status           open, won, lost,      members of a deal whose stage is open, won...
                      archived
in_campaign           name or id            members of this campaign
not_in_campaign       name or id            members of none of these campaigns
===================== ===================== ============================================

Always: external people only (never one of us), not deleted, and only those the scope's
user may see (people known only from private deals stay out; a deal condition counts
only deals the user may see). Texts compare ignoring case; ``title_contains`` folds
only ASCII letters on SQLite. An activity counts when it happened (not planned, not an
automatic reply) on a deal the user may see or on none. Stage names and categories are
checked against the workflow's: a misspelt one is an error, never a silent empty result.

Example::

    where = parse_where({"account_industry": "Manufacturing", "active_within_days": 30,
                         "title_contains": ["data", "analytics"]})
    matching_people(kit, where)       # the people frame (kit.people's columns)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, func, literal, or_, select

from .db import schema as db
from .errors import ConfigError
from .frames.people import people_where
from .scope import NotFoundError, Scope, ScopeLike, scope_of
from .workflow.model import CATEGORIES, STAGE_STATUSES

__all__ = [
    "CONDITIONS", "Condition", "describe", "filter_conditions", "matching_people", "parse_where",
]  # fmt: skip

Where = dict[str, Any]  # a parsed filter: condition -> a value, or a tuple of values
Build = Callable[[Scope, Connection, Any, datetime], ColumnElement[bool]]


@dataclass(frozen=True)
class Condition:
    """One condition: its name, the kind of value it takes, what it finds, its SQL."""

    name: str
    kind: str  # "text": a text or a list of texts; "ref": names or ids; "days": a number
    help: str
    build: Build


CONDITIONS: dict[str, Condition] = {}


def _condition(name: str, kind: str, help_text: str) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CONDITIONS[name] = Condition(name, kind, help_text, build)
        return build

    return register


# --- values ----------------------------------------------------------------------------


def parse_where(where: Mapping[str, Any] | None) -> Where:
    """A filter checked and made plain: known names, values of the right kind.

    Texts are kept as given (one text, or a tuple for a list); days become an ``int``
    (``"30"`` from a command line is 30); references stay names, or ids as ``int``.
    Raises :class:`~oppkit.errors.ConfigError` naming the first problem.

    >>> parse_where({"title_contains": ["data", "analytics"], "active_within_days": "30"})
    {'title_contains': ('data', 'analytics'), 'active_within_days': 30}
    """
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise ConfigError(f"where must be a table of conditions, not {where!r}")
    parsed: Where = {}
    for name, value in where.items():
        condition = CONDITIONS.get(name)
        if condition is None:
            raise ConfigError(f"unknown condition {name!r} (known: {', '.join(CONDITIONS)})")
        parsed[name] = _value(condition, value)
    return parsed


def _value(condition: Condition, value: Any) -> Any:
    name = condition.name
    if condition.kind == "days":
        days = value
        if isinstance(value, str) and value.strip().isdigit():
            days = int(value.strip())
        if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
            raise ConfigError(f"{name} takes a number of days (> 0), not {value!r}")
        return days
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ConfigError(f"{name} needs a value")
    plain = []
    for item in items:
        if isinstance(item, str) and item.strip():
            text = item.strip()
            plain.append(int(text) if condition.kind == "ref" and text.isdigit() else text)
        elif condition.kind == "ref" and isinstance(item, int) and not isinstance(item, bool):
            plain.append(item)
        else:
            what = "a name or an id" if condition.kind == "ref" else "a text"
            raise ConfigError(f"{name} takes {what} (or a list of them), not {item!r}")
    return plain[0] if len(plain) == 1 else tuple(plain)


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple) else [value]


def describe(where: Mapping[str, Any]) -> str:
    """A filter in one line, as oppkit.toml would say it: ``a = "x", b = 30``."""
    if not where:
        return "every external person"

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)

    return ", ".join(
        f"{name} = [{', '.join(one(v) for v in value)}]"
        if isinstance(value, tuple)
        else f"{name} = {one(value)}"
        for name, value in where.items()
    )


# --- the people -----------------------------------------------------------------------


def matching_people(
    scope: ScopeLike, where: Mapping[str, Any] | None, *, now: datetime | None = None
) -> pd.DataFrame:
    """The people frame (the columns of ``kit.people()``) of the external people who
    meet every condition of ``where`` (parsed here if it was not), as of ``now``.

    >>> matching_people(kit, {"account": "acme-robotics.example", "title_contains": "data"})
    """
    scope = scope_of(scope)
    return people_where(scope, *filter_conditions(scope, where, now=now))


def filter_conditions(
    scope: ScopeLike, where: Mapping[str, Any] | None, *, now: datetime | None = None
) -> list[ColumnElement[bool]]:
    """``where`` as SQL conditions on ``people`` and their ``accounts`` (external people
    only), every reference in it resolved: ConfigError for a problem, before any query
    for the people themselves.
    """
    scope = scope_of(scope)
    parsed = parse_where(where)
    now = now or datetime.now(UTC)
    with scope.engine.connect() as conn:
        return [db.people.c.is_internal.is_(False)] + [
            CONDITIONS[name].build(scope, conn, value, now) for name, value in parsed.items()
        ]


# --- the conditions -------------------------------------------------------------------


def _found(name: str, lookup: Callable[[Any], list[int]], value: Any) -> list[int]:
    try:
        return lookup(_items(value))
    except NotFoundError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def _folded(conn: Connection, column: Any, value: Any) -> list[str]:
    """The values of ``column`` equal to one of ``value``'s, ignoring case (any script)."""
    wanted = {str(v).casefold() for v in _items(value)}
    present = conn.scalars(select(column).where(column.is_not(None)).distinct())
    return [v for v in present if v.casefold() in wanted]


def _named(
    conn: Connection, name: str, column: Any, value: Any, known: list[str], what: str
) -> list[str]:
    """Like :func:`_folded`; every item must name one of ``known`` (stages: a misspelt
    one would find nobody, silently, run after run)."""
    folded = {k.casefold() for k in known}
    unknown = [v for v in _items(value) if str(v).casefold() not in folded]
    if unknown:
        listed = ", ".join(known) if known else f"none yet (no {what} is defined)"
        raise ConfigError(f"{name}: no {what} {unknown[0]!r} (known: {listed})")
    return _folded(conn, column, value)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    items = [str(v).strip().lower() for v in _items(value)]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ConfigError(f"{name}: {bad[0]!r} is not one of {', '.join(allowed)}")
    return items


def _stage_names(conn: Connection, kind: str) -> list[str]:
    return list(
        conn.scalars(
            select(db.lifecycle_stages.c.name)
            .where(db.lifecycle_stages.c.kind == kind)
            .order_by(db.lifecycle_stages.c.sort_order)
        )
    )


@_condition("account", "ref", "people of these accounts (name, domain or id)")
def _account(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.people.c.account_id.in_(_found("account", scope.account_ids, value))


@_condition("account_industry", "text", "whose account's industry is this")
def _industry(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.accounts.c.industry.in_(_folded(conn, db.accounts.c.industry, value))


@_condition("account_type", "text", "whose account's type is this")
def _account_type(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.accounts.c.account_type.in_(_folded(conn, db.accounts.c.account_type, value))


@_condition("account_stage", "text", "whose account is at this lifecycle stage")
def _account_stage(
    scope: Scope, conn: Connection, value: Any, now: datetime
) -> ColumnElement[bool]:
    names = _named(conn, "account_stage", db.accounts.c.lifecycle_stage, value,
                   _stage_names(conn, "account"), "account lifecycle stage")  # fmt: skip
    return db.accounts.c.lifecycle_stage.in_(names)


@_condition("email_domain", "text", "whose email is at this domain")
def _email_domain(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    domains = [str(v).strip().lower().lstrip("@") for v in _items(value)]
    return or_(*(db.people.c.email.endswith(f"@{d}", autoescape=True) for d in domains))


@_condition("title_contains", "text", "whose title contains this (ignoring case)")
def _title(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    title = func.lower(db.people.c.title)
    return or_(*(title.contains(str(v).lower(), autoescape=True) for v in _items(value)))


@_condition("lifecycle_stage", "text", "at this contact lifecycle stage")
def _lifecycle_stage(
    scope: Scope, conn: Connection, value: Any, now: datetime
) -> ColumnElement[bool]:
    names = _named(conn, "lifecycle_stage", db.people.c.lifecycle_stage, value,
                   _stage_names(conn, "contact"), "contact lifecycle stage")  # fmt: skip
    return db.people.c.lifecycle_stage.in_(names)


@_condition("lifecycle_category", "text", "whose lifecycle stage is of this category")
def _lifecycle_category(
    scope: Scope, conn: Connection, value: Any, now: datetime
) -> ColumnElement[bool]:
    categories = _one_of("lifecycle_category", value, CATEGORIES)
    return db.people.c.lifecycle_stage.in_(
        select(db.lifecycle_stages.c.name).where(
            db.lifecycle_stages.c.kind == "contact", db.lifecycle_stages.c.category.in_(categories)
        )
    )


def _took_part_since(scope: Scope, since: datetime, now: datetime) -> Any:
    return (
        select(db.activity_people.c.person_id)
        .join(db.activities, db.activities.c.id == db.activity_people.c.activity_id)
        .where(
            db.activities.c.occurred_at >= since,
            db.activities.c.occurred_at <= now,
            db.activities.c.is_deleted.is_(False),
            db.activities.c.is_planned.is_(False),
            db.activities.c.is_auto.is_(False),
            scope.visible_activity(),
        )
    )


@_condition("active_within_days", "days", "who took part in an activity in the last N days")
def _active(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.people.c.id.in_(_took_part_since(scope, now - timedelta(days=value), now))


@_condition("inactive_for_days", "days", "who took part in no activity in the last N days")
def _inactive(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.people.c.id.not_in(_took_part_since(scope, now - timedelta(days=value), now))


def _deal_members(scope: Scope, *conditions: ColumnElement[bool]) -> Any:
    return (
        select(db.opportunity_people.c.person_id)
        .join(db.opportunities, db.opportunities.c.id == db.opportunity_people.c.opportunity_id)
        .outerjoin(db.stages, db.stages.c.name == db.opportunities.c.stage)
        .where(
            db.opportunity_people.c.kind == "member",
            db.opportunity_people.c.is_deleted.is_(False),
            db.opportunities.c.is_deleted.is_(False),
            scope.visible(),
            *conditions,
        )
    )


@_condition("deal_stage", "text", "members of a deal at this stage")
def _deal_stage(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    known = list(conn.scalars(select(db.stages.c.name).order_by(db.stages.c.sort_order)))
    names = _named(conn, "deal_stage", db.opportunities.c.stage, value, known, "stage")
    return db.people.c.id.in_(_deal_members(scope, db.opportunities.c.stage.in_(names)))


@_condition("deal_status", "text", "members of a deal whose stage is open, won, lost...")
def _deal_status(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    statuses = _one_of("deal_status", value, STAGE_STATUSES)
    status = func.coalesce(db.stages.c.status, literal("open"))  # a stage not listed is open
    return db.people.c.id.in_(_deal_members(scope, status.in_(statuses)))


def _campaign_members(scope: Scope, name: str, value: Any) -> Any:
    ids = _found(name, scope.campaign_ids, value)
    return select(db.campaign_members.c.person_id).where(
        db.campaign_members.c.campaign_id.in_(ids),
        db.campaign_members.c.person_id.is_not(None),  # a lead's row: NOT IN must see no NULL
        db.campaign_members.c.is_deleted.is_(False),
    )


@_condition("in_campaign", "ref", "members of this campaign (name or id)")
def _in_campaign(scope: Scope, conn: Connection, value: Any, now: datetime) -> ColumnElement[bool]:
    return db.people.c.id.in_(_campaign_members(scope, "in_campaign", value))


@_condition("not_in_campaign", "ref", "members of none of these campaigns (name or id)")
def _not_in_campaign(
    scope: Scope, conn: Connection, value: Any, now: datetime
) -> ColumnElement[bool]:
    return db.people.c.id.not_in(_campaign_members(scope, "not_in_campaign", value))
