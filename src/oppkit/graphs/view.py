"""The relationship graph as one self-contained HTML page (pyvis + vis-network).

Why our own template: pyvis's bundled one links bootstrap and tom-select on a CDN; ours
inlines vis-network's JavaScript and CSS (read from pyvis's package), so the page works
offline and fetches nothing (a Content-Security-Policy forbids it as well).

Safety: every name, email and account comes from mail or Salesforce and is untrusted.
Node and edge data go into the page as JSON (``tojson`` escapes ``<``, ``>``, ``&`` and
``'``, so no string can close the script); labels are drawn on a canvas; tooltips are
turned into DOM nodes with ``textContent`` (never ``innerHTML``); the caption is
HTML-escaped by Jinja's autoescape; in a notebook the page sits in a sandboxed iframe.

Large graphs stay usable: physics runs a bounded stabilisation and is then switched off,
and only the ``max_edges`` strongest connections are drawn (the caption says so).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import pyvis
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from pyvis.network import Network

HERE = Path(__file__).parent
PYVIS_TEMPLATES = Path(pyvis.__file__).parent / "templates"
INTERNAL_COLOR = {"background": "#2563eb", "border": "#1e40af"}
EXTERNAL_COLOR = {"background": "#ea580c", "border": "#9a3412"}
DEFAULT_MAX_EDGES = 5000


def _options(n_nodes: int) -> dict:
    return {
        "autoResize": True,
        "nodes": {
            "shape": "dot",
            "scaling": {
                "min": 6,
                "max": 40,
                "label": {"enabled": True, "min": 11, "max": 22, "drawThreshold": 7},
            },
            "font": {"face": "system-ui, sans-serif"},
        },
        "edges": {
            "smooth": False,
            "color": {"color": "#9ca3af", "highlight": "#111827", "opacity": 0.6},
            "scaling": {"min": 1, "max": 8},
        },
        "interaction": {
            "hover": True,
            "tooltipDelay": 120,
            "hideEdgesOnDrag": n_nodes > 300,
            "hideEdgesOnZoom": n_nodes > 300,
        },
        "layout": {"improvedLayout": n_nodes <= 150, "randomSeed": 7},
        "physics": {
            "enabled": True,
            "solver": "barnesHut",
            "barnesHut": {
                "gravitationalConstant": -4000,
                "springLength": 120,
                "springConstant": 0.03,
                "avoidOverlap": 0.1,
            },
            "stabilization": {
                "enabled": True,
                "iterations": 300 if n_nodes <= 500 else 150,
                "updateInterval": 25,
                "fit": True,
            },
        },
    }


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _node(email: str, attrs: dict) -> dict:
    name = _text(attrs.get("name")) or email
    last = attrs.get("last_interaction")
    lines = [
        name,
        email,
        f"{'internal' if attrs.get('is_internal') else 'external'}"
        + (f" · {_text(attrs.get('account'))}" if _text(attrs.get("account")) else ""),
        f"{attrs.get('interactions', 0)} interactions: {attrs.get('sent', 0)} sent, "
        f"{attrs.get('received', 0)} received, {attrs.get('meetings', 0)} meetings/calls",
        f"last: {last:%Y-%m-%d}" if last is not None else "",
        f"engagement {attrs.get('engagement', 0.0):.2f}",
    ]
    return {
        "id": email,
        "label": name,
        "title": "\n".join(line for line in lines if line),
        "value": round(float(attrs.get("engagement", 0.0)), 4),
        "color": INTERNAL_COLOR if attrs.get("is_internal") else EXTERNAL_COLOR,
    }


def _edge(graph: nx.Graph, a: str, b: str, attrs: dict) -> dict:
    name_a = _text(graph.nodes[a].get("name")) or a
    name_b = _text(graph.nodes[b].get("name")) or b
    last = attrs.get("last_interaction")
    lines = [
        f"{name_a} — {name_b}",
        f"{name_a} → {name_b}: {attrs['a_to_b']} emails",
        f"{name_b} → {name_a}: {attrs['b_to_a']} emails",
        f"meetings/calls: {attrs['meetings']}",
        f"last: {last:%Y-%m-%d}" if last is not None else "",
        f"strength {attrs['score']:.2f}",
    ]
    return {
        "from": a,
        "to": b,
        "value": attrs["weight"],
        "title": "\n".join(line for line in lines if line),
    }


def render_html(
    graph: nx.Graph,
    *,
    heading: str = "Relationships",
    max_edges: int = DEFAULT_MAX_EDGES,
    height: str = "720px",
) -> str:
    """The page for ``graph`` (nodes keyed by email, attributes as in :mod:`.model`).

    ``height="fill"``: the drawing takes what the page's frame leaves below the caption.
    """
    edges = sorted(graph.edges(data=True), key=lambda e: e[2].get("score", 0.0), reverse=True)
    shown = edges[:max_edges]
    caption = f"{heading} — {graph.number_of_nodes():,} people, {len(edges):,} connections"
    if len(shown) < len(edges):
        caption += f" (showing the {len(shown):,} strongest)"
    height = "calc(100vh - 36px)" if height == "fill" else height
    net = Network(height=height, width="100%", bgcolor="#ffffff", cdn_resources="in_line")
    net.nodes = [_node(n, attrs) for n, attrs in graph.nodes(data=True)]
    net.edges = [_edge(graph, a, b, attrs) for a, b, attrs in shown]
    net.options = _options(len(net.nodes))
    net.heading = caption
    net.path = "template.html"
    net.templateEnv = Environment(
        loader=ChoiceLoader([FileSystemLoader(HERE), FileSystemLoader(PYVIS_TEMPLATES)]),
        autoescape=True,
    )
    return net.generate_html()


def options_json(n_nodes: int) -> str:
    """The vis-network options used for ``n_nodes`` (for people tuning them)."""
    return json.dumps(_options(n_nodes), indent=2)
