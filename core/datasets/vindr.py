"""VinDr-Mammo adapter: ``images/<study_id>/<image_id>.dicom`` plus two CSVs.

Labels follow the paper: breast-level BI-RADS 2–3 → benign, 4–5 → malignant,
BI-RADS 1 excluded.  The ROI of an image is the union of its finding boxes of
any category but "No Finding", clipped to the image and stored as
``roi_shapes`` boxes in original pixels (masks are rendered on demand).

VinDr publishes no patient identifier, only ``study_id`` (one study = one
exam of one woman), so ``patient_id`` is the study id: a patient who came
back for a second exam would count as two patients in a grouped split.
"""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets.manifest import finalize
from core.datasets.readers import lookup, read_csv_strict
from core.datasets.roi import shapes_json
from core.errors import ManifestError

FINDINGS_CSV = "finding_annotations.csv"
BREASTS_CSV = "breast-level_annotations.csv"
IMAGES_DIR = "images"
IMAGE_COLUMNS: tuple[str, ...] = (
    "study_id", "image_id", "laterality", "view_position", "height", "width",
    "breast_birads", "split",
)
BOX_COLUMNS: tuple[str, ...] = ("image_id", "finding_categories", "xmin", "ymin", "xmax", "ymax")
EXTRA_COLUMNS: tuple[str, ...] = ("image_id", "series_id", "breast_birads", "breast_density",
                                  "height", "width")
BIRADS_LABEL: dict[int, str | None] = {1: None, 2: "benign", 3: "benign",
                                       4: "malignant", 5: "malignant"}
SPLIT_NAMES: dict[str, str] = {"training": "train", "train": "train", "test": "test"}
NO_FINDING = "No Finding"


def is_vindr_folder(path: Path) -> bool:
    """A folder with either VinDr annotation CSV and an ``images/`` folder."""
    return (path.is_dir() and (path / IMAGES_DIR).is_dir()
            and ((path / FINDINGS_CSV).is_file() or (path / BREASTS_CSV).is_file()))


def load_vindr(root: str | Path, check_files: bool = True) -> pd.DataFrame:
    """The finalized manifest of a VinDr-Mammo folder (BI-RADS 1 images dropped)."""
    root = Path(root)
    images, source = _image_table(root)
    images = images[images["label"].notna()].copy()
    if images.empty:
        raise ManifestError("no BI-RADS 2–5 image (BI-RADS 1 images are excluded)", source)
    boxes = _boxes_by_image(root / FINDINGS_CSV, images) if (root / FINDINGS_CSV).is_file() else {}
    images["roi_shapes"] = [
        shapes_json(w, h, boxes.get(i, []))
        for i, w, h in zip(images["image_id"], images["width"], images["height"])
    ]
    images["findings"] = images["image_id"].map(lambda i: _categories_text(boxes.get(i, [])))
    return finalize(_manifest_columns(images), root, source=source, check_files=check_files)


def _image_table(root: Path) -> tuple[pd.DataFrame, Path]:
    """One row per image: from the breast-level CSV, else the findings CSV deduplicated."""
    source = root / BREASTS_CSV if (root / BREASTS_CSV).is_file() else root / FINDINGS_CSV
    df = read_csv_strict(source, IMAGE_COLUMNS)
    for col in ("study_id", "image_id", "laterality", "view_position", "breast_birads", "split"):
        df[col] = df[col].str.strip()
    if source.name == FINDINGS_CSV:
        df = df.drop_duplicates("image_id")
    for col in ("height", "width"):
        df[col] = _positive_numbers(df[col], col, source)
    df["label"] = lookup(df["breast_birads"].map(birads_number), BIRADS_LABEL, "breast_birads",
                         "BI-RADS 1–5", source, shown=df["breast_birads"])
    df["split"] = lookup(df["split"].str.lower(), SPLIT_NAMES, "split", "training or test", source)
    return df.reset_index(drop=True), source


def _positive_numbers(values: pd.Series, column: str, source: Path) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers <= 0)
    if bad.any():
        rows = ", ".join(str(i + 2) for i in values.index[bad][:10])
        raise ManifestError(f"{column} is not a positive number on row(s) {rows}", source)
    return numbers.astype(int)


def birads_number(text: str) -> int | None:
    """``"BI-RADS 4"`` / ``"4"`` → 4; anything without exactly one number → None."""
    digits = re.findall(r"\d+", str(text))
    return int(digits[0]) if len(digits) == 1 else None


def _boxes_by_image(path: Path, images: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Finding boxes (No Finding and empty boxes skipped), clipped, grouped by image id."""
    df = read_csv_strict(path, BOX_COLUMNS)
    df["image_id"] = df["image_id"].str.strip()
    sizes = dict(zip(images["image_id"], zip(images["width"], images["height"])))
    boxes: dict[str, list[dict[str, Any]]] = {}
    for row_number, row in zip(df.index + 2, df.itertuples(index=False)):
        if row.image_id not in sizes:
            continue  # BI-RADS 1 image, or one the breast-level table does not list
        categories = parse_categories(row.finding_categories, path, row_number)
        if categories and all(c == NO_FINDING for c in categories):
            continue
        box = _clipped_box(row, sizes[row.image_id], path, row_number)
        if box is not None:
            box["categories"] = [c for c in categories if c != NO_FINDING]
            boxes.setdefault(row.image_id, []).append(box)
    return boxes


def parse_categories(text: str, path: Path, row_number: int) -> list[str]:
    """``"['Nipple Retraction', 'Mass']"`` → the list, via ``ast.literal_eval`` (never eval)."""
    text = str(text).strip()
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ManifestError(
            f"finding_categories on row {row_number} is not a list of names: {text[:60]!r}", path)
    return [v.strip() for v in value]


def _clipped_box(row: Any, size: tuple[int, int], path: Path,
                 row_number: int) -> dict[str, Any] | None:
    """The box clipped to the image, or None when empty or of zero area after clipping."""
    raw = [str(getattr(row, k)).strip() for k in ("xmin", "ymin", "xmax", "ymax")]
    if not any(raw):
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in raw)
    except ValueError:
        raise ManifestError(f"box on row {row_number} is not four numbers: {raw}", path) from None
    if any(math.isnan(v) for v in (x0, y0, x1, y1)):
        return None
    w, h = size
    x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
    y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return {"type": "box", "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


def _categories_text(boxes: list[dict[str, Any]]) -> str:
    return "; ".join(sorted({c for b in boxes for c in b.get("categories", [])}))


def _manifest_columns(images: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "image_path": [f"{IMAGES_DIR}/{s}/{i}.dicom"
                       for s, i in zip(images["study_id"], images["image_id"])],
        "patient_id": images["study_id"],
        "study_id": images["study_id"],
        "laterality": images["laterality"],
        "view": images["view_position"],
        "label": images["label"],
        "mask_path": "",
        "split": images["split"],
        "roi_shapes": images["roi_shapes"],
        "findings": images["findings"],
    })
    for col in EXTRA_COLUMNS:
        if col in images.columns:
            out[col] = images[col].values
    out["dataset"] = "vindr"
    return out
