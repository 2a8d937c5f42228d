"""Dataset adapters, splits and composition, on hand-built fixtures in the real layouts."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core.__main__ import main as cli_main
from core.datasets import detect_layout, load_dataset
from core.datasets.cddcesm import image_size
from core.datasets.describe import describe, render_text, tables
from core.datasets.roi import render_shapes, row_mask
from core.datasets.split import grouped_folds, grouped_split
from core.errors import ManifestError

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- VinDr fixture

VINDR_IMAGES = [  # image_id, study_id, laterality, view, breast_birads, split
    ("i1", "s1", "R", "CC", "BI-RADS 4", "training"),
    ("i2", "s1", "L", "CC", "BI-RADS 1", "training"),
    ("i3", "s1", "R", "MLO", "BI-RADS 2", "training"),
    ("i4", "s1", "L", "MLO", "BI-RADS 3", "training"),
    ("i5", "s2", "L", "CC", "BI-RADS 5", "test"),
    ("i6", "s2", "R", "CC", "BI-RADS 2", "test"),
    ("i7", "s2", "L", "MLO", "BI-RADS 4", "test"),
    ("i8", "s2", "R", "MLO", "BI-RADS 1", "test"),
]
VINDR_FINDINGS = [  # image_id, finding_categories, finding_birads, box
    ("i1", "['Mass']", "BI-RADS 4", ("10.0", "20.0", "50.0", "60.0")),
    ("i1", "['Nipple Retraction', 'Mass']", "", ("-5.5", "30.0", "40.0", "90.0")),
    ("i2", "['No Finding']", "", ("", "", "", "")),
    ("i3", "['No Finding']", "", ("", "", "", "")),
    ("i4", "['Architectural Distortion']", "", ("50.0", "50.0", "80.0", "80.0")),
    ("i5", "['Suspicious Calcification']", "BI-RADS 5", ("60.0", "150.0", "120.0", "230.0")),
    ("i6", "['No Finding']", "", ("", "", "", "")),
    ("i7", "['Mass']", "BI-RADS 4", ("", "", "", "")),  # a finding without a box
    ("i8", "['No Finding']", "", ("", "", "", "")),
]
VINDR_H, VINDR_W = 200, 100
VINDR_SUMMARY = {
    "images": 6,
    "split": {"train": {"benign": 2, "malignant": 1}, "test": {"benign": 1, "malignant": 2}},
    "roi": {"with": {"benign": 1, "malignant": 2}, "without": {"benign": 2, "malignant": 1}},
    "views": {"RCC": 2, "LCC": 1, "RMLO": 1, "LMLO": 2},
}


def _image_row(image_id, study, lat, view, birads, split):
    return {"study_id": study, "series_id": f"se-{study}", "image_id": image_id,
            "laterality": lat, "view_position": view, "height": VINDR_H, "width": VINDR_W,
            "breast_birads": birads, "breast_density": "DENSITY C", "split": split}


def make_vindr(root: Path) -> Path:
    """A VinDr-Mammo folder: both CSVs, placeholder .dicom files (the adapter does not decode)."""
    root.mkdir(parents=True, exist_ok=True)
    images = {r[0]: _image_row(*r) for r in VINDR_IMAGES}
    breast = pd.DataFrame(list(images.values()))
    breast.to_csv(root / "breast-level_annotations.csv", index=False)
    rows = []
    for image_id, cats, fbirads, (x0, y0, x1, y1) in VINDR_FINDINGS:
        base = {k: v for k, v in images[image_id].items() if k != "split"}
        rows.append({**base, "finding_categories": cats, "finding_birads": fbirads,
                     "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1,
                     "split": images[image_id]["split"]})
    pd.DataFrame(rows).to_csv(root / "finding_annotations.csv", index=False)
    for image_id, study, *_ in VINDR_IMAGES:
        (root / "images" / study).mkdir(parents=True, exist_ok=True)
        (root / "images" / study / f"{image_id}.dicom").write_bytes(b"DICM placeholder")
    return root


@pytest.fixture
def vindr(tmp_path: Path) -> Path:
    return make_vindr(tmp_path / "vindr")


# ---------------------------------------------------------------- CDD-CESM fixture

PATHOLOGY = "Pathology Classification/ Follow up"
CDD_SHEET = [  # Image_name, Patient_ID, Side, Type, BIRADS, View, pathology
    ("P1_L_DM_CC ", 1, "L", "DM", 2, "CC", "Benign"),
    ("P1_L_DM_MLO", 1, "L", "DM", 2, "MLO", "Benign"),
    ("P1_R_DM_CC", 1, "R", "DM", 1, "CC", "Normal"),
    ("P1_L_CM_CC", 1, "L", "CESM", 2, "CC", "Benign"),
    ("P2_R_DM_CC", 2, "R", "DM", "4$2", "CC", "Malignant"),
    ("P2_R_DM_MLO  ", 2, "R", "DM", "4$2", "MLO", "Malignant"),
    ("P2_R_CM_CC", 2, "R", "CESM", 4, "CC", "Malignant"),
    ("P3_L_DM_CC", 3, "L", "DM", 5, "CC", "Malignant"),
    ("P3_L_DM_MLO", 3, "L", "DM", 1, "MLO", "Normal"),
    ("P4_R_DM_MLO", 4, "R", "DM", 3, "MLO", "Benign"),
    ("P5_L_DM_CC", 5, "L", "DM", 3, "", "Benign"),  # blank View: taken from the file name
    ("P6_R_DM_CC", 6, "R", "DM", 5, "CC", "Malignant"),
]
CDD_W, CDD_H = 64, 96
POLY = {"name": "polygon", "all_points_x": [10, 30, 30, 10], "all_points_y": [10, 10, 40, 40]}
CDD_REGIONS = [  # #filename as VIA wrote it, region JSON
    ("P1_L_DM_CC .jpg", POLY),
    ("P1_L_DM_CC .jpg", {"name": "circle", "cx": 50, "cy": 70, "r": 6}),
    ("P1_L_DM_MLO.jpg", {}),
    ("P2_R_DM_CC.jpg", {"name": "polygon", "all_points_x": [5, 40, 20],
                        "all_points_y": [5, 5, 50]}),
    ("P2_R_DM_MLO.jpg", {"name": "circle", "cx": 20, "cy": 30, "r": 8}),
    ("P4_R_DM_MLO.jpg", {"name": "ellipse", "cx": 30, "cy": 40, "rx": 12, "ry": 6,
                         "theta": 0.5}),
    ("P5_L_DM_CC.jpg", {"name": "point", "cx": 20, "cy": 20}),
    ("P6_R_DM_CC.jpg", {"name": "polyline", "all_points_x": [1, 60, 60],
                        "all_points_y": [1, 1, 90]}),
    ("P1_L_CM_CC.jpg", {"name": "circle", "cx": 10, "cy": 10, "r": 3}),
]
CDD_SUMMARY = {
    "images": 8,
    "roi": {"with": {"benign": 3, "malignant": 3}, "without": {"benign": 1, "malignant": 1}},
    "views": {"RCC": 2, "LCC": 3, "RMLO": 2, "LMLO": 1},
}


def write_sheet(path: Path, rows: list[tuple], pathology: str = PATHOLOGY) -> None:
    df = pd.DataFrame(rows, columns=["Image_name", "Patient_ID", "Side", "Type", "BIRADS",
                                     "View", pathology])
    df.insert(4, "Age", 50)
    df.insert(5, "Breast density (ACR)", "B")
    df["Findings"] = "mass"
    with pd.ExcelWriter(path, engine="openpyxl") as book:
        df.head(2).to_excel(book, sheet_name="DM", index=False)
        df.to_excel(book, sheet_name="all", index=False)


def write_via(path: Path, regions: list[tuple[str, dict]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["#filename", "file_size", "file_attributes", "region_count",
                      "region_id", "region_shape_attributes", "region_attributes"])
        for i, (name, shape) in enumerate(regions):
            out.writerow([name, 1234, "{}", 1 if shape else 0, i, json.dumps(shape), "{}"])


def make_cdd(root: Path, sheet_name: str = "Radiology manual annotations.xlsx",
             rows: list[tuple] = CDD_SHEET, pathology: str = PATHOLOGY) -> Path:
    """A CDD-CESM download: workbook, VIA CSV and small real JPEGs, inside a sub-folder."""
    base = root / "CDD-CESM"
    for folder in ("Low energy images of CDD-CESM", "Subtracted images of CDD-CESM"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    write_sheet(base / sheet_name, rows, pathology)
    write_via(base / "Radiology_hand_drawn_segmentations_v2.csv", CDD_REGIONS)
    rng = np.random.default_rng(0)
    for name, *_ in rows:
        name = name.strip()
        folder = "Subtracted images of CDD-CESM" if "_CM_" in name else "Low energy images of CDD-CESM"
        img = rng.integers(0, 255, (CDD_H, CDD_W), dtype=np.uint8)
        assert cv2.imwrite(str(base / folder / f"{name}.jpg"), img)
    return root


@pytest.fixture
def cdd(tmp_path: Path) -> Path:
    return make_cdd(tmp_path / "cdd")


# ---------------------------------------------------------------- VinDr

def test_vindr_manifest_labels_roi_and_exclusions(vindr: Path) -> None:
    df = load_dataset(vindr).set_index("image_id")
    assert sorted(df.index) == ["i1", "i3", "i4", "i5", "i6", "i7"]  # BI-RADS 1 dropped
    assert df["label"].to_dict() == {"i1": "malignant", "i3": "benign", "i4": "benign",
                                     "i5": "malignant", "i6": "benign", "i7": "malignant"}
    assert df["roi"].to_dict() == {"i1": True, "i3": False, "i4": True,
                                   "i5": True, "i6": False, "i7": False}
    assert df["split"].to_dict() == {"i1": "train", "i3": "train", "i4": "train",
                                     "i5": "test", "i6": "test", "i7": "test"}
    assert (df["patient_id"] == df["study_id"]).all()
    assert df.loc["i4", "view_name"] == "LMLO"
    assert df.loc["i1", "breast_density"] == "DENSITY C"
    assert df.loc["i1", "breast_birads"] == "BI-RADS 4"
    assert df.loc["i1", "findings"] == "Mass; Nipple Retraction"
    assert df.loc["i1", "image_path"] == str(vindr / "images" / "s1" / "i1.dicom")
    assert (df["mask_path"] == "").all()
    assert describe(df.reset_index()) == VINDR_SUMMARY


def test_vindr_roi_is_clipped_union_rendered_at_two_sizes(vindr: Path) -> None:
    df = load_dataset(vindr).set_index("image_id")
    spec = json.loads(df.loc["i1", "roi_shapes"])
    assert (spec["width"], spec["height"]) == (VINDR_W, VINDR_H)
    assert min(s["xmin"] for s in spec["shapes"]) == 0.0  # -5.5 clipped
    full = np.zeros((VINDR_H, VINDR_W), np.uint8)
    full[20:60, 10:50] = 1
    full[30:90, 0:40] = 1
    np.testing.assert_array_equal(render_shapes(spec, (VINDR_H, VINDR_W)), full)
    half = np.zeros((100, 50), np.uint8)
    half[10:30, 5:25] = 1
    half[15:45, 0:20] = 1
    np.testing.assert_array_equal(row_mask(df.loc["i1"].to_dict(), (100, 50)), half)
    assert row_mask(df.loc["i3"].to_dict(), (100, 50)) is None


def test_vindr_reads_findings_csv_alone(vindr: Path) -> None:
    (vindr / "breast-level_annotations.csv").unlink()
    df = load_dataset(vindr)
    assert describe(df) == VINDR_SUMMARY


def test_vindr_missing_images_listed_together(vindr: Path) -> None:
    (vindr / "images" / "s1" / "i1.dicom").unlink()
    (vindr / "images" / "s2" / "i7.dicom").unlink()
    with pytest.raises(ManifestError) as err:
        load_dataset(vindr)
    text = str(err.value)
    assert "2 listed file(s) missing" in text and "i1.dicom" in text and "i7.dicom" in text
    assert str(vindr) in text


def _rewrite(path: Path, change) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(df)
    df.to_csv(path, index=False)


@pytest.mark.parametrize("csv_name, change, words", [
    ("breast-level_annotations.csv", lambda d: d.drop(columns=["breast_birads", "width"],
                                                      inplace=True),
     "missing columns: width, breast_birads"),
    ("breast-level_annotations.csv", lambda d: d.loc.__setitem__((0, "breast_birads"), "BI-RADS 7"),
     "unknown breast_birads"),
    ("breast-level_annotations.csv", lambda d: d.loc.__setitem__((0, "split"), "validation"),
     "unknown split"),
    ("breast-level_annotations.csv", lambda d: d.loc.__setitem__((0, "view_position"), "XCCL"),
     "unknown view"),
    ("finding_annotations.csv", lambda d: d.loc.__setitem__((0, "finding_categories"), "Mass"),
     "finding_categories on row 2"),
    ("finding_annotations.csv", lambda d: d.loc.__setitem__((0, "xmin"), "abc"),
     "box on row 2"),
])
def test_vindr_bad_tables(vindr: Path, csv_name: str, change, words: str) -> None:
    _rewrite(vindr / csv_name, change)
    with pytest.raises(ManifestError) as err:
        load_dataset(vindr)
    assert words in str(err.value)
    assert str(vindr / csv_name) in str(err.value)


def test_vindr_non_utf8_csv(vindr: Path) -> None:
    path = vindr / "breast-level_annotations.csv"
    path.write_bytes(path.read_bytes().replace(b"DENSITY C", b"DENSIT\xe9 C"))
    with pytest.raises(ManifestError, match="not UTF-8") as err:
        load_dataset(vindr)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- CDD-CESM

def test_cdd_manifest_labels_roi_views(cdd: Path) -> None:
    df = load_dataset(cdd).set_index("image_name")
    assert sorted(df.index) == sorted(["P1_L_DM_CC", "P1_L_DM_MLO", "P2_R_DM_CC", "P2_R_DM_MLO",
                                       "P3_L_DM_CC", "P4_R_DM_MLO", "P5_L_DM_CC", "P6_R_DM_CC"])
    assert df.loc["P2_R_DM_CC", "label"] == "malignant"
    assert df.loc["P1_L_DM_CC", "label"] == "benign"
    assert df.loc["P2_R_DM_CC", "birads"] == "4$2"
    assert df["roi"].to_dict() == {
        "P1_L_DM_CC": True, "P1_L_DM_MLO": False, "P2_R_DM_CC": True, "P2_R_DM_MLO": True,
        "P3_L_DM_CC": False, "P4_R_DM_MLO": True, "P5_L_DM_CC": True, "P6_R_DM_CC": True}
    assert df.loc["P5_L_DM_CC", "view_name"] == "LCC"  # blank View cell → file name
    assert df.loc["P2_R_DM_MLO", "patient_id"] == "2"
    assert df.loc["P1_L_DM_CC", "image_path"].endswith("Low energy images of CDD-CESM/P1_L_DM_CC.jpg")
    summary = describe(df.reset_index())
    assert {k: summary[k] for k in CDD_SUMMARY} == CDD_SUMMARY


def test_cdd_union_of_regions_at_two_sizes(cdd: Path) -> None:
    row = load_dataset(cdd).set_index("image_name").loc["P1_L_DM_CC"].to_dict()
    spec = json.loads(row["roi_shapes"])
    assert (spec["width"], spec["height"]) == (CDD_W, CDD_H)
    assert [s["type"] for s in spec["shapes"]] == ["polygon", "circle"]
    full = row_mask(row, (CDD_H, CDD_W))
    assert full.shape == (CDD_H, CDD_W)
    assert full[25, 20] == 1 and full[70, 50] == 1 and full[5, 5] == 0 and full[70, 20] == 0
    assert 21 * 31 <= full.sum() <= 21 * 31 + 4 * 7 * 7
    half = row_mask(row, (CDD_H // 2, CDD_W // 2))
    assert half[12, 10] == 1 and half[35, 25] == 1 and half[2, 2] == 0


def test_cdd_shape_types(cdd: Path) -> None:
    df = load_dataset(cdd).set_index("image_name")
    kinds = {k: [s["type"] for s in json.loads(v)["shapes"]]
             for k, v in df["roi_shapes"].items() if v}
    assert kinds["P4_R_DM_MLO"] == ["ellipse"] and kinds["P5_L_DM_CC"] == ["point"]
    assert kinds["P6_R_DM_CC"] == ["polygon"] and kinds["P2_R_DM_MLO"] == ["circle"]
    ellipse = json.loads(df.loc["P4_R_DM_MLO", "roi_shapes"])["shapes"][0]
    assert ellipse["theta"] == 0.5
    for name in kinds:
        assert row_mask(df.loc[name].to_dict(), (48, 32)).any()


def test_cdd_split_grouped_and_seeded(cdd: Path) -> None:
    a = load_dataset(cdd, split_seed=3)
    assert set(a["split"]) == {"train", "test"}
    by_patient = a.groupby("patient_id")["split"].nunique()
    assert (by_patient == 1).all()
    assert a["split"].tolist() == load_dataset(cdd, split_seed=3)["split"].tolist()
    splits = {tuple(load_dataset(cdd, split_seed=s)["split"]) for s in range(6)}
    assert len(splits) > 1


def test_cdd_cesm_type_and_workbook_spellings(tmp_path: Path) -> None:
    root = make_cdd(tmp_path / "hyphen", sheet_name="Radiology-manual-annotations.xlsx",
                    pathology="pathology classification / Follow-up ")
    assert len(load_dataset(root)) == 8
    cesm = load_dataset(root, cdd_type="CESM").set_index("image_name")
    assert sorted(cesm.index) == ["P1_L_CM_CC", "P2_R_CM_CC"]
    assert cesm["roi"].to_dict() == {"P1_L_CM_CC": True, "P2_R_CM_CC": False}
    assert "Subtracted images of CDD-CESM" in cesm.loc["P1_L_CM_CC", "image_path"]
    workbook = root / "CDD-CESM" / "Radiology-manual-annotations.xlsx"
    assert len(load_dataset(workbook)) == 8  # the workbook itself also names the dataset


def test_cdd_cesm_unknown_image_type_is_a_manifest_error_naming_the_folder(cdd: Path) -> None:
    with pytest.raises(ManifestError, match="unknown CDD-CESM image type 'MRI'") as err:
        load_dataset(cdd, cdd_type="mri")
    assert str(err.value).startswith(f"{cdd}") and err.value.path is not None


def test_jpeg_header_size_matches_decode(tmp_path: Path) -> None:
    img = np.zeros((37, 53), np.uint8)
    plain, progressive, png = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.png"
    cv2.imwrite(str(plain), img)
    cv2.imwrite(str(progressive), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    cv2.imwrite(str(png), img)
    assert image_size(plain) == image_size(progressive) == image_size(png) == (53, 37)


def test_cdd_cesm_image_size_never_decodes_a_picture_whose_header_gives_none(tmp_path: Path,
                                                                              monkeypatch) -> None:
    """A ".jpg" holding Radiance HDR claiming 20000 × 20000 is refused from its header."""
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a picture to learn its size")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    bomb = tmp_path / "P1_L_DM_CC.jpg"
    bomb.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64))
    with pytest.raises(ManifestError, match="not an image whose size its header gives") as err:
        image_size(bomb)
    assert str(err.value).startswith(f"{bomb}: ")


def _bad_rows(rows: list[tuple], index: int, column: int, value) -> list[tuple]:
    changed = list(rows)
    row = list(changed[index])
    row[column] = value
    changed[index] = tuple(row)
    return changed


@pytest.mark.parametrize("rows, words", [
    (_bad_rows(CDD_SHEET, 0, 6, "Maybe"), "unknown pathology value(s) 'Maybe'"),
    (_bad_rows(CDD_SHEET, 1, 5, "XCC"), "unknown view value(s) 'XCC'"),
])
def test_cdd_unknown_values(tmp_path: Path, rows: list[tuple], words: str) -> None:
    root = make_cdd(tmp_path / "bad", rows=rows)
    with pytest.raises(ManifestError) as err:
        load_dataset(root)
    assert words in str(err.value)
    assert "Radiology manual annotations.xlsx" in str(err.value)


def test_cdd_missing_pathology_column(tmp_path: Path) -> None:
    root = make_cdd(tmp_path / "bad", pathology="Outcome")
    with pytest.raises(ManifestError, match="missing columns: Pathology"):
        load_dataset(root)


def test_cdd_missing_images_listed_together(cdd: Path) -> None:
    folder = cdd / "CDD-CESM" / "Low energy images of CDD-CESM"
    (folder / "P1_L_DM_CC.jpg").unlink()
    (folder / "P6_R_DM_CC.jpg").unlink()
    with pytest.raises(ManifestError) as err:
        load_dataset(cdd)
    text = str(err.value)
    assert "2 listed file(s) missing" in text and "P1_L_DM_CC.jpg" in text
    assert "P6_R_DM_CC.jpg" in text and "Radiology manual annotations.xlsx" in text


def test_cdd_non_utf8_via_csv_and_missing_sheet(cdd: Path) -> None:
    via = cdd / "CDD-CESM" / "Radiology_hand_drawn_segmentations_v2.csv"
    via.write_bytes(via.read_bytes() + b"P9_\xff.jpg,1,{},0,0,{},{}\n")
    with pytest.raises(ManifestError, match="not UTF-8") as err:
        load_dataset(cdd)
    assert str(via) in str(err.value)
    workbook = cdd / "CDD-CESM" / "Radiology manual annotations.xlsx"
    pd.DataFrame({"a": [1]}).to_excel(workbook, sheet_name="DM", index=False)
    with pytest.raises(ManifestError, match="no sheet named 'all'"):
        load_dataset(cdd)
    workbook.write_bytes(b"not a zip")
    with pytest.raises(ManifestError, match="not a readable .xlsx"):
        load_dataset(cdd)


def test_cdd_bad_region_json(cdd: Path) -> None:
    via = cdd / "CDD-CESM" / "Radiology_hand_drawn_segmentations_v2.csv"
    write_via(via, [("P1_L_DM_CC.jpg", {"name": "hexagon", "cx": 1})])
    with pytest.raises(ManifestError, match="unknown VIA shape 'hexagon'") as err:
        load_dataset(cdd)
    assert str(via) in str(err.value)


# ---------------------------------------------------------------- detection and manifests

def test_detects_each_layout(vindr: Path, cdd: Path, tmp_path: Path) -> None:
    assert detect_layout(vindr)[0].name == "vindr"
    assert detect_layout(vindr / "finding_annotations.csv")[0].name == "vindr"
    assert detect_layout(cdd)[0].name == "cdd-cesm"
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "manifest.csv").write_text("image_path\n")
    assert detect_layout(folder) == (detect_layout(folder)[0], folder / "manifest.csv")
    assert detect_layout(folder)[0].name == "manifest"


def test_unknown_layout_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ManifestError, match="not a dataset") as err:
        load_dataset(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(ManifestError, match="no such file or folder"):
        load_dataset(tmp_path / "nowhere")


def test_manifest_export_round_trip(vindr: Path, cdd: Path, tmp_path: Path) -> None:
    for dataset in (vindr, cdd):
        out = tmp_path / f"{dataset.name}-manifest.csv"
        assert cli_main(["data", "manifest", str(dataset), "--out", str(out)]) == 0
        original, again = load_dataset(dataset), load_dataset(out)
        assert describe(again) == describe(original)
        assert again["roi_shapes"].tolist() == original["roi_shapes"].tolist()
        assert again["image_path"].tolist() == original["image_path"].tolist()


# ---------------------------------------------------------------- splits

def _patients(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        malignant = rng.random() < 0.3
        for _ in range(rng.integers(1, 5)):
            rows.append({"patient_id": f"p{p}", "label": "malignant" if malignant else "benign"})
    return pd.DataFrame(rows)


def test_grouped_split_ten_to_one_stratified_deterministic() -> None:
    df = _patients(330)
    split = grouped_split(df, 1 / 11, seed=5)
    test = split == "test"
    assert 0.07 < test.mean() < 0.12
    assert abs((df.loc[test, "label"] == "malignant").mean()
               - (df["label"] == "malignant").mean()) < 0.05
    assert not set(df.loc[test, "patient_id"]) & set(df.loc[~test, "patient_id"])
    assert split.equals(grouped_split(df, 1 / 11, seed=5))
    assert not split.equals(grouped_split(df, 1 / 11, seed=6))
    shuffled = df.sample(frac=1.0, random_state=0)
    assert grouped_split(shuffled, 1 / 11, seed=5).sort_index().equals(split)


def test_grouped_folds_cover_every_patient_once() -> None:
    df = _patients(60)
    folds = grouped_folds(df, 5, seed=0)
    assert set(folds) == set(range(5))
    assert (df.assign(fold=folds).groupby("patient_id")["fold"].nunique() == 1).all()
    assert folds.value_counts().min() > len(df) / 10
    with pytest.raises(ValueError, match="from 3 patient"):
        grouped_folds(_patients(3), 5)


def test_grouped_split_small_and_bad_inputs() -> None:
    tiny = pd.DataFrame({"patient_id": ["a", "a", "b", "c"],
                         "label": ["benign", "benign", "malignant", "benign"]})
    split = grouped_split(tiny, 1 / 11, seed=0)
    assert (split == "test").any() and (split == "train").any()
    with pytest.raises(ValueError):
        grouped_split(tiny.iloc[:2], 0.1, seed=0)
    with pytest.raises(ValueError):
        grouped_split(tiny, 0.9, seed=0)


# ---------------------------------------------------------------- describe and the CLI

def test_describe_exact_on_known_table() -> None:
    rows = ([("train", "benign", True, "RCC")] * 3 + [("train", "malignant", True, "LCC")] * 2
            + [("train", "benign", False, "RMLO")] * 4 + [("test", "malignant", False, "LMLO")]
            + [("test", "benign", True, "LMLO")])
    df = pd.DataFrame(rows, columns=["split", "label", "roi", "view_name"])
    summary = describe(df)
    assert summary == {
        "images": 11,
        "split": {"train": {"benign": 7, "malignant": 2}, "test": {"benign": 1, "malignant": 1}},
        "roi": {"with": {"benign": 4, "malignant": 2}, "without": {"benign": 4, "malignant": 1}},
        "views": {"RCC": 3, "LCC": 2, "RMLO": 4, "LMLO": 2},
    }
    assert json.loads(json.dumps(summary)) == summary
    split_table = tables(summary)["split"]
    assert split_table.loc["total", "total"] == 11
    assert split_table.loc["malignant"].tolist() == [2, 1, 3]
    text = render_text(summary)
    assert "training" in text and "with ROIs" in text and "Images: 11" in text


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "data", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_describe_json_and_text(vindr: Path, capsys: pytest.CaptureFixture) -> None:
    done = _cli("describe", str(vindr), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == VINDR_SUMMARY
    assert cli_main(["data", "describe", str(vindr)]) == 0
    assert "with ROIs" in capsys.readouterr().out


def test_cli_error_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    done = _cli("describe", str(tmp_path), "--json")
    assert done.returncode != 0 and done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}: not a dataset")


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    vindr = make_vindr(tmp_path / "v")
    (vindr / "images" / "s1" / "i1.dicom").unlink()
    bad_csv = tmp_path / "manifest.csv"
    bad_csv.write_bytes(b"image_path,label\n\xff\xfe,benign\n")
    for target in (vindr, tmp_path / "nowhere", bad_csv):
        assert cli_main(["data", "describe", str(target), "--json"]) == 2
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert out == "" and len(lines) == 1
        assert lines[0].startswith("error: ") and str(target) in lines[0]


# ---------------------------------------------------------------- phantom round trip

def _phantom_expectation(summary) -> tuple[dict, set]:
    """What describe() must say about a phantom, from the records the phantom wrote."""
    labelled = [r for r in summary.records if r["label"] in ("benign", "malignant")]
    zero = {"benign": 0, "malignant": 0}
    roi = {"with": dict(zero), "without": dict(zero)}
    for r in labelled:
        roi["with" if r["roi"] else "without"][r["label"]] += 1
    views = {v: sum(r["view_name"] == v for r in labelled) for v in ("RCC", "LCC", "RMLO", "LMLO")}
    rows = {(r["image_path"], r["label"], bool(r["roi"]), r["view_name"], r["split"])
            for r in labelled}
    return {"images": len(labelled), "roi": roi, "views": views}, rows


@pytest.mark.parametrize("profile, studies", [("vindr", 6), ("cddcesm", 8)])
def test_phantom_round_trip(tmp_path: Path, profile: str, studies: int) -> None:
    phantom = pytest.importorskip("core.phantom")
    out = tmp_path / profile
    summary = phantom.write_phantom(out, profile, studies, size=64, seed=1, workers=1)
    df = load_dataset(out)
    got = describe(df)
    expected, rows = _phantom_expectation(summary)
    assert {k: got[k] for k in expected} == expected
    written = {(Path(p).relative_to(out).as_posix(), lab, roi, view, split)
               for p, lab, roi, view, split in zip(df["image_path"], df["label"], df["roi"],
                                                    df["view_name"], df["split"])}
    if profile == "vindr":  # VinDr ships its split; the phantom wrote it
        assert written == rows
        zero = {"benign": 0, "malignant": 0}
        assert got["split"] == {k: {**zero, **summary.by_split.get(k, {})} for k in ("train", "test")}
    else:  # CDD-CESM ships none: the adapter's grouped split, totals unchanged
        assert {w[:4] for w in written} == {r[:4] for r in rows}
        assert set(df["split"]) == {"train", "test"}
        assert (df.groupby("patient_id")["split"].nunique() == 1).all()
    for row in df[df["roi"]].head(3).to_dict("records"):
        assert row_mask(row, (32, 32)).any()
