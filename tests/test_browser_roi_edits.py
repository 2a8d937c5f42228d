"""ROI edits after Predict, in headless Chromium: accept, reject, a dragged box, typed
corners and a mask file each route their view by the new ROI on the next Predict, the
ROI control shows the choice, and only the changed view is predicted again.

One server and one page for the module: a phantom four-view upload predicted once
with a run whose (hand-set) ROI finder proposes an ROI in every view; each test then
edits one view.  Screenshots of the edited view's card and result go to
``tests/artifacts/roi-edit-*.png``.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_browser_review import _phantom_study
from test_reliability_inputs import write_run
from test_roifinder import add_finder

from helpers import app_env, app_in_chromium, type_box, upload_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ONE_VIEW = "Predicted 1 view; 3 unchanged views kept from before."


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The page after the first Predict of a phantom upload, the finder proposing."""
    from playwright.sync_api import expect

    tmp = tmp_path_factory.mktemp("roi-edits")
    files = _phantom_study(tmp)
    env, ck, _ = app_env(tmp)
    add_finder(write_run(ck / "review-run"), 6.0)
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, tmp / "streamlit.log", 1400, 1800) as (page, url):
        main = upload_study(page, url, files)
        main.get_by_role("button", name="Predict").click()
        expect(main.get_by_role("button", name="Reject")).to_have_count(4)
        review = {"page": page, "main": main, "tmp": tmp, "files": files}
        _settle(review)
        yield review


def _settle(review: dict[str, Any]) -> None:
    """Wait until the script has finished its rerun: a click while it runs may be lost
    with the elements it replaces."""
    from playwright.sync_api import expect

    review["page"].wait_for_timeout(300)
    expect(review["page"].locator("[data-testid='stStatusWidget']")).to_have_count(0)


def _card(review: dict[str, Any], view: str) -> Any:
    return review["main"].locator(f".st-key-card-{view}")


def _result(review: dict[str, Any], view: str) -> Any:
    return review["main"].locator(f".st-key-result-{view}")


def _predict_again(review: dict[str, Any], view: str, sentence: str | re.Pattern,
                   choice: str, shot: str) -> None:
    """Predict: ``view`` is routed as ``sentence`` says, its ROI control still shows
    ``choice``, and it alone was predicted again."""
    from playwright.sync_api import expect

    main, page = review["main"], review["page"]
    _settle(review)
    main.get_by_role("button", name="Predict").click()
    try:
        expect(_result(review, view).get_by_text(sentence)).to_be_visible(timeout=60_000)
        expect(_card(review, view).get_by_role("radio", name=choice)).to_be_checked()
        expect(main.get_by_text(ONE_VIEW)).to_be_visible()
    except AssertionError:
        page.screenshot(path=str(ARTIFACTS / f"roi-edit-{shot}-failed.png"), full_page=True)
        raise
    _settle(review)
    _card(review, view).screenshot(path=str(ARTIFACTS / f"roi-edit-{shot}-card.png"))
    _result(review, view).screenshot(path=str(ARTIFACTS / f"roi-edit-{shot}-result.png"))


def _choose(review: dict[str, Any], view: str, choice: str) -> None:
    from playwright.sync_api import expect

    _card(review, view).get_by_role("radio", name=choice).click()
    expect(_card(review, view).get_by_role("radio", name=choice)).to_be_checked()
    _settle(review)


def test_the_finders_answer_is_shown_beside_its_threshold(review):
    from playwright.sync_api import expect

    panel = _result(review, "LMLO")  # sigmoid(6) = 99.75 % against the finder's 50 %
    expect(panel.get_by_text("the ROI finder proposed one (100 % ≥ its threshold 50 %)",
                             exact=False)).to_be_visible()
    panel.get_by_text("Details", exact=True).click()
    expect(panel.get_by_text("ROI source: the ROI finder (ROI proposed, 100 % ≥ its "
                             "threshold 50 %; accept, edit or reject it below)")).to_be_visible()
    _settle(review)
    panel.screenshot(path=str(ARTIFACTS / "roi-edit-finder-details.png"))
    panel.get_by_text("Details", exact=True).click()


