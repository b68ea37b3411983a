"""The workflow graph as a person sees it: offline HTML, escaped names, a deal's position."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import oppkit
from oppkit.workflow.graph import MIN_SCALE, STATUS_COLORS, page_options
from tests.workflow_support import TEST_WORKFLOW

EVIL = "<img src=x onerror=alert(1)>"
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I
)


@pytest.fixture
def kit(db_url: str, tmp_path: Path) -> oppkit.Kit:
    text = TEST_WORKFLOW.replace('"Review"', f'"{EVIL}"').replace(
        '"decision_maker"', '"<b>budget</b>"'
    )
    path = tmp_path / "workflow.toml"
    path.write_text(text, encoding="utf-8")
    kit = oppkit.connect(db_url)
    kit.workflow.load(path)
    return kit


def nodes_by_label(graph) -> dict:  # noqa: ANN001
    return {n["label"]: n for n in graph.pyvis.nodes}


def test_the_page_works_offline_and_escapes_every_name(kit, tmp_path):
    graph = kit.workflow.graph()
    page = graph.html
    assert "vis.Network(" in page and "<script src" not in page and "<link" not in page
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "cdn.jsdelivr.net" not in page and "cdnjs" not in page
    assert EVIL not in page and "<b>budget</b>" not in page
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # data: escaped for <script>
    assert page.count("</script>") == 2  # the library and our data, nothing closes early
    saved = graph.save(tmp_path / "workflow.html")
    assert saved.read_text(encoding="utf-8") == page
    frame = graph._repr_html_()
    assert frame.startswith('<iframe srcdoc="') and 'sandbox="allow-scripts"' in frame
    assert "<img" not in frame and "<script" not in frame


def test_the_network_holds_steps_by_stage_and_one_edge_per_transition(kit):
    graph = kit.workflow.graph()
    assert graph.network.nodes[EVIL]["stage"] == "Lead"
    assert graph.network.nodes["Closed won"]["status"] == "won"
    assert graph.network.number_of_edges() == 8
    assert graph.network.edges["New", "Proposal sent", "Send proposal"]["requires"] == [
        "amount", "close_date", "<b>budget</b>",
    ]  # fmt: skip
    labels = nodes_by_label(graph)
    assert {labels[s]["x"] for s in ("New", EVIL, "Upsell")} == {0}  # one column per stage
    assert labels["Lead"]["shape"] == "box" and labels["Lead"]["y"] < labels["New"]["y"]


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))


def is_green(color: str) -> bool:
    r, g, b = rgb(color)
    return g > r + 20 and g > b + 20


def is_blue(color: str) -> bool:
    r, g, b = rgb(color)
    return b > r + 40 and b > g + 20


def is_grey(color: str) -> bool:
    r, g, b = rgb(color)
    return max(r, g, b) - min(r, g, b) < 10


def test_a_deal_shows_where_it_stands_what_it_can_do_and_what_it_cannot_reach(kit):
    deal = kit.workflow.create("Acme pilot", amount=10)
    kit.workflow.transition(
        deal, "Send proposal", close_date="2026-01-01", **{"<b>budget</b>": "ok"}
    )
    graph = kit.workflow.graph(deal)
    labels = nodes_by_label(graph)
    fill = {name: node["color"]["background"] for name, node in labels.items()}
    assert is_green(fill["Proposal sent"])  # where it stands
    assert is_green(fill["Closed won"]) and is_green(fill["Closed lost"])  # where it can go now
    assert fill["Closed won"] != fill["Proposal sent"]  # the step it stands at stands out
    for step in ("New", EVIL, "Upsell", "Parked"):  # no way back
        assert is_grey(fill[step]), step
    edges = {e["label"]: e for e in graph.pyvis.edges}
    assert is_green(edges["Close won"]["color"]["color"])
    assert is_green(edges["Close lost"]["color"]["color"])
    assert edges["Close won"]["dashes"] is True and edges["Close lost"]["dashes"] is False
    assert labels["Closed won"]["shapeProperties"]["borderDashes"]  # only a lacking way there
    assert not labels["Closed lost"]["shapeProperties"]["borderDashes"]
    assert not is_green(edges["Start"]["color"]["color"])
    assert all(is_blue(e["color"]["hover"]) for e in graph.pyvis.edges)  # blue under the mouse
    assert '"interaction": {"hover": true' in graph.html
    assert edges["Close won"]["title"] == (
        "Close won\nrequires: amount, account\nmissing: account\n"
        "triggers: create_invoice, create_registration, issue_training_token"
    )
    assert "at <strong>Proposal sent</strong>; can do now:" in graph.html
    assert "Close won</span> (needs account)" in graph.html
    assert '<span class="now">green</span>: where it stands' in graph.html  # the legend says so


def test_steps_reachable_later_keep_their_stage_colour(kit):
    deal = kit.workflow.create("Initech", amount=10)  # at New
    graph = kit.workflow.graph(deal)
    fill = {name: node["color"]["background"] for name, node in nodes_by_label(graph).items()}
    assert is_green(fill["New"]) and is_green(fill["Proposal sent"]) and is_green(fill["Parked"])
    assert fill["Closed won"] == STATUS_COLORS["won"][0]  # two steps away: not now, not out
    assert is_grey(fill[EVIL]) and is_grey(fill["Upsell"])
    edges = {e["label"]: e for e in graph.pyvis.edges}
    assert not is_green(edges["Close won"]["color"]["color"])
    plain = kit.workflow.graph()  # without a deal: every arrow still turns blue on hover
    assert all(is_blue(e["color"]["hover"]) for e in plain.pyvis.edges)
    assert not any(is_green(n["color"]["background"]) for n in plain.pyvis.nodes)


def test_a_private_deal_is_not_drawn_for_someone_else(kit, db_url):
    deal = kit.workflow.create("Secret", private=True)
    with pytest.raises(oppkit.NotFoundError):
        oppkit.connect(db_url, user="ben@northwind.example").workflow.graph(deal)


def test_the_legend_escapes_a_step_name(kit):
    from tests.workflow_support import add_account

    acme = add_account(kit.engine, "Acme", "acme.example")
    second = kit.workflow.create("second", account=acme)  # a known account: the evil step
    page = kit.workflow.graph(second).html
    assert "at <strong>&lt;img src=x onerror=alert(1)&gt;</strong>" in page
    assert EVIL not in page


# --- readable and locked down (issue #15) ---------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def test_the_page_has_a_content_security_policy_and_readable_spread_edge_labels(kit):
    graph = kit.workflow.graph()
    page = graph.html
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp and "default-src 'none'" in csp.group(1)
    assert "connect-src" not in csp.group(1) and "http" not in csp.group(1)  # fetches nothing
    assert page.index("Content-Security-Policy") < page.index("<script")  # before any script
    options = page_options()
    assert options["edges"]["font"]["size"] >= 11 and options["nodes"]["font"]["size"] >= 11
    assert f'"minScale": {MIN_SCALE}' in page
    assert options["edges"]["font"]["size"] * MIN_SCALE >= 11
    edges = {e["label"]: e for e in graph.pyvis.edges}
    # two arrows New -> Proposal sent bend apart; Park and Unpark curve to either side
    assert edges["Send proposal"]["smooth"]["roundness"] != edges["Explode"]["smooth"]["roundness"]
    assert all(e["smooth"]["type"].startswith("curved") for e in graph.pyvis.edges)
    frame = graph.frame(height=400)
    assert 'sandbox="allow-scripts"' in frame and "height:400px" in frame and "width:100%" in frame


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium")
def test_edge_labels_are_at_least_11_px_on_screen_in_chromium(kit, tmp_path):
    from playwright.sync_api import sync_playwright

    deal = kit.workflow.create("Acme pilot", amount=10)
    path = kit.workflow.graph(deal).save(tmp_path / "workflow.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 640, "height": 480})  # a narrow frame
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_timeout(300)
            seen = page.evaluate(
                """() => ({scale: oppkitGraph.network.getScale(), font: oppkitGraph.view.edgeFont,
                           height: document.getElementById("oppkit-graph").clientHeight})"""
            )
            assert errors == []  # the CSP lets the page's own script run
            assert seen["font"] * seen["scale"] >= 11 - 1e-6
            assert seen["height"] >= 240
            page.screenshot(path=str(tmp_path / "workflow.png"))
        finally:
            browser.close()
