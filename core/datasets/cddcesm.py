"""CDD-CESM adapter: the annotation workbook, the JPEG folders and the VIA regions.

Labels come from the pathology column (Benign / Malignant; Normal excluded),
views from the ``Side`` / ``View`` columns (or the file name ``P2_L_DM_CC``
when a cell is blank), the patient from ``Patient_ID``.  The ROI of an image
is the union of its hand-drawn VIA regions, stored as ``roi_shapes`` in the
JPEG's own pixels.  The dataset ships no split, so a patient-grouped,
label-stratified, seeded 10:1 train/test split is drawn (the paper's 600:62).
"""
from __future__ import annotations

import json
import math
import re
import struct
import zipfile
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets.manifest import finalize
from core.datasets.readers import column_key, list_missing_files, lookup, read_csv_strict
from core.datasets.roi import shapes_json
from core.datasets.split import grouped_split
from core.errors import ManifestError

ANNOTATION_NAMES: tuple[str, ...] = (
    "Radiology-manual-annotations.xlsx", "Radiology manual annotations.xlsx")
SEGMENTATION_PREFIX = "radiology_hand_drawn_segmentations"
IMAGE_DIRS: dict[str, str] = {"DM": "Low energy images of CDD-CESM",
                              "CESM": "Subtracted images of CDD-CESM"}
FILE_TYPE_TOKENS: dict[str, str] = {"DM": "DM", "CM": "CESM", "CESM": "CESM"}
SHEET = "all"
SEARCH_DEPTH = 3
TEST_FRACTION = 1 / 11  # the paper's 10:1 (600 train : 62 test images)
PATHOLOGY_LABEL: dict[str, str | None] = {"benign": "benign", "malignant": "malignant",
                                          "normal": None}
EXTRA_COLUMNS: dict[str, str] = {  # column_key in the sheet → manifest column
    "age": "age", "breastdensityacr": "breast_density", "birads": "birads",
    "findings": "findings", "tags": "tags", "machine": "machine",
}
_NAME_PATTERN = re.compile(r"^P(\d+)_([LR])_(DM|CM|CESM)_(CC|MLO)$", re.IGNORECASE)


# ---------------------------------------------------------------- detection

def find_annotation_sheet(path: Path) -> Path | None:
    """The workbook itself, or the shallowest one under ``path`` (either spelling)."""
    wanted = {n.lower() for n in ANNOTATION_NAMES}
    if path.is_file():
        return path if path.name.lower() in wanted else None
    return _find_near([path], lambda p: p.is_file() and p.name.lower() in wanted)


def is_cddcesm(path: Path) -> bool:
    """A CDD-CESM folder (or its workbook): the annotation sheet is there."""
    return find_annotation_sheet(path) is not None


def _find_near(bases: Iterable[Path], match: Callable[[Path], bool],
               depth: int = SEARCH_DEPTH) -> Path | None:
    """Breadth-first search: the shallowest match wins; among files at one depth the
    alphabetically last (``..._v2.csv`` over ``..._v1.csv``), among folders the first."""
    seen: set[Path] = set()
    for base in bases:
        queue = deque([(base, 0)])
        while queue:
            folder, level = queue.popleft()
            if folder in seen or not folder.is_dir():
                continue
            seen.add(folder)
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            hits = [e for e in entries if match(e)]
            if hits:
                return hits[-1] if all(e.is_file() for e in hits) else hits[0]
            if level < depth:
                queue.extend((e, level + 1) for e in entries if e.is_dir())
    return None


# ---------------------------------------------------------------- loading

def load_cddcesm(path: str | Path, split_seed: int = 0, cdd_type: str = "DM") -> pd.DataFrame:
    """The finalized manifest of a CDD-CESM folder, one image type (DM or CESM)."""
    path = Path(path)
    cdd_type = str(cdd_type).strip().upper()
    if cdd_type not in IMAGE_DIRS:
        raise ManifestError(f"unknown CDD-CESM image type {cdd_type!r}; expected DM or CESM",
                            path)
    sheet_path = find_annotation_sheet(path)
    if sheet_path is None:
        raise ManifestError(f"no {ANNOTATION_NAMES[0]} found", path)
    bases = [sheet_path.parent, path if path.is_dir() else path.parent]
    image_dir = _required_near(bases, IMAGE_DIRS[cdd_type], is_dir=True)
    seg_path = _required_near(bases, SEGMENTATION_PREFIX, is_dir=False)
    rows = _sheet_rows(sheet_path, cdd_type)
    rows["image_path"] = [str(image_dir / f"{k}.jpg") for k in rows["image_name"]]
    list_missing_files(map(Path, rows["image_path"]), sheet_path)
    shapes = _regions_by_image(seg_path, set(rows["image_name"]))
    rows["roi_shapes"] = [_shapes_for(Path(p), shapes.get(k, []))
                          for k, p in zip(rows["image_name"], rows["image_path"])]
    rows["split"] = _split(rows, split_seed, sheet_path)
    rows["mask_path"] = ""
    rows["dataset"] = "cdd-cesm"
    return finalize(rows, image_dir, source=sheet_path, check_files=False)


