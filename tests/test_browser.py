"""End to end in headless Chromium: empty folders → tiny demo from Home → case review → compare.

Starts ``streamlit run app.py`` on a free port with its own checkpoints, data
and cache folders and ``MAMMOROUTE_DEMO=tiny``, drives Debian's chromium
through Playwright, and saves a screenshot of every page to
``tests/artifacts/`` (git-ignored).  The server, the demo job and the browser
are stopped in ``finally`` blocks whatever happens.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.runfolder import jobs
from helpers import app_env, app_in_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
DEMO_TIMEOUT_S = 240
STEP_TIMEOUT_MS = 60_000


def test_demo_case_review_and_compare_in_a_browser(tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env, ck, _ = app_env(tmp_path, MAMMOROUTE_DEMO="tiny")
    try:
        with app_in_chromium(env, tmp_path / "streamlit.log", 1400, 2200,
                             STEP_TIMEOUT_MS) as (page, url):
            page.goto(url)
            build = page.get_by_role("button", name="Build demo data and train demo models")
            expect(build).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "01-home-empty.png"), full_page=True)
            build.click()
            expect(page.get_by_text("Building the demo")).to_be_visible()
            page.wait_for_timeout(8000)
            page.screenshot(path=str(ARTIFACTS / "02-home-building.png"), full_page=True)

            ready = page.get_by_text("Ready for case review")
            expect(ready).to_be_visible(timeout=DEMO_TIMEOUT_S * 1000)
            page.screenshot(path=str(ARTIFACTS / "03-home-ready.png"), full_page=True)

            page.get_by_role("link", name="Open case review").click()
            predict = page.get_by_role("button", name="Predict")
            expect(predict).to_be_visible()
            predict.click()
            main = page.locator("[data-testid='stMain']")
            probabilities = main.locator("[data-testid='stMarkdownContainer']",
                                         has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
            expect(probabilities).to_have_count(4)
            expect(main.locator("[data-testid='stMarkdownContainer']",
                                has_text=re.compile(r"Baseline: \d+(\.\d+)? %"))).to_have_count(4)
            expect(main.locator("[data-testid='stImage'] img")).to_have_count(4 + 4 + 1)  # hanging, results, scale
            page.wait_for_timeout(1500)  # images finish decoding
            page.screenshot(path=str(ARTIFACTS / "04-case-review.png"), full_page=True)

            page.get_by_role("link", name="Compare").click()
            expect(main.get_by_role("heading", name="Compare", exact=True)).to_be_visible()
            expect(main.locator("[data-testid='stTable']").first).to_be_visible()
            expect(main.get_by_text(re.compile(r"^McNemar exact test")).first).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "05-compare.png"), full_page=True)

            page.get_by_role("link", name="Data").click()
            expect(page.get_by_text("Presence of ROIs")).to_be_visible()
            expect(main.locator("[data-testid='stImage'] img").first).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "06-data.png"), full_page=True)

            page.get_by_role("link", name="Train").click()
            expect(page.get_by_role("button", name="Start training")).to_be_visible()
            page.wait_for_timeout(2500)
            page.screenshot(path=str(ARTIFACTS / "07-train.png"), full_page=True)
    finally:
        jobs.cancel_job(ck, grace_s=3)
