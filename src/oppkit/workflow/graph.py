"""The workflow drawn: steps grouped by stage, transitions as arrows, a deal's way ahead.

Why offline: notebooks are shared as files and opened where there is no internet (or
where loading scripts from a CDN is not allowed). The HTML embeds vis-network's
JavaScript and CSS (shipped with pyvis) and links to nothing.

Why escaped: step, stage, transition and attribute names come from a team's file and
are shown in a browser. The graph's data is embedded as JSON with ``<``, ``>`` and ``&``
written as ``\\u003c``..., so no name can close the script; vis-network shows names as
text, never as HTML; the legend is HTML-escaped.

With an opportunity (the colours of "seed 003"): its current step is green (dark), the
transitions it can take now and the steps they lead to are green (light); a transition
still missing attributes is dashed green, and so is the border of a step only such
transitions lead to. Steps it cannot reach from where it stands are grey; the others keep
their stage's colour. Every arrow turns blue under the mouse (vis-network's edge colour
``hover``, with ``interaction.hover`` on) and shows the transition's required (and
missing) attributes.

Why readable: labels are drawn at 13 px (edges) and 14 px (steps) and the drawing is
never zoomed out below 85 % (edge labels stay at 11 px or more on screen); a wider
workflow is panned instead, starting at the deal's step. Arrows between the same two
steps bend apart (curved, each further out), and labels sit on a white background.

Why locked down: the page carries a Content-Security-Policy that allows its own inline
script and style and nothing else (no fetch, no frame, no remote image or font).

Example::

    g = kit.workflow.graph("Acme pilot")
    g            # in a notebook: drawn in a sandboxed iframe
    g.network    # the networkx MultiDiGraph (steps; one edge per transition)
    g.save("acme_workflow.html")
    g.frame(height=460)    # the sandboxed iframe, sized for a widget
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
from pyvis.network import Network

from .definition import reachable_steps
from .model import Definition

VIS = "templates/lib/vis-9.1.2"
STATUS_COLORS = {
    "open": ("#dbe9f6", "#4a7ab5"),
    "won": ("#fff1c1", "#c79a00"),
    "lost": ("#f8d7d7", "#b23b3b"),
    "archived": ("#eeeeee", "#8a8a8a"),
}
CURRENT = ("#2e7d32", "#1b5e20")  # the step the deal stands at: dark green
NEXT = ("#c8e6c9", "#2e7d32")  # a step it can move to now: light green
UNREACHABLE = ("#e0e0e0", "#bdbdbd")  # grey
HIGHLIGHT = "#2e7d32"  # a transition it can take now: green (dashed while lacking)
HOVER = "#1565c0"  # any arrow under the mouse, or selected: blue
EDGE = "#7a7a7a"
FADED = "#d0d0d0"  # an arrow leaving a step the deal cannot reach
EDGE_FONT = 13  # px at 100 %: an edge label's size
NODE_FONT = 14
MIN_SCALE = 0.85  # never zoomed out further: edge labels stay >= 11 px on screen
COLUMN = 280  # px between stage columns
ROW = 110  # px between steps of a stage
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)


@dataclass
class WorkflowGraph:
    """A drawn workflow: ``network`` (networkx), ``pyvis`` (the Network), ``html`` (offline)."""

    network: nx.MultiDiGraph
    pyvis: Network
    html: str
    height: int = 620

    def save(self, path: str | Path) -> Path:
        """Write the self-contained HTML page to ``path``."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def frame(self, *, height: int | None = None) -> str:
        """The page in a sandboxed iframe ``height`` px tall (default: the drawing's height
        plus the legend) and as wide as its container; the drawing fills the frame."""
        height = self.height + 60 if height is None else int(height)
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" sandbox="allow-scripts" '
            f'class="oppkit-graph-frame" style="display:block;width:100%;max-width:100%;'
            f'height:{height}px;border:none"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.frame()


