"""The deal view as a person sees it (issue #15): a real JupyterLab at 1280 x 800 runs a
notebook with the opportunity view of a demo deal with 300 more notes, driven in Debian's
Chromium through Playwright. The view stays within a height bound whatever the feed holds,
no button's text is cut, a transition asks before it moves (the workflow graph redrawn
after it, and after Undo), and the relationship graph stays inside the view. Screenshots go to ``test-artifacts/deal_view*.png`` (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import CHROMIUM_FLAGS, CHROMIUM_PATH, jupyter_lab

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
DEAL = "Acme Robotics — Predictive maintenance pilot"
MAX_HEIGHT = 1300  # px: the whole view, any tab, whatever the feed holds
CELLS = [
    "import os\n"
    'os.environ["OPPKIT_SALESFORCE_WRITE_BACK"] = "1"  # the demo deal is Salesforce\'s\n'
    "import oppkit\n"
    "from oppkit import actions\n"
    'kit = oppkit.connect(user="anna.keller@northwind.example")\n'
    "kit.workflow.load()\n"
    f"deal = kit.scope.opportunity_id({DEAL!r})\n"
    "for i in range(300):\n"
    '    actions.add_note(kit, deal, f"Note {i}: " + "a long line of text " * 8)\n'
    "view = oppkit.OpportunityView(kit, deal)\n"
    "view",
]
CUT_BUTTONS = """view => [...view.querySelectorAll("button, label, .widget-label")]
    .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth + 1)
    .map(b => b.textContent.trim())"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM_PATH.exists(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium)"
)


def shoot(page, view, name: str) -> None:  # noqa: ANN001
    """A screenshot of the whole view: the window made as tall as the view for a moment
    (JupyterLab scrolls inside the page; the width, and so the layout, stays 1280 px)."""
    height = int(view.bounding_box()["height"]) + 300
    page.set_viewport_size({"width": 1280, "height": max(800, height)})
    view.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


@pytest.fixture
def lab(tmp_path: Path):  # noqa: ANN201
    """JupyterLab on the notebook above, with a demo database; yields (url, token)."""
    from oppkit.demo import build_demo

    _files, url, _ = build_demo(tmp_path / "demo", progress=False)
    with jupyter_lab(tmp_path / "notebooks", CELLS, url) as served:
        yield served


def test_the_deal_view_fits_a_notebook_at_1280_px_and_cuts_no_button(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{base}/lab/tree/apps.ipynb?token={token}", timeout=180_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=180_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
                timeout=180_000
            )
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            news = page.locator(".jp-toast-button", has_text="No")
            view = page.locator(".oppkit-opportunity-view").first
            expect(view.locator(".oppkit-metrics")).to_be_visible(timeout=180_000)
            items = view.locator(".oppkit-timeline .oppkit-feed-item")
            expect(items.first).to_be_visible()
            assert items.count() == 25  # a page, not 300 items
            expect(view.locator(".oppkit-pager-label")).to_have_text("items 1–25 of 300")
            feed = view.locator(".oppkit-timeline .oppkit-scroll").first
            assert feed.bounding_box()["height"] <= 420 + 2
            assert view.bounding_box()["height"] <= MAX_HEIGHT, view.bounding_box()
            assert view.evaluate(CUT_BUTTONS) == []
            if news.count():
                news.first.click()  # JupyterLab's question about its news, out of the way
            shoot(page, view, "deal_view")

            tabs = view.locator(".lm-TabBar-tab")
            tabs.filter(has_text="Alerts & Tasks").first.click()
            expect(view.locator(".oppkit-source").first).to_be_visible()
            assert view.evaluate(CUT_BUTTONS) == []
            assert view.bounding_box()["height"] <= MAX_HEIGHT

            tabs.filter(has_text="Workflow").first.click()
            negotiate = view.locator("button", has_text="Negotiate → Negotiation")
            expect(negotiate).to_be_visible()
            drawn = view.locator("iframe.oppkit-graph-frame").last  # the workflow, drawn
            expect(drawn).to_be_visible()
            step = view.frame_locator("iframe.oppkit-graph-frame").last.locator("#oppkit-legend")
            expect(step).to_contain_text("at Proposal sent")
            assert view.evaluate(CUT_BUTTONS) == []
            negotiate.click()
            confirm = view.locator(".oppkit-confirm").first
            expect(confirm).to_contain_text(f"Move {DEAL} from Proposal/Price Quote")
            expect(confirm.locator("button", has_text="Confirm")).to_be_visible()
            assert view.evaluate(CUT_BUTTONS) == []
            assert view.bounding_box()["height"] <= MAX_HEIGHT, view.bounding_box()
            shoot(page, view, "deal_view_workflow")
            confirm.locator("button", has_text="Confirm").click()  # moves, redraws, offers Undo
            expect(step).to_contain_text("at Negotiation", timeout=60_000)
            undo = view.locator("button", has_text="Undo Negotiate")
            expect(undo).to_be_visible()
            assert view.evaluate(CUT_BUTTONS) == []
            undo.click()
            expect(step).to_contain_text("at Proposal sent", timeout=60_000)
            expect(view.locator(".oppkit-message-ok", has_text="Undone")).to_be_visible()

            tabs.filter(has_text="Relationship graph").first.click()
            frame = view.locator("iframe.oppkit-graph-frame").first
            expect(frame).to_be_visible()
            inside, outer = frame.bounding_box(), view.bounding_box()
            assert inside["x"] + inside["width"] <= outer["x"] + outer["width"] + 1  # not clipped
            caption = view.frame_locator("iframe.oppkit-graph-frame").first.locator(
                "#oppkit-caption"
            )
            expect(caption).to_contain_text(DEAL)
            assert view.bounding_box()["height"] <= MAX_HEIGHT
            shoot(page, view, "deal_view_graph")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "deal_view_failed.png"), full_page=True)
            raise
        finally:
            browser.close()
