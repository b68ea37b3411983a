"""Relationship graph and engagement scores, built from really synced mail, calendars and a
Salesforce export, on SQLite and PostgreSQL; the HTML page opened in a headless Chromium
with the network off."""

from __future__ import annotations

import html as html_lib
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import networkx as nx
import pandas as pd
import pytest

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.graphs import RelationshipGraph
from oppkit.graphs.model import build_graph
from oppkit.sources.records import ActivityRecord, Participant
from oppkit.sync import SyncRunner, sync_calendar, sync_mail, sync_salesforce_export
from tests.support import make_email, write_mbox

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
AVA = "ava.patel@northwind.example"
BEN = "ben.okafor@northwind.example"
JUERGEN = "juergen.mueller@acme-robotics.example"
TOM = "tom.becker@acme-robotics.example"
MEI = "mei.tanaka@acme-robotics.example"
LENA = "lena.vogel@acme-robotics.example"
OTTO = "otto.kranz@acme-robotics.example"
EVIL = "evil@acme-robotics.example"
EVIL_NAME = "<img src=x onerror=alert(1)>"
SECRET = "secret.contact@globex.example"
PRIVATE_OPP = "006000000000004AAA"  # "Globex secret", private, owned by Ben
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

MEETING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Northwind//Calendar//EN
BEGIN:VEVENT
UID:pilot-review@northwind.example
DTSTAMP:20260301T080000Z
DTSTART:20260317T090000Z
DTEND:20260317T100000Z
SUMMARY:Pilot review
ORGANIZER;CN=Ava Patel:mailto:ava.patel@northwind.example
ATTENDEE;CN=Jürgen Müller;PARTSTAT=ACCEPTED:mailto:juergen.mueller@acme-robotics.example
ATTENDEE;CN=Ben Okafor;PARTSTAT=ACCEPTED:mailto:ben.okafor@northwind.example
END:VEVENT
END:VCALENDAR
"""


def _mail(n: int, sender: str, to: list[str], when: datetime, **kw) -> object:  # noqa: ANN003
    return make_email(
        sender=sender, to=to, subject=f"mail {n}", body=f"note {n}", when=when,
        message_id=f"g{n}@x", **kw,
    )  # fmt: skip


def _mails() -> list:
    d1, d2 = NOW - timedelta(days=2), NOW - timedelta(days=1)
    h = timedelta(hours=1)
    return [
        # Jürgen and Ava write back and forth (Ben on cc once)
        _mail(1, f"Jürgen Müller <{JUERGEN}>", [AVA], d1, cc=[BEN]),
        _mail(2, f"Ava Patel <{AVA}>", [JUERGEN], d1 + h),
        _mail(3, JUERGEN, [AVA], d2),
        _mail(4, AVA, [JUERGEN], d2 + h),
        # same volume and times: Tom never answers, Mei does
        *[_mail(10 + i, AVA, [TOM], t) for i, t in enumerate((d1, d1 + h, d2, d2 + h))],
        _mail(20, AVA, [MEI], d1),
        _mail(21, f"Mei Tanaka <{MEI}>", [AVA], d1 + h),
        _mail(22, AVA, [MEI], d2),
        _mail(23, MEI, [AVA], d2 + h),
        # same volume, one recent and one two months old
        _mail(30, AVA, [LENA], NOW - timedelta(days=5)),
        _mail(31, AVA, [LENA], NOW - timedelta(days=5) + h),
        _mail(32, AVA, [OTTO], NOW - timedelta(days=65)),
        _mail(33, AVA, [OTTO], NOW - timedelta(days=65) + h),
        # a display name that is HTML
        _mail(40, f'"{EVIL_NAME}" <{EVIL}>', [AVA], d2),
        # another account, and mail after "now" that must not count
        _mail(50, AVA, ["gina@globex.example"], d1),
        _mail(51, AVA, [TOM], NOW + timedelta(days=3)),
    ]


@pytest.fixture
def synced(db_url: str, settings, export: Path, tmp_path: Path) -> str:  # noqa: F811
    sync_salesforce_export(export, settings=settings)
    sync_mail(write_mbox(tmp_path / "ava.mbox", _mails()), settings=settings)
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "ava.ics").write_text(MEETING, encoding="utf-8")
    sync_calendar(tmp_path / "cal", settings=settings)
    secret_meeting = ActivityRecord(
        source="salesforce", source_id="00U00000000000SAAA", kind="meeting",
        subject="secret terms", occurred_at=NOW - timedelta(days=1),
        opportunity_ref=PRIVATE_OPP, owner_ref="005000000000002AAA",
        participants=[Participant(BEN, "Ben Okafor", "organizer"),
                      Participant(SECRET, "Sam Secret", "attendee")],
    )  # fmt: skip
    SyncRunner(connect_engine(db_url), settings, agent="test").run([secret_meeting])
    return db_url


def _pair(pairs: pd.DataFrame, x: str, y: str) -> pd.Series:
    a, b = sorted((x, y))
    hit = pairs[(pairs["email_a"] == a) & (pairs["email_b"] == b)]
    assert len(hit) == 1, f"no pair {a} / {b}"
    return hit.iloc[0]


def test_account_graph_has_its_people_coloured_and_weighted_both_ways(synced: str):
    kit = oppkit.connect(synced, user=AVA)
    rel = kit.relationship_graph(account="acme-robotics.example", now=NOW)
    g = rel.graph
    assert isinstance(rel, RelationshipGraph) and isinstance(g, nx.Graph)
    assert set(g.nodes) == {AVA, BEN, JUERGEN, TOM, MEI, LENA, OTTO, EVIL}
    assert {n for n, internal in g.nodes(data="is_internal") if internal} == {AVA, BEN}
    assert g.nodes[JUERGEN]["name"] == "Jürgen Müller"
    assert g.nodes[JUERGEN]["account"] == "Acme Robotics GmbH"
    assert g.nodes[EVIL]["name"] == EVIL_NAME
    assert g.nodes[AVA]["engagement"] > g.nodes[OTTO]["engagement"] > 0

    # Ava -> Jürgen 2 emails, back 2, and 3 meetings/calls: the Salesforce call and demo
    # (owner Ava, contact Jürgen) plus the calendar's pilot review
    edge = g.edges[AVA, JUERGEN]
    assert (edge["a_to_b"], edge["b_to_a"], edge["meetings"], edge["weight"]) == (2, 2, 3, 7)
    assert g.edges[BEN, JUERGEN]["b_to_a"] == 1  # the cc: Jürgen -> Ben
    assert g.edges[AVA, BEN]["meetings"] == 1
    assert not g.has_edge(AVA, "gina@globex.example")  # another account
    assert g.edges[AVA, TOM]["a_to_b"] == 4  # the mail after `now` does not count

    pairs = kit.engagement(account="acme-robotics.example", now=NOW, pairs=True)
    assert list(pairs.columns[:4]) == ["email_a", "email_b", "name_a", "name_b"]
    assert pairs["score"].is_monotonic_decreasing
    mutual, one_way = _pair(pairs, AVA, MEI), _pair(pairs, AVA, TOM)
    assert (mutual["a_to_b"] + mutual["b_to_a"], one_way["a_to_b"] + one_way["b_to_a"]) == (4, 4)
    assert mutual["score"] == pytest.approx(2 * one_way["score"], rel=0.01)  # reciprocity x2
    recent, old = _pair(pairs, AVA, LENA), _pair(pairs, AVA, OTTO)
    assert recent["interactions"] == old["interactions"] == 2
    assert recent["score"] > 3 * old["score"]  # 60 days apart = two half-lives


def test_engagement_per_person_sorted_with_counts(synced: str):
    kit = oppkit.connect(synced, user=AVA)
    people = kit.engagement(account="Acme Robotics GmbH", now=NOW)
    assert list(people.columns) == [
        "email", "name", "is_internal", "account", "interactions", "sent", "received", "meetings",
        "last_interaction", "score",
    ]  # fmt: skip
    assert people["score"].is_monotonic_decreasing
    assert people.iloc[0]["email"] == AVA
    row = people.set_index("email").loc[JUERGEN]
    assert (row["sent"], row["received"], row["meetings"], row["interactions"]) == (2, 2, 3, 7)
    assert row["last_interaction"] == NOW - timedelta(days=1) + timedelta(hours=1)  # mail 4
    by_email = people.set_index("email")
    assert by_email.loc[MEI, "score"] > by_email.loc[TOM, "score"]  # answers vs never answers
    assert by_email.loc[LENA, "score"] > by_email.loc[OTTO, "score"]  # recent vs old

    # later, everything has decayed; the order stays
    later = kit.engagement(account="acme-robotics.example", now=NOW + timedelta(days=30))
    later = later.set_index("email")
    assert later.loc[JUERGEN, "score"] == pytest.approx(by_email.loc[JUERGEN, "score"] / 2, 0.01)

    deal = kit.engagement(opportunity="Acme pilot", now=NOW)
    assert set(deal["email"]) == {AVA, BEN, JUERGEN, TOM, MEI, LENA, OTTO, EVIL}


def test_a_private_deal_feeds_only_the_graphs_of_those_who_may_see_it(synced: str):
    owner = oppkit.connect(synced, user=BEN)
    outsider = oppkit.connect(synced, user=AVA)
    nobody = oppkit.connect(synced)
    assert SECRET in owner.relationship_graph(account="globex.example", now=NOW).graph
    assert owner.relationship_graph(opportunity="Globex secret").graph.has_edge(BEN, SECRET)
    for kit in (outsider, nobody):
        graph = kit.relationship_graph(account="globex.example", now=NOW).graph
        assert SECRET not in graph
        assert "gina@globex.example" in graph  # the public mail still shows
        with pytest.raises(oppkit.NotFoundError):  # a guessed name tells nothing
            kit.relationship_graph(opportunity="Globex secret")
        assert SECRET not in set(kit.engagement(account="globex.example")["email"])
        assert SECRET not in kit.relationship_graph(account="globex.example").html()


def test_following_a_private_deal_does_not_open_it(synced: str):
    """A follower row is no membership: privacy holds even when one exists."""
    from sqlalchemy import insert, select

    from oppkit.db.schema import opportunities, opportunity_people, people

    engine = connect_engine(synced)
    with engine.begin() as conn:
        opp = conn.scalar(select(opportunities.c.id).where(opportunities.c.name == "Globex secret"))
        ava = conn.scalar(select(people.c.id).where(people.c.email == AVA))
        conn.execute(
            insert(opportunity_people).values(
                opportunity_id=opp,
                person_id=ava,
                kind="follower",
                digest_frequency="daily",
                source="local",
                source_id="stale-follow",
            )  # fmt: skip
        )
    kit = oppkit.connect(synced, user=AVA)
    assert SECRET not in kit.relationship_graph(account="globex.example").graph


def test_html_is_offline_and_escapes_what_came_from_mail(synced: str, tmp_path: Path):
    rel = oppkit.connect(synced, user=AVA).relationship_graph(account="acme-robotics.example")
    page = rel.html()
    assert "vis.Network" in page and "<script src" not in page
    # nothing to fetch: no src/href/url()/@import pointing at http(s), no CDN at all
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*https?:""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*https?:|@import""", page, re.I)
    assert "cdn.jsdelivr.net" not in page and "cdnjs" not in page and "bootstrap" not in page
    assert EVIL_NAME not in page  # raw HTML from a display name never reaches the page
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # it is JSON-escaped data
    assert "<img" not in page
    assert len(page.encode()) < 5_000_000

    shown = rel._repr_html_()
    assert shown.startswith('<iframe sandbox="allow-scripts"') and "srcdoc=" in shown
    assert "<script" not in shown.split("srcdoc=", 1)[1]  # the page is an escaped attribute
    saved = rel.save(tmp_path / "acme.html")
    assert saved.read_text(encoding="utf-8") == page


