"""The manifest contract (core.datasets.manifest) and ROI geometry (core.datasets.roi)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core.datasets.manifest import COLUMNS, finalize, label_codes, read_manifest_csv
from core.datasets.roi import outline, read_mask, render_shapes, row_mask, shapes_json
from core.errors import CheckpointError, ManifestError, MaskError


def _row(name: str, **changes: str) -> dict[str, str]:
    row = {"image_path": f"img/{name}.png", "patient_id": "p1", "study_id": "s1",
           "laterality": "L", "view": "CC", "label": "benign", "mask_path": "", "split": "train"}
    row.update(changes)
    return row


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for name in ("a", "b", "c"):
        cv2.imwrite(str(tmp_path / "img" / f"{name}.png"), np.zeros((8, 6), np.uint8))
    mask = np.zeros((8, 6), np.uint8)
    mask[2:5, 1:3] = 255
    cv2.imwrite(str(tmp_path / "img" / "a_mask.png"), mask)
    return tmp_path


def _write_csv(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- manifest

def test_read_manifest_resolves_and_derives(folder: Path) -> None:
    rows = [_row("a", mask_path="img/a_mask.png", label=" Malignant ", laterality="l"),
            _row("b", view="mlo", laterality="R", split="TEST", extra="kept", patient_id="p2"),
            _row("c", roi_shapes=shapes_json(6, 8, [{"type": "box", "xmin": 1, "ymin": 1,
                                                       "xmax": 3, "ymax": 3}]))]
    df = read_manifest_csv(_write_csv(folder, rows))
    assert df["image_path"].tolist() == [str(folder / "img" / f"{n}.png") for n in "abc"]
    assert df["mask_path"].tolist() == [str(folder / "img" / "a_mask.png"), "", ""]
    assert df["roi"].tolist() == [True, False, True]
    assert df["view_name"].tolist() == ["LCC", "RMLO", "LCC"]
    assert df["label"].tolist() == ["malignant", "benign", "benign"]
    assert df["split"].tolist() == ["train", "test", "train"]
    assert df.loc[1, "extra"] == "kept"


def test_relative_root_gives_absolute_paths(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_csv(folder, [_row("a")])
    monkeypatch.chdir(folder.parent)
    df = read_manifest_csv(Path(folder.name) / path.name)
    assert Path(df.loc[0, "image_path"]).is_absolute()
    assert df.loc[0, "image_path"] == str(folder / "img" / "a.png")


@pytest.mark.parametrize("rows, words", [
    ([{"image_path": "img/a.png", "label": "benign"}],
     "missing columns: patient_id, study_id, laterality, view, mask_path, split"),
    ([_row("a", label="normal")], "unknown label value(s) 'normal'"),
    ([_row("a", view="XCCL")], "unknown view value(s) 'XCCL'"),
    ([_row("a", laterality="B")], "unknown laterality value(s) 'B'"),
    ([_row("a", split="val")], "unknown split value(s) 'val'"),
    ([_row("a"), _row("a")], "1 duplicate image row(s)"),
    ([_row("a", image_path="")], "empty image_path on row(s) 2"),
    ([_row("x"), _row("a", mask_path="img/none.png"), _row("y")], "3 listed file(s) missing"),
])
def test_bad_manifests_name_the_file(folder: Path, rows: list[dict], words: str) -> None:
    path = _write_csv(folder, rows)
    with pytest.raises(ManifestError) as err:
        read_manifest_csv(path)
    assert words in str(err.value)
    assert str(err.value).startswith(f"{path}: ")


def test_missing_files_listed_together(folder: Path) -> None:
    path = _write_csv(folder, [_row("x"), _row("a", mask_path="img/none.png"), _row("y")])
    with pytest.raises(ManifestError) as err:
        read_manifest_csv(path)
    for name in ("x.png", "y.png", "none.png"):
        assert name in str(err.value)
    assert len(read_manifest_csv(path, check_files=False)) == 3


@pytest.mark.parametrize("content, words", [
    (b"image_path,label\n\xff\xfe,benign\n", "not UTF-8 text"),
    (b"", "not a readable CSV"),
    (b"image_path,patient_id,study_id,laterality,view,label,mask_path,split\n", "no images listed"),
])
def test_unreadable_manifest_files(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=words) as err:
        read_manifest_csv(path)
    assert str(path) in str(err.value)


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest_csv(tmp_path / "absent.csv")


def test_finalize_accepts_a_utf8_bom_and_keeps_columns(folder: Path) -> None:
    path = folder / "bom.csv"
    pd.DataFrame([_row("a")]).to_csv(path, index=False, encoding="utf-8-sig")
    df = read_manifest_csv(path)
    assert set(COLUMNS) <= set(df.columns) and df.loc[0, "image_path"].endswith("a.png")
    again = finalize(df, folder)
    assert again["image_path"].tolist() == df["image_path"].tolist()


# ---------------------------------------------------------------- roi

def test_label_codes_reads_every_spelling_and_refuses_the_rest() -> None:
    values = pd.Series([" Malignant", "benign", "1", 0, 1.0, "0.0", True, "FALSE"])
    assert label_codes(values).tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    assert label_codes(pd.Series([], dtype=object)).tolist() == []
    with pytest.raises(ManifestError, match=r"^t\.csv: unknown label value\(s\) '', 'normal'"):
        label_codes(pd.Series(["malignant", "Normal", None]), "t.csv")
    with pytest.raises(CheckpointError, match="'2'"):
        label_codes(pd.Series(["2"]), "predictions.csv", CheckpointError)


def test_lookup_names_every_unknown_value_as_the_file_wrote_it() -> None:
    from core.datasets.readers import lookup

    table = {"a": 1, "b": None}
    assert lookup(pd.Series(["a", "b", "a"]), table, "x", "a or b", "t.csv").tolist()[::2] == [1, 1]
    with pytest.raises(ManifestError, match=r"^t\.csv: unknown kind value\(s\) ' C', 'D'; expected a or b$"):
        lookup(pd.Series(["a", "c", "d", "c"]), table, "kind", "a or b", "t.csv",
               shown=pd.Series(["A", " C", "D", " C"]))
    many = pd.Series([f"v{i:02d}" for i in range(12)])
    with pytest.raises(CheckpointError) as err:
        lookup(many, table, "kind", "a or b", None, error=CheckpointError)
    assert "'v09'" in str(err.value) and "'v10'" not in str(err.value)  # the first ten, sorted


def test_training_counts_refuse_a_label_that_is_not_benign_or_malignant() -> None:
    from core.train.config import class_counts, label_targets

    df = pd.DataFrame({"label": ["malignant", "benign", "benign"]})
    assert class_counts(df) == {"benign": 2, "malignant": 1}
    assert label_targets(df).dtype == np.float32 and label_targets(df).tolist() == [1, 0, 0]
    with pytest.raises(ManifestError, match="'normal'"):  # once counted silently as benign
        class_counts(pd.DataFrame({"label": ["malignant", "normal"]}))


def test_shapes_json_empty_and_round_trip() -> None:
    assert shapes_json(10, 20, []) == ""
    spec = json.loads(shapes_json(10, 20, [{"type": "point", "cx": 1, "cy": 2}]))
    assert spec == {"width": 10, "height": 20, "shapes": [{"type": "point", "cx": 1, "cy": 2}]}


def test_box_union_renders_exactly_at_two_sizes() -> None:
    spec = shapes_json(100, 80, [{"type": "box", "xmin": 10, "ymin": 20, "xmax": 30, "ymax": 40},
                                 {"type": "box", "xmin": 20, "ymin": 0, "xmax": 60, "ymax": 30}])
    full = np.zeros((80, 100), np.uint8)
    full[20:40, 10:30] = 1
    full[0:30, 20:60] = 1
    np.testing.assert_array_equal(render_shapes(spec, (80, 100)), full)
    np.testing.assert_array_equal(render_shapes(spec, (40, 50)), full[::2, ::2])


def test_polygon_ellipse_circle_point_scale() -> None:
    shapes = [{"type": "polygon", "x": [0, 40, 40, 0], "y": [0, 0, 40, 40]},
              {"type": "ellipse", "cx": 150, "cy": 50, "rx": 30, "ry": 10, "theta": 0.0},
              {"type": "circle", "cx": 100, "cy": 150, "r": 20},
              {"type": "point", "cx": 190, "cy": 190}]
    spec = shapes_json(200, 200, shapes)
    big, small = render_shapes(spec, (200, 200)), render_shapes(spec, (100, 100))
    assert big.dtype == np.uint8 and set(np.unique(big)) == {0, 1}
    assert big[20, 20] and big[50, 175] and not big[65, 150] and big[150, 100] and big[190, 190]
    assert small[10, 10] and small[25, 87] and small[75, 50] and small[95, 95]
    assert abs(big.sum() / small.sum() - 4) < 0.3
    assert abs(render_shapes(spec, (200, 200))[140:160, 90:110].sum() - 400) < 40


def test_ellipse_theta_rotates() -> None:
    flat = shapes_json(100, 100, [{"type": "ellipse", "cx": 50, "cy": 50, "rx": 40, "ry": 5}])
    turned = shapes_json(100, 100, [{"type": "ellipse", "cx": 50, "cy": 50, "rx": 40, "ry": 5,
                                     "theta": np.pi / 2}])
    assert render_shapes(flat, (100, 100))[50, 85] == 1
    assert render_shapes(turned, (100, 100))[85, 50] == 1
    assert render_shapes(turned, (100, 100))[50, 85] == 0


def test_render_empty_and_unknown() -> None:
    assert render_shapes("", (4, 5)).sum() == 0
    with pytest.raises(ValueError, match="unknown ROI shape"):
        render_shapes(shapes_json(4, 4, [{"type": "star"}]), (4, 4))


def test_read_mask_variants(tmp_path: Path) -> None:
    base = np.zeros((8, 6), np.uint8)
    base[2:5, 1:3] = 1
    for name, img in (("bin.png", base), ("w.png", base * 255),
                      ("deep.png", base.astype(np.uint16) * 65535),
                      ("rgb.png", np.dstack([base * 255] * 3))):
        cv2.imwrite(str(tmp_path / name), img)
        np.testing.assert_array_equal(read_mask(tmp_path / name, (8, 6)), base)


@pytest.mark.parametrize("name, write, words", [
    ("grey.png", lambda p: cv2.imwrite(p, np.arange(48, dtype=np.uint8).reshape(8, 6)), "not binary"),
    ("colour.png", lambda p: cv2.imwrite(p, np.dstack([np.zeros((8, 6), np.uint8),
                                                      np.full((8, 6), 255, np.uint8),
                                                      np.zeros((8, 6), np.uint8)])), "colour mask"),
    ("small.png", lambda p: cv2.imwrite(p, np.zeros((4, 6), np.uint8)), "differs from"),
    ("empty.png", lambda p: open(p, "wb").close(), "empty file"),
    ("junk.png", lambda p: Path(p).write_bytes(b"junk"), "not an image"),
])
def test_read_mask_refuses(tmp_path: Path, name: str, write, words: str) -> None:
    path = tmp_path / name
    write(str(path))
    with pytest.raises(MaskError, match=words) as err:
        read_mask(path, (8, 6))
    assert str(path) in str(err.value)


def test_read_mask_missing(tmp_path: Path) -> None:
    with pytest.raises(MaskError, match="file not found"):
        read_mask(tmp_path / "none.png")


def test_row_mask_and_outline(folder: Path) -> None:
    mask_path = str(folder / "img" / "a_mask.png")
    from_file = row_mask({"mask_path": mask_path, "roi_shapes": ""}, (16, 12))
    assert from_file.shape == (16, 12) and from_file.sum() == 3 * 2 * 4
    spec = shapes_json(6, 8, [{"type": "box", "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 5}])
    np.testing.assert_array_equal(row_mask({"mask_path": "", "roi_shapes": spec}, (16, 12)),
                                  from_file)
    assert row_mask({"mask_path": "", "roi_shapes": ""}, (16, 12)) is None
    contours = outline(from_file)
    assert len(contours) == 1 and contours[0].shape[1] == 2
    assert os.path.isfile(mask_path)


# ---------------------------------------------------------------- one ROI rule

@pytest.fixture
def empty_mask_dataset(folder: Path) -> Path:
    """a: a real mask, b: an all-zero mask file, c: no mask; all LCC, one patient each."""
    cv2.imwrite(str(folder / "img" / "b_mask.png"), np.zeros((8, 6), np.uint8))
    rows = [_row("a", mask_path="img/a_mask.png", label="malignant", patient_id="pa"),
            _row("b", mask_path="img/b_mask.png", label="malignant", patient_id="pb"),
            _row("c", patient_id="pc")]
    return _write_csv(folder, rows)


def test_an_all_zero_mask_file_is_no_roi_everywhere(empty_mask_dataset: Path) -> None:
    from core.datasets import load_dataset
    from core.datasets.describe import describe
    from core.datasets.manifest import roi_flags
    from core.grid import Cell
    from core.roifinder.geometry import row_mask_full
    from core.train import TrainConfig
    from core.train.planned import plan_cells

    folder = empty_mask_dataset.parent
    empty = str(folder / "img" / "b_mask.png")
    for df in (read_manifest_csv(empty_mask_dataset), load_dataset(folder)):
        assert df["roi"].tolist() == [True, False, False]
        assert df.loc[1, "mask_path"] == "" and df.loc[1, "empty_mask_path"] == empty
        assert df.loc[0, "empty_mask_path"] == ""
    assert describe(df)["roi"] == {"with": {"benign": 0, "malignant": 1},
                                   "without": {"benign": 1, "malignant": 1}}
    counts = {p.cell: len(p.fit) + len(p.val) for p in plan_cells(df, TrainConfig(mode="roi"))}
    assert counts[Cell(True, "LCC")] == 1 and counts[Cell(False, "LCC")] == 2
    raw = pd.read_csv(empty_mask_dataset, keep_default_na=False)
    raw["mask_path"] = raw["mask_path"].map(lambda p: str(folder / p) if p else "")
    assert roi_flags(raw).tolist() == [True, False, False]  # a table that was never finalized
    assert row_mask({"mask_path": empty}, (16, 12)) is None
    assert row_mask_full({"mask_path": empty}) is None
    again = finalize(df, folder)
    assert again["roi"].tolist() == [True, False, False]
    assert again.loc[1, "empty_mask_path"] == empty


def test_exported_manifest_keeps_the_empty_mask_file(empty_mask_dataset: Path) -> None:
    from core.cli.data import write_manifest

    out = empty_mask_dataset.parent / "exported.csv"
    write_manifest(read_manifest_csv(empty_mask_dataset), out)
    written = pd.read_csv(out, keep_default_na=False)
    assert written["mask_path"].tolist() == ["img/a_mask.png", "img/b_mask.png", ""]
    assert "empty_mask_path" not in written.columns
    assert read_manifest_csv(out)["roi"].tolist() == [True, False, False]


def test_an_unreadable_mask_is_named_when_the_manifest_is_read(folder: Path) -> None:
    (folder / "img" / "grey.png").write_bytes(cv2.imencode(
        ".png", np.arange(48, dtype=np.uint8).reshape(8, 6))[1].tobytes())
    path = _write_csv(folder, [_row("a", mask_path="img/grey.png")])
    with pytest.raises(ManifestError, match="1 mask file.s. unusable") as err:
        read_manifest_csv(path)
    assert str(path) in str(err.value) and "grey.png" in str(err.value)
    assert "not binary" in str(err.value)


def test_a_patient_in_both_splits_is_refused_by_name(folder: Path) -> None:
    path = _write_csv(folder, [_row("a", patient_id="p7"), _row("b", patient_id="p7", split="test"),
                               _row("c", patient_id="p3", split="test")])
    with pytest.raises(ManifestError) as err:
        read_manifest_csv(path)
    assert str(err.value).startswith(f"{path}: 1 patient(s) in both train and test: p7;")