def _json(value: Any) -> str:
    """JSON safe inside <script>: no <, > or & characters at all."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _vis_assets() -> tuple[str, str]:
    lib = resources.files("pyvis").joinpath(VIS)
    js = lib.joinpath("vis-network.min.js").read_text(encoding="utf-8")
    css = lib.joinpath("vis-network.css").read_text(encoding="utf-8")
    # Nothing in the library may end the <script> early; its one "<script" is in a string
    # literal, where \x3c means the same "<".
    js = re.sub(r"<(!--|/?script)", r"\\x3c\1", js, flags=re.IGNORECASE)
    return js, re.sub(r"</style", r"<\\/style", css, flags=re.IGNORECASE)


def page_options() -> dict[str, Any]:
    """The vis-network options of the page (label sizes, curved edges, no physics)."""
    return {
        "physics": {"enabled": False},
        "edges": {"smooth": {"enabled": True, "type": "curvedCW", "roundness": 0.2},
                  "font": {"size": EDGE_FONT, "align": "horizontal",
                           "background": "rgba(255,255,255,0.9)", "strokeWidth": 0},
                  "selectionWidth": 1},
        "nodes": {"font": {"size": NODE_FONT}, "margin": 8},
        "interaction": {"hover": True, "tooltipDelay": 100},
    }  # fmt: skip


def _page(net: Network, title: str, legend: str, height: int, focus: int | None = None) -> str:
    js, css = _vis_assets()
    view = {"minScale": MIN_SCALE, "edgeFont": EDGE_FONT, "focus": focus}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{html.escape(title)}</title>
<style>{css}
html, body {{ height: 100%; margin: 0; overflow: hidden; }}
body {{ font-family: system-ui, sans-serif; display: flex; flex-direction: column; }}
#oppkit-legend {{ flex: none; padding: 6px 10px; font-size: 13px; overflow-wrap: anywhere; }}
#oppkit-legend .now {{ color: {HIGHLIGHT}; }}
#oppkit-legend .hover {{ color: {HOVER}; }}
#oppkit-graph {{ flex: 1 1 auto; width: 100%; min-height: 240px; height: {height}px;
  border-top: 1px solid #ddd; box-sizing: border-box; }}
</style>
<script>{js}</script>
</head><body>
<div id="oppkit-legend">{legend}</div>
<div id="oppkit-graph"></div>
<script>
(function () {{
  "use strict";
  var view = {_json(view)};
  var nodes = new vis.DataSet({_json(net.nodes)});
  var edges = new vis.DataSet({_json(net.edges)});
  var network = new vis.Network(document.getElementById("oppkit-graph"),
    {{nodes: nodes, edges: edges}}, {_json(page_options())});
  // fit, but never smaller than minScale (labels stay readable): then pan to the deal
  function place() {{
    network.redraw();
    network.fit({{animation: false}});
    if (network.getScale() < view.minScale) {{
      if (view.focus !== null) {{
        network.focus(view.focus, {{scale: view.minScale, animation: false}});
      }} else {{
        network.moveTo({{scale: view.minScale, animation: false}});
      }}
    }}
  }}
  place();
  window.oppkitGraph = {{network: network, nodes: nodes, edges: edges, view: view, place: place}};
  if (window.ResizeObserver) {{
    new ResizeObserver(place).observe(document.getElementById("oppkit-graph"));
  }}
}})();
</script>
</body></html>
"""


