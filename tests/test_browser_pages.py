"""Every page as the first page opened on a fresh server (a bookmark after a restart).

One ``streamlit run app.py`` per page, with one complete run under its
checkpoints folder.  The first request goes straight to the page's URL; the
page must come up inside the app's own navigation (titled entries such as
"Case review", not Streamlit's file names), with the sidebar's run picker
showing the run, and never "No trained run yet".
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_reliability_inputs import write_run

from helpers import app_env, app_in_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
URLS = {"home": "", "train": "train", "case_review": "case_review", "compare": "compare",
        "data": "data"}
HEADINGS = {"home": "MammoRoute", "train": "Train", "case_review": "Case review",
            "compare": "Compare", "data": "Data"}


@pytest.mark.parametrize("page_name", list(URLS))
def test_page_opened_first_on_a_fresh_server(page_name, tmp_path):
    from playwright.sync_api import expect

    env, ck, _ = app_env(tmp_path)
    write_run(ck / "bookmark-run")
    with app_in_chromium(env, tmp_path / "streamlit.log", 1300, 1000, 60_000) as (page, url):
        page.goto(f"{url}/{URLS[page_name]}")
        main = page.locator("[data-testid='stMain']")
        expect(main.get_by_role("heading", name=HEADINGS[page_name], exact=True)).to_be_visible()
        nav = page.locator("[data-testid='stSidebarNav']")
        expect(nav.get_by_text("Case review", exact=True)).to_be_visible()
        expect(nav.get_by_text("case review", exact=True)).to_have_count(0)
        sidebar = page.locator("[data-testid='stSidebar']")
        expect(sidebar.get_by_role("combobox", name="Run")).to_have_value("● bookmark-run")
        page.wait_for_timeout(500)
        expect(page.get_by_text("No trained run yet")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"first-page-{page_name}.png"))
