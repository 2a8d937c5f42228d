"""Compare in headless Chromium at 1400 px, as a researcher reads it: two runs side by side
at the page's operating point, every column visible, the caveats in words above the table.

Both runs are folders with a ``run.json`` and a ``metrics.json`` scored from a prediction
table built so that the tuned thresholds differ from 0.5, ROI presence alone beats both
grids and every without-ROI cell stood in for by the baseline.  Screenshots go to
``tests/artifacts/compare-*.png``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import app_env, app_in_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTH = 1400


def _predictions(seed: int, n: int = 160) -> pd.DataFrame:
    """Both grids on ``n`` images; ROI presence follows the label, the grids barely do, and
    images without an ROI are served by the baseline's model (no without-ROI cell)."""
    from core.grid import VIEWS

    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(int)
    roi = np.where(rng.random(n) < 0.9, label, 1 - label)
    view = rng.choice(VIEWS, n)
    rows = []
    for i in range(n):
        base = {"image_path": f"i{i}.png", "patient_id": f"p{i // 2}", "study_id": f"s{i // 2}",
                "view": view[i], "roi": int(roi[i]), "label": int(label[i])}
        p_base = float(np.clip(0.4 + 0.15 * label[i] + rng.normal(0, 0.2), 0.01, 0.99))
        rows.append({**base, "mode": "baseline", "cell": f"all-{view[i]}", "fallback": False,
                     "p_malignant": p_base, "threshold": 0.42})
        served = f"roi-{view[i]}" if roi[i] else f"all-{view[i]}"
        p_roi = float(np.clip(0.35 + 0.2 * label[i] + rng.normal(0, 0.2), 0.01, 0.99))
        rows.append({**base, "mode": "roi", "cell": served, "fallback": not roi[i],
                     "p_malignant": p_roi if roi[i] else p_base,
                     "threshold": 0.38 if roi[i] else 0.42})
    return pd.DataFrame(rows)


def _run(ck: Path, name: str, seed: int) -> dict:
    from core.evaluate import evaluate_predictions

    folder = ck / name
    folder.mkdir(parents=True)
    info = {"name": name, "dataset": "phantom-vindr", "arch": "convnextv2_atto", "img_size": 64,
            "epochs": 1, "status": "complete", "synthetic": True, "modes": ["baseline", "roi"],
            "started": "2026-01-01T00:00:00+00:00"}
    (folder / "run.json").write_text(json.dumps(info))
    result = evaluate_predictions(_predictions(seed), n_boot=50)
    result["run"] = {"name": name, "dataset": info["dataset"], "arch": info["arch"],
                     "img_size": 64}
    (folder / "metrics.json").write_text(json.dumps(result))
    return result


def test_compare_at_1400_px_follows_the_operating_point_and_says_its_caveats(tmp_path):
    from playwright.sync_api import expect

    from core.evaluate.caveats import TESTS_DIFFER, comparison_caveats
    from ui.metrics_view import with_ci

    env, ck, _ = app_env(tmp_path)
    results = {name: _run(ck, name, seed) for name, seed in (("run-a", 1), ("run-b", 2))}
    first = results["run-a"]
    tuned_acc = with_ci(first["tuned"]["roi_aware"]["accuracy"])
    assert tuned_acc != with_ci(first["roi_aware"]["accuracy"])  # the fixture can tell them apart
    caveats = comparison_caveats(first, tuned=True)
    assert len(caveats) == 2  # presence beats both grids, every without-ROI cell stood in
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, tmp_path / "streamlit.log", WIDTH, 1000, 60_000) as (page, url):
        page.goto(f"{url}/compare")
        main = page.locator("[data-testid='stMain']")
        picker = main.locator("[data-testid='stMultiSelect']")
        expect(picker).to_contain_text("run-")  # the sidebar's run, picked by default
        picker.click()
        page.get_by_role("option", name="run-").first.click()  # and the other one
        page.keyboard.press("Escape")
        for name in results:
            expect(main.get_by_role("heading", name=name)).to_be_visible()
        expect(main.get_by_role("heading", name="Runs side by side")).to_be_visible()
        page.wait_for_timeout(1000)
        # 1. the side-by-side table at the page's (tuned) operating point
        side = main.locator("[data-testid='stTable']").first
        row = side.locator("tr", has_text="ROI-aware acc")
        expect(row).to_contain_text(tuned_acc)
        expect(row).to_contain_text(with_ci(results["run-b"]["tuned"]["roi_aware"]["accuracy"]))
        page.screenshot(path=str(ARTIFACTS / "compare-side-by-side.png"))
        # 2. the caveats in words above the run's table, and why p and CI may disagree
        for caveat in caveats:
            expect(main.get_by_text(caveat).first).to_be_visible()
        expect(main.get_by_text(TESTS_DIFFER).first).to_be_visible()
        main.get_by_text(caveats[0]).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "compare-caveats.png"))
        main.get_by_text(TESTS_DIFFER).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "compare-tests.png"))
        # 3. no column hidden: every table's every header lies inside the window
        tables = main.locator("[data-testid='stTable']")
        assert tables.count() >= 4  # side by side, and per run its image and breast tables
        headers = main.locator("[data-testid='stTable'] th")
        seen = set()
        for k in range(headers.count()):
            th = headers.nth(k)
            th.scroll_into_view_if_needed()
            box = th.bounding_box()
            assert box and box["width"] > 0, th.inner_text()
            assert 0 <= box["x"] and box["x"] + box["width"] <= WIDTH, (th.inner_text(), box)
            seen.add(th.inner_text().strip())
        assert {"Sensitivity", "ROC AUC", "Balanced accuracy", "run-a", "run-b"} <= seen
        assert main.locator("[data-testid='stDataFrame']").count() == 0
        # 4. at p >= 0.5 the side-by-side table follows the page
        main.get_by_text("p ≥ 0.5 (paper)", exact=True).click()
        expect(side.locator("tr", has_text="ROI-aware acc")).to_contain_text(
            with_ci(first["roi_aware"]["accuracy"]))
        expect(main.get_by_text(TESTS_DIFFER).first).to_be_visible()
