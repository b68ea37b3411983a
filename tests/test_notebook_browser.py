"""What a person sees: a real JupyterLab runs a notebook with the opportunity view and the
pipeline review, driven in a headless Chromium (Debian's, through Playwright).

A screenshot is saved to ``test-artifacts/notebook_apps.png`` (git-ignored) for CI.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.servers.net import free_port

CHROMIUM = Path("/usr/bin/chromium")
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
    folder = tmp_path / "notebooks"
    folder.mkdir()
    book = nbformat.v4.new_notebook()
    book.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    book.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(book, folder / "apps.ipynb")

    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "OPPKIT_DATABASE_URL": url,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jdata"),
    }
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", "--allow-root",
         f"--ServerApp.root_dir={folder}", "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=3) as r:
                    json.load(r)
                break
            except OSError:
                assert time.time() < deadline, "JupyterLab did not start in 180 s"
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_opportunity_view_and_the_funnel_chart_show_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"],
        )  # fmt: skip
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
