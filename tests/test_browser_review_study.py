"""Case review in headless Chromium: one patient per study, no file name on screen while
identifiers are hidden, a refused mask, and the small things a reviewer trips over.

One app server for the module (an untrained 64-px run), a fresh page (session) per
test; two phantom patients' four-view DICOM studies.  Screenshots of the key
states go to ``tests/artifacts/study-*.png``.
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
from test_reliability_inputs import write_run

from helpers import app_env, app_in_chromium, choose_files, open_upload

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEW_BOX = re.compile(r"^View of ")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("study")


@pytest.fixture(scope="module")
def studies(work) -> list[list[Path]]:
    """Two phantom patients, four views each (tags carry PatientID and StudyInstanceUID)."""
    from core.phantom import write_phantom

    write_phantom(work / "phantom", profile="vindr", studies=2, size=384, seed=4)
    folders = sorted(p for p in (work / "phantom" / "images").iterdir() if p.is_dir())
    found = [sorted(f.glob("*.dicom")) for f in folders]
    assert [len(f) for f in found] == [4, 4]
    return found


@pytest.fixture(scope="module")
def app(work) -> Iterator[tuple[Any, str]]:
    """The module's server; conftest's ``page`` opens a new session on it per test."""
    env, ck, _ = app_env(work)
    write_run(ck / "review-run")
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, work / "streamlit.log", 1400, 1800) as (page, url):
        yield page, url


def _upload(page, main, files: list[Path]) -> None:
    choose_files(main, files)
    _settled(page, main)


def _settled(page, main) -> None:
    from playwright.sync_api import expect

    page.wait_for_timeout(500)
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)
    expect(main.get_by_text("Running...")).to_have_count(0)


def _predict(page, main) -> None:
    from playwright.sync_api import expect

    main.get_by_role("button", name="Predict").click()
    expect(main.get_by_role("heading", name="Results")).to_be_visible()
    _settled(page, main)


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _another_image(src: Path, dest: Path) -> Path:
    """Another image of the same view (a repeat): the pixels mirrored, a new SOP Instance UID."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(src)
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def _blank_png(path: Path) -> Path:
    """A picture with no view in its name, tags or pixels (a centred disc)."""
    import core  # noqa: F401  (OpenCV's decode limit is set by core first)

    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.circle(np.zeros((200, 160), np.uint8), (80, 100), 60, 200, -1)
    cv2.imwrite(str(path), img)
    return path


def test_clear_study_empties_the_uploader_and_the_next_study_is_used_alone(page, studies):
    """Clear study, then exam B's three files: only those three are used and shown; the
    breast read from one view names the view missing."""
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    _upload(page, main, studies[0])
    images = main.locator("[data-testid='stImage'] img")
    expect(images).to_have_count(4)
    _predict(page, main)
    main.get_by_role("button", name="Clear study").click()
    _settled(page, main)
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(0)
    expect(main.locator("[data-testid='stFileChip']")).to_have_count(0)  # the uploader too
    three = [f for f in studies[1]][:3]
    _upload(page, main, three)
    page.screenshot(path=str(ARTIFACTS / "study-1-cleared-then-b.png"))
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(3)
    expect(images).to_have_count(3)
    expect(main.get_by_text(re.compile(r"files uploaded"))).to_have_count(0)
    expect(main.get_by_text("press Predict again")).to_have_count(0)
    expect(main.get_by_text("These files are not one study")).to_have_count(0)
    _predict(page, main)
    calls = main.locator("[data-testid='stMarkdownContainer']",
                         has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
    expect(calls).to_have_count(3)
    table = main.locator("[data-testid='stTable']").last
    expect(table).to_contain_text(re.compile(r"(CC|MLO) only; [LR](CC|MLO) missing"))
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "study-2-b-results.png"))


