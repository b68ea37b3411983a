"""What a person sees: a real JupyterLab runs a notebook with the opportunity view and the
pipeline review, driven in a headless Chromium (Debian's, through Playwright).

A screenshot is saved to ``test-artifacts/notebook_apps.png`` (git-ignored) for CI.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support import CHROMIUM_FLAGS, CHROMIUM_PATH, jupyter_lab, lab_server

CHROMIUM = CHROMIUM_PATH
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
DEAL = "Acme Robotics — Predictive maintenance pilot"
CELLS = [
    "import oppkit\n"
    'kit = oppkit.connect(user="anna.keller@northwind.example")\n'
    f"view = oppkit.OpportunityView(kit, {DEAL!r})\n"
    "view",
    "review = oppkit.PipelineReview(kit)\nreview",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture
def lab(tmp_path: Path):  # noqa: ANN201
    """JupyterLab on a folder holding one notebook, with a demo database; yields (url, token)."""
    from oppkit.demo import build_demo

    _files, url, _ = build_demo(tmp_path / "demo", progress=False)
    with jupyter_lab(tmp_path / "notebooks", CELLS, url) as running:
        yield running


def test_the_opportunity_view_and_the_funnel_chart_show_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{base}/lab/tree/apps.ipynb?token={token}", timeout=180_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=180_000)
            # the kernel is up and idle before anything runs (the status bar says so)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
                timeout=180_000
            )
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            metrics = page.locator(".oppkit-metrics")
            expect(metrics).to_be_visible(timeout=180_000)
            expect(metrics).to_contain_text("Proposal/Price Quote", timeout=60_000)
            expect(metrics).to_contain_text("120,000")
            expect(page.locator(".oppkit-timeline .oppkit-feed-item").first).to_be_visible()

            funnel = page.locator(".oppkit-pipeline-review .oppkit-funnel-stage")
            expect(funnel.first).to_be_visible(timeout=180_000)
            stages = funnel.all_inner_texts()
            assert len(stages) >= 3, stages
            cut = page.evaluate(  # a stage name is never cut: its text fits its button
                "() => [...document.querySelectorAll('.oppkit-funnel-stage')]"
                ".filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.innerText)"
            )
            assert cut == [], cut
            expect(page.locator(".oppkit-pipeline-review")).to_contain_text("Pipeline review")
            metrics.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "notebook_apps.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "notebook_apps_failed.png"), full_page=True)
            raise
        finally:
            browser.close()


# --- the product's notebooks, as a consultant clicks through them ---------------------

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    "01_quickstart",
    "02_pipeline_review",
    "03_relationships",
    "04_workflow",
    "05_campaigns",
]
VIEWPORT = {"width": 1280, "height": 800}
MAX_OUTPUT_PX = 2400  # no single output (an app with a deal open in it) is taller
CUT = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output button, .jp-OutputArea-output .widget-label, '
    + '.jp-OutputArea-output .lm-TabBar-tabLabel')]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.innerText.trim()).filter(t => t)"""
TALLEST = """() => Math.max(0, ...[...document.querySelectorAll('.jp-OutputArea-output')]
  .map(e => e.getBoundingClientRect().height))"""
