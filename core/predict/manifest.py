"""Prediction for a whole manifest: the long table evaluation scores."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.datasets.manifest import label_codes, roi_flags
from core.errors import MammoError
from core.evaluate.calibration import IDENTITY
from core.evaluate.roifinder import PROPOSED_MODE
from core.grid import MODES, VIEWS, Mode, Route
from core.pixels.cache import load_preprocessed
from core.predict.study import BATCH_SIZE, Predictor
from core.predict.types import PREDICTION_COLUMNS


def manifest_records(df: pd.DataFrame) -> pd.DataFrame:
    """The columns prediction needs: view name, ROI flag and 0/1 label per row."""
    rec = pd.DataFrame({
        "image_path": df["image_path"].astype(str),
        "patient_id": df["patient_id"].astype(str),
        "study_id": df["study_id"].astype(str),
    })
    if "view_name" in df.columns:
        rec["view"] = df["view_name"].astype(str)
    else:
        rec["view"] = (df["laterality"].astype(str).str.strip().str.upper()
                       + df["view"].astype(str).str.strip().str.upper())
    rec["roi"] = roi_flags(df)
    rec["label"] = label_codes(df["label"], error=MammoError)
    bad = sorted(set(rec["view"]) - set(VIEWS))
    if bad:
        raise MammoError(f"unknown view(s) {bad[:5]} in the manifest")
    return rec.reset_index(drop=True)


def _chunks(indices: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(indices), size):
        yield list(indices[start:start + size])


def predict_manifest(run_dir: str | Path | Predictor, df: pd.DataFrame,
                     device: str | torch.device = "auto", batch_size: int = BATCH_SIZE
                     ) -> pd.DataFrame:
    """Long prediction table for every manifest row: one row per (image, mode).

    Routing uses the row's ``roi`` flag (not mask pixels); images come through
    :func:`core.pixels.cache.load_preprocessed` (cached).  Images are loaded once
    per chunk of one view and shared by both grids.  Rows a mode cannot
    predict (no model, no stand-in) are left out, because
    :mod:`core.evaluate` refuses missing probabilities; their count is in
    ``result.attrs["unpredicted"]``.  Columns: :data:`PREDICTION_COLUMNS`;
    ``p_malignant`` is the served, temperature-scaled probability and
    ``p_uncalibrated`` the model's own sigmoid, kept so evaluation can show
    what scaling changed.  A run with an ROI finder adds the ROI-aware grid
    routed by the finder's call instead of the annotation (mode
    ``roi_proposed``; ``roi`` stays the annotation) and its per-image table
    in ``result.attrs["roi_proposals"]`` (:mod:`core.roifinder.proposals`).
    """
    predictor = run_dir if isinstance(run_dir, Predictor) else Predictor(run_dir, device)
    rec = manifest_records(df)
    proposals = None
    if proposes(predictor):
        from core.roifinder.proposals import propose_manifest

        proposals = propose_manifest(predictor.finder, df.reset_index(drop=True))
    rows: list[dict[str, Any]] = []
    unpredicted = 0
    for view in VIEWS:
        order = rec.index[rec["view"] == view].tolist()
        order.sort(key=lambda i: bool(rec.at[i, "roi"]))
        for chunk in _chunks(order, batch_size):
            images = np.stack([load_preprocessed(rec.at[i, "image_path"], predictor.params)
                               for i in chunk])
            routed = proposals["roi_present"] if proposals is not None else None
            unpredicted += predict_rows(predictor, rec, chunk, images, rows, routed)
    return prediction_table(rows, unpredicted, proposals)


def proposes(predictor: Predictor) -> bool:
    """Whether a manifest's prediction adds the grid routed by the run's ROI finder."""
    return predictor.finder is not None and "roi" in predictor.modes


def predict_rows(predictor: Predictor, rec: pd.DataFrame, chunk: list[int], images: np.ndarray,
                 rows: list[dict[str, Any]], routed_roi: pd.Series | None = None) -> int:
    """Append every grid's rows for the :func:`manifest_records` rows ``chunk`` (their model
    inputs ``images``) and return how many (image, grid) pairs no model serves.

    ``routed_roi`` (the finder's call by row, when :func:`proposes`) adds the ROI-aware
    grid routed by it.  The one place an image is routed and scored, whichever process
    (this one, or a Ray worker: :mod:`core.scale.batch`) runs it.
    """
    unpredicted = sum(_predict_chunk(predictor, rec, chunk, images, mode, rows)
                      for mode in predictor.modes)
    if routed_roi is not None:
        _predict_chunk(predictor, rec, chunk, images, "roi", rows, routed_roi, PROPOSED_MODE)
    return unpredicted


def prediction_table(rows: list[dict[str, Any]], unpredicted: int,
                     proposals: pd.DataFrame | None) -> pd.DataFrame:
    """The long table of :func:`predict_rows`' rows, in manifest then grid order."""
    out = pd.DataFrame(rows, columns=["_order", "_mode_order", *PREDICTION_COLUMNS])
    out = out.sort_values(["_order", "_mode_order"]).drop(columns=["_order", "_mode_order"])
    out = out.reset_index(drop=True)
    out.attrs["unpredicted"] = unpredicted
    out.attrs["roi_proposals"] = proposals
    return out


def write_predictions(folder: str | Path, predictions: pd.DataFrame) -> None:
    """``predictions.csv`` (and the finder's ``roi_proposals.csv`` when the run has one)
    into ``folder``, each written atomically."""
    from core.evaluate.constants import PREDICTIONS_FILE
    from core.roifinder.proposals import write_proposals
    from core.runfolder.atomic import atomic_write_bytes

    atomic_write_bytes(Path(folder) / PREDICTIONS_FILE, predictions.to_csv(index=False).encode())
    write_proposals(Path(folder), predictions)


def _predict_chunk(predictor: Predictor, rec: pd.DataFrame, chunk: list[int],
                   images: np.ndarray, mode: Mode, rows: list[dict[str, Any]],
                   routed_roi: pd.Series | None = None, label: str | None = None) -> int:
    """Append one mode's rows for a chunk; returns how many could not be predicted.

    ``routed_roi`` (by row) routes instead of the annotation, and ``label``
    then names the rows' mode (the finder-routed grid)."""
    groups: dict[str, list[int]] = defaultdict(list)
    routes: dict[int, Route] = {}
    for pos, i in enumerate(chunk):
        has_roi = rec.at[i, "roi"] if routed_roi is None else routed_roi.at[i]
        routes[i] = predictor.route(rec.at[i, "view"], bool(has_roi), mode)
        if routes[i].cell is not None:
            groups[routes[i].cell].append(pos)
    for cell, positions in groups.items():
        logits = predictor.logits(cell, images[positions])
        calibration = predictor.calibrations[cell]
        probs = calibration.probability(logits)
        for pos, prob, raw in zip(positions, probs, IDENTITY.probability(logits)):
            i = chunk[pos]
            rows.append({
                "_order": i, "_mode_order": MODES.index(mode) + (len(MODES) if label else 0),
                **rec.loc[i, ["image_path", "patient_id", "study_id", "view"]].to_dict(),
                "roi": bool(rec.at[i, "roi"]), "label": int(rec.at[i, "label"]),
                "mode": label or mode, "cell": cell, "fallback": routes[i].fallback,
                "p_malignant": float(prob), "threshold": predictor.thresholds[cell],
                "p_uncalibrated": float(raw), "temperature": calibration.temperature,
                "logit_offset": calibration.offset,
            })
    return sum(1 for i in chunk if routes[i].cell is None)