def test_two_patients_files_wait_for_removal_or_confirmation(page, studies):
    """Two views of patient A and two of patient B: said in words without their ids,
    Predict disabled until "These files are one study" is ticked."""
    import pydicom
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    tags = {f: pydicom.dcmread(f, stop_before_pixels=True) for s in studies for f in s}
    side = {f: str(ds.ImageLaterality) for f, ds in tags.items()}
    mixed = ([f for f in studies[0] if side[f] == "R"]
             + [f for f in studies[1] if side[f] == "L"])  # four views, two patients
    ids = {str(tags[f].PatientID) for f in mixed}
    assert len(ids) == 2
    _upload(page, main, mixed)
    warning = main.get_by_text(re.compile(r"These files are not one study: their PatientID "
                                          r"names 2 different patients"))
    expect(warning).to_be_visible()
    predict = main.get_by_role("button", name="Predict")
    expect(predict).to_be_disabled()
    text = page.locator("body").inner_text()
    assert not any(i in text for i in ids)
    expect(main.get_by_text(re.compile(r"assigned twice"))).to_have_count(0)
    warning.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # the thumbnails load
    page.screenshot(path=str(ARTIFACTS / "study-3-two-patients.png"))
    main.get_by_text("Show identifiers").click()
    _settled(page, main)
    for i in ids:
        expect(warning).to_contain_text(i)
    main.get_by_text("Show identifiers").click()
    _settled(page, main)
    main.get_by_text("These files are one study", exact=True).click()
    _settled(page, main)
    expect(predict).to_be_enabled()


def test_no_file_name_on_the_page_while_identifiers_are_hidden(page, studies, tmp_path):
    """Files named after a (fake) patient: every message says "file N" or the view until
    Show identifiers is on."""
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    files = [_blank_png(tmp_path / "DOE_JOHN_123.png"),
             _copy(studies[0][0], tmp_path / "DOE_JOHN_456.dcm"),
             _another_image(studies[0][0], tmp_path / "DOE_JOHN_789.dcm"),  # one view twice
             _copy(studies[0][0], tmp_path / "DOE_JOHN_000.dcm")]  # one image twice
    _upload(page, main, files)
    expect(main.get_by_text(re.compile(r"file 1: choose its view"))).to_be_visible()
    expect(main.get_by_text(re.compile(r"is assigned twice \(file 2 and file 3\)"))
           ).to_be_visible()
    expect(main.get_by_text("A file is the same image as file 2 (same SOP Instance UID): it is "
                            "used once.")).to_be_visible()
    assert "DOE_JO" not in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "study-4a-names-hidden-top.png"))
    main.get_by_text(re.compile(r"file 1: choose its view")).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "study-4b-names-hidden-messages.png"))
    main.get_by_text("Show identifiers").click()
    _settled(page, main)
    expect(main.get_by_text(re.compile(r"DOE_JOHN_123\.png: choose its view"))).to_be_visible()
    assert "DOE_JOHN_456.dcm" in page.locator("body").inner_text()


def test_two_uploads_of_one_name_stay_two_views_with_their_own_results(page, studies, tmp_path):
    """Two different images both called IM-0001.dcm: two cards, two result panels and two
    export rows with their own view and probability (a view is its SOP Instance UID)."""
    import json

    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    files = [_copy(studies[0][0], tmp_path / "a" / "IM-0001.dcm"),
             _copy(studies[0][1], tmp_path / "b" / "IM-0001.dcm")]
    _upload(page, main, files)
    boxes = main.get_by_role("combobox", name=VIEW_BOX)
    expect(boxes).to_have_count(2)
    views = sorted(boxes.nth(i).input_value() for i in range(2))
    assert len(set(views)) == 2
    _predict(page, main)
    calls = main.locator("[data-testid='stMarkdownContainer']",
                         has_text=re.compile(r"ROI-aware: \d+(\.\d+)? %"))
    expect(calls).to_have_count(2)
    cards = {boxes.nth(i).input_value(): boxes.nth(i).get_attribute("aria-label") for i in range(2)}
    assert sorted(cards.values()) == ["View of file 1", "View of file 2"]
    for view, label in cards.items():  # each result under its own file's label
        panel = main.locator(f".st-key-result-{view}")
        expect(panel.get_by_text("ROI-aware:")).to_have_count(1)
        expect(panel.get_by_text(f"{view} · {label.removeprefix('View of ')}", exact=True)
               ).to_be_visible()
    with page.expect_download() as download:
        main.get_by_role("button", name="Download JSON").click()
    rows = json.loads(Path(download.value.path()).read_text())["views"]
    assert sorted(r["view"] for r in rows) == views
    assert rows[0]["p_malignant_roi_aware"] != rows[1]["p_malignant_roi_aware"]
    main.get_by_role("heading", name="Results").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "study-8-same-name.png"))


