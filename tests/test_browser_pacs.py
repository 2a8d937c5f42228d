"""Case review's PACS source in headless Chromium against a real Orthanc on 127.0.0.1:
search, list (identifiers hidden), open a four-view study ready to predict; a repeated
view offered newest first; an unreachable PACS said in one line naming the URL.

Orthanc and the app server are started here and stopped at the end of the module.
Screenshots: ``tests/artifacts/pacs-list.png``, ``pacs-opened.png``, ``pacs-repeat.png``.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from test_pacs import BASIC_TEXT_SR, alive, port_free, write_instance
from test_reliability_inputs import write_run

from core.pacs import PacsClient, local_pacs, missing_orthanc, push_folder
from helpers import app_env, app_in_chromium, free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(missing_orthanc() is not None, reason=f"no local PACS: {missing_orthanc()}"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FOUR = ["RCC", "LCC", "RMLO", "LMLO"]
VIEW_BOX = re.compile(r"^View of ")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pacs-app")


@pytest.fixture(scope="module")
def exam(work) -> dict[str, Any]:
    """Two phantom studies with accession numbers; study A also holds an SR and a later
    repeat of its RCC (13:00 against 12:00, pixels flipped so it is another image)."""
    from core.phantom import write_phantom

    write_phantom(work / "phantom", "vindr", 2, size=128, seed=5)
    studies: dict[str, dict[str, Any]] = {}
    for path in sorted((work / "phantom").rglob("*.dicom")):
        ds = pydicom.dcmread(path)
        entry = studies.setdefault(ds.StudyInstanceUID, {"files": {}, "patient": str(ds.PatientName),
                                                         "patient_id": str(ds.PatientID)})
        entry["accession"] = ds.AccessionNumber = f"ACC-{len(studies)}"
        entry["files"][f"{ds.ImageLaterality}{ds.ViewPosition}"] = path
        ds.save_as(path)
    first = sorted(studies, key=lambda uid: studies[uid]["accession"])[0]
    extra = work / "phantom" / "extra"
    extra.mkdir()
    repeat = pydicom.dcmread(studies[first]["files"]["RCC"])
    repeat.PixelData = repeat.pixel_array[:, ::-1].copy().tobytes()
    repeat.SOPInstanceUID = repeat.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    repeat.SeriesInstanceUID, repeat.ContentTime, repeat.InstanceNumber = generate_uid(), "130000", 2
    repeat.save_as(extra / "repeat-rcc.dcm")
    write_instance(extra / "report.dcm", repeat, BASIC_TEXT_SR, "SR")
    return {"studies": studies, "first": first, "repeat": str(repeat.SOPInstanceUID),
            "second": next(uid for uid in studies if uid != first)}


@pytest.fixture(scope="module")
def pacs(exam, work) -> Iterator[str]:
    with local_pacs(free_port(), work / "orthanc") as server:
        report = push_folder(work / "phantom", PacsClient(server.url))
        assert (len(report.stored), report.refused) == (10, [])
        yield server.url
    assert not alive(server.process.pid) and port_free(server.port)


@pytest.fixture(scope="module")
def app(work, pacs) -> Iterator[tuple[Any, str]]:
    """The module's server; conftest's ``page`` opens a new session on it per test."""
    env, ck, _ = app_env(work)
    env.pop("MAMMOROUTE_DICOMWEB_URL", None)
    write_run(ck / "pacs-run")
    ARTIFACTS.mkdir(exist_ok=True)
    with app_in_chromium(env, work / "streamlit.log", 1400, 1800) as (page, url):
        yield page, url


def _settled(page, main) -> None:
    from playwright.sync_api import expect

    page.wait_for_timeout(500)
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)
    expect(main.get_by_text("Running...")).to_have_count(0)


def _search(page, url: str, accession: str = ""):
    page.goto(f"{page.app_url}/case_review")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("PACS", exact=True).click()
    _settled(page, main)
    main.get_by_role("textbox", name="DICOMweb URL").fill(url)
    main.get_by_role("textbox", name="Accession number").fill(accession)
    main.get_by_role("textbox", name="Accession number").press("Enter")
    _settled(page, main)
    main.get_by_role("button", name="Search").click()
    _settled(page, main)
    return main


def _open(page, main, accession: str) -> None:
    main.get_by_role("combobox", name="Study to open").click()
    page.get_by_role("option", name=re.compile(f"accession {accession}")).click()
    _settled(page, main)
    main.get_by_role("button", name="Open study").click()
    _settled(page, main)


def test_a_study_is_listed_without_identifiers_and_opened_in_its_hanging(page, pacs, exam):
    from playwright.sync_api import expect

    main = _search(page, pacs)
    table = main.locator("[data-testid='stTable']")
    expect(table).to_contain_text("ACC-1")
    expect(table).to_contain_text("ACC-2")
    body = page.locator("body").inner_text()
    for study in exam["studies"].values():  # hidden by default
        assert study["patient"] not in body and study["patient_id"] not in body
    assert not any(uid in body for uid in exam["studies"])
    expect(main.get_by_text(re.compile(r"2 studies in .*, newest first; patient names"))).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "pacs-list.png"))

    second = exam["studies"][exam["second"]]
    _open(page, main, second["accession"])
    boxes = main.get_by_role("combobox", name=VIEW_BOX)
    expect(boxes).to_have_count(4)
    assert sorted(boxes.nth(i).input_value() for i in range(4)) == sorted(FOUR)
    expect(main.get_by_text("View from DICOM tags")).to_have_count(4)
    for view in FOUR:  # each image in its place of the hanging
        expect(main.locator(f".st-key-card-{view}").get_by_role("combobox", name=VIEW_BOX)
               ).to_have_value(view)
    expect(main.get_by_text("More than one image for")).to_have_count(0)
    assert second["patient"] not in page.locator("body").inner_text()
    main.locator(".st-key-card-LMLO").scroll_into_view_if_needed()  # the whole hanging
    page.wait_for_timeout(1000)  # the thumbnails load
    page.screenshot(path=str(ARTIFACTS / "pacs-opened.png"))
    expect(main.get_by_role("button", name="Predict")).to_be_enabled()

    main.get_by_text("Show identifiers", exact=True).click()
    _settled(page, main)
    expect(main.locator("[data-testid='stTable']").first).to_contain_text(second["patient_id"])


def test_a_repeated_view_is_offered_newest_first_and_can_be_picked(page, pacs, exam):
    from playwright.sync_api import expect

    first = exam["studies"][exam["first"]]
    main = _search(page, pacs, first["accession"])
    expect(main.locator("[data-testid='stTable'] tbody tr")).to_have_count(1)
    _open(page, main, first["accession"])
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(4)
    expect(main.get_by_text("More than one image for RCC")).to_be_visible()
    expect(main.get_by_text(re.compile(r"Not hung: 1 object"))).to_be_visible()
    rcc_card = main.locator(".st-key-card-RCC")
    main.get_by_text("Show identifiers", exact=True).click()  # cards named by SOP Instance UID
    _settled(page, main)
    expect(rcc_card.get_by_role("combobox", name=f"View of instance {exam['repeat']}")).to_have_count(1)
    picker = main.get_by_role("combobox", name="RCC image")
    picker.click()
    options = page.get_by_role("option").all_inner_texts()
    assert [re.sub(r"\d{4}-\d\d-\d\d ", "", o.split(" · ")[1]) for o in options[:2]] == [
        "acquired 13:00:00", "acquired 12:00:00"], options
    assert options[0].endswith("(newest)") and options[-1] == "none"
    page.screenshot(path=str(ARTIFACTS / "pacs-repeat.png"))
    page.get_by_role("option", name=re.compile("12:00:00")).click()
    _settled(page, main)
    expect(main.get_by_role("combobox", name="RCC image")).to_have_value(re.compile("12:00:00"))
    older = pydicom.dcmread(first["files"]["RCC"], stop_before_pixels=True).SOPInstanceUID
    expect(rcc_card.get_by_role("combobox", name=f"View of instance {older}")).to_have_count(1)
    expect(main.get_by_role("combobox", name=VIEW_BOX)).to_have_count(4)
    expect(main.locator("[data-testid='stAlertContentError']")).to_have_count(0)


def test_an_unreachable_pacs_is_one_line_naming_the_url(page):
    from playwright.sync_api import expect

    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    start = time.monotonic()
    main = _search(page, dead)
    error = main.locator("[data-testid='stAlertContentError']")
    expect(error.locator("[data-testid='stMarkdownContainer']")).to_have_text(
        f"{dead}: searching studies: cannot connect (Connection refused)")
    assert time.monotonic() - start < 30
    expect(error).to_have_count(1)
    expect(main.locator("[data-testid='stTable']")).to_have_count(0)
