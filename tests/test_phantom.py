"""The synthetic phantom: real layouts, the paper's composition, determinism.

Composition is checked by reading the phantom's own files back with pandas
(plain counting); the dataset adapters have their own round-trip tests.
"""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from core.__main__ import main
from core.errors import MammoError
from core.phantom import (
    CDD_CM_DIR,
    CDD_DM_DIR,
    CDD_SEGMENTATIONS,
    CDD_SHEET,
    PROFILES,
    Lesion,
    difficulty_value,
    is_synthetic,
    render_view,
    write_phantom,
)

REPO = Path(__file__).resolve().parents[1]
TOL = 0.03  # the brief: within 3 percentage points at N >= 200 studies
PATHOLOGY = "Pathology Classification/ Follow up"


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def vindr200(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("vindr") / "vindr"
    return out, write_phantom(out, "vindr", 200, size=64, seed=3)


@pytest.fixture(scope="module")
def cdd200(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("cdd") / "cdd"
    return out, write_phantom(out, "cddcesm", 200, size=64, seed=4)


@pytest.fixture(scope="module")
def vindr_small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vsmall") / "v"
    write_phantom(out, "vindr", 6, size=160, seed=1, workers=1)
    return out


def _vindr_tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    breast = pd.read_csv(root / "breast-level_annotations.csv", dtype=str)
    finding = pd.read_csv(root / "finding_annotations.csv", dtype=str, keep_default_na=False)
    return breast, finding


def _vindr_images(root: Path) -> pd.DataFrame:
    """One row per labelled image: label from BI-RADS, ROI from finding boxes."""
    breast, finding = _vindr_tables(root)
    birads = breast["breast_birads"].str.extract(r"(\d)")[0].astype(int)
    lab = breast[birads >= 2].copy()
    lab["label"] = np.where(birads[birads >= 2] >= 4, "malignant", "benign")
    boxed = finding[finding["finding_categories"] != "['No Finding']"]["image_id"]
    lab["roi"] = lab["image_id"].isin(set(boxed))
    return lab


def test_vindr_composition_follows_tables_1_and_2(vindr200):
    root, summary = vindr200
    img = _vindr_images(root)
    mal, ben = img[img.label == "malignant"], img[img.label == "benign"]
    target = PROFILES["vindr"]
    assert abs(len(mal) / len(img) - 988 / 6594) <= TOL
    assert abs(mal.roi.mean() - 952 / 988) <= TOL
    assert abs(ben.roi.mean() - 816 / 5606) <= TOL
    assert abs((img.split == "test").mean() - 1318 / 6594) <= TOL
    for split in ("training", "test"):  # stratified: both splits keep the class balance
        part = img[img.split == split]
        assert abs((part.label == "malignant").mean() - target.malignant_fraction) <= TOL
    assert 0 < ((~mal.roi).sum()) and ben.roi.sum() > 0  # the tables' label noise exists
    counts = summary.by_roi
    assert counts["roi"]["malignant"] == mal.roi.sum() and counts["noroi"]["benign"] == (~ben.roi).sum()
    assert summary.by_split["test"]["malignant"] == ((img.split == "test") & (img.label == "malignant")).sum()


def test_vindr_structure(vindr200):
    root, summary = vindr200
    breast, finding = _vindr_tables(root)
    assert list(breast.columns) == ["study_id", "series_id", "image_id", "laterality", "view_position",
                                    "height", "width", "breast_birads", "breast_density", "split"]
    assert list(finding.columns) == ["study_id", "series_id", "image_id", "laterality", "view_position",
                                     "height", "width", "breast_birads", "breast_density",
                                     "finding_categories", "finding_birads", "xmin", "ymin", "xmax",
                                     "ymax", "split"]
    assert len(breast) == 800 and breast.image_id.is_unique
    assert breast.groupby("study_id").size().eq(4).all()
    assert breast.groupby("study_id").split.nunique().eq(1).all()
    assert breast.groupby(["study_id", "laterality"]).breast_birads.nunique().eq(1).all()
    assert set(breast.breast_birads) == {f"BI-RADS {k}" for k in range(1, 6)}
    assert set(breast.split) == {"training", "test"}
    assert breast.breast_density.str.fullmatch(r"DENSITY [ABCD]").all()
    assert (breast.height.astype(int) > breast.width.astype(int)).all()  # portrait
    assert summary.excluded == (breast.breast_birads == "BI-RADS 1").sum() > 0
    for rel in breast.study_id + "/" + breast.image_id + ".dicom":
        assert (root / "images" / rel).is_file()
    cats = finding.finding_categories.map(ast.literal_eval)
    assert cats.map(lambda c: isinstance(c, list) and len(c) >= 1).all()
    assert {"Mass", "Suspicious Calcification", "No Finding"} <= {c for cs in cats for c in cs}
    none = finding[finding.finding_categories == "['No Finding']"]
    assert (none[["xmin", "ymin", "xmax", "ymax"]] == "").all().all()
    boxed = finding[finding.finding_categories != "['No Finding']"]
    assert (boxed.finding_birads == "").any() and (boxed.finding_birads != "").any()


def test_vindr_boxes_lie_on_or_just_off_the_image(vindr200):
    _, finding = _vindr_tables(vindr200[0])
    boxed = finding[finding.finding_categories != "['No Finding']"]
    x0, y0, x1, y1 = (boxed[c].astype(float) for c in ("xmin", "ymin", "xmax", "ymax"))
    w, h = boxed.width.astype(float), boxed.height.astype(float)
    assert ((x0 < x1) & (y0 < y1)).all()
    assert ((x0 > -0.1 * w) & (y0 > -0.1 * h) & (x1 < 1.1 * w) & (y1 < 1.1 * h)).all()
    assert ((x0 < 0) | (x1 > w)).any()  # a few real boxes run slightly off the image


def test_dicoms_are_realistic_and_readable(vindr_small):
    breast, _ = _vindr_tables(vindr_small)
    photometric = set()
    for row in breast.itertuples():
        ds = pydicom.dcmread(vindr_small / "images" / row.study_id / f"{row.image_id}.dicom")
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.Modality == "MG" and str(ds.PatientName).startswith("PHANTOM^")
        assert "synthetic" in ds.InstitutionName.lower()
        assert ds.ImageLaterality == row.laterality and ds.ViewPosition == row.view_position
        assert ds.BitsStored in (12, 14, 16) and ds.HighBit == ds.BitsStored - 1
        assert "WindowCenter" in ds and "WindowWidth" in ds
        pixels = ds.pixel_array
        assert pixels.shape == (int(row.height), int(row.width))
        assert pixels.max() <= (1 << ds.BitsStored) - 1
        photometric.add(ds.PhotometricInterpretation)
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


def test_cdd_composition_follows_tables_3_and_4(cdd200):
    root, summary = cdd200
    sheet = pd.read_excel(root / CDD_SHEET, sheet_name="all")
    seg = pd.read_csv(root / CDD_SEGMENTATIONS)
    sheet["stem"] = sheet.Image_name.str.strip()
    dm = sheet[(sheet.Type == "DM") & sheet[PATHOLOGY].isin(["Benign", "Malignant"])].copy()
    drawn = set(seg["#filename"].str.replace(r"\s*\.jpg$", "", regex=True))
    dm["roi"] = dm.stem.isin(drawn)
    mal, ben = dm[dm[PATHOLOGY] == "Malignant"], dm[dm[PATHOLOGY] == "Benign"]
    assert abs(len(mal) / len(dm) - 0.5) <= TOL
    assert abs(mal.roi.mean() - 326 / 331) <= TOL and abs(ben.roi.mean() - 322 / 331) <= TOL
    assert (sheet[PATHOLOGY] == "Normal").any()
    assert summary.by_roi["roi"]["benign"] == ben.roi.sum()


def test_cdd_structure(cdd200):
    root, _ = cdd200
    sheet = pd.read_excel(root / CDD_SHEET, sheet_name="all")
    assert list(sheet.columns) == ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)",
                                   "BIRADS", "Findings", "View", "Tags", "Machine", PATHOLOGY]
    assert set(sheet.Type) == {"DM", "CESM"} and len(sheet) == 200 * 8
    assert (sheet.Image_name != sheet.Image_name.str.strip()).any()  # trailing spaces, as in the real sheet
    assert sheet.BIRADS.astype(str).str.contains(r"\$").any()
    for name, typ in zip(sheet.Image_name.str.strip(), sheet.Type):
        folder = CDD_DM_DIR if typ == "DM" else CDD_CM_DIR
        assert ("_DM_" in name) == (typ == "DM")
        assert (root / folder / f"{name}.jpg").is_file()
    seg = pd.read_csv(root / CDD_SEGMENTATIONS)
    assert list(seg.columns) == ["#filename", "file_size", "file_attributes", "region_count", "region_id",
                                 "region_shape_attributes", "region_attributes"]
    assert seg["#filename"].str.endswith(" .jpg").any()
    names = set()
    for row in seg.itertuples():
        shape = json.loads(row.region_shape_attributes)
        names.add(shape["name"])
        if shape["name"] == "polygon":
            assert len(shape["all_points_x"]) == len(shape["all_points_y"]) >= 3
        else:
            assert {"cx", "cy"} <= shape.keys()
        stem = row._1.replace(" .jpg", ".jpg")
        folder = CDD_DM_DIR if "_DM_" in stem else CDD_CM_DIR
        assert (root / folder / stem).stat().st_size == row.file_size
        assert json.loads(row.file_attributes) == {} and json.loads(row.region_attributes) == {}
    assert {"polygon", "ellipse", "circle"} <= names