def test_a_view_set_by_hand_leaves_not_yet_placed_at_once(page, tmp_path):
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    _upload(page, main, [_blank_png(tmp_path / "scan.png")])
    expect(main.get_by_text("Not yet placed")).to_be_visible()
    main.get_by_role("combobox", name=VIEW_BOX).click()
    page.get_by_role("option", name="LMLO", exact=True).click()
    _settled(page, main)
    expect(main.get_by_text("Not yet placed")).to_have_count(0, timeout=10_000)
    expect(main.get_by_text("LMLO · not in this study")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "study-5-placed.png"))


def test_a_fresh_upload_is_not_out_of_date_and_removed_files_can_be_added_again(page, studies):
    """Exam A predicted, its files removed from the uploader, exam B added: nothing asks
    to "press Predict again"; B removed and chosen again: the study is whole again."""
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    _upload(page, main, studies[0])
    _predict(page, main)

    def remove_all() -> None:
        for _ in range(4):
            main.locator("[data-testid='stFileChipDeleteBtn'] button").first.click()
            _settled(page, main)
        expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(0)

    remove_all()
    _upload(page, main, studies[1])
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(4)
    expect(main.get_by_text("press Predict again")).to_have_count(0)
    remove_all()
    _upload(page, main, studies[1])  # the same selection again
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(4)
    expect(main.get_by_role("button", name="Predict")).to_be_enabled()
    page.screenshot(path=str(ARTIFACTS / "study-6-readded.png"))


def test_a_refused_mask_keeps_the_view_waiting(page, studies, tmp_path):
    from playwright.sync_api import expect

    main = open_upload(page, page.app_url)
    _upload(page, main, studies[0])
    main.get_by_text("Mask file", exact=True).first.click()
    _settled(page, main)
    wrong = tmp_path / "mask.png"
    cv2.imwrite(str(wrong), np.full((10, 10), 255, np.uint8))
    main.locator("[data-testid='stFileUploaderDropzoneInput']").nth(1).set_input_files(
        str(wrong))
    _settled(page, main)
    expect(main.get_by_role("button", name="Predict")).to_be_disabled()
    expect(main.get_by_text(re.compile(r"Mask for file \d refused"))).to_be_visible()
    expect(main.get_by_text(re.compile(r"no usable mask yet"))).to_be_visible()
    main.get_by_text(re.compile(r"Mask for file \d refused")).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "study-7a-refused-mask.png"))
    main.get_by_text(re.compile(r"no usable mask yet")).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "study-7b-predict-disabled.png"))


def test_home_says_what_the_three_models_are(page):
    from playwright.sync_api import expect

    page.goto(page.app_url)
    main = page.locator("[data-testid='stMain']")
    for words in ("The baseline has one classifier per view",
                  "The ROI-aware grid has two per view",
                  "The ROI finder is a separate model"):
        expect(main.get_by_text(re.compile(words))).to_be_visible()


def test_counts_of_one_read_in_the_singular(page, work):
    """A one-study dataset on the Data page: "1 patient · 1 study", not "1 patients"."""
    from playwright.sync_api import expect

    from core.phantom import write_phantom

    write_phantom(work / "data" / "phantom-one", profile="vindr", studies=1, size=128, seed=2)
    page.goto(f"{page.app_url}/data")
    main = page.locator("[data-testid='stMain']")
    expect(main.get_by_text(re.compile(r"\d+ images · 1 patient · 1 study$"))).to_be_visible()
    assert not re.search(r"\b1 (images|patients|studies|views)\b",
                         page.locator("body").inner_text())
