"""Case review says only what the numbers support, in headless Chromium: a run trained on
phantoms reading the real RSNA exam makes no call, and the run's measured calibration
decides whether a probability is offered as a frequency.

The run is untrained (64 px) and marked synthetic; its ``metrics.json`` carries a
calibration block measured on a badly calibrated table.  Screenshots go to
``tests/artifacts/readout-*.png``.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_browser_review import REAL
from test_reliability_inputs import write_run

from helpers import app_env, app_in_chromium, upload_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _miscalibrated() -> dict:
    """A calibration block whose probabilities run about 20 points above the observed rate."""
    from core.evaluate.calibration import calibration_block

    rng = np.random.default_rng(0)
    p = rng.uniform(0.3, 0.9, 400)
    y = (rng.random(400) < p - 0.2).astype(int)
    return calibration_block(p, y)


def test_a_phantom_run_on_a_real_exam_makes_no_call_and_states_its_calibration(tmp_path):
    from playwright.sync_api import expect

    from core.phantom import YOURS_ON_SYNTHETIC_TEXT

    if not REAL.is_dir():
        pytest.skip("../shared/real-mammograms is absent (a real RSNA exam, kept out of the "
                    "repository)")
    env, ck, _ = app_env(tmp_path)
    run = write_run(ck / "phantom-run")
    assert json.loads((run / "run.json").read_text())["synthetic"] is True
    block = _miscalibrated()
    (run / "metrics.json").write_text(json.dumps({"calibration": {"roi_aware": block,
                                                                  "baseline": block}}))
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, tmp_path / "streamlit.log", 1400, 1800) as (page, url):
        main = upload_study(page, url, sorted(REAL.glob("*.dcm")))
        main.get_by_role("button", name="Predict").click()
        results = main.locator("[data-testid='stMarkdownContainer']",
                               has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
        expect(results).to_have_count(4)
        expect(main.get_by_text(YOURS_ON_SYNTHETIC_TEXT)).to_be_visible()
        # every view shows its number as a demonstration, none a coloured call
        expect(main.get_by_text(re.compile(r"no call: demonstration, not a reading"))).to_have_count(8)
        text = main.inner_text()
        assert not re.search(r"→ (malignant|benign)", text), "a call was made on a real exam"
        breast = main.locator("[data-testid='stTable']").inner_text()
        assert not re.search(r"\b(malignant|benign)\b", breast), breast
        # the frequency reading is withheld: the measured ECE is stated instead
        assert "3 in 10" not in text
        expect(main.get_by_text(re.compile(
            rf"off by {100 * block['ece']:.0f} points on average \(ECE {block['ece']:.2f}\)"))
        ).to_be_visible()
        page.wait_for_timeout(1000)
        results.first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "readout-demonstration-views.png"))
        main.get_by_role("heading", name="Per breast").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "readout-demonstration-breasts.png"))
