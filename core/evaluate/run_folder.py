"""Evaluating a run folder: ``predictions.csv`` + ``run.json`` + ``cv.json`` → ``metrics.json``.

An external validation (:mod:`core.predict.external`) keeps its own table and
metrics under ``external/<dataset>-<split>/`` and is evaluated the same way.

The only module that touches a run folder; everything it computes comes from
the table-level modules, so evaluation can be re-run and tested without a GPU.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.evaluate.constants import (
    CAM_POINTING_FILE,
    CV_FILE,
    DATASET_FILE,
    EXTERNAL_DIR,
    METRICS_FILE,
    PREDICTIONS_FILE,
    RUN_FILE,
)
from core.evaluate.cv import cv_recipe, summarize_cv
from core.evaluate.paper import paper_reported
from core.evaluate.roifinder import PROPOSALS_FILE, read_proposals, roi_model_metrics
from core.evaluate.score import evaluate_predictions
from core.evaluate.table import read_predictions
from core.runfolder.atomic import atomic_write_json, jsonable


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"unreadable JSON ({err})", path) from None


def _run_header(run: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of run.json (dataset, arch, img_size, …) for headers."""
    return {k: v for k, v in run.items() if isinstance(v, (str, int, float, bool)) or v is None}


def _read_run(run_dir: Path) -> dict[str, Any]:
    """The run folder's run.json (``{}`` when absent), checked where evaluation relies on it."""
    if not run_dir.is_dir():
        raise CheckpointError("run folder not found", run_dir)
    run = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    if not isinstance(run, Mapping):
        raise CheckpointError("expected a JSON object", run_dir / RUN_FILE)
    train_counts = run.get("train_counts")
    if train_counts is not None and not isinstance(train_counts, Mapping):
        raise CheckpointError("'train_counts' must be {\"benign\": n, \"malignant\": m}",
                              run_dir / RUN_FILE)
    return dict(run)


def _evaluate_folder(folder: Path, run: Mapping[str, Any], n_boot: int, seed: int
                     ) -> dict[str, Any]:
    """Metrics of ``folder/predictions.csv``, with ``folder/cam_pointing.json`` when present.

    The majority row uses the run's ``train_counts``: the class a model would
    guess is the one it was trained on, whichever dataset it is tested on.
    """
    pred_path = folder / PREDICTIONS_FILE
    df = read_predictions(pred_path)
    result = evaluate_predictions(df, run.get("train_counts"), n_boot=n_boot, seed=seed,
                                  source=pred_path)
    pointing_path = folder / CAM_POINTING_FILE
    if pointing_path.is_file():  # written where the models ran (training, external validation)
        result["cam_pointing"] = _read_json(pointing_path)
    proposals_path = folder / PROPOSALS_FILE
    if proposals_path.is_file():  # the ROI finder's per-image table, from the grid runner
        result.update(roi_model_metrics(read_proposals(proposals_path), n_boot, seed))
    return result


def evaluate_run(run_dir: str | Path, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Evaluate ``checkpoints/<name>/predictions.csv`` and write ``metrics.json``.

    ``run.json`` (optional) supplies the header and ``train_counts`` for the
    majority row; ``cv.json`` (optional) is summarised as mean ± sd;
    ``cam_pointing.json`` (optional) is included as ``cam_pointing``.
    """
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    result = _evaluate_folder(run_dir, run, n_boot, seed)
    result["run"] = {"name": run_dir.name, **_run_header(run)}
    paper = paper_reported(run.get("dataset"), run.get("arch"))
    if paper is not None:
        result["paper_reported"] = paper
    cv_path = run_dir / CV_FILE
    if cv_path.is_file():
        raw_cv = _read_json(cv_path)
        result["cv"] = summarize_cv(raw_cv, cv_path)
        result["cv_recipe"] = cv_recipe(raw_cv)
    result = jsonable(result)
    atomic_write_json(run_dir / METRICS_FILE, result)
    return result


def external_folder(run_dir: str | Path, name: str) -> Path:
    """Where an external validation of a run lives: ``<run>/external/<name>/``."""
    return Path(run_dir) / EXTERNAL_DIR / name


def evaluate_external(run_dir: str | Path, name: str, n_boot: int = 1000, seed: int = 0
                      ) -> dict[str, Any]:
    """Evaluate ``<run>/external/<name>/predictions.csv`` into that folder's ``metrics.json``.

    The run's own ``metrics.json`` is never touched: an external dataset is a
    different test, not a new version of the run's result.  ``dataset.json``
    in the folder (written by :mod:`core.predict.external`) names the dataset.  The
    paper's figures and the run's CV summary belong to the run's own data and
    are left out.
    """
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    folder = external_folder(run_dir, name)
    result = _evaluate_folder(folder, run, n_boot, seed)
    result["run"] = {"name": run_dir.name, **_run_header(run)}
    if (folder / DATASET_FILE).is_file():
        result["dataset"] = _read_json(folder / DATASET_FILE)
    result = jsonable(result)
    atomic_write_json(folder / METRICS_FILE, result)
    return result