def _chromium_page(playwright, tmp_path: Path):  # noqa: ANN001, ANN202
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    context.set_offline(True)
    fetched: list[str] = []

    def refuse(route) -> None:  # noqa: ANN001
        if not route.request.url.startswith("file:"):
            fetched.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    page = context.new_page()
    events: dict[str, list] = {"dialogs": [], "errors": [], "requests": fetched}
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else fetched.append(r.url),
    )
    return browser, page, events


def _wait_until_frozen(page, seconds: float) -> None:  # noqa: ANN001
    """Poll from outside: the page's CSP forbids the eval wait_for_function would need."""
    deadline = time.monotonic() + seconds
    while not page.evaluate("() => Boolean(window.oppkitGraph && window.oppkitGraph.stabilized)"):
        assert time.monotonic() < deadline, "the graph did not stabilise in time"
        page.wait_for_timeout(100)


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
)


@needs_chromium
def test_graph_draws_in_an_offline_chromium_and_shows_html_names_as_text(
    synced: str, tmp_path: Path
):
    from playwright.sync_api import sync_playwright

    rel = oppkit.connect(synced, user=AVA).relationship_graph(account="acme-robotics.example")
    path = rel.save(tmp_path / "acme.html")
    with sync_playwright() as p:
        browser, page, events = _chromium_page(p, tmp_path)
        try:
            page.goto(path.as_uri())
            _wait_until_frozen(page, 30)
            counts = page.evaluate(
                """() => ({nodes: oppkitGraph.network.body.data.nodes.length,
                           edges: oppkitGraph.network.body.data.edges.length,
                           physics: oppkitGraph.network.physics.options.enabled,
                           label: oppkitGraph.nodes.get("evil@acme-robotics.example").label,
                           ava: oppkitGraph.nodes.get("ava.patel@northwind.example").color.background,
                           tom: oppkitGraph.nodes.get("tom.becker@acme-robotics.example").color.background,
                           sizes: [oppkitGraph.network.body.nodes["ava.patel@northwind.example"].options.size,
                                   oppkitGraph.network.body.nodes["otto.kranz@acme-robotics.example"].options.size]})"""
            )
            sizes = counts.pop("sizes")
            assert counts == {
                "nodes": 8,
                "edges": rel.graph.number_of_edges(),
                "physics": False,  # frozen after stabilising
                "label": EVIL_NAME,  # drawn as text on the canvas
                "ava": "#2563eb",  # internal: blue
                "tom": "#ea580c",  # external: orange
            }
            assert sizes[0] > sizes[1]  # sized by engagement: Ava carries the account
            painted = page.evaluate(
                """() => { const c = document.querySelector("#oppkit-graph canvas");
                           const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                           return n; }"""
            )
            assert painted > 2000  # the canvas shows nodes and lines
            # hover the node named like an <img>: its tooltip is text, nothing runs
            spot = page.evaluate(
                """() => { const n = oppkitGraph.network;
                           const p = n.getPositions(["evil@acme-robotics.example"])["evil@acme-robotics.example"];
                           return n.canvasToDOM(p); }"""
            )
            box = page.locator("#oppkit-graph").bounding_box()
            page.mouse.move(box["x"] + spot["x"] + 2, box["y"] + spot["y"] + 2)
            page.mouse.move(box["x"] + spot["x"], box["y"] + spot["y"])
            tooltip = page.locator("div.vis-tooltip")
            tooltip.wait_for(state="visible", timeout=5000)
            assert tooltip.inner_text().startswith(EVIL_NAME)
            assert page.locator("img").count() == 0
            page.screenshot(path=str(tmp_path / "relationship-graph.png"))
            page.wait_for_timeout(300)
            assert events["dialogs"] == []
            assert events["errors"] == []
            assert events["requests"] == []
        finally:
            browser.close()
    assert (tmp_path / "relationship-graph.png").stat().st_size > 10_000