def build_graph(
    definition: Definition,
    current: str | None = None,
    missing: dict[str, list[str]] | None = None,
    title: str = "Workflow",
    height: int = 620,
) -> WorkflowGraph:
    """Draw ``definition``; with ``current`` (a step name) highlight a deal's position.

    ``missing`` maps each transition leaving ``current`` to the attributes it still needs.
    ``current`` and the steps its transitions lead to are green, those transitions green
    (dashed while something is missing), steps out of reach grey; every arrow is blue
    under the mouse.
    """
    missing = missing or {}
    statuses = {s.name: s.status for s in definition.stages}
    graph = nx.MultiDiGraph()
    for s in definition.steps:
        graph.add_node(s.name, stage=s.stage, status=statuses.get(s.stage, "open"),
                       attributes=list(s.attributes))  # fmt: skip
    for t in definition.transitions:
        graph.add_edge(t.from_step, t.to_step, key=t.name, requires=list(t.requires),
                       triggers=list(t.triggers), communications=len(t.communications))  # fmt: skip
    reachable = None
    ready_targets: dict[str, bool] = {}  # a step it can move to now -> some way there is ready
    if current is not None:
        reachable = reachable_steps([current], {n: list(graph.successors(n)) for n in graph})
        for t in definition.transitions:
            if t.from_step == current:
                ready = not missing.get(t.name)
                ready_targets[t.to_step] = ready_targets.get(t.to_step, False) or ready

    stage_order = [s.name for s in definition.stages]
    stage_order += sorted({s.stage for s in definition.steps} - set(stage_order))
    net = Network(directed=True, cdn_resources="in_line", height=f"{height}px", width="100%")
    ids = {name: i for i, name in enumerate(graph.nodes, start=1)}
    column_of = {stage: i for i, stage in enumerate(stage_order)}
    rows: dict[str, int] = {}
    for stage in stage_order:
        if not any(s.stage == stage for s in definition.steps):
            continue
        fill, border = STATUS_COLORS.get(statuses.get(stage, "open"), STATUS_COLORS["open"])
        net.add_node(f"stage:{stage}", label=stage, shape="box", x=column_of[stage] * COLUMN, y=-ROW,
                     color={"background": "#ffffff", "border": border}, font={"bold": True},
                     title=f"stage {stage} ({statuses.get(stage, 'open')})",)  # fmt: skip
    for s in definition.steps:
        data = graph.nodes[s.name]
        colors = STATUS_COLORS.get(data["status"], STATUS_COLORS["open"])
        font = {"color": "#222222"}
        dashed = False
        if s.name == current:
            colors, font = CURRENT, {"color": "#ffffff"}
        elif s.name in ready_targets:
            colors, dashed = NEXT, not ready_targets[s.name]
        elif reachable is not None and s.name not in reachable:
            colors, font = UNREACHABLE, {"color": "#8a8a8a"}
        row = rows.get(s.stage, 0)
        rows[s.stage] = row + 1
        tip = f"{s.name}\nstage: {s.stage}"
        if s.attributes:
            tip += f"\nshows: {', '.join(s.attributes)}"
        net.add_node(ids[s.name], label=s.name, shape="box", title=tip, font=font,
                     color={"background": colors[0], "border": colors[1]},
                     borderWidth=2 if s.name in ready_targets else 1,
                     shapeProperties={"borderDashes": [5, 4] if dashed else False},
                     x=column_of[s.stage] * COLUMN, y=row * ROW)  # fmt: skip
    seen: dict[frozenset, int] = {}  # arrows between two steps so far (either way)
    for t in definition.transitions:
        if t.from_step not in ids or t.to_step not in ids:
            continue
        pair = frozenset((t.from_step, t.to_step))
        nth = seen[pair] = seen.get(pair, -1) + 1
        span = abs(column_of[graph.nodes[t.from_step]["stage"]]
                   - column_of[graph.nodes[t.to_step]["stage"]])  # fmt: skip
        bend = {"enabled": True, "type": "curvedCW",
                "roundness": round(min(0.2 + 0.2 * nth + (0.1 if span > 1 else 0.0), 0.9), 2)}  # fmt: skip
        now = current is not None and t.from_step == current
        lacking = missing.get(t.name, [])
        tip = f"{t.name}\nrequires: {', '.join(t.requires) or 'nothing'}"
        if now and lacking:
            tip += f"\nmissing: {', '.join(lacking)}"
        if t.triggers:
            tip += f"\ntriggers: {', '.join(t.triggers)}"
        if t.communications:
            tip += f"\nsends: {', '.join(c.channel for c in t.communications)}"
        faded = reachable is not None and t.from_step not in reachable
        color = HIGHLIGHT if now else (FADED if faded else EDGE)
        net.add_edge(ids[t.from_step], ids[t.to_step], label=t.name, title=tip, arrows="to",
                     color={"color": color, "hover": HOVER, "highlight": HOVER},
                     width=4 if now else 1.5, dashes=bool(now and lacking),
                     smooth=bend)  # fmt: skip

    legend = f"<strong>{html.escape(title)}</strong>"
    if current is not None:
        options = [
            f'<span class="now">{html.escape(t.name)}</span>'
            + (f" (needs {html.escape(', '.join(missing.get(t.name, [])))})" if missing.get(t.name) else "")
            for t in definition.transitions if t.from_step == current
        ]  # fmt: skip
        legend += f" — at <strong>{html.escape(current)}</strong>; can do now: " + (
            ", ".join(options) or "nothing"
        )
        legend += (
            '<br><small><span class="now">green</span>: where it stands, what it can do now'
            " and where that leads (dashed: attributes missing); grey: out of reach;"
            ' an arrow under the mouse turns <span class="hover">blue</span>.</small>'
        )
    focus = ids.get(current) if current is not None else None
    return WorkflowGraph(graph, net, _page(net, title, legend, height, focus), height)
