"""Privacy: server settings, and no patient identifier left anywhere after a case review.

A four-view DICOM study carrying PatientName ``DOE^JANE`` and PatientID
``ID-SECRET-42`` (one file also named after the ID) is uploaded to the
case-review page (AppTest) and predicted with Grad-CAM.  Afterwards neither
string may appear in any file under the checkpoints, cache or temporary
folders the app used, nor in the CSV / JSON downloads; and no upload is left
on disk.
"""
from __future__ import annotations

import io
import re
import tempfile
import tomllib
from pathlib import Path

from pypdf import PdfReader
from test_reliability_inputs import dicom_bytes, write_run

from helpers import case_review_upload

REPO = Path(__file__).resolve().parent.parent
SECRETS = (b"DOE^JANE", b"DOE", b"JANE", b"ID-SECRET-42")


def test_streamlit_config_limits_uploads_and_checks_xsrf():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert 1 <= server["maxUploadSize"] <= 500  # MB, refused by Streamlit before our code
    assert server["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False


def _hits(folder: Path) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s.decode()}" for s in SECRETS if s in data]
    return found


def test_identifiers_never_reach_disk_or_downloads(tmp_path, monkeypatch):
    from streamlit.delta_generator import DeltaGenerator

    ck, cache, tmp = tmp_path / "checkpoints", tmp_path / "cache", tmp_path / "tmp"
    for d in (ck, cache, tmp):
        d.mkdir()
    write_run(ck / "tiny-run")
    before = {p: p.stat().st_mtime for p in ck.rglob("*")}
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(ck))
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(cache))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    downloads: list[bytes] = []
    real_download = DeltaGenerator.download_button

    def recording_download(self, label, data, *args, **kwargs):
        made = data() if callable(data) else data  # the PDF, made here as a click makes it
        downloads.append(made.encode() if isinstance(made, str) else bytes(made))
        return real_download(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording_download)
    ident = dict(PatientName="DOE^JANE", PatientID="ID-SECRET-42", PatientBirthDate="19600101",
                 AccessionNumber="ID-SECRET-42", InstitutionName="DOE JANE clinic")
    files = [(f"ID-SECRET-42_{v}.dcm" if v == "RCC" else f"study_{v}.dcm",
              dicom_bytes(laterality=v[0], position=v[1:], **ident), "application/dicom")
             for v in ("RCC", "LCC", "RMLO", "LMLO")]
    assert all(b"ID-SECRET-42" in f[1] and b"DOE^JANE" in f[1] for f in files)

    at = case_review_upload("tiny-run", files)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(str(m.value) for m in list(at.markdown) + list(at.caption))
    assert len(re.findall(r"^ROI-aware: (?:\*\*|:)", shown, re.M)) == 4  # one call line per read view
    assert len(at.image) == 4 + 4 + 1  # the hanging, the results, the Grad-CAM scale
    assert "SECRET" not in shown and "DOE" not in shown  # identifiers hidden on screen
    assert len(downloads) == 3 and downloads[2].startswith(b"%PDF")  # CSV, JSON, PDF
    downloads[2] = "\n".join(page.extract_text() for page in
                             PdfReader(io.BytesIO(downloads[2])).pages).encode()
    for data in downloads:
        assert not [s for s in SECRETS if s in data], data[:300]
        assert b"study_" not in data  # no file names either

    assert _hits(ck) == [] and _hits(cache) == [] and _hits(tmp) == []
    assert not list(tmp.rglob("mammoroute-*")), list(tmp.rglob("*"))  # uploads not left on disk
    changed = [p for p in ck.rglob("*") if before.get(p) != p.stat().st_mtime]
    assert not [p for p in changed if p.is_file()], changed  # review writes no run files