@needs_chromium
def test_two_thousand_people_stabilise_then_freeze(tmp_path: Path):
    """Usable at 2,000 nodes: bounded stabilisation, then physics off (nothing keeps moving)."""
    from playwright.sync_api import sync_playwright

    n = 2000
    emails = [f"p{i}@{'northwind' if i < 100 else 'acme'}.example" for i in range(n)]
    persons = pd.DataFrame(
        {
            "email": emails, "name": [f"Person {i}" for i in range(n)],
            "is_internal": [i < 100 for i in range(n)], "account": "Acme",
            "interactions": 3, "sent": 1, "received": 1, "meetings": 1,
            "last_interaction": pd.Timestamp(NOW), "score": [1 + i % 17 for i in range(n)],
        }
    )  # fmt: skip
    links = [(emails[i % 100], emails[i]) for i in range(100, n)]
    links += [(emails[(i + 1) % 100], emails[i]) for i in range(100, n)]
    links += [(emails[i], emails[i + 1]) for i in range(100, n - 1)]
    pairs = pd.DataFrame(links, columns=["email_a", "email_b"]).assign(
        a_to_b=1, b_to_a=1, meetings=0, interactions=2,
        last_interaction=pd.Timestamp(NOW), score=1.5,
    )  # fmt: skip
    graph = build_graph(persons, pairs)
    rel = RelationshipGraph(graph=graph, people=persons, pairs=pairs, heading="big")
    path = rel.save(tmp_path / "big.html")
    assert path.stat().st_size < 5_000_000
    with sync_playwright() as p:
        browser, page, events = _chromium_page(p, tmp_path)
        try:
            page.goto(path.as_uri())
            _wait_until_frozen(page, 120)
            assert page.evaluate("oppkitGraph.network.body.data.nodes.length") == n
            before = page.evaluate(
                "JSON.stringify(oppkitGraph.network.getPositions(['p150@acme.example']))"
            )
            page.wait_for_timeout(500)
            after = page.evaluate(
                "JSON.stringify(oppkitGraph.network.getPositions(['p150@acme.example']))"
            )
            assert before == after  # frozen
            assert page.evaluate("oppkitGraph.network.physics.options.enabled") is False
            page.screenshot(path=str(tmp_path / "big-graph.png"))
            assert events["errors"] == [] and events["requests"] == []
        finally:
            browser.close()


