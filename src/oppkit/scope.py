"""Scope: who is looking, what they may see, and how a reference becomes rows.

Why a module of its own: every reader of the shared database -- the Kit's frames,
workflow, lifecycle, graphs, digests and actions -- needs the same three things, and
they must agree on them or privacy leaks through the one that disagrees:

* **who may see what**: a private opportunity (and what is linked to it) is visible
  only to its owner and members; following a deal is no membership;
* **resolving a reference**: a deal, account or person given by id, name, email,
  domain or Salesforce id (or a list of them) becomes row ids, or
  :class:`NotFoundError`;
* **building a frame**: a SQL statement becomes a DataFrame tagged with where it came
  from, so the pandas ``.oppkit`` accessor can find its way back.

The Kit is the façade over this floor; features take a :class:`Scope` (or anything
with a ``scope``, such as a Kit) and never reach into the Kit.

Example::

    from oppkit.scope import Scope
    scope = Scope(engine, user="ava.patel@northwind.example")
    ids = scope.opportunity_ids("Acme pilot")
    deal_id = scope.opportunity_id("Acme pilot")      # exactly one deal this user may see
    scope.frame(select(opportunities.c.name).where(scope.visible()), "opportunities")
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    exists,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import Select

from .db.schema import (
    accounts,
    activities,
    activity_people,
    campaigns,
    database_users,
    leads,
    opportunities,
    opportunity_people,
    people,
)
from .identity import normalise_email

__all__ = [
    "NotFoundError",
    "Scope",
    "ScopeLike",
    "as_list",
    "scope_of",
    "to_utc",
]

_tokens = itertools.count(1)


class NotFoundError(LookupError):
    """Raised when a name, id or email given to an accessor matches nothing (or many)."""


def as_list(value: Any) -> list:
    """A reference given as one value or as a collection, always as a list."""
    if isinstance(value, (list, tuple, set, pd.Series, pd.Index)):
        return list(value)
    return [value]


def to_utc(value: datetime | str) -> datetime:
    """A time given as text or datetime, as an aware UTC datetime (naive means UTC)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


