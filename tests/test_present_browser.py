"""A consultant presents the pipeline review to a client: ``oppkit present`` (Voilà) in a
headless Chromium at 1280x800 (Debian's, through Playwright's executable_path).

What the client sees: the apps without code; a click on a funnel stage narrows the grid;
the Export tab's download reaches the browser as a file. Screenshots go to
``test-artifacts/`` (git-ignored) for CI.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.net import free_port
from tests.support import CHROMIUM_FLAGS, CHROMIUM_PATH, wait_until_serving

CHROMIUM = CHROMIUM_PATH
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_pipeline_review.ipynb"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture
def presented(tmp_path: Path):  # noqa: ANN201
    """``oppkit present`` on notebook 02 over a fresh demo database; yields its URL."""
    from oppkit.demo import build_demo

    files, url, _ = build_demo(tmp_path / "demo", progress=False)
    port = free_port()
    env = {**os.environ, "OPPKIT_DEMO_FILES": str(files.root),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt")}  # fmt: skip
    log = (tmp_path / "voila.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "oppkit.cli", "--db", url, "present", str(NOTEBOOK), "--",
         "--no-browser", f"--port={port}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(base + "api/kernelspecs", proc, tmp_path / "voila.log", "Voilà", 120)
        yield base, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _summary_count(page) -> int:  # noqa: ANN001
    text = page.locator(".oppkit-pipeline-review").inner_text()
    return int(text.split(" deals, ")[0].split()[-1])


def test_a_client_sees_the_apps_without_code_filters_by_stage_and_downloads(presented):
    from playwright.sync_api import expect, sync_playwright

    base, where = presented
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page.set_default_timeout(120_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        outside: list[str] = []  # nothing may come from the internet
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else outside.append(r.url))  # fmt: skip
        try:
            page.goto(base, timeout=180_000)
            stages = page.locator(".oppkit-funnel-stage")
            expect(stages.first).to_be_visible(timeout=180_000)
            body = page.locator("body").inner_text()
            assert "import oppkit" not in body and "kit = oppkit.connect" not in body  # no code
            assert "Traceback" not in body and "Error" not in body
            expect(page.locator(".oppkit-deal-grid canvas").first).to_be_visible()
            grid = page.locator(".oppkit-deal-grid").bounding_box()
            assert grid and grid["width"] > 900 and grid["height"] <= 400, grid
            cut = page.evaluate(  # no stage name is cut on its button
                "() => [...document.querySelectorAll('.oppkit-funnel-stage')]"
                ".filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.innerText)"
            )
            assert cut == [], cut
            page.screenshot(path=str(ARTIFACTS / "present_review.png"))

            everything = _summary_count(page)
            stage = stages.nth(1)
            name = stage.inner_text().strip()
            stage.click()  # the client asks about one stage
            expect(page.locator("select").nth(1)).to_have_value(name, timeout=30_000)
            page.wait_for_function(
                f"() => !document.querySelector('.oppkit-pipeline-review').innerText"
                f".includes('{everything} deals,')"
            )
            assert 0 < _summary_count(page) < everything
            stage.click()  # again: every stage
            page.wait_for_function(
                f"() => document.querySelector('.oppkit-pipeline-review').innerText"
                f".includes('{everything} deals,')"
            )

            page.get_by_role("tab", name="Export").click()
            page.get_by_role("button", name="CSV").click()
            page.get_by_role("button", name="Prepare download").click()
            link = page.locator("a.oppkit-download")
            expect(link).to_be_visible(timeout=30_000)
            with page.expect_download() as info:
                link.click()
            download = info.value
            assert download.suggested_filename.startswith("pipeline_review_")
            rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
            assert len(rows) == everything and rows[0]["id"] and rows[0]["stage"]
            assert not list(where.glob("pipeline_review*"))  # nothing written on the server
            page.screenshot(path=str(ARTIFACTS / "present_export.png"))
            assert errors == [] and outside == [], (errors, outside)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "present_failed.png"), full_page=True)
            raise
        finally:
            browser.close()
