"""The prediction table (``predictions.csv``): reading, validation, normalisation.

Evaluation reads this table, never a model; every problem with it is a
:class:`~core.errors.CheckpointError` that names the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets.manifest import label_codes
from core.errors import CheckpointError
from core.evaluate.constants import REQUIRED_COLUMNS

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
MODE_ALIASES = {"baseline": "baseline", "roi": "roi", "roi_aware": "roi", "roi-aware": "roi",
                "roi_proposed": "roi_proposed"}  # the last: ROI-aware routed by the ROI finder


def _parse_bool(series: pd.Series, column: str, source: Any) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    bad = sorted(set(text[~text.isin(_TRUE | _FALSE)]))
    if bad:
        raise CheckpointError(f"column {column!r} has non-boolean value(s) {bad[:5]}", source)
    return text.isin(_TRUE)


def _parse_float(series: pd.Series, column: str, source: Any) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    if values.isna().any():
        raise CheckpointError(f"column {column!r} has missing or non-numeric values", source)
    return values.astype(float)


def clean_predictions(df: pd.DataFrame, source: Any = None) -> pd.DataFrame:
    """Validate and normalise a long prediction table; errors name ``source``."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CheckpointError(f"missing column(s): {', '.join(missing)}", source)
    df = df.copy()
    for col in ("image_path", "patient_id", "study_id", "view", "cell"):
        df[col] = df[col].astype(str).str.strip()
    df["mode"] = df["mode"].astype(str).str.strip().str.lower().map(MODE_ALIASES)
    if df["mode"].isna().any():
        raise CheckpointError("column 'mode' must be 'baseline', 'roi' or 'roi_proposed'", source)
    df["roi"] = _parse_bool(df["roi"], "roi", source)
    df["fallback"] = _parse_bool(df["fallback"], "fallback", source)
    df["label"] = label_codes(df["label"], source, CheckpointError)
    df["p_malignant"] = _parse_float(df["p_malignant"], "p_malignant", source)
    df["threshold"] = _parse_float(df["threshold"], "threshold", source)
    dup = df.duplicated(["image_path", "mode"])
    if dup.any():
        raise CheckpointError(
            f"{int(dup.sum())} duplicate (image_path, mode) row(s), e.g. "
            f"{df.loc[dup, 'image_path'].iloc[0]!r}", source)
    per_image = df.groupby("image_path")[["label", "roi", "patient_id"]].nunique()
    clash = per_image[(per_image > 1).any(axis=1)]
    if len(clash):
        raise CheckpointError(
            f"image {clash.index[0]!r} has different label/roi/patient in different modes", source)
    return df


def read_text_csv(path: str | Path, what: str) -> pd.DataFrame:
    """A run folder's CSV with every cell as text; ``what`` names the table in errors.

    Why text: pandas' type guessing reads patient ids "007" and "7" as one
    number, which merges two patients into one bootstrap cluster; the
    cleaners parse each typed column (labels, booleans, probabilities) themselves.
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CheckpointError(f"unreadable {what} ({err})", path) from None


def read_predictions(path: str | Path) -> pd.DataFrame:
    """The raw prediction table; a missing or unreadable file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("prediction table not found (has the run finished?)", path)
    df = read_text_csv(path, "prediction table")
    if df.empty:
        raise CheckpointError("prediction table has no rows", path)
    return df