def _required_near(bases: list[Path], name: str, is_dir: bool) -> Path:
    lowered = name.lower()
    if is_dir:
        found = _find_near(bases, lambda p: p.is_dir() and p.name.lower() == lowered)
    else:
        found = _find_near(bases, lambda p: p.is_file() and p.name.lower().startswith(lowered)
                           and p.suffix.lower() == ".csv")
    if found is None:
        what = f"folder {name!r}" if is_dir else f"{name}*.csv (the VIA region export)"
        raise ManifestError(f"no {what} found near the annotation sheet", bases[0])
    return found


def image_key(name: object) -> str:
    """``"P1_L_DM_CC .jpg"`` / ``"P1_L_DM_CC "`` → ``"P1_L_DM_CC"``: how sheet and VIA rows meet."""
    text = re.sub(r"\s+", "", str(name))
    return re.sub(r"\.jpe?g$", "", text, flags=re.IGNORECASE)


# ---------------------------------------------------------------- the sheet

def _read_sheet(path: Path) -> pd.DataFrame:
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            names = {str(n).strip().lower(): n for n in book.sheet_names}
            if SHEET not in names:
                raise ManifestError(
                    f"no sheet named {SHEET!r} (sheets: {', '.join(map(str, book.sheet_names))})", path)
            df = book.parse(names[SHEET], dtype=str)
    except ManifestError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ManifestError(f"not a readable .xlsx workbook ({type(err).__name__})", path) from None
    df.columns = [str(c) for c in df.columns]
    return df.fillna("").apply(lambda col: col.astype(str).str.strip())


def _find_column(df: pd.DataFrame, key: str, prefix: bool = False) -> str | None:
    hits = [c for c in df.columns
            if column_key(c) == key or (prefix and column_key(c).startswith(key))]
    return hits[0] if hits else None


def _sheet_rows(path: Path, cdd_type: str) -> pd.DataFrame:
    """Rows of the requested image type with a benign/malignant label, manifest-shaped."""
    df = _read_sheet(path)
    name_col = _find_column(df, "imagename")
    pathology_col = (_find_column(df, "pathologyclassificationfollowup")
                     or _find_column(df, "pathology", prefix=True))
    missing = [n for n, c in (("Image_name", name_col),
                              ("Pathology Classification/ Follow up", pathology_col)) if c is None]
    if missing:
        raise ManifestError(f"missing columns: {', '.join(missing)}", path)
    df = df[df[name_col] != ""].copy()
    df["image_name"] = df[name_col].map(image_key)
    parsed = df["image_name"].map(_parse_name)
    df["type"] = _column_or_name(df, "type", parsed, 2).str.upper().map(
        lambda t: FILE_TYPE_TOKENS.get(t, t))
    df = df[df["type"] == cdd_type]
    parsed = parsed[df.index]
    df["label"] = lookup(df[pathology_col].str.strip().str.lower(), PATHOLOGY_LABEL, "pathology",
                         "Normal, Benign or Malignant", path, shown=df[pathology_col])
    out = pd.DataFrame({
        "image_name": df["image_name"],
        "patient_id": _column_or_name(df, "patientid", parsed, 0).map(_clean_id),
        "laterality": _column_or_name(df, "side", parsed, 1).str.upper(),
        "view": _column_or_name(df, "view", parsed, 3).str.upper(),
        "label": df["label"],
        "type": df["type"],
    })
    out["study_id"] = out["patient_id"]
    for key, new in EXTRA_COLUMNS.items():
        column = _find_column(df, key)
        if column is not None:
            out[new] = df[column]
    _require_filled(out, path)
    out = out[out["label"].notna()]
    if out.empty:
        raise ManifestError(f"no benign or malignant {cdd_type} image listed", path)
    return out.reset_index(drop=True)


def _parse_name(key: str) -> tuple[str, str, str, str]:
    """``P2_L_DM_CC`` → ``("2", "L", "DM", "CC")``; blanks when the name has another form."""
    m = _NAME_PATTERN.match(key)
    return tuple(g.upper() for g in m.groups()) if m else ("", "", "", "")  # type: ignore[return-value]


def _column_or_name(df: pd.DataFrame, key: str, parsed: pd.Series, part: int) -> pd.Series:
    """The sheet's value, falling back to the file name's when the cell (or column) is blank."""
    column = _find_column(df, key)
    from_name = parsed.map(lambda t: t[part])
    if column is None:
        return from_name
    return df[column].where(df[column] != "", from_name)


def _clean_id(value: str) -> str:
    """Excel turns ``2`` into ``2.0`` when a column is numeric; undo that."""
    return value[:-2] if re.fullmatch(r"\d+\.0", value) else value