def test_a_database_without_interactions_gives_an_empty_graph_and_page(db_url: str):
    """A new team's database: no people, no edges, no error, and still a page to open."""
    kit = oppkit.connect(db_url)
    rel = kit.relationship_graph()
    assert (rel.graph.number_of_nodes(), rel.graph.number_of_edges()) == (0, 0)
    assert kit.engagement().empty and kit.engagement(pairs=True).empty
    assert "<script" in rel.html()


# --- in the deal view: named after the deal, sized to its frame (issue #15) ---------------


def test_the_caption_names_the_deal_and_the_account_never_an_id(synced: str):
    kit = oppkit.connect(synced, user=AVA)
    deal = int(kit.opportunities().set_index("name").loc["Acme pilot", "id"])
    for ref in ("Acme pilot", deal):
        rel = kit.relationship_graph(opportunity=ref, now=NOW)
        assert rel.heading == "Acme pilot"
        assert '<span id="oppkit-caption">Acme pilot — ' in rel.html()
    account = kit.relationship_graph(account="acme-robotics.example", now=NOW)
    assert account.heading == "Acme Robotics GmbH" and "Account" not in account.heading
    both = kit.relationship_graph(account="acme-robotics.example", opportunity=deal, now=NOW)
    assert both.heading == "Acme pilot · Acme Robotics GmbH"
    frame = both.frame(height=460)
    assert "height:460px" in frame and "width:100%" in frame
    assert "calc(100vh - 36px)" in html_lib.unescape(frame)  # the drawing fills the frame


