"""Train page in headless Chromium: start a training, cancel it, resume it from the button.

A 12-study phantom under a private data folder; the page's own defaults.
The cancelled run must read as a neutral pause with a Resume button (not a
red error), and the button must start the run again.  Screenshots go to
``tests/artifacts/train-*.png``; the job is cancelled in ``finally``.
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

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def test_cancel_a_training_then_resume_it_from_the_button(tmp_path):
    from playwright.sync_api import expect

    from core.phantom import write_phantom

    env, ck, data = app_env(tmp_path)
    write_phantom(data / "phantom-vindr", "vindr", 12, 192, 0)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with app_in_chromium(env, tmp_path / "streamlit.log") as (page, url):
            page.goto(f"{url}/train")
            main = page.locator("[data-testid='stMain']")
            main.get_by_role("button", name="Start training").click()
            running = main.get_by_text(re.compile(r"Train job running"))
            expect(running).to_be_visible()
            expect(main.get_by_text(re.compile(r"^phantom-vindr-.* · running$"))).to_be_visible()
            for _ in range(10):  # the monitor redraws every 2 s: a click can miss
                main.get_by_role("button", name="Cancel").click()
                page.wait_for_timeout(3000)
                if jobs.current_job(ck) is None:
                    break
            paused = main.get_by_text(re.compile(r"^Cancelled, \d+ of \d+ cells finished"))
            expect(paused).to_be_visible()
            expect(main.locator("[data-testid='stAlertContentError']")).to_have_count(0)
            resume = main.get_by_role("button", name="Resume")
            expect(resume).to_be_enabled()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "train-cancelled.png"), full_page=True)
            resume.click()
            expect(running).to_be_visible()
            expect(paused).to_have_count(0)
            job = jobs.current_job(ck)
            assert job is not None and "--resume" in job.command
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "train-resumed.png"), full_page=True)
    finally:
        jobs.cancel_job(ck, grace_s=5)