def test_same_seed_same_bytes(tmp_path):
    for profile in ("vindr", "cddcesm"):
        a, b = tmp_path / f"{profile}-a", tmp_path / f"{profile}-b"
        write_phantom(a, profile, 3, size=96, seed=7, workers=1)
        write_phantom(b, profile, 3, size=96, seed=7, workers=2)  # the pool changes nothing
        assert _hashes(a) == _hashes(b)
    c = tmp_path / "other-seed"
    write_phantom(c, "vindr", 3, size=96, seed=8, workers=1)
    assert _hashes(c) != _hashes(tmp_path / "vindr-a")


def test_rewrite_replaces_an_earlier_phantom_but_never_other_data(tmp_path):
    out = tmp_path / "ph"
    write_phantom(out, "vindr", 2, size=64, workers=1)
    write_phantom(out, "cddcesm", 1, size=64, workers=1)
    assert not (out / "images").exists() and (out / CDD_SHEET).is_file()
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("patient data")
    with pytest.raises(MammoError, match="not empty"):
        write_phantom(foreign, "vindr", 1, size=64)
    assert (foreign / "keep.txt").read_text() == "patient data"


def test_a_dataset_is_synthetic_by_its_marker_not_its_name(tmp_path):
    written = tmp_path / "any-name"
    write_phantom(written, "vindr", 1, size=64, workers=1)
    assert is_synthetic(written) and is_synthetic(str(written))
    assert is_synthetic(written / "finding_annotations.csv")  # a file of the phantom
    assert is_synthetic(written / "images")  # a layout's sub-folder: the marker one level up
    named = tmp_path / "phantom-real"
    named.mkdir()
    (named / "manifest.csv").write_text("image_path\n")
    assert not is_synthetic(named) and not is_synthetic(named / "manifest.csv")
    (named / ".phantom").touch()  # the marker for synthetic sets written by other tools
    assert is_synthetic(named) and is_synthetic(named / "manifest.csv")
    assert not is_synthetic(tmp_path) and not is_synthetic(None)