@needs_chromium
def test_a_graph_drawn_hidden_fits_its_frame_once_shown(synced: str, tmp_path: Path):
    """A notebook tab draws the graph before it is shown: once shown, every node is inside
    the frame (nothing clipped on the right) and the drawing fills the frame's height."""
    from playwright.sync_api import sync_playwright

    rel = oppkit.connect(synced, user=AVA).relationship_graph(account="acme-robotics.example")
    host = tmp_path / "host.html"
    host.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<div id="host" style="width:900px;display:none">{rel.frame(height=460)}</div>'
        "</body></html>",
        encoding="utf-8",
    )
    with sync_playwright() as p:
        browser, page, events = _chromium_page(p, tmp_path)
        try:
            page.goto(host.as_uri())
            page.wait_for_timeout(500)
            page.evaluate("() => { document.getElementById('host').style.display = 'block'; }")
            graph = page.frames[1]
            deadline = time.monotonic() + 30
            while not graph.evaluate("() => Boolean(window.oppkitGraph && oppkitGraph.stabilized)"):
                assert time.monotonic() < deadline, "the graph did not stabilise in time"
                page.wait_for_timeout(100)
            page.wait_for_timeout(500)  # the resize observer fits again
            seen = graph.evaluate(
                """() => { const n = oppkitGraph.network, box = document.getElementById("oppkit-graph");
                           const spots = Object.values(n.getPositions()).map(p => n.canvasToDOM(p));
                           return {width: box.clientWidth, height: box.clientHeight,
                                   xs: spots.map(s => s.x), ys: spots.map(s => s.y),
                                   caption: document.getElementById("oppkit-caption").textContent}; }"""
            )
            assert seen["width"] == 900 and seen["height"] >= 460 - 60
            assert min(seen["xs"]) >= 0 and max(seen["xs"]) <= seen["width"]
            assert min(seen["ys"]) >= 0 and max(seen["ys"]) <= seen["height"]
            assert seen["caption"].startswith("Acme Robotics")
            page.screenshot(path=str(tmp_path / "graph-in-frame.png"))
            assert events["errors"] == [] and events["requests"] == []
        finally:
            browser.close()