def test_accept_makes_the_proposal_an_editable_box_that_routes(review):
    from playwright.sync_api import expect

    _result(review, "RCC").get_by_role("button", name="Accept / edit box").click()
    expect(_card(review, "RCC").get_by_role("radio", name="Draw box")).to_be_checked()
    x_max = _card(review, "RCC").get_by_role("spinbutton", name="x max")
    expect(x_max).not_to_have_value("0")  # the proposal's corners, ready to edit
    _predict_again(review, "RCC", "An ROI was given (a drawn box): read by the model for RCC "
                   "views with a finding.", "Draw box", "accept")


def test_reject_routes_the_view_without_roi(review):
    from playwright.sync_api import expect

    _result(review, "LCC").get_by_role("button", name="Reject").click()
    expect(_card(review, "LCC").get_by_role("radio", name="No ROI")).to_be_checked()
    _predict_again(review, "LCC", re.compile(r"^No ROI marked and none proposed: read by the "
                                             r"model for LCC views without a finding"),
                   "No ROI", "reject")


def test_a_box_dragged_on_the_image_fills_the_corners_and_routes(review):
    from playwright.sync_api import expect

    _choose(review, "RMLO", "Draw box")
    chart = _card(review, "RMLO").locator("[data-testid='stPlotlyChart'] .nsewdrag").first
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    b = chart.bounding_box()
    mouse = review["page"].mouse
    mouse.move(b["x"] + 0.3 * b["width"], b["y"] + 0.3 * b["height"])
    mouse.down()
    mouse.move(b["x"] + 0.6 * b["width"], b["y"] + 0.6 * b["height"], steps=12)
    mouse.up()
    corners = _card(review, "RMLO").get_by_role("spinbutton")
    expect(corners.nth(0)).not_to_have_value("0")  # the fields took the dragged box
    expect(corners.nth(2)).not_to_have_value("0")
    x0, x1 = (int(corners.nth(i).input_value()) for i in (0, 2))
    assert x1 > x0
    _predict_again(review, "RMLO", "An ROI was given (a drawn box): read by the model for RMLO "
                   "views with a finding.", "Draw box", "drag")
    assert int(corners.nth(0).input_value()) == x0  # Predict kept the dragged box


def test_typed_corners_route(review):
    _choose(review, "LMLO", "Draw box")
    card = _card(review, "LMLO")
    type_box(review["page"], card, (10, 20, 100, 120))
    from playwright.sync_api import expect

    expect(card.get_by_text("Box 90 × 100 px (image pixels)")).to_be_visible()
    _predict_again(review, "LMLO", "An ROI was given (a drawn box): read by the model for LMLO "
                   "views with a finding.", "Draw box", "typed")


def test_a_mask_file_routes(review):
    from playwright.sync_api import expect

    _choose(review, "LCC", "Mask file")
    card = _card(review, "LCC")
    caption = card.get_by_text(re.compile(r"The mask must be (\d+) × (\d+) px"))
    w, h = (int(x) for x in re.search(r"(\d+) × (\d+)", caption.inner_text()).groups())
    mask = np.zeros((h, w), np.uint8)
    mask[h // 3:h // 2, w // 4:w // 2] = 255
    path = review["tmp"] / "lcc-mask.png"
    cv2.imwrite(str(path), mask)
    card.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    expect(caption).to_have_count(0)
    _predict_again(review, "LCC", "An ROI was given (an uploaded mask): read by the model for "
                   "LCC views with a finding.", "Mask file", "mask")


def test_the_csv_download_carries_what_an_auditor_checks(review):
    import pandas as pd

    import core

    main = review["main"]
    _settle(review)
    with review["page"].expect_download() as download:
        main.get_by_role("button", name="Download CSV").click()
    table = pd.read_csv(download.value.path())
    views = table[table["level"] == "view"]
    assert sorted(views["view"]) == ["LCC", "LMLO", "RCC", "RMLO"]
    assert (views["width"] > 0).all() and (views["height"] > 0).all()
    boxed = views.dropna(subset=["roi_boxes"])
    assert len(boxed) >= 1
    for _, row in boxed.iterrows():  # every ROI box lies inside its image
        for box in str(row["roi_boxes"]).split(";"):
            x0, y0, x1, y1 = map(int, box.split(","))
            assert 0 <= x0 < x1 <= row["width"] and 0 <= y0 < y1 <= row["height"]
    assert set(views["view_found_by"]) == {"DICOM tags"}
    assert sorted(table.loc[table["level"] == "breast", "breast"]) == ["left", "right"]
    assert (table["mammoroute_version"] == core.__version__).all()
    assert (table["roi_finder_threshold"] == 0.5).all()  # the hand-set finder's
