"""Case review in headless Chromium, as a radiologist meets it: upload a four-view study,
see it hung before deciding anything, correct a view, predict, download, leave and return.

Runs on the real RSNA screening exam in ``../shared/real-mammograms`` (DICOM,
``ImageLaterality`` without ``ViewPosition``; skipped with a reason when
absent) and on a phantom study.  The run is untrained (this tests the
workflow, not accuracy).  Seconds from upload to the hanging and from Predict
to four results go to ``tests/artifacts/review-timings.json``; screenshots to
``tests/artifacts/review-*.png``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from test_reliability_inputs import write_run

from helpers import app_env, app_in_chromium, choose_files, open_upload, record_figures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REAL = Path(__file__).resolve().parents[2] / "shared" / "real-mammograms" / "rsna-10008"


def _phantom_study(tmp: Path) -> list[Path]:
    """The four DICOM views of one phantom study (VinDr layout: tags, hashed names)."""
    from core.phantom import write_phantom

    write_phantom(tmp / "phantom", profile="vindr", studies=1, size=384, seed=4)
    files = sorted((tmp / "phantom" / "images").rglob("*.dicom"))
    assert len(files) == 4
    return files


def _files(source: str, tmp: Path) -> list[Path]:
    if source == "real":
        if not REAL.is_dir():
            pytest.skip("../shared/real-mammograms is absent (a real RSNA exam, kept out of "
                        "the repository)")
        return sorted(REAL.glob("*.dcm"))
    return _phantom_study(tmp)


@pytest.mark.parametrize("source", ["real", "phantom"])
def test_upload_see_correct_predict_download_return(source, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    files = _files(source, tmp_path)
    env, ck, _ = app_env(tmp_path)
    write_run(ck / "review-run")
    shots = ARTIFACTS / f"review-{source}"
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, tmp_path / "streamlit.log", 1400, 1800) as (page, url):
        main = open_upload(page, url)
        t0 = time.perf_counter()
        choose_files(main, files)
        images = main.locator("[data-testid='stImage'] img")
        # 1. the four views hung before anything is predicted
        expect(images).to_have_count(4)
        expect(main.get_by_text("Running...")).to_have_count(0)
        thumbs_s = time.perf_counter() - t0
        expect(main.get_by_role("button", name="Predict")).to_be_enabled()
        page.wait_for_timeout(1000)
        page.screenshot(path=f"{shots}-1-hanging.png", full_page=True)
        # 2. every view found, with its source; a hand-set contradiction is warned
        views = main.get_by_role("combobox", name=re.compile(r"^View of file \d$"))
        expect(views).to_have_count(4)
        found = sorted(views.nth(i).input_value() for i in range(4))
        assert found == ["LCC", "LMLO", "RCC", "RMLO"]
        first_left = next(i for i in range(4) if views.nth(i).input_value() == "LCC")
        name = views.nth(first_left).get_attribute("aria-label")
        views.nth(first_left).click()
        page.get_by_role("option", name="RCC", exact=True).click()
        warning = main.get_by_text(re.compile(r"View set to RCC although .* laterality L"))
        expect(warning).to_be_visible()
        expect(main.get_by_text("RCC is assigned twice")).to_be_visible()
        page.screenshot(path=f"{shots}-2-contradiction.png", full_page=True)
        # the file moved out of the hanging (two RCC) and its box was drawn anew, still
        # focused: a first click may only close its list
        expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)
        box = main.get_by_role("combobox", name=name, exact=True)
        expect(box).to_have_count(1)  # the rerun's stale copy of the card is gone
        for _ in range(3):
            box.click()
            try:
                page.get_by_role("option", name="LCC", exact=True).click(timeout=5000)
                break
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
        expect(warning).to_have_count(0)
        expect(main.get_by_text("View set by hand")).to_have_count(0)  # its own source again
        # 3. predict: four results with Grad-CAM; the JSON names the run and the ROIs
        t0 = time.perf_counter()
        main.get_by_role("button", name="Predict").click()
        calls = main.locator("[data-testid='stMarkdownContainer']",
                             has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
        expect(calls).to_have_count(4)
        predict_s = time.perf_counter() - t0
        page.wait_for_timeout(1500)
        page.screenshot(path=f"{shots}-3-results.png", full_page=True)
        with page.expect_download() as download:
            main.get_by_role("button", name="Download JSON").click()
        saved = download.value
        assert re.fullmatch(r"mammoroute-upload-\d{4}-\d{2}-\d{2}\.json",
                            saved.suggested_filename)
        record = json.loads(Path(saved.path()).read_text())
        assert record["run"] == "review-run" and record["weights_sha256"]
        assert record["operating_point"]["name"] == "tuned"
        assert sorted(v["view"] for v in record["views"]) == ["LCC", "LMLO", "RCC",
                                                              "RMLO"]
        assert all("roi_boxes" in v and v["roi_source"] == "none"
                   for v in record["views"])
        assert not any(f.stem in json.dumps(record) for f in files)  # no identifiers
        # 4. another page and back: the study and its results are still there
        page.locator("[data-testid='stSidebarNav']").get_by_text("Compare").click()
        expect(main.get_by_role("heading", name="Compare", exact=True)).to_be_visible()
        page.locator("[data-testid='stSidebarNav']").get_by_text("Case review").click()
        expect(main.get_by_role("heading", name="Case review", exact=True)
               ).to_be_visible()
        expect(calls).to_have_count(4)
        expect(main.get_by_role("combobox", name=re.compile(r"^View of file \d$"))
               ).to_have_count(4)
        page.wait_for_timeout(1000)
        page.screenshot(path=f"{shots}-4-returned.png", full_page=True)
    record_figures("review-timings.json", source, {
        "upload_to_hanging_s": round(thumbs_s, 1), "predict_to_four_results_s": round(predict_s, 1),
        "files": len(files), "cores": len(os.sched_getaffinity(0))})
