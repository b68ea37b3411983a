"""The Kit: the shared database as pandas DataFrames, for people in notebooks.

Why: analysts think in frames, not SQL. Every accessor returns a DataFrame with stable
column names, times as tz-aware UTC timestamps, and privacy applied: a private
opportunity (and what is linked to it) is visible only to its owner and members.

Example::

    kit = oppkit.connect(user="alice@northwind.example")
    kit.opportunities().sort_values("amount", ascending=False).head()
    kit.timeline(opportunity="Acme Robotics — Predictive maintenance pilot")
"""

from __future__ import annotations

import itertools
import numbers
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import (
    Engine,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.sql import Select

from .config import load_settings
from .db.engine import connect_engine
from .db.schema import (
    accounts,
    activities,
    activity_people,
    alerts,
    lifecycle_stages,
    opportunities,
    opportunity_people,
    people,
    stage_history,
    stages,
)
from .identity import normalise_email

if TYPE_CHECKING:
    from .graphs import RelationshipGraph
    from .workflow.engine import Workflow
    from .workflow.lifecycle import Lifecycle

_registry: weakref.WeakValueDictionary[str, Kit] = weakref.WeakValueDictionary()
_tokens = itertools.count(1)

TIMELINE_COLUMNS = [
    "id", "occurred_at", "kind", "subject", "snippet", "direction", "sender", "sender_name",
    "thread_id", "account", "account_id", "opportunity", "opportunity_id", "duration_minutes",
    "is_planned", "status", "is_auto", "source", "source_id",
]  # fmt: skip


class NotFoundError(LookupError):
    """Raised when a name, id or email given to an accessor matches nothing (or many)."""


def connect(url: str | None = None, user: str | None = None) -> Kit:
    """Open the shared database (migrating it if needed) and return a :class:`Kit`.

    ``url`` defaults to ``OPPKIT_DATABASE_URL``, oppkit.toml, then an SQLite file in the
    user's data folder. ``user`` (an email) is who is looking: private opportunities are
    shown only to their owner and members; without a user they are hidden.

    >>> kit = oppkit.connect("sqlite:///demo.sqlite", user="ava.patel@northwind.example")
    """
    settings = load_settings(url)
    return Kit(connect_engine(settings.resolved_database_url), user=user)


def _in_list(value: Any) -> list:
    if isinstance(value, (list, tuple, set, pd.Series, pd.Index)):
        return list(value)
    return [value]


class Kit:
    """Read access to the shared database as DataFrames (see :func:`connect`)."""

    def __init__(self, engine: Engine, user: str | None = None) -> None:
        self.engine = engine
        self.user = normalise_email(user) if user else None
        self.token = f"kit-{next(_tokens)}"
        _registry[self.token] = self
        self._user_id: int | None = None
        if self.user:
            with engine.connect() as conn:
                self._user_id = conn.scalar(select(people.c.id).where(people.c.email == self.user))

    def __repr__(self) -> str:
        return f"Kit({self.engine.url.render_as_string(hide_password=True)!r}, user={self.user!r})"

    @property
    def workflow(self) -> Workflow:
        """The sales process: transitions, entries, follow-ons, graph (oppkit.workflow)."""
        from .workflow.engine import Workflow

        return Workflow(self)

    @property
    def lifecycle(self) -> Lifecycle:
        """Contact and account lifecycle stages, rules and history (oppkit.workflow)."""
        from .workflow.lifecycle import Lifecycle

        return Lifecycle(self)

    # --- helpers ----------------------------------------------------------------

    def _frame(self, stmt: Select, kind: str, columns: list[str] | None = None) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            rows = [tuple(row) for row in result.fetchall()]  # plain tuples: far faster in pandas
            df = pd.DataFrame(rows, columns=columns or list(result.keys()))
        df.attrs["oppkit"] = {"kit": self.token, "frame": kind}
        return df

    def _visible(self):  # noqa: ANN202
        """SQL condition: the opportunity row ``opportunities`` may be seen by this user."""
        if self._user_id is None:
            return opportunities.c.is_private.is_(False)
        member = exists().where(
            opportunity_people.c.opportunity_id == opportunities.c.id,
            opportunity_people.c.person_id == self._user_id,
            opportunity_people.c.kind == "member",  # following a deal is no membership
            opportunity_people.c.is_deleted.is_(False),
        )
        return or_(
            opportunities.c.is_private.is_(False),
            opportunities.c.owner_id == self._user_id,
            member,
        )

    def _ids(self, table, ref: Any, by: Iterable[str], what: str) -> list[int]:  # noqa: ANN001
        """Ids for a reference given as an id, or a value of one of the ``by`` columns.

        Exact matches use the columns' indexes; only names fall back to a case-insensitive
        comparison (a scan) when nothing matches exactly.
        """
        found: list[int] = []
        with self.engine.connect() as conn:
            for item in _in_list(ref):
                if isinstance(item, numbers.Integral):
                    found.append(int(item))
                    continue
                text = str(item).strip()
                ids: list[int] = []
                for column in by:
                    ids = conn.scalars(select(table.c.id).where(table.c[column] == text)).all()
                    if ids:
                        break
                if not ids and "name" in by:
                    ids = conn.scalars(
                        select(table.c.id).where(func.lower(table.c.name) == text.lower())
                    ).all()
                if not ids:
                    raise NotFoundError(f"no {what} matches {text!r}")
                found.extend(ids)
        return found

    def _opportunity_ids(self, ref: Any) -> list[int]:
        return self._ids(opportunities, ref, ("source_id", "name"), "opportunity")

    def _account_ids(self, ref: Any) -> list[int]:
        refs = [r.strip().lower() if isinstance(r, str) and "." in r else r for r in _in_list(ref)]
        return self._ids(accounts, refs, ("domain", "salesforce_id", "name"), "account")

    def _person_ids(self, ref: Any) -> list[int]:
        refs = [normalise_email(r) or r for r in _in_list(ref)]
        return self._ids(people, refs, ("email", "salesforce_id"), "person")

    # --- accessors ----------------------------------------------------------------

    def opportunities(
        self,
        *,
        stage: str | list[str] | None = None,
        owner: str | None = None,
        account: Any = None,
        open_only: bool = False,
    ) -> pd.DataFrame:
        """One row per opportunity: stage, deal size, days to close, open alerts...

        >>> kit.opportunities(open_only=True)[["name", "stage", "amount", "days_to_close"]]
        """
        owner_p = people.alias("owner")
        open_alerts = (
            select(alerts.c.opportunity_id, func.count().label("n"))
            .where(alerts.c.status == "open", alerts.c.is_deleted.is_(False))
            .group_by(alerts.c.opportunity_id)
            .subquery()
        )
        stmt = (
            select(
                opportunities.c.id,
                opportunities.c.name,
                accounts.c.name.label("account"),
                opportunities.c.account_id,
                owner_p.c.name.label("owner"),
                owner_p.c.email.label("owner_email"),
                opportunities.c.stage,
                func.coalesce(stages.c.status, literal("open")).label("stage_status"),
                opportunities.c.step,
                opportunities.c.amount,
                opportunities.c.close_date,
                opportunities.c.probability,
                func.coalesce(open_alerts.c.n, 0).label("open_alerts"),
                opportunities.c.is_private,
                opportunities.c.parent_id,
                opportunities.c.attributes,
                opportunities.c.created_at,
                opportunities.c.updated_at,
                opportunities.c.source,
                opportunities.c.source_id,
            )
            .select_from(
                opportunities.outerjoin(accounts, accounts.c.id == opportunities.c.account_id)
                .outerjoin(owner_p, owner_p.c.id == opportunities.c.owner_id)
                .outerjoin(stages, stages.c.name == opportunities.c.stage)
                .outerjoin(open_alerts, open_alerts.c.opportunity_id == opportunities.c.id)
            )
            .where(opportunities.c.is_deleted.is_(False), self._visible())
            .order_by(opportunities.c.close_date, opportunities.c.id)
        )
        if stage is not None:
            stmt = stmt.where(opportunities.c.stage.in_(_in_list(stage)))
        if owner is not None:
            who = owner.strip().lower()
            stmt = stmt.where(
                or_(func.lower(owner_p.c.email) == who, func.lower(owner_p.c.name) == who)
            )
        if account is not None:
            stmt = stmt.where(opportunities.c.account_id.in_(self._account_ids(account)))
        if open_only:
            stmt = stmt.where(func.coalesce(stages.c.status, literal("open")) == "open")
        df = self._frame(stmt, "opportunities")
        _expand_attributes(df)
        df["amount"] = df["amount"].astype("Float64")
        df["close_date"] = pd.to_datetime(df["close_date"]).dt.date
        today = datetime.now(UTC).date()
        df["days_to_close"] = pd.array(
            [
                (d - today).days if isinstance(d, date) and not pd.isna(d) else None
                for d in df["close_date"]
            ],
            dtype="Int64",
        )
        df["open_alerts"] = df["open_alerts"].astype("int64")
        df["is_private"] = df["is_private"].astype(bool)
        for column in ("created_at", "updated_at"):
            df[column] = pd.to_datetime(df[column], utc=True)
        return df

    def timeline(
        self,
        *,
        opportunity: Any = None,
        account: Any = None,
        person: Any = None,
        kind: str | list[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Every touch point, newest first; filter by opportunity, account or person.

        ``opportunity`` is an id or name, ``account`` an id, name or email domain,
        ``person`` an email; each may also be a list.

        >>> kit.timeline(account="acme-robotics.example", kind="email").head()
        """
        sender = people.alias("sender")
        stmt = (
            select(
                activities.c.id,
                activities.c.occurred_at,
                activities.c.kind,
                activities.c.subject,
                activities.c.snippet,
                activities.c.direction,
                sender.c.email,
                sender.c.name,
                activities.c.thread_id,
                accounts.c.name,
                activities.c.account_id,
                case((opportunities.c.id.is_(None), None), else_=opportunities.c.name),
                activities.c.opportunity_id,
                activities.c.duration_minutes,
                activities.c.is_planned,
                activities.c.status,
                activities.c.is_auto,
                activities.c.source,
                activities.c.source_id,
            )
            .select_from(
                activities.outerjoin(accounts, accounts.c.id == activities.c.account_id)
                .outerjoin(opportunities, opportunities.c.id == activities.c.opportunity_id)
                .outerjoin(sender, sender.c.id == activities.c.sender_id)
            )
            .where(
                activities.c.is_deleted.is_(False),
                or_(activities.c.opportunity_id.is_(None), self._visible()),
            )
            .order_by(activities.c.occurred_at.desc(), activities.c.id.desc())
        )
        if opportunity is not None:
            stmt = stmt.where(activities.c.opportunity_id.in_(self._opportunity_ids(opportunity)))
        if account is not None:
            stmt = stmt.where(activities.c.account_id.in_(self._account_ids(account)))
        if person is not None:
            ids = self._person_ids(person)
            stmt = stmt.where(
                activities.c.id.in_(
                    select(activity_people.c.activity_id).where(
                        activity_people.c.person_id.in_(ids)
                    )
                )
            )
        if kind is not None:
            stmt = stmt.where(activities.c.kind.in_(_in_list(kind)))
        if since is not None:
            stmt = stmt.where(activities.c.occurred_at >= _utc(since))
        if until is not None:
            stmt = stmt.where(activities.c.occurred_at < _utc(until))
        if limit is not None:
            stmt = stmt.limit(limit)
        df = self._frame(stmt, "timeline", TIMELINE_COLUMNS)
        df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
        for column in ("is_planned", "is_auto"):
            df[column] = df[column].astype(bool)
        for column in ("account_id", "opportunity_id"):
            df[column] = df[column].astype("Int64")
        df["duration_minutes"] = df["duration_minutes"].astype("Float64")
        return df

    def people(
        self, *, account: Any = None, opportunity: Any = None, internal: bool | None = None
    ) -> pd.DataFrame:
        """People keyed by email, with account and whether they are one of us.

        With ``opportunity``, its members (with their role) are returned.
        """
        stmt = (
            select(
                people.c.id,
                people.c.email,
                people.c.name,
                people.c.title,
                accounts.c.name.label("account"),
                people.c.account_id,
                people.c.is_internal,
                people.c.lifecycle_stage,
                lifecycle_stages.c.category.label("lifecycle_category"),
                people.c.stage_locked,
                people.c.source,
                people.c.source_id,
            )
            .select_from(
                people.outerjoin(accounts, accounts.c.id == people.c.account_id).outerjoin(
                    lifecycle_stages,
                    and_(
                        lifecycle_stages.c.kind == "contact",
                        lifecycle_stages.c.name == people.c.lifecycle_stage,
                    ),
                )
            )
            .where(people.c.is_deleted.is_(False))
            .order_by(people.c.email)
        )
        if account is not None:
            stmt = stmt.where(people.c.account_id.in_(self._account_ids(account)))
        if internal is not None:
            stmt = stmt.where(people.c.is_internal.is_(true() if internal else false()))
        if opportunity is not None:
            ids = self._opportunity_ids(opportunity)
            visible = select(opportunities.c.id).where(opportunities.c.id.in_(ids), self._visible())
            stmt = stmt.add_columns(
                opportunity_people.c.role, opportunity_people.c.kind.label("membership")
            ).join(
                opportunity_people,
                and_(
                    opportunity_people.c.person_id == people.c.id,
                    opportunity_people.c.opportunity_id.in_(visible),
                    opportunity_people.c.is_deleted.is_(False),
                ),
            )
        df = self._frame(stmt, "people")
        for column in ("is_internal", "stage_locked"):
            df[column] = df[column].astype(bool)
        return df

    def suggested_people(self, opportunity: Any) -> pd.DataFrame:
        """External people on the deal's threads who are not members yet, most engaged first.

        A thread counts when it holds an activity of this opportunity or one where a member
        took part. ``messages`` is how many of those activities the person was on,
        ``sent`` how many they sent.

        >>> kit.suggested_people("Acme pilot").head(3)
        """
        ids = self._opportunity_ids(opportunity)
        visible = select(opportunities.c.id).where(opportunities.c.id.in_(ids), self._visible())
        members = select(opportunity_people.c.person_id).where(
            opportunity_people.c.opportunity_id.in_(visible),
            opportunity_people.c.is_deleted.is_(False),
        )
        member_activities = select(activity_people.c.activity_id).where(
            activity_people.c.person_id.in_(members)
        )
        threads = select(activities.c.thread_id).where(
            activities.c.thread_id.is_not(None),
            or_(activities.c.opportunity_id.in_(visible), activities.c.id.in_(member_activities)),
        )
        on_threads = select(activities.c.id).where(
            activities.c.is_deleted.is_(False),
            or_(activities.c.opportunity_id.in_(visible), activities.c.thread_id.in_(threads)),
        )
        stmt = (
            select(
                people.c.id,
                people.c.email,
                people.c.name,
                people.c.title,
                accounts.c.name.label("account"),
                func.count(func.distinct(activity_people.c.activity_id)).label("messages"),
                func.count(
                    func.distinct(
                        case(
                            (
                                activity_people.c.role.in_(("from", "organizer")),
                                activity_people.c.activity_id,
                            )
                        )
                    )
                ).label("sent"),
                func.max(activities.c.occurred_at).label("last_seen"),
            )
            .select_from(
                activity_people.join(people, people.c.id == activity_people.c.person_id)
                .join(activities, activities.c.id == activity_people.c.activity_id)
                .outerjoin(accounts, accounts.c.id == people.c.account_id)
            )
            .where(
                activity_people.c.activity_id.in_(on_threads),
                people.c.is_internal.is_(False),
                people.c.is_deleted.is_(False),
                people.c.id.not_in(members),
                activities.c.is_auto.is_(False),
            )
            .group_by(people.c.id, people.c.email, people.c.name, people.c.title, accounts.c.name)
            .order_by(
                literal_column("messages").desc(), literal_column("sent").desc(), people.c.email
            )
        )
        df = self._frame(stmt, "people")
        df["last_seen"] = pd.to_datetime(df["last_seen"], utc=True)
        return df

    def accounts(self) -> pd.DataFrame:
        """Customer organisations with their domain, owner, lifecycle stage and counts."""
        owner_p = people.alias("owner")
        n_people = (
            select(func.count()).where(people.c.account_id == accounts.c.id).scalar_subquery()
        )
        stmt = (
            select(
                accounts.c.id,
                accounts.c.name,
                accounts.c.domain,
                owner_p.c.name.label("owner"),
                accounts.c.industry,
                accounts.c.lifecycle_stage,
                lifecycle_stages.c.category.label("lifecycle_category"),
                accounts.c.stage_locked,
                n_people.label("people"),
                accounts.c.source,
                accounts.c.source_id,
            )
            .select_from(
                accounts.outerjoin(owner_p, owner_p.c.id == accounts.c.owner_id).outerjoin(
                    lifecycle_stages,
                    and_(
                        lifecycle_stages.c.kind == "account",
                        lifecycle_stages.c.name == accounts.c.lifecycle_stage,
                    ),
                )
            )
            .where(accounts.c.is_deleted.is_(False))
            .order_by(accounts.c.name)
        )
        df = self._frame(stmt, "accounts")
        df["stage_locked"] = df["stage_locked"].astype(bool)
        return df

    def alerts(self, *, opportunity: Any = None, status: str | None = None) -> pd.DataFrame:
        """Alerts and tasks, with the activity they came from and the rule that found them."""
        stmt = (
            select(
                alerts.c.id,
                alerts.c.kind,
                alerts.c.text,
                alerts.c.due_at,
                alerts.c.status,
                alerts.c.rule,
                alerts.c.activity_id,
                alerts.c.opportunity_id,
                opportunities.c.name.label("opportunity"),
                alerts.c.created_at,
            )
            .select_from(
                alerts.outerjoin(opportunities, opportunities.c.id == alerts.c.opportunity_id)
            )
            .where(
                alerts.c.is_deleted.is_(False),
                or_(alerts.c.opportunity_id.is_(None), self._visible()),
            )
            .order_by(alerts.c.created_at.desc())
        )
        if opportunity is not None:
            stmt = stmt.where(alerts.c.opportunity_id.in_(self._opportunity_ids(opportunity)))
        if status is not None:
            stmt = stmt.where(alerts.c.status == status)
        df = self._frame(stmt, "alerts")
        for column in ("due_at", "created_at"):
            df[column] = pd.to_datetime(df[column], utc=True)
        return df

    def stages(self) -> pd.DataFrame:
        """The workflow's stages: open ones in funnel order, then closed ones."""
        stmt = select(
            stages.c.name,
            stages.c.status,
            stages.c.sort_order,
            stages.c.probability,
            stages.c.is_active,
        ).order_by(stages.c.sort_order, stages.c.name)
        return self._frame(stmt, "stages")

    def pipeline(self) -> pd.DataFrame:
        """The funnel: open stages in their order with count, amount and weighted amount.

        Opportunities in a stage the workflow does not know are shown after the known
        ones, so nothing silently drops out of the total.
        """
        opps = self.opportunities(open_only=True)
        known = self.stages()
        order = known[known["status"] == "open"]["name"].tolist()
        extra = sorted(set(opps["stage"].dropna()) - set(known["name"]))
        rows = []
        for position, stage in enumerate(order + extra, start=1):
            in_stage = opps[opps["stage"] == stage]
            weighted = (
                in_stage["amount"].fillna(0) * in_stage["probability"].fillna(0) / 100
            ).sum()
            rows.append(
                {
                    "stage": stage,
                    "order": position,
                    "count": len(in_stage),
                    "amount": float(in_stage["amount"].fillna(0).sum()),
                    "weighted_amount": float(weighted),
                }
            )
        df = pd.DataFrame(rows, columns=["stage", "order", "count", "amount", "weighted_amount"])
        df.attrs["oppkit"] = {"kit": self.token, "frame": "pipeline"}
        return df

    def stage_history(self, *, opportunity: Any = None) -> pd.DataFrame:
        """Every stage, amount and close-date change, newest first."""
        by = people.alias("by")
        stmt = (
            select(
                stage_history.c.opportunity_id,
                opportunities.c.name.label("opportunity"),
                stage_history.c.field,
                stage_history.c.old_value,
                stage_history.c.new_value,
                stage_history.c.changed_at,
                by.c.name.label("changed_by"),
                stage_history.c.source,
            )
            .select_from(
                stage_history.join(
                    opportunities, opportunities.c.id == stage_history.c.opportunity_id
                ).outerjoin(by, by.c.id == stage_history.c.changed_by_id)
            )
            .where(self._visible(), opportunities.c.is_deleted.is_(False))
            .order_by(stage_history.c.changed_at.desc(), stage_history.c.id.desc())
        )
        if opportunity is not None:
            stmt = stmt.where(
                stage_history.c.opportunity_id.in_(self._opportunity_ids(opportunity))
            )
        df = self._frame(stmt, "stage_history")
        df["changed_at"] = pd.to_datetime(df["changed_at"], utc=True)
        return df

    # --- relationships and following (delegating to oppkit.graphs and oppkit.digest) ----

    def relationship_graph(
        self, *, account: Any = None, opportunity: Any = None, **kwargs: Any
    ) -> RelationshipGraph:
        """Who talks to whom on an account or deal: ``.graph`` (networkx), ``.html()``.

        Shown as an interactive graph in a notebook. Keywords: ``now``, ``half_life_days``.

        >>> kit.relationship_graph(account="acme-robotics.example")
        """
        from .graphs import relationship_graph

        return relationship_graph(self, account=account, opportunity=opportunity, **kwargs)

    def engagement(
        self, *, account: Any = None, opportunity: Any = None, pairs: bool = False, **kwargs: Any
    ) -> pd.DataFrame:
        """Relationship strength per person (or per pair), from recency, frequency, reciprocity.

        >>> kit.engagement(account="acme-robotics.example").head()
        """
        from .graphs import engagement

        return engagement(self, account=account, opportunity=opportunity, pairs=pairs, **kwargs)

    def follow(self, opportunity: Any, person_email: str, frequency: str = "daily") -> None:
        """Send ``person_email`` a daily or weekly digest of what happens on the deal.

        >>> kit.follow("Acme pilot", "ben.okafor@northwind.example", frequency="weekly")
        """
        from .digest import follow

        follow(self, opportunity, person_email, frequency)

    def unfollow(self, opportunity: Any, person_email: str) -> None:
        """Stop the digests of ``opportunity`` for ``person_email``."""
        from .digest import unfollow

        unfollow(self, opportunity, person_email)


def _expand_attributes(df: pd.DataFrame) -> None:
    """Custom fields mapped in oppkit.toml become columns of their own (never shadowing ours)."""
    attributes = df.pop("attributes")
    if not attributes.notna().any():
        return
    extra = pd.DataFrame([a if isinstance(a, dict) else {} for a in attributes], index=df.index)
    for column in extra.columns:
        if column not in df.columns:
            df[column] = extra[column]


def _utc(value: datetime | str) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def kit_of(frame: pd.DataFrame) -> Kit:
    """The Kit a frame came from (frames remember it in ``attrs``)."""
    token = (frame.attrs.get("oppkit") or {}).get("kit")
    kit = _registry.get(token) if token else None
    if kit is None:
        raise ValueError("this DataFrame did not come from an oppkit Kit (or the Kit is gone)")
    return kit
