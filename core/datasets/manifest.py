"""The manifest: the one internal table every dataset adapter produces.

Columns: ``image_path, patient_id, study_id, laterality (L|R),
view (CC|MLO), label (benign|malignant), mask_path (empty = no ROI),
split (train|test)``.  Adapters whose ROIs are boxes or drawn regions rather
than mask files put them in the extra column ``roi_shapes`` (JSON, see
:mod:`core.datasets.roi`).  After :func:`finalize` every table also has ``roi`` (bool)
and ``view_name`` (RCC/LCC/RMLO/LMLO) and absolute paths; a mask file with no
foreground pixel has been moved from ``mask_path`` to ``empty_mask_path``, so
``roi`` and ``mask_path`` tell the same story everywhere downstream.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from core.datasets.readers import lookup, read_csv_strict
from core.errors import MammoError, ManifestError, MaskError

COLUMNS: tuple[str, ...] = (
    "image_path", "patient_id", "study_id", "laterality", "view", "label", "mask_path", "split",
)
LABELS: tuple[str, ...] = ("benign", "malignant")
SPLITS: tuple[str, ...] = ("train", "test")
LATERALITIES: tuple[str, ...] = ("L", "R")
VIEW_POSITIONS: tuple[str, ...] = ("CC", "MLO")
LABEL_CODES: dict[str, int] = {"benign": 0, "malignant": 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1,
                               "false": 0, "true": 1}
"""Every spelling of a label a table may carry: the manifest's words, or a 0/1 (or bool)
column that pandas or a spreadsheet may have turned into floats or text."""


def label_codes(values: pd.Series, source: str | Path | None = None,
                error: type[MammoError] = ManifestError) -> np.ndarray:
    """0 (benign) / 1 (malignant) per row; an unknown value is refused, never read as benign.

    One reader for every table (manifests, prediction tables, proposals), so a
    label can never count as malignant in one place and benign in another.
    ``error`` is the caller's error type (a run's prediction table is a
    :class:`~core.errors.CheckpointError`), naming ``source``.
    """
    text = values.astype(object).fillna("").astype(str).str.strip().str.lower()
    return lookup(text, LABEL_CODES, "label", "benign or malignant (or 0 / 1)", source,
                  error=error).to_numpy(dtype=int)


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
        lookup(df[column], dict.fromkeys(allowed), column, f"one of {', '.join(allowed)}", source)
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
            raise ManifestError(f"{len(missing)} listed file(s) missing: "
                                f"{_shown(missing, 5, '; ')}", source)
    _check_patients_on_one_side(df, source)
    if "roi_shapes" not in df.columns:
        df["roi_shapes"] = ""
    df["roi_shapes"] = df["roi_shapes"].fillna("").astype(str)
    _clear_empty_masks(df, source)
    df["roi"] = (df["mask_path"] != "") | (df["roi_shapes"] != "")  # empty masks cleared above
    df["view_name"] = df["laterality"] + df["view"]
    return df.reset_index(drop=True)


def roi_flags(df: pd.DataFrame) -> pd.Series:
    """ROI presence per row: a drawn shape, or a mask file with a foreground pixel.

    A finalized table carries the answer in ``roi``; any other manifest-shaped
    table is judged by the same rule (:func:`core.datasets.roi.mask_file_has_roi`), so
    no reader keeps a notion of its own.
    """
    if "roi" in df.columns:
        return df["roi"].astype(bool)
    from core.datasets.roi import mask_file_has_roi

    def text(column: str) -> pd.Series:
        values = df[column] if column in df.columns else pd.Series("", index=df.index)
        return values.fillna("").astype(str)

    masks = text("mask_path").map(lambda p: bool(p) and mask_file_has_roi(p))
    return (text("roi_shapes") != "") | masks.astype(bool)


def _clear_empty_masks(df: pd.DataFrame, source: str | Path) -> None:
    """Turn rows whose mask file has no foreground pixel into no-ROI rows, once, in place.

    The path moves to ``empty_mask_path`` so downstream code meets one notion
    (``mask_path`` set ⇔ ROI) and a reader can still see which files were empty.
    A listed mask that is absent (``check_files=False``) is left to its reader.
    """
    if "empty_mask_path" not in df.columns:
        df["empty_mask_path"] = ""
    df["empty_mask_path"] = df["empty_mask_path"].fillna("").astype(str)
    listed = [(i, p) for i, p in df["mask_path"].items() if p and Path(p).is_file()]
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:  # decoding frees the GIL
        verdicts = list(pool.map(_mask_verdict, (p for _, p in listed)))
    empty = [i for (i, _), v in zip(listed, verdicts) if v is False]
    unreadable = [v for v in verdicts if isinstance(v, str)]
    if unreadable:
        raise ManifestError(f"{len(unreadable)} mask file(s) unusable: "
                            f"{_shown(unreadable, 3, '; ')}", source)
    df.loc[empty, "empty_mask_path"] = df.loc[empty, "mask_path"]
    df.loc[empty, "mask_path"] = ""


def _mask_verdict(path: str) -> bool | str:
    """Whether a mask file holds an ROI, or why it cannot be used."""
    from core.datasets.roi import mask_file_has_roi

    try:
        return mask_file_has_roi(path)
    except MaskError as err:
        return str(err)


def _shown(items: list[str], k: int, sep: str) -> str:
    """The first ``k`` items for a message, then how many more there are."""
    more = f"{sep}… {len(items) - k} more" if len(items) > k else ""
    return sep.join(items[:k]) + more


def _check_patients_on_one_side(df: pd.DataFrame, source: str | Path) -> None:
    """Refuse a patient listed in both splits: the model would be tested on what it saw."""
    sides = df.groupby("patient_id")["split"].nunique()
    both = sorted(sides.index[sides > 1].astype(str))
    if both:
        raise ManifestError(
            f"{len(both)} patient(s) in both train and test: {_shown(both, 10, ', ')}; "
            "put all of a patient's images in one split", source)


def read_manifest_csv(path: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Read a user's manifest CSV; paths are relative to the CSV's folder."""
    path = Path(path)
    return finalize(read_csv_strict(path), path.parent, source=path, check_files=check_files)