FINISHED = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText));
}"""


@pytest.fixture(scope="module")
def notebooks_lab(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """JupyterLab on copies of notebooks 01-05 (the repository's stay untouched) beside
    the repository's tests/ (notebook 04 serves its fake Salesforce from there); one for
    the five notebooks, each run in its own kernel."""
    from oppkit.demo import build_demo

    tmp_path = tmp_path_factory.mktemp("notebooks_lab")

    files, url, _ = build_demo(tmp_path / "demo", progress=False)
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks")
    (root / "tests").symlink_to(REPO / "tests")
    env = {"OPPKIT_DATABASE_URL": url, "OPPKIT_DEMO_FILES": str(files.root),
           "OPPKIT_INTERNAL_DOMAINS": "northwind.example"}  # fmt: skip
    with lab_server(root / "notebooks", env) as running:
        yield running


def _run_all(page, base: str, token: str, name: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    # a workspace of its own: only this notebook open, whatever ran before
    page.goto(f"{base}/lab/workspaces/w{name[:2]}/tree/{name}.ipynb?reset&token={token}",
              timeout=180_000)  # fmt: skip
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=180_000)
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
        timeout=180_000
    )
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(FINISHED, timeout=300_000)
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
        timeout=120_000
    )


def _check(page, name: str, moment: str) -> None:  # noqa: ANN001
    """No error shown, no output taller than MAX_OUTPUT_PX, no text cut; a screenshot."""
    page.screenshot(path=str(ARTIFACTS / f"{name}_{moment}.png"), full_page=False)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    traces = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert traces == [], (name, moment, traces[:1])
    assert page.evaluate(TALLEST) <= MAX_OUTPUT_PX, (name, moment, page.evaluate(TALLEST))
    assert page.evaluate(CUT) == [], (name, moment, page.evaluate(CUT))


def _click_tabs(page, app, name: str) -> None:  # noqa: ANN001
    """Every tab of an app, one after the other, each checked."""
    tabs = app.locator(":scope > .lm-TabBar .lm-TabBar-tab")  # its own, not a nested app's
    for i in range(tabs.count()):
        tab = tabs.nth(i)
        label = tab.inner_text().strip()
        tab.click()
        page.wait_for_function("el => el.classList.contains('lm-mod-current')",
                               arg=tab.element_handle())  # fmt: skip
        _check(page, name, f"tab_{i}_{label.split()[0].lower()}")


def _review(page, name: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    review = page.locator(".oppkit-pipeline-review").first
    stages = review.locator(".oppkit-funnel-stage")
    for i in range(stages.count()):  # each stage filters; a second click shows all again
        stage = stages.nth(i)
        stage.click()
        expect(stage).to_have_class(re.compile("mod-info"), timeout=30_000)
        stage.click()
        expect(stage).not_to_have_class(re.compile("mod-info"), timeout=30_000)
    owner = review.locator("select").first
    choices = [o for o in owner.locator("option").all_inner_texts() if o != "all"]
    owner.select_option(choices[0])  # a filter narrows the deals
    expect(review).to_contain_text(" deals, ", timeout=30_000)
    owner.select_option("all")
    _click_tabs(page, review.locator(".oppkit-review-tabs"), name)
    review.locator(".lm-TabBar-tab", has_text="Export").first.click()
    review.get_by_role("button", name="CSV").click()
    review.get_by_role("button", name="Prepare download").click()
    with page.expect_download() as download:
        review.locator("a.oppkit-download").click()
    assert download.value.suggested_filename.endswith(".csv")
    review.locator(".lm-TabBar-tab", has_text="Deals").first.click()
    grid = review.locator(".oppkit-deal-grid").first
    box = grid.bounding_box()
    assert box and box["width"] > 800, box
    page.mouse.click(box["x"] + 300, box["y"] + 20 + 26 + 13)  # the first deal's row
    expect(review.locator(".oppkit-opportunity-view")).to_be_visible(timeout=60_000)
    _check(page, name, "deal_opened")


def _transition(page, view, name: str) -> None:  # noqa: ANN001
    """The first transition on offer: asked first, moved on Confirm, Undo offered."""
    from playwright.sync_api import expect

    view.locator(":scope > .lm-TabBar .lm-TabBar-tab", has_text="Workflow").first.click()
    move = view.locator("button", has_text="→").first
    expect(move).to_be_visible()
    move.click()
    confirm = view.locator(".oppkit-confirm").first
    moved = view.locator(".oppkit-message-error", has_text="moved on meanwhile")
    expect(
        view.locator(
            ".oppkit-confirm:visible, .oppkit-message-error:has-text('moved on meanwhile')"
        ).first
    ).to_be_visible()
    if moved.is_visible():  # the notebook moved the deal after drawing the view: redrawn
        _check(page, name, "moved_meanwhile")
        move = view.locator("button", has_text="→").first
        move.click()
    label = move.inner_text().strip()
    expect(confirm).to_contain_text("Move ")
    _check(page, name, "transition_asked")
    confirm.locator("button", has_text="Confirm").click()
    expect(view.locator("button", has_text=f"Undo {label.split(' →')[0]}")).to_be_visible(
        timeout=60_000
    )
    _check(page, name, "transition_done")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_consultant_clicks_through_the_notebooks_at_1280x800(notebooks_lab, name: str):
    from playwright.sync_api import sync_playwright

    base, token = notebooks_lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
        )
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        page.set_default_timeout(120_000)
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        try:
            _run_all(page, base, token, name)
            _check(page, name, "run")
            if name == "02_pipeline_review":
                _review(page, name)
            views = page.locator(".oppkit-opportunity-view")
            for i in range(views.count()):  # found afresh: a click may redraw one
                app = views.nth(i)
                app.scroll_into_view_if_needed()
                tabbed = app.locator(".lm-TabBar").first.locator("..")
                _click_tabs(page, tabbed, name)
                if name == "04_workflow":
                    _transition(page, tabbed, name)
            assert problems == [], problems
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{name}_failed.png"), full_page=True)
            raise
        finally:
            browser.close()
