"""Relationship graphs: who talks to whom on an account or a deal, and how strongly.

``kit.relationship_graph(...)`` and ``kit.engagement(...)`` delegate here, with the
Kit's scope (privacy). The model (networkx graph and scores) lives in :mod:`.model`,
the HTML view in :mod:`.view`.

Example::

    rel = kit.relationship_graph(account="acme-robotics.example")
    rel                                   # in a notebook: the interactive graph
    rel.graph.degree("ava.patel@northwind.example")
    rel.save("acme.html")                 # one offline HTML file
    rel.frame(height=460)                 # the sandboxed iframe, sized for a widget

The caption names the deal and the account (never an internal id). The page fills its
frame: the drawing takes the frame's height, is fitted to it after the layout settles,
and again whenever the frame is resized (e.g. a notebook tab shown after it was drawn).
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
from sqlalchemy import select

from ..db.schema import accounts, opportunities
from ..scope import ScopeLike, scope_of
from .model import (
    DEFAULT_HALF_LIFE_DAYS,
    build_graph,
    load_interactions,
    pair_scores,
    person_scores,
)
from .view import DEFAULT_MAX_EDGES, render_html

__all__ = ["RelationshipGraph", "engagement", "relationship_graph"]


@dataclass
class RelationshipGraph:
    """A networkx graph of people plus its scores, shown as an interactive pyvis view.

    ``graph`` nodes are emails with name, email, is_internal, account, engagement (the
    person's score), interactions, sent, received, meetings and last_interaction; edges
    carry weight (interactions both ways), a_to_b, b_to_a, meetings, score.
    """

    graph: nx.Graph
    people: pd.DataFrame
    pairs: pd.DataFrame
    heading: str = "Relationships"
    now: pd.Timestamp | None = None

    def html(self, *, max_edges: int = DEFAULT_MAX_EDGES, height: str = "720px") -> str:
        """A self-contained page (JavaScript and CSS inlined; works offline).

        >>> Path("acme.html").write_text(rel.html(), encoding="utf-8")
        """
        return render_html(self.graph, heading=self.heading, max_edges=max_edges, height=height)

    def save(self, path: str | Path, **kwargs: Any) -> Path:
        """Write :meth:`html` to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.html(**kwargs), encoding="utf-8")
        return path

    def frame(self, *, height: int = 720, max_edges: int = DEFAULT_MAX_EDGES) -> str:
        """The page in a sandboxed iframe ``height`` px tall and as wide as its container;
        the drawing fills the frame (its scripts run, but cannot reach the notebook)."""
        page = render_html(self.graph, heading=self.heading, max_edges=max_edges, height="fill")
        return (
            '<iframe sandbox="allow-scripts" class="oppkit-graph-frame" '
            f'title="{html_lib.escape(self.heading)}" style="display:block;width:100%;max-width:100%;'
            f'height:{int(height)}px;border:0" '
            f'srcdoc="{html_lib.escape(page, quote=True)}"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.frame()

    def __repr__(self) -> str:
        return (
            f"RelationshipGraph({self.heading!r}, {self.graph.number_of_nodes()} people, "
            f"{self.graph.number_of_edges()} connections)"
        )


def _heading(scope: ScopeLike, account: Any, opportunity: Any) -> str:
    """The caption: the deal's and the account's names as this scope sees them."""
    scope = scope_of(scope)
    parts = []
    with scope.engine.connect() as conn:
        if opportunity is not None:
            names = conn.scalars(
                select(opportunities.c.name)
                .where(opportunities.c.id.in_(scope.opportunity_ids(opportunity)))
                .order_by(opportunities.c.id)
            ).all()
            parts.append(", ".join(n for n in names if n) or f"Opportunity {opportunity}")
        if account is not None:
            names = conn.scalars(
                select(accounts.c.name)
                .where(accounts.c.id.in_(scope.account_ids(account)))
                .order_by(accounts.c.id)
            ).all()
            parts.append(", ".join(n for n in names if n) or f"Account {account}")
    return " · ".join(parts) or "Relationships"


def relationship_graph(
    scope: ScopeLike,
    *,
    account: Any = None,
    opportunity: Any = None,
    now: datetime | str | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> RelationshipGraph:
    """The relationship graph of an account or an opportunity, as the Kit's user may see it."""
    data = load_interactions(
        scope, account=account, opportunity=opportunity, now=now, half_life_days=half_life_days
    )
    persons, pairs = person_scores(data), pair_scores(data)
    return RelationshipGraph(
        graph=build_graph(persons, pairs),
        people=persons,
        pairs=pairs,
        heading=_heading(scope, account, opportunity),
        now=data.now,
    )


def engagement(
    scope: ScopeLike,
    *,
    account: Any = None,
    opportunity: Any = None,
    now: datetime | str | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    pairs: bool = False,
) -> pd.DataFrame:
    """Engagement per person (or per pair with ``pairs=True``), strongest first."""
    data = load_interactions(
        scope, account=account, opportunity=opportunity, now=now, half_life_days=half_life_days
    )
    df = pair_scores(data) if pairs else person_scores(data)
    return scope_of(scope).tag(df, "engagement_pairs" if pairs else "engagement")