class Scope:
    """One user's view of the shared database (see the module docstring).

    ``user`` is an email; without one, private opportunities are hidden.
    """

    def __init__(self, engine: Engine, user: str | None = None) -> None:
        self.engine = engine
        self.user = normalise_email(user) if user else None
        self.token = f"kit-{next(_tokens)}"
        self.user_id: int | None = None
        if not self.user and engine.dialect.name != "postgresql":
            return  # nobody stated, and no login that could say who this is
        with engine.connect() as conn:
            role_is = _person_of_role(conn)
            if role_is is not None:  # a team's PostgreSQL: the login decides who this is
                if self.user and self.user != role_is:
                    raise PermissionError(
                        f"connected as the database role of {role_is}: user= cannot name "
                        f"{self.user} (connect with their role instead)"
                    )
                self.user = role_is
            if self.user:
                self.user_id = conn.scalar(select(people.c.id).where(people.c.email == self.user))

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"Scope({url!r}, user={self.user!r})"

    @property
    def scope(self) -> Scope:
        """A scope is its own scope, so functions can take a Scope or a Kit alike."""
        return self

    # --- who may see what --------------------------------------------------------

    def visible(self) -> ColumnElement[bool]:
        """SQL condition: the row of ``opportunities`` may be seen by this user."""
        if self.user_id is None:
            return opportunities.c.is_private.is_(False)
        member = exists().where(
            opportunity_people.c.opportunity_id == opportunities.c.id,
            opportunity_people.c.person_id == self.user_id,
            opportunity_people.c.kind == "member",  # following a deal is no membership
            opportunity_people.c.is_deleted.is_(False),
        )
        return or_(
            opportunities.c.is_private.is_(False),
            opportunities.c.owner_id == self.user_id,
            member,
        )

    def visible_opportunities(self) -> Select:
        """The ids of the opportunities this user may see, as a subquery to filter with."""
        return select(opportunities.c.id).where(self.visible())

    def hidden_opportunities(self) -> Select:
        """The ids of the deals this user may not see (private, not theirs)."""
        return select(opportunities.c.id).where(not_(self.visible()))

    def visible_activity(self) -> ColumnElement[bool]:
        """SQL condition: the row of ``activities`` is on no deal, or on a visible one."""
        return or_(
            activities.c.opportunity_id.is_(None),
            activities.c.opportunity_id.not_in(self.hidden_opportunities()),
        )

    def hidden_people(self) -> Select:
        """People known only from deals this user may not see: every trace of them (an
        activity they took part in, a membership) is on such a deal, so even that they
        exist would tell something. Someone with no trace at all is not hidden."""
        hidden_deals = self.hidden_opportunities()
        on_hidden = select(activity_people.c.person_id).join(
            activities, activities.c.id == activity_people.c.activity_id
        ).where(activities.c.opportunity_id.in_(hidden_deals))  # fmt: skip
        member_of_hidden = select(opportunity_people.c.person_id).where(
            opportunity_people.c.opportunity_id.in_(hidden_deals),
            opportunity_people.c.kind == "member",
            opportunity_people.c.is_deleted.is_(False),
        )
        seen = activity_people.alias("seen")
        shown_activity = exists().where(
            seen.c.person_id == people.c.id,
            seen.c.activity_id == activities.c.id,
            self.visible_activity(),
        )
        shown_membership = exists().where(
            opportunity_people.c.person_id == people.c.id,
            opportunity_people.c.opportunity_id.not_in(hidden_deals),
            opportunity_people.c.is_deleted.is_(False),
        )
        return select(people.c.id).where(
            people.c.id.in_(on_hidden.union(member_of_hidden)),
            not_(shown_activity),
            not_(shown_membership),
        )

    # --- resolving references ------------------------------------------------------

    def opportunity_ids(self, ref: Any) -> list[int]:
        """Ids of the deals this user may see, named by id, Salesforce id or name.

        A private deal the user may not see is not found, exactly like a name that does
        not exist: guessing a name (or an id) tells nothing.
        """
        return self._ids(opportunities, ref, ("source_id", "name"), "opportunity", self.visible())

    def account_ids(self, ref: Any) -> list[int]:
        """Ids of the accounts named by id, email domain, Salesforce id or name."""
        refs = [r.strip().lower() if isinstance(r, str) and "." in r else r for r in as_list(ref)]
        return self._ids(accounts, refs, ("domain", "salesforce_id", "name"), "account")

    def person_ids(self, ref: Any) -> list[int]:
        """Ids of the people named by id, email (normalised) or Salesforce id."""
        refs = [normalise_email(r) or r if isinstance(r, str) else r for r in as_list(ref)]
        return self._ids(people, refs, ("email", "salesforce_id"), "person")

    def campaign_ids(self, ref: Any) -> list[int]:
        """Ids of the campaigns named by id, Salesforce id or name (a frame: its ids)."""
        return self._ids(campaigns, refs_of(ref), ("source_id", "name"), "campaign")

    def lead_ids(self, ref: Any) -> list[int]:
        """Ids of the leads named by id, email (normalised), Salesforce id or name."""
        refs = [normalise_email(r) or r if isinstance(r, str) and "@" in r else r
                for r in refs_of(ref)]  # fmt: skip
        return self._ids(leads, refs, ("email", "source_id", "name"), "lead")

    def opportunity_id(self, ref: Any) -> int:
        """Exactly one deal this user may see; a private one they may not see is not found."""
        ids = self.opportunity_ids(ref)
        with self.engine.connect() as conn:
            found = conn.scalars(
                select(opportunities.c.id).where(
                    opportunities.c.id.in_(ids),
                    opportunities.c.is_deleted.is_(False),
                    self.visible(),
                )
            ).all()
        if not found:
            raise NotFoundError(f"no opportunity matches {ref!r}")
        if len(found) > 1:
            raise NotFoundError(f"{len(found)} opportunities match {ref!r}; use the id")
        return found[0]

    def acting_person_id(self, by: str | None = None) -> int | None:
        """Who does something: the person ``by`` names, else this scope's user (or None)."""
        return self.person_ids(by)[0] if by else self.user_id

    def _ids(
        self, table: Table, ref: Any, by: Iterable[str], what: str,
        shown: ColumnElement[bool] | None = None,
    ) -> list[int]:  # fmt: skip
        """Ids for a reference given as an id, or a value of one of the ``by`` columns.

        Exact matches use the columns' indexes; only names fall back to a case-insensitive
        comparison when nothing matches exactly (Unicode case folding, done here rather
        than by the database: SQLite's ``lower`` folds ASCII only). ``shown`` limits what
        may be found; anything else is not found, like a name that does not exist.
        """
        items = as_list(ref)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (numbers.Integral, str)):
                raise NotFoundError(f"no {what} matches {item!r} (give an id or a name)")
        where = [shown] if shown is not None else []
        numbers_given = list(dict.fromkeys(int(i) for i in items if not isinstance(i, str)))
        found: list[int] = []
        with self.engine.connect() as conn:
            if numbers_given:
                known = set()
                for start in range(0, len(numbers_given), 5000):
                    chunk = numbers_given[start : start + 5000]
                    known.update(
                        conn.scalars(select(table.c.id).where(table.c.id.in_(chunk), *where))
                    )
                missing = [i for i in numbers_given if i not in known]
                if missing:
                    raise NotFoundError(f"no {what} matches {missing[0]!r}")
            for item in items:
                if not isinstance(item, str):
                    found.append(int(item))
                    continue
                ids = self._ids_by_text(conn, table, item.strip(), by, where)
                if not ids:
                    raise NotFoundError(f"no {what} matches {item!r}")
                found.extend(ids)
        return found

    @staticmethod
    def _ids_by_text(
        conn: Connection, table: Table, text: str, by: Iterable[str], where: list
    ) -> list[int]:
        for column in by:
            ids = conn.scalars(select(table.c.id).where(table.c[column] == text, *where)).all()
            if ids:
                return list(ids)
        if "name" not in by:
            return []
        folded = text.casefold()
        rows = conn.execute(select(table.c.id, table.c.name).where(*where)).all()
        return [i for i, name in rows if name is not None and name.casefold() == folded]

    # --- building frames -------------------------------------------------------------

    def frame(self, stmt: Select, kind: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Run ``stmt`` and return its rows as a DataFrame tagged as a frame of ``kind``."""
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            rows = [tuple(row) for row in result.fetchall()]  # plain tuples: far faster in pandas
            df = pd.DataFrame(rows, columns=columns or list(result.keys()))
        return self.tag(df, kind)

    def tag(self, df: pd.DataFrame, kind: str) -> pd.DataFrame:
        """Mark a frame built another way as read through this scope."""
        df.attrs["oppkit"] = {"kit": self.token, "frame": kind}
        return df


def _person_of_role(conn: Connection) -> str | None:
    """On PostgreSQL, the person the connected login role is (oppkit.team); else None."""
    if conn.dialect.name != "postgresql":
        return None
    return conn.scalar(
        select(people.c.email)
        .join(database_users, database_users.c.person_id == people.c.id)
        .where(database_users.c.role_name == literal_column("current_user"))
    )


class Viewer(Protocol):
    """Anything that carries a scope: a :class:`~oppkit.Kit`, or a Scope itself."""

    @property
    def scope(self) -> Scope: ...


ScopeLike = Scope | Viewer


def scope_of(viewer: ScopeLike) -> Scope:
    """The scope of a Kit (or the Scope given): what features take as their reader."""
    return viewer.scope


def refs_of(ref: Any) -> list[Any]:
    """References as a list: a DataFrame gives its ``id`` column (or its index)."""
    if isinstance(ref, pd.DataFrame):
        return [int(i) for i in (ref["id"] if "id" in ref.columns else ref.index)]
    if isinstance(ref, pd.Series):
        return [int(i) for i in ref]
    return as_list(ref)
