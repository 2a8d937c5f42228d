"""The manifest: the one internal table every dataset adapter produces.

Columns (DESIGN.md): ``image_path, patient_id, study_id, laterality (L|R),
view (CC|MLO), label (benign|malignant), mask_path (empty = no ROI),
split (train|test)``.  Adapters whose ROIs are boxes or drawn regions rather
than mask files put them in the extra column ``roi_shapes`` (JSON, see
:mod:`core.roi`).  After :func:`finalize` every table also has ``roi`` (bool)
and ``view_name`` (RCC/LCC/RMLO/LMLO) and absolute paths.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.errors import ManifestError
from core.grid import VIEWS

COLUMNS: tuple[str, ...] = (
    "image_path", "patient_id", "study_id", "laterality", "view", "label", "mask_path", "split",
)
LABELS: tuple[str, ...] = ("benign", "malignant")
SPLITS: tuple[str, ...] = ("train", "test")
LATERALITIES: tuple[str, ...] = ("L", "R")
VIEW_POSITIONS: tuple[str, ...] = ("CC", "MLO")


def _bad_values(df: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> list[str]:
    return sorted(set(df.loc[~df[column].isin(allowed), column].astype(str)))


def finalize(df: pd.DataFrame, root: str | Path, source: str | Path | None = None,
             check_files: bool = True) -> pd.DataFrame:
    """Validate a manifest-shaped table and make it ready for use.

    Relative paths are resolved against ``root``.  Every problem of one kind
    is reported together (all missing files in one message, not the first
    one), naming ``source`` (the CSV or folder the table came from).
    """
    source = source if source is not None else root
    root = Path(root).absolute()
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise ManifestError(f"missing columns: {', '.join(missing_cols)}", source)
    if df.empty:
        raise ManifestError("no images listed", source)
    df = df.copy()
    for col in COLUMNS:
        df[col] = df[col].fillna("").astype(str).str.strip()
    df["laterality"] = df["laterality"].str.upper()
    df["view"] = df["view"].str.upper()
    df["label"] = df["label"].str.lower()
    df["split"] = df["split"].str.lower()
    for column, allowed in (("label", LABELS), ("laterality", LATERALITIES),
                            ("view", VIEW_POSITIONS), ("split", SPLITS)):
        bad = _bad_values(df, column, allowed)
        if bad:
            raise ManifestError(
                f"unknown {column} value(s) {', '.join(map(repr, bad[:10]))}; "
                f"expected one of {', '.join(allowed)}", source)
    empty_paths = df["image_path"] == ""
    if empty_paths.any():
        rows = ", ".join(str(i + 2) for i in df.index[empty_paths][:10])
        raise ManifestError(f"empty image_path on row(s) {rows}", source)

    def resolve(p: str) -> str:
        return "" if not p else str((root / p) if not Path(p).is_absolute() else Path(p))

    df["image_path"] = df["image_path"].map(resolve)
    df["mask_path"] = df["mask_path"].map(resolve)
    dupes = df["image_path"][df["image_path"].duplicated()]
    if not dupes.empty:
        raise ManifestError(
            f"{len(dupes)} duplicate image row(s), e.g. {dupes.iloc[0]}", source)
    if check_files:
        listed = [p for p in pd.concat([df["image_path"], df["mask_path"]]) if p]
        missing = [p for p in listed if not Path(p).is_file()]
        if missing:
            shown = "; ".join(missing[:5]) + (f"; … {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ManifestError(f"{len(missing)} listed file(s) missing: {shown}", source)
    if "roi_shapes" not in df.columns:
        df["roi_shapes"] = ""
    df["roi_shapes"] = df["roi_shapes"].fillna("").astype(str)
    df["roi"] = (df["mask_path"] != "") | (df["roi_shapes"] != "")
    df["view_name"] = df["laterality"] + df["view"]
    assert set(df["view_name"]) <= set(VIEWS)
    return df.reset_index(drop=True)


def read_manifest_csv(path: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Read a user's manifest CSV; paths are relative to the CSV's folder."""
    from core.datasets.readers import read_csv_strict  # core.datasets imports this module

    path = Path(path)
    return finalize(read_csv_strict(path), path.parent, source=path, check_files=check_files)
