"""The Kit: the shared database as pandas DataFrames, for people in notebooks.

Why: analysts think in frames, not SQL. Every accessor returns a DataFrame with stable
column names, times as tz-aware UTC timestamps, and privacy applied: a private
opportunity (and what is linked to it) is visible only to its owner and members.

The Kit is a façade: its accessors are the functions of :mod:`oppkit.frames` with the
Kit's :class:`~oppkit.scope.Scope` bound, and ``kit.workflow``, ``kit.lifecycle``,
graphs and digests are the features of their own modules, each given that scope.
Nothing below the Kit imports it.

Example::

    kit = oppkit.connect(user="alice@northwind.example")
    kit.opportunities().sort_values("amount", ascending=False).head()
    kit.timeline(opportunity="Acme Robotics — Predictive maintenance pilot")
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine

from . import frames
from .campaign_report import campaign_report
from .config import load_settings
from .db.engine import connect_engine
from .frames.timeline import TIMELINE_COLUMNS
from .scope import NotFoundError, Scope

if TYPE_CHECKING:
    from .agreements import Agreements
    from .campaigns import Campaigns
    from .cases import Cases
    from .graphs import RelationshipGraph
    from .interactions import Interactions
    from .leads import Leads
    from .policies import Policies
    from .saved_reports import Reports
    from .workflow.engine import Workflow
    from .workflow.lifecycle import Lifecycle

__all__ = ["TIMELINE_COLUMNS", "Kit", "NotFoundError", "connect", "kit_of"]

_registry: weakref.WeakValueDictionary[str, Kit] = weakref.WeakValueDictionary()


def connect(url: str | None = None, user: str | None = None) -> Kit:
    """Open the shared database (migrating it if needed) and return a :class:`Kit`.

    ``url`` defaults to ``OPPKIT_DATABASE_URL``, oppkit.toml, then an SQLite file in the
    user's data folder. ``user`` (an email) is who is looking: private opportunities are
    shown only to their owner and members; without a user they are hidden.

    >>> kit = oppkit.connect("sqlite:///demo.sqlite", user="ava.patel@northwind.example")
    """
    settings = load_settings(url)
    return Kit(connect_engine(settings.resolved_database_url), user=user)


def _reads(func: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
    """A frames function (scope first) as a Kit method: ``kit.f(...)`` is ``f(kit.scope, ...)``."""

    @functools.wraps(func)
    def method(self: Kit, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return func(self.scope, *args, **kwargs)

    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[params[0].replace(name="self", annotation=inspect.Parameter.empty), *params[1:]]
    )
    return method


class Kit:
    """Read access to the shared database as DataFrames (see :func:`connect`)."""

    def __init__(self, engine: Engine, user: str | None = None) -> None:
        self.scope = Scope(engine, user=user)
        _registry[self.scope.token] = self

    @property
    def engine(self) -> Engine:
        """The database engine (SQLite or PostgreSQL)."""
        return self.scope.engine

    @property
    def user(self) -> str | None:
        """Who is looking (a normalised email), or None."""
        return self.scope.user

    @property
    def token(self) -> str:
        """The tag frames of this Kit carry in ``attrs`` (see :func:`kit_of`)."""
        return self.scope.token

    def __repr__(self) -> str:
        return f"Kit({self.engine.url.render_as_string(hide_password=True)!r}, user={self.user!r})"

    @property
    def workflow(self) -> Workflow:
        """The sales process: transitions, entries, follow-ons, graph (oppkit.workflow)."""
        from .workflow.engine import Workflow

        return Workflow(self.scope)

    @property
    def lifecycle(self) -> Lifecycle:
        """Contact and account lifecycle stages, rules and history (oppkit.workflow)."""
        from .workflow.lifecycle import Lifecycle

        return Lifecycle(self.scope)

    @property
    def campaigns(self) -> Campaigns:
        """Campaigns: ``kit.campaigns()`` is the frame; ``.assign``, ``.add_contacts``,
        ``.create``, ``.plan_activity`` act on them (oppkit.campaigns)."""
        from .campaigns import Campaigns

        return Campaigns(self.scope)

    @property
    def leads(self) -> Leads:
        """Leads: ``kit.leads(status=..., campaign=...)`` is the frame; ``.accept``,
        ``.create`` act on them (oppkit.leads)."""
        from .leads import Leads

        return Leads(self.scope)

    @property
    def interactions(self) -> Interactions:
        """Planned interactions and their results: ``kit.interactions(account=...,
        status="planned"|"overdue"|"done")`` is the frame; ``.plan``, ``.record_result``,
        ``.follow_up``, ``.items`` act on them (oppkit.interactions)."""
        from .interactions import Interactions

        return Interactions(self.scope)

    @property
    def agreements(self) -> Agreements:
        """An account's agreements: ``kit.agreements(account=..., include_inactive=False)``
        is the frame; ``.create``, ``.update``, ``.check``, ``.types`` (oppkit.agreements)."""
        from .agreements import Agreements

        return Agreements(self.scope)

    @property
    def cases(self) -> Cases:
        """Cases: ``kit.cases(opportunity=..., account=...)`` is the frame;
        ``.open_pending``, ``.formalise`` (oppkit.cases)."""
        from .cases import Cases

        return Cases(self.scope)

    @property
    def policies(self) -> Policies:
        """Policies: ``kit.policies(opportunity=..., account=...)`` is the frame;
        ``.create``, ``.link`` (oppkit.policies)."""
        from .policies import Policies

        return Policies(self.scope)

    @property
    def reports(self) -> Reports:
        """Saved reports that fill campaigns: ``kit.reports()`` lists them; ``.run``,
        ``.preview``, ``.save`` (oppkit.saved_reports)."""
        from .saved_reports import Reports

        return Reports(self.scope)

    # --- frames (oppkit.frames with this Kit's scope) ---------------------------------

    opportunities = _reads(frames.opportunities)
    timeline = _reads(frames.timeline)
    possible_deals = _reads(frames.possible_deals)
    people = _reads(frames.people)
    suggested_people = _reads(frames.suggested_people)
    accounts = _reads(frames.accounts)
    alerts = _reads(frames.alerts)
    open_tasks = _reads(frames.open_tasks)
    stages = _reads(frames.stages)
    pipeline = _reads(frames.pipeline)
    stage_history = _reads(frames.stage_history)
    sync_status = _reads(frames.sync_status)
    campaign_members = _reads(frames.campaign_members)
    campaign_activities = _reads(frames.campaign_activities)
    campaign_report = _reads(campaign_report)
    links = _reads(frames.links)

    # --- relationships and following (delegating to oppkit.graphs and oppkit.digest) ----

    def relationship_graph(
        self, *, account: Any = None, opportunity: Any = None, **kwargs: Any
    ) -> RelationshipGraph:
        """Who talks to whom on an account or deal: ``.graph`` (networkx), ``.html()``.

        Shown as an interactive graph in a notebook. Keywords: ``now``, ``half_life_days``.

        >>> kit.relationship_graph(account="acme-robotics.example")
        """
        from .graphs import relationship_graph

        return relationship_graph(self.scope, account=account, opportunity=opportunity, **kwargs)

    def engagement(
        self, *, account: Any = None, opportunity: Any = None, pairs: bool = False, **kwargs: Any
    ) -> pd.DataFrame:
        """Relationship strength per person (or per pair), from recency, frequency, reciprocity.

        >>> kit.engagement(account="acme-robotics.example").head()
        """
        from .graphs import engagement

        return engagement(
            self.scope, account=account, opportunity=opportunity, pairs=pairs, **kwargs
        )

    def follow(
        self, opportunity: Any, person_email: str, frequency: str = "daily", *,
        external: bool = False,
    ) -> None:  # fmt: skip
        """Send ``person_email`` a daily or weekly digest of what happens on the deal.

        Colleagues who may see the deal can be added by anyone who sees it; an outside
        address only by the deal's owner, with ``external=True`` (see oppkit.digest.follow).

        >>> kit.follow("Acme pilot", "ben.okafor@northwind.example", frequency="weekly")
        """
        from .digest import follow

        follow(self.scope, opportunity, person_email, frequency, external=external)

    def link_activity(self, activity_id: int, opportunity: Any | None) -> None:
        """Settle which deal an activity belongs to (None: the account only); kept for good.

        >>> kit.link_activity(4711, "Acme Robotics — Fleet analytics expansion")
        """
        from .actions import link_activity

        link_activity(self.scope, activity_id, opportunity)

    def stage_actions(self, activity: Any) -> pd.DataFrame:
        """What a meeting or call (an id or a timeline row) leads to: the stage actions of
        its deal's current stage, then of its previous ones (oppkit.stage_actions).

        >>> kit.stage_actions(kit.timeline(opportunity="Acme pilot", kind="meeting").iloc[0])
        """
        from .stage_actions import stage_actions

        return stage_actions(self.scope, activity)

    def perform_stage_action(
        self, activity: Any, action: Any, *, by: str | None = None, due: Any = None,
        **values: Any,
    ) -> int:  # fmt: skip
        """Do a stage action from a meeting or call: an activity or a letter on the deal's
        timeline, linked to it; its id. Keywords fill the templates' placeholders.

        >>> kit.perform_stage_action(4711, "Send meeting summary letter", next_steps="...")
        """
        from .stage_actions import perform_stage_action

        return perform_stage_action(self.scope, activity, action, by=by, due=due, **values)

    # --- changes to deals (oppkit.writeback) -------------------------------------------

    def update_opportunity(
        self, opportunity: Any, *, by: str | None = None, **fields: Any
    ) -> list[int]:
        """Change a deal's name, stage, amount, close date or probability.

        A Salesforce deal's change goes to Salesforce (write-back on: pending until the
        agent pushes it) or is refused saying where to change it (off; the default).

        >>> kit.update_opportunity("Acme pilot", amount=55_000, close_date="2027-01-31")
        """
        from .writeback import update_opportunity

        return update_opportunity(self.scope, opportunity, by=by, **fields)

    def changes(
        self, opportunity: Any = None, *, status: str | list[str] | None = None
    ) -> pd.DataFrame:
        """Changes made here to fields Salesforce owns: pending, pushed, in conflict; a
        deal's fields, and a contact's or account's lifecycle status (``sobject``, and
        ``opportunity``, ``person`` or ``account`` say which record).

        >>> kit.changes(status="conflict")
        """
        from .writeback import changes

        return changes(self.scope, opportunity, status=status)

    def resolve_conflict(self, opportunity: Any, field: str, keep: str) -> None:
        """Settle a write-back conflict: ``keep="theirs"`` (Salesforce's) or ``"mine"``.
        (A contact's or account's status: ``kit.lifecycle.resolve_conflict``.)

        >>> kit.resolve_conflict("Acme pilot", "amount", keep="mine")
        """
        from .writeback import resolve_conflict

        resolve_conflict(self.scope, opportunity, field, keep)

    def discard_change(self, change_id: int) -> None:
        """Withdraw a change still pending or in conflict (Salesforce's value stays)."""
        from .writeback import discard_change

        discard_change(self.scope, change_id)

    def unfollow(self, opportunity: Any, person_email: str) -> None:
        """Stop the digests of ``opportunity`` for ``person_email``."""
        from .digest import unfollow

        unfollow(self.scope, opportunity, person_email)


def kit_of(frame: pd.DataFrame) -> Kit:
    """The Kit a frame came from (frames remember it in ``attrs``)."""
    token = (frame.attrs.get("oppkit") or {}).get("kit")
    kit = _registry.get(token) if token else None
    if kit is None:
        raise ValueError("this DataFrame did not come from an oppkit Kit (or the Kit is gone)")
    return kit