def test_render_view_orientation_and_lesion():
    for view in ("LCC", "RMLO"):
        lesion = Lesion("malignant_mass", 0.5, 0.0, 1.0, shape_seed=5)
        img, drawn = render_view(np.random.default_rng(0), view, "B", [lesion], size=256, difficulty="obvious")
        assert img.dtype == np.float32 and img.shape[0] == 256 and img.shape[1] < 256
        assert img.min() == 0.0 and 0 < img.max() <= 1.0
        chest_left = img[:, :10].mean() > img[:, -10:].mean()
        assert chest_left == view.startswith("L")  # left breasts face right, right breasts face left
        (item,) = drawn
        x0, y0, x1, y1 = item["box"]
        inside = img[int(y0):int(y1), int(x0):int(x1)]
        assert inside.mean() > img[img > 0].mean()  # the mass is denser than the breast around it
        assert item["shape"]["type"] == "polygon" and item["category"] == "Mass"


def test_easy_exaggerates_malignant_findings_only():
    def signal(kind: str, difficulty: str) -> float:  # what the lesion adds to the same breast
        plain, _ = render_view(np.random.default_rng(0), "LCC", "B", [], size=256, difficulty=difficulty)
        img, _ = render_view(np.random.default_rng(0), "LCC", "B", [Lesion(kind, 0.5, 0.0, 1.0, shape_seed=5)],
                             size=256, difficulty=difficulty)
        return float((img - plain).sum())

    assert difficulty_value("easy") == 0.0 < difficulty_value("obvious")
    for kind in ("malignant_mass", "calcifications"):
        assert signal(kind, "easy") > 3 * signal(kind, "obvious") > 0
    for kind in ("benign_mass", "benign_calcifications"):
        assert 0 < signal(kind, "easy") < 1.5 * signal(kind, "obvious")


def test_difficulty_words_and_numbers():
    assert difficulty_value("obvious") < difficulty_value("moderate") < difficulty_value("subtle")
    assert difficulty_value(0.3) == 0.3 and difficulty_value("0.7") == 0.7
    for bad in ("hard", 1.5, -0.1):
        with pytest.raises(MammoError):
            difficulty_value(bad)


def test_cli_writes_and_summarises(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, "-m", "core", "phantom", "--profile", "cddcesm", "--studies", "2",
                          "--size", "96", "--seed", "1", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "synthetic phantom (cddcesm)" in run.stdout and "roi=" in run.stdout
    assert (out / CDD_SHEET).is_file() and (out / "phantom.json").is_file()


def test_cli_reports_bad_arguments_in_one_line(tmp_path, capsys):
    code = main(["phantom", "--studies", "1", "--difficulty", "hard", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "difficulty" in err
    assert not (tmp_path / "bad").exists()


def test_pool_is_sized_from_the_cores_this_process_may_use(monkeypatch):
    from core.phantom import pool

    def no_pool(*_args, **_kw):
        raise AssertionError("a process pool on a one-core affinity")

    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _pid: {0})
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(pool, "ProcessPoolExecutor", no_pool)
    tasks = [{"i": i} for i in range(48)]
    assert pool.run_tasks(lambda t: {"j": t["i"] * 2}, tasks, None) == [
        {"j": 2 * i} for i in range(48)]
