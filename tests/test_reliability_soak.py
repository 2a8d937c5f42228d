"""Soak: many case reviews in one process, and several browser sessions during training.

* ``SOAK_CASES`` (default 30; the long run is 200) consecutive four-view case
  reviews through :class:`core.predict.Predictor` (untrained ConvNeXtV2-atto at
  64 px in all 12 cells, Grad-CAM on, ROI masks on half the views): resident
  memory after a warm-up of 5 reviews may grow by less than 50 MB.
* ``SOAK_SESSIONS`` (default 3; 5 in the long run) Chromium contexts against one
  ``streamlit run`` server each press Predict on a case review at the same time
  while a tiny ``python -m core train`` runs: every session gets its four answers.

Figures go to ``tests/artifacts/reliability-soak.json``.
"""
from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_reliability_inputs import mammo, write_run

from helpers import record_figures

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CASES = int(os.environ.get("SOAK_CASES", "30"))
SESSIONS = int(os.environ.get("SOAK_SESSIONS", "3"))
WARMUP = 5
GROWTH_LIMIT_MB = 50


def _record(name: str, figures: dict) -> None:
    record_figures("reliability-soak.json", name, figures)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_case_reviews_do_not_leak_memory(tmp_path):
    import torch

    from core.predict import Predictor, ViewInput

    torch.set_num_threads(1)
    predictor = Predictor(write_run(tmp_path / "run"))
    rng = np.random.default_rng(0)

    def review(i: int) -> None:
        inputs = []
        for j, view in enumerate(("RCC", "LCC", "RMLO", "LMLO")):
            mask = None
            if (i + j) % 2:
                mask = np.zeros((96, 80), np.uint8)
                y, x = rng.integers(10, 70, 2)
                mask[y:y + 12, x:x + 8] = 1
            inputs.append(ViewInput(name=f"case{i}_{view}.png", pixels=mammo(int(rng.integers(1e9))),
                                    mask=mask))
        results = predictor.predict_study(inputs, cam=True)
        assert all(r.error is None and r.cam_roi_aware is not None and r.cam_baseline is not None
                   for r in results)

    for i in range(WARMUP):
        review(i)
    gc.collect()
    start = rss_mb()
    t0 = time.perf_counter()
    samples = []
    for i in range(CASES):
        review(WARMUP + i)
        if i % 10 == 9:
            gc.collect()
            samples.append(round(rss_mb() - start, 1))
    gc.collect()
    growth = rss_mb() - start
    seconds = time.perf_counter() - t0
    _record(f"memory_{CASES}", {"cases": CASES, "views_per_case": 4, "warmup": WARMUP,
                                "rss_start_mb": round(start, 1), "growth_mb": round(growth, 1),
                                "growth_samples_mb": samples, "seconds": round(seconds, 1)})
    print(f"\nsoak: {CASES} reviews, RSS growth {growth:.1f} MB after warm-up, {seconds:.0f} s")
    assert growth < GROWTH_LIMIT_MB, samples


# --------------------------------------------------------------------------- browser

@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_concurrent_browser_sessions_during_training(tmp_path):
    from playwright.sync_api import expect, sync_playwright
    from test_app import write_dataset
    from test_reliability_training import TRAIN_ARGS, write_two_view_blobs

    from helpers import start_streamlit, stop, wait_healthy

    ck, data, cache = tmp_path / "checkpoints", tmp_path / "data", tmp_path / "cache"
    for d in (ck, data, cache):
        d.mkdir()
    dataset = write_dataset(data)
    run = write_run(ck / "tiny-run")
    info = json.loads((run / "run.json").read_text())
    info["dataset_path"] = str(dataset)
    (run / "run.json").write_text(json.dumps(info))
    env = {**os.environ, "MAMMOROUTE_CHECKPOINTS": str(ck), "MAMMOROUTE_DATA": str(data),
           "MAMMOROUTE_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    log = tmp_path / "streamlit.log"
    blobs = write_two_view_blobs(tmp_path / "blobs")
    server, url = start_streamlit(env, log)
    args = [a if a != "3" else "20" for a in TRAIN_ARGS]  # enough epochs to outlast the reviews
    training = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--dataset", str(blobs), "--out",
         str(tmp_path / "training"), *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    answered = 0
    try:
        wait_healthy(url, server, log, seconds=120)
        assert _wait_for(lambda: (tmp_path / "training" / "progress.jsonl").exists(), 240)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                         args=["--no-sandbox", "--disable-gpu",
                                               "--disable-background-networking"])
            try:
                pages = []
                for _ in range(SESSIONS):
                    page = browser.new_context(viewport={"width": 1300, "height": 1800}).new_page()
                    page.set_default_timeout(180_000)
                    page.goto(url)  # the entry page first: it renders the sidebar's run picker
                    page.get_by_role("link", name="Case review").first.click()
                    pages.append(page)
                for page in pages:
                    expect(page.get_by_role("button", name="Predict")).to_be_visible(timeout=180_000)
                t0 = time.monotonic()
                assert training.poll() is None  # the reviews run beside a training
                for page in pages:  # all sessions ask at once
                    page.get_by_role("button", name="Predict").click()
                for page in pages:
                    main = page.locator("[data-testid='stMain']")
                    expect(main.locator("[data-testid='stMarkdownContainer']",
                                        has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
                           ).to_have_count(4, timeout=300_000)
                    answered += 1
                seconds = time.monotonic() - t0
                still_training = training.poll() is None
            finally:
                browser.close()
    finally:
        training.kill()
        training.wait(30)
        stop(server)
    assert answered == SESSIONS
    _record(f"browser_{SESSIONS}", {"sessions": SESSIONS, "answered": answered,
                                    "seconds_all_answered": round(seconds, 1),
                                    "training_running_throughout": still_training})
    print(f"\nbrowser soak: {answered}/{SESSIONS} sessions answered in {seconds:.0f} s "
          f"(training still running: {still_training})")


def _wait_for(pred, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False