def _require_filled(df: pd.DataFrame, path: Path) -> None:
    for column in ("patient_id", "laterality", "view"):
        blank = df.loc[df[column] == "", "image_name"]
        if not blank.empty:
            raise ManifestError(
                f"no {column} for {len(blank)} image(s) (blank cell and file name not like "
                f"P2_L_DM_CC), e.g. {', '.join(blank.iloc[:5])}", path)


def _split(rows: pd.DataFrame, seed: int, path: Path) -> pd.Series:
    if rows["patient_id"].nunique() < 2:
        raise ManifestError("a train/test split needs at least two patients", path)
    return grouped_split(rows, TEST_FRACTION, seed)


# ---------------------------------------------------------------- VIA regions

def _regions_by_image(path: Path, keys: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Shapes of the VIA export grouped by image key, for the images in ``keys`` only."""
    df = read_csv_strict(path, ("#filename", "region_shape_attributes"))
    shapes: dict[str, list[dict[str, Any]]] = {}
    for row_number, name, attrs in zip(df.index + 2, df["#filename"], df["region_shape_attributes"]):
        key = image_key(name)
        if key not in keys:
            continue
        shape = via_shape(attrs, path, row_number)
        if shape is not None:
            shapes.setdefault(key, []).append(shape)
    return shapes


def via_shape(text: str, path: Path, row_number: int) -> dict[str, Any] | None:
    """One VIA ``region_shape_attributes`` JSON → a :mod:`core.datasets.roi` shape (None for ``{}``)."""
    try:
        attrs = json.loads(text) if str(text).strip() else {}
    except json.JSONDecodeError:
        raise ManifestError(f"region_shape_attributes on row {row_number} is not JSON", path) from None
    if not isinstance(attrs, dict):
        raise ManifestError(f"region_shape_attributes on row {row_number} is not an object", path)
    if not attrs:
        return None
    try:
        return _convert_shape(attrs)
    except (KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"region on row {row_number}: {err}", path) from None


def _number(attrs: dict[str, Any], key: str) -> float:
    if key not in attrs:
        raise KeyError(f"{attrs.get('name')!r} shape without {key!r}")
    value = float(attrs[key])
    if not math.isfinite(value):
        raise ValueError(f"{key} is not a finite number")
    return value


def _convert_shape(attrs: dict[str, Any]) -> dict[str, Any]:
    kind = str(attrs.get("name", "")).lower()
    if kind in ("polygon", "polyline"):
        xs = [float(v) for v in attrs["all_points_x"]]
        ys = [float(v) for v in attrs["all_points_y"]]
        if not xs or len(xs) != len(ys):
            raise ValueError("polygon with no points or unequal x/y lists")
        return {"type": "polygon", "x": xs, "y": ys}
    if kind == "circle":
        return {"type": "circle", **{k: _number(attrs, k) for k in ("cx", "cy", "r")}}
    if kind == "ellipse":
        shape = {"type": "ellipse", **{k: _number(attrs, k) for k in ("cx", "cy", "rx", "ry")}}
        if "theta" in attrs:
            shape["theta"] = _number(attrs, "theta")
        return shape
    if kind == "point":
        return {"type": "point", "cx": _number(attrs, "cx"), "cy": _number(attrs, "cy")}
    if kind == "rect":
        x, y = _number(attrs, "x"), _number(attrs, "y")
        return {"type": "box", "xmin": x, "ymin": y,
                "xmax": x + _number(attrs, "width"), "ymax": y + _number(attrs, "height")}
    raise ValueError(f"unknown VIA shape {attrs.get('name')!r}")


def _shapes_for(image: Path, shapes: list[dict[str, Any]]) -> str:
    if not shapes:
        return ""
    width, height = image_size(image)
    return shapes_json(width, height, shapes)


# ---------------------------------------------------------------- image size

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header, never by decoding.

    Reading 2,000 full-field JPEGs to learn their sizes would take a minute;
    the header takes microseconds.  A plain JPEG's header is read here; any
    other picture's by the pixel path's size guard, which refuses a picture
    whose header gives no size.
    """
    from core.errors import ImageReadError
    from core.pixels.picture import header_size

    size = _jpeg_header_size(path)
    if size is not None:
        return size
    if not path.is_file():
        raise ManifestError("file not found", path)
    try:
        rows, cols = header_size(path)
    except ImageReadError as err:
        raise ManifestError(err.problem, path) from None
    return cols, rows


def _jpeg_header_size(path: Path) -> tuple[int, int] | None:
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return None
            while True:
                byte = f.read(1)
                while byte == b"\xff":
                    marker = f.read(1)
                    if marker != b"\xff":
                        break
                else:
                    return None
                code = marker[0] if marker else None
                if code is None or code == 0xD9:
                    return None
                if code == 0x01 or 0xD0 <= code <= 0xD7:
                    continue
                length = struct.unpack(">H", f.read(2))[0]
                if code in _SOF_MARKERS:
                    _, height, width = struct.unpack(">BHH", f.read(5))
                    return (width, height) if width and height else None
                f.seek(length - 2, 1)
    except (OSError, struct.error):
        return None
