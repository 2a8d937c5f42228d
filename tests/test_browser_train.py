"""Train page in headless Chromium: start a training, cancel it, resume it from the button;
the same on a local Ray chosen on the page.

A 12-study phantom under a private data folder; the page's own defaults.
The cancelled run must read as a neutral pause with a Resume button (not a
red error), and the button must start the run again.  Screenshots go to
``tests/artifacts/train-*.png``; the job is cancelled in ``finally``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.runfolder import jobs
from helpers import app_env, app_in_chromium, assert_no_ray_left, ray_processes

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@contextmanager
def _train_page(tmp_path: Path, **env: str) -> Iterator[tuple[Any, Any, Path]]:
    """The Train page on a 12-study phantom: ``(page, main area, checkpoints folder)``."""
    from core.phantom import write_phantom

    app, ck, data = app_env(tmp_path, **env)
    write_phantom(data / "phantom-vindr", "vindr", 12, 192, 0)
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(app, tmp_path / "streamlit.log") as (page, url):
        page.goto(f"{url}/train")
        yield page, page.locator("[data-testid='stMain']"), ck


def _cancel(page, main, ck: Path) -> None:
    """Press Cancel until the job has ended: the monitor redraws every 2 s, so a click can
    miss, and a Ray run's teardown takes seconds more than one process's."""
    for _ in range(20):
        job = jobs.current_job(ck)
        if job is None:
            return
        main.get_by_role("button", name="Cancel").click()
        page.wait_for_timeout(3000)
    assert jobs.current_job(ck) is None, jobs.log_tail(job)


def test_cancel_a_training_then_resume_it_from_the_button(tmp_path):
    from playwright.sync_api import expect

    ck = tmp_path / "checkpoints"
    try:
        with _train_page(tmp_path) as (page, main, ck):
            main.get_by_role("button", name="Start training").click()
            running = main.get_by_text(re.compile(r"Train job running"))
            expect(running).to_be_visible()
            expect(main.get_by_text(re.compile(r"^phantom-vindr-.* · running$"))).to_be_visible()
            _cancel(page, main, ck)
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


def test_a_ray_run_started_from_the_page_shows_its_nodes_and_cancels_cleanly(tmp_path):
    """"Ray cluster" with no address: the command shown (with the executor flags) is the one
    started, its cells report the node that trains them, and Cancel leaves the run
    resumable and no process of its local Ray behind."""
    from playwright.sync_api import expect

    from core.runfolder import layout as runs

    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as ray_tmp:
        ck = tmp_path / "checkpoints"
        try:
            with _train_page(tmp_path, RAY_TMPDIR=ray_tmp) as (page, main, ck):
                main.get_by_text("Ray cluster", exact=True).click()
                cpus = main.get_by_role("spinbutton", name="CPUs per cell")
                cpus.fill("1")
                cpus.press("Enter")
                code = main.locator("[data-testid='stCode']")
                expect(code).to_contain_text("--executor ray --cpus-per-cell 1")
                shown = code.inner_text().strip()
                main.get_by_role("button", name="Start training").click()
                expect(main.get_by_text(re.compile(r"Train job running"))).to_be_visible()
                job = jobs.current_job(ck)
                assert job is not None
                started = job.command[job.command.index("train"):]
                assert shlex.split(shown)[3:] == started  # what was shown runs
                run = Path(job.run_dir)
                deadline = time.monotonic() + 240
                while not any(e["event"] == "cell_start" and e.get("node")
                              for e in runs.read_progress(run)):
                    assert jobs.current_job(ck) is not None, jobs.log_tail(job)
                    assert time.monotonic() < deadline, "no cell started on Ray in time"
                    time.sleep(0.5)
                expect(main.get_by_text("Per cell: the machine (node) that trains it")
                       ).to_be_visible(timeout=30_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(ARTIFACTS / "train-ray-running.png"), full_page=True)
                _cancel(page, main, ck)
                expect(main.get_by_text(re.compile(r"^Cancelled, \d+ of \d+ cells finished"))
                       ).to_be_visible(timeout=60_000)
                info = json.loads((run / runs.RUN_FILE).read_text())
                assert info["status"] == "cancelled" and info["executor"]["kind"] == "ray"
                resume = jobs.resume_args(info, run)
                assert resume[-2:] == ["--executor", "ray"] and "--resume" in resume
            assert_no_ray_left(ray_tmp, within_s=60)
        finally:
            jobs.cancel_job(ck, grace_s=5)
            for pid in ray_processes(ray_tmp):  # only if the test failed before Cancel
                os.kill(pid, signal.SIGKILL)
