"""Case review's PDF report and "Store results in the PACS" buttons in headless Chromium.

A phantom study (SYNTHETIC PHANTOM DATA, 64 px DICOM) is in a real Orthanc on
127.0.0.1 and uploaded as files; ``MAMMOROUTE_DICOMWEB_URL`` points the app at
that Orthanc.  After Predict, "Store" must add an SR and a Secondary Capture
series to the study, and the PDF the page hands out must hold the
probabilities and calls the page shows.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pypdf import PdfReader
from test_predict import make_run

from core.pacs import PacsClient, local_pacs, missing_orthanc, push_folder
from core.phantom import SYNTHETIC_TEXT, write_phantom
from helpers import app_env, app_in_chromium, free_port, upload_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(missing_orthanc() is not None, reason=f"no local PACS: {missing_orthanc()}"),
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CALL = re.compile(r"ROI-aware: (\d+(?:\.\d+)? %) → (malignant|benign)")


def _modalities(url: str, study: str) -> list[str]:
    from dicomweb_client import DICOMwebClient

    return sorted(pydicom.Dataset.from_json(s).Modality
                  for s in DICOMwebClient(url).search_for_series(study))


def test_store_results_and_download_the_pdf_report(tmp_path):
    from playwright.sync_api import expect

    write_phantom(tmp_path / "phantom", "vindr", 1, size=64, seed=6, workers=1)
    files = sorted((tmp_path / "phantom" / "images").rglob("*.dicom"))
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    with local_pacs(free_port(), tmp_path / "orthanc") as pacs:
        assert len(push_folder(tmp_path / "phantom", PacsClient(pacs.url)).stored) == 4
        env, ck, _ = app_env(tmp_path, MAMMOROUTE_DICOMWEB_URL=pacs.url)
        run = make_run(ck / "pacs-run")
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**info, "status": "complete"}))
        with app_in_chromium(env, tmp_path / "streamlit.log", 1400, 1800) as (page, url):
            main = upload_study(page, url, files)
            main.get_by_role("button", name="Predict").click()
            calls = main.locator("[data-testid='stMarkdownContainer']", has_text=CALL)
            expect(calls).to_have_count(4)
            shown = sorted(CALL.search(calls.nth(i).inner_text()).groups() for i in range(4))
            # store: an SR and a Secondary Capture series join the study (no ROI: no SEG)
            assert _modalities(pacs.url, study) == ["MG"] * 4
            main.get_by_role("button", name="Store results in the PACS").click()
            expect(main.get_by_text(re.compile(r"stored SR: 1 instance"))).to_be_visible()
            expect(main.get_by_text(re.compile(r"stored SC: 4 instances"))).to_be_visible()
            assert _modalities(pacs.url, study) == ["MG"] * 4 + ["OT", "SR"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-stored.png"), full_page=True)
            # the PDF holds what the page shows
            with page.expect_download() as download:
                main.get_by_role("button", name="Download PDF report").click()
            saved = download.value
            assert re.fullmatch(r"mammoroute-upload-\d{4}-\d{2}-\d{2}\.pdf",
                                saved.suggested_filename)
            text = "\n".join(p.extract_text() for p in PdfReader(saved.path()).pages)
            rows = [line for line in text.splitlines()
                    if line.split(" ")[0] in ("RCC", "LCC", "RMLO", "LMLO")]
            in_pdf = [re.search(r"roi-\w+ (\d+(?:\.\d+)? %) \S+ % (malignant|benign)", row)
                      for row in rows]  # the ROI-aware model's columns come first
            assert sorted(m.groups() for m in in_pdf if m) == shown and len(in_pdf) == 4
            assert not any(f.name in text for f in files)
            assert SYNTHETIC_TEXT in re.sub(r"\s+", " ", text)  # phantom DICOMs, uploaded
            if shutil.which("pdftoppm"):  # the app's report, page 1, to be looked at
                subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1",
                                "-singlefile", saved.path(), str(ARTIFACTS / "review-report-page1")],
                               check=True, timeout=60)
