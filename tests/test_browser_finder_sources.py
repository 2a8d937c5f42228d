"""The ROI finder in headless Chromium when its answer is "none": it reads uploads as it
reads the run's dataset studies (switching the source to an upload, whose empty
uploader hides the finder's switch for a moment, keeps it on), and "Draw a box
instead" routes the view by the drawn box on the next Predict while the other views
keep their results.

One server and one page for the module: a run whose (hand-set) finder finds no ROI in
any view (sigmoid(-6) = 0.25 % against its 50 % threshold), with a dataset whose test
study has no annotated ROI on its right breast.  Screenshots go to
``tests/artifacts/finder-*.png``.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from test_app import write_dataset
from test_browser_review import _phantom_study
from test_browser_roi_edits import ARTIFACTS, ONE_VIEW, _card, _predict_again, _result, _settle
from test_reliability_inputs import write_run
from test_roifinder import add_finder

from helpers import app_env, app_in_chromium, choose_files, type_box

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

NONE_FOUND = "No ROI was marked and the ROI finder found none (0 % < its threshold 50 %)"
DATASET, UPLOAD = "Test study of the run's dataset", "Upload a study"


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The case-review page on a run with a dataset and a finder that finds none."""
    tmp = tmp_path_factory.mktemp("finder-sources")
    files = _phantom_study(tmp)
    env, ck, data = app_env(tmp)
    run = write_run(ck / "review-run")
    info = json.loads((run / "run.json").read_text())
    info["dataset_path"] = str(write_dataset(data))
    (run / "run.json").write_text(json.dumps(info))
    add_finder(run, -6.0)
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, tmp / "streamlit.log", 1400, 1800) as (page, url):
        page.goto(f"{url}/case_review")
        main = page.locator("[data-testid='stMain']")
        yield {"page": page, "main": main, "tmp": tmp, "files": files}


def _predict_all(review: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    main = review["main"]
    _settle(review)
    try:
        expect(main.get_by_role("switch", name=re.compile("ROI finder proposes"))).to_be_checked(
            timeout=10_000)
        main.get_by_role("button", name="Predict").click()
        expect(main.get_by_text(re.compile(r"^Predicted \d+ views?"))).to_be_visible(
            timeout=90_000)
    except AssertionError:
        review["page"].screenshot(path=str(ARTIFACTS / "finder-sources-failed.png"),
                                  full_page=True)
        raise
    _settle(review)


def _reads_finder_none(review: dict[str, Any], view: str) -> None:
    """``view`` was routed by the finder's answer ("found none"), and Details says so."""
    from playwright.sync_api import expect

    panel = _result(review, view)
    expect(panel.get_by_text(NONE_FOUND, exact=False)).to_be_visible()
    panel.get_by_text("Details", exact=True).click()
    expect(panel.get_by_text("ROI source: the ROI finder (no ROI found, 0 % < its threshold "
                             "50 %", exact=False)).to_be_visible()
    panel.get_by_text("Details", exact=True).click()


def test_the_finder_reads_uploads_as_it_reads_dataset_studies(review):
    from playwright.sync_api import expect

    main = review["main"]
    main.get_by_text(DATASET, exact=True).click()
    expect(main.locator("[data-testid='stImage'] img")).to_have_count(4)
    _predict_all(review)
    _reads_finder_none(review, "RCC")
    _result(review, "RCC").screenshot(path=str(ARTIFACTS / "finder-dataset-rcc.png"))

    main.get_by_text(UPLOAD, exact=True).click()
    choose_files(main, review["files"])
    expect(main.locator("[data-testid='stImage'] img")).to_have_count(4)
    _predict_all(review)
    for view in ("RCC", "LCC", "RMLO", "LMLO"):
        _reads_finder_none(review, view)
    _result(review, "RCC").screenshot(path=str(ARTIFACTS / "finder-upload-rcc.png"))



def test_draw_a_box_instead_routes_the_view_by_the_drawn_box(review):
    from playwright.sync_api import expect

    _result(review, "RCC").get_by_role("button", name="Draw a box instead").click()
    card = _card(review, "RCC")
    expect(card.get_by_role("radio", name="Draw box")).to_be_checked()
    _settle(review)
    type_box(review["page"], card, (10, 20, 100, 120))
    expect(card.get_by_text("Box 90 × 100 px (image pixels)")).to_be_visible()
    _predict_again(review, "RCC", "An ROI was given (a drawn box): read by the model for RCC "
                   "views with a finding.", "Draw box", "draw-instead")
    picture = _result(review, "RCC").locator("[data-testid='stImage'] img")
    expect(picture).to_have_count(1)  # the new result is drawn, not an empty frame
    review["page"].wait_for_function("img => img.complete && img.naturalWidth > 0",
                                     arg=picture.element_handle(), timeout=30_000)
    expect(review["main"].get_by_text(ONE_VIEW)).to_be_visible()
    for view in ("LCC", "RMLO", "LMLO"):  # the other views keep the finder's answer
        expect(_result(review, view).get_by_text(NONE_FOUND, exact=False)).to_be_visible()
    review["page"].screenshot(path=str(ARTIFACTS / "finder-draw-instead-page.png"), full_page=True)
