"""Where served probabilities and thresholds are fitted: per grid, per cell only on a large set.

A cell's validation images are a share of one patient-grouped carve
(:mod:`core.train.carve`): on a 200-study VinDr-like set a per-view cell gets
about 20 of them with two or three cancers.  A temperature and offset fitted
on that many images are mostly noise, and the prior that keeps them sane
(:data:`core.evaluate.calibration.PRIOR_SD`) also keeps them near "no
change", so a class-balanced model's inflated probabilities were served
almost as they were (ECE 0.21 served, 0.23 unscaled on a fresh moderate
phantom).  The grid's validation images together (each scored by the model
of the cell it is routed to, which is what serving does) are five to ten
times as many, and they are exactly the population whose served numbers a
reader compares with outcomes: one :class:`Calibration` per grid is fitted
there.  A cell whose own validation images hold at least
:data:`CELL_MIN_PER_CLASS` of each class (real VinDr's large ROI cells, say)
is fitted on its own, because there its data outweigh the pooled fit.

One calibration per grid is monotone in every cell's logit alike, so it
leaves the grid's pooled ranking, hence its validation and test AUC, as the
logits had it.  Each threshold is then chosen again on the served scale, on
the same images as before, so it cuts between the same two images.

Each cell's ``meta.json`` keeps the logits the fits need
(``calibration_data``), so the grid's step is a function of the run folder
and a resumed run repeats it exactly; ``meta_sha256`` in ``run.json`` covers
the rewritten file (:mod:`core.predict.study` refuses a hand-edited one).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluate.calibration import (
    IDENTITY,
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_calibration,
)
from core.evaluate.constants import DEFAULT_THRESHOLD
from core.grid import Cell
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_json
from core.train.config import CellResult
from core.train.metrics import operating_point, youden_threshold

CELL_MIN_PER_CLASS = 30
"""Validation images of each class a cell needs before it is calibrated on its own."""


def own_calibration(z_val: np.ndarray, y_val: np.ndarray) -> Calibration | None:
    """The cell's own fit when its validation images support one, else None (the grid's)."""
    y = np.asarray(y_val).astype(int)
    if min(int((y == 0).sum()), int((y == 1).sum())) < CELL_MIN_PER_CLASS:
        return None
    return fit_calibration(z_val, y)


def calibration_data(z_val: np.ndarray, y_val: np.ndarray, z_thr: np.ndarray,
                     y_thr: np.ndarray, threshold_source: str) -> dict[str, Any]:
    """What meta.json keeps so the grid can refit: validation logits, and the training
    logits too when the threshold had to be chosen on them."""
    data: dict[str, Any] = {"val_logits": _floats(z_val), "val_labels": _ints(y_val)}
    if threshold_source != "val":
        data.update(threshold_logits=_floats(z_thr), threshold_labels=_ints(y_thr))
    return data


def serving_fields(calibration: Calibration, scope: str, data: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """meta.json's served block under ``calibration``: threshold (max Youden J on the served
    scale), what it did, the calibration itself and the validation ECE before and after."""
    z_val, y_val = np.asarray(data["val_logits"], float), np.asarray(data["val_labels"], int)
    z_thr = np.asarray(data.get("threshold_logits", data["val_logits"]), float)
    y_thr = np.asarray(data.get("threshold_labels", data["val_labels"]), int)
    p_thr = calibration.probability(z_thr)
    threshold = youden_threshold(y_thr, p_thr)
    fields: dict[str, Any] = {
        "threshold": threshold, **operating_point(y_thr, p_thr, threshold),
        runs.PAPER_COUNTS_KEY: operating_point(y_thr, p_thr, DEFAULT_THRESHOLD)["threshold_counts"],
        "temperature": calibration.temperature, "logit_offset": calibration.offset,
        "calibration_scope": scope}
    if len(np.unique(y_val)) == 2:
        fields.update(val_ece_unscaled=expected_calibration_error(IDENTITY.probability(z_val), y_val),
                      val_ece_scaled=expected_calibration_error(calibration.probability(z_val), y_val))
    return fields


def calibrate_grids(out_dir: Path, results: dict[str, CellResult]) -> dict[str, Any]:
    """Fit each grid's calibration on its pooled validation images and serve it from every
    cell not calibrated on its own; ``{mode: record}`` for run.json (``calibration``).

    Updates the done cells' meta.json and ``results`` in place.
    """
    record: dict[str, Any] = {}
    by_mode: dict[str, list[str]] = {}
    for name, result in results.items():
        if result.status == "done":
            by_mode.setdefault(Cell.parse(name).mode, []).append(name)
    for mode, names in by_mode.items():
        metas = {n: runs.read_json(out_dir / n / runs.META_FILE) for n in names}
        z = np.concatenate([np.asarray(m["calibration_data"]["val_logits"], float)
                            for m in metas.values()])
        y = np.concatenate([np.asarray(m["calibration_data"]["val_labels"], int)
                            for m in metas.values()])
        grid = fit_calibration(z, y)
        p_served = []
        for name, meta in metas.items():
            if meta.get("calibration_scope") != "cell":
                scope = "grid" if grid != IDENTITY else "none"
                meta.update(serving_fields(grid, scope, meta["calibration_data"]))
                _rewrite(out_dir / name, meta, results[name])
            served = Calibration(meta["temperature"], meta["logit_offset"])
            p_served.append(served.probability(meta["calibration_data"]["val_logits"]))
        p = np.concatenate(p_served) if p_served else np.zeros(0)
        record[mode] = {"temperature": grid.temperature, "logit_offset": grid.offset,
                        "fitted_on": "the grid's validation images, each scored by its cell",
                        "own": sorted(n for n, m in metas.items()
                                      if m.get("calibration_scope") == "cell"),
                        "validation": validation_evidence(y, p)}
    return record


def validation_evidence(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """The grid's served validation figures: ROC AUC with a 95 % interval, ECE, Brier.

    The interval is Hanley & McNeil's (1982) normal approximation over
    images; it knows no patients, so it is a little narrow, but it is fixed
    before the test split is looked at, which is what choosing a run needs.
    """
    from core.evaluate import roc_auc

    y = np.asarray(y).astype(int)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    out: dict[str, Any] = {"n": int(len(y)), "n_malignant": n1}
    if not (n1 and n0):
        return {**out, "roc_auc": None}
    auc = float(roc_auc(y, p))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0)
    half = 1.96 * math.sqrt(max(var, 0.0))
    return {**out, "roc_auc": {"value": auc, "ci_low": max(0.0, auc - half),
                               "ci_high": min(1.0, auc + half)},
            "ece": expected_calibration_error(p, y), "brier": brier_score(p, y)}


def _rewrite(cell_dir: Path, meta: dict[str, Any], result: CellResult) -> None:
    from core.runfolder.integrity import file_sha256

    atomic_write_json(cell_dir / runs.META_FILE, meta)
    result.threshold, result.temperature = meta["threshold"], meta["temperature"]
    result.logit_offset = meta["logit_offset"]
    result.meta_sha256 = file_sha256(cell_dir / runs.META_FILE)


def _floats(values: Any) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values, float).ravel()]


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]
