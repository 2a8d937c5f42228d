"""Evaluating a run folder: ``predictions.csv`` + ``run.json`` + ``cv.json`` → ``metrics.json``.

The only module that touches a run folder; everything it computes comes from
the table-level modules, so evaluation can be re-run and tested without a GPU.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.evaluate.constants import CV_FILE, METRICS_FILE, PREDICTIONS_FILE, RUN_FILE
from core.evaluate.cv import summarize_cv
from core.evaluate.jsonio import _jsonable, atomic_write_json
from core.evaluate.paper import paper_reported
from core.evaluate.score import evaluate_predictions
from core.evaluate.table import read_predictions


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"unreadable JSON ({err})", path) from None


def _run_header(run: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of run.json (dataset, arch, img_size, …) for headers."""
    return {k: v for k, v in run.items() if isinstance(v, (str, int, float, bool)) or v is None}


def evaluate_run(run_dir: str | Path, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Evaluate ``checkpoints/<name>/predictions.csv`` and write ``metrics.json``.

    ``run.json`` (optional) supplies the header and ``train_counts`` for the
    majority row; ``cv.json`` (optional) is summarised as mean ± sd.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError("run folder not found", run_dir)
    pred_path = run_dir / PREDICTIONS_FILE
    df = read_predictions(pred_path)
    run = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    if not isinstance(run, Mapping):
        raise CheckpointError("expected a JSON object", run_dir / RUN_FILE)
    train_counts = run.get("train_counts")
    if train_counts is not None and not isinstance(train_counts, Mapping):
        raise CheckpointError("'train_counts' must be {\"benign\": n, \"malignant\": m}",
                              run_dir / RUN_FILE)
    result = evaluate_predictions(df, train_counts, n_boot=n_boot, seed=seed, source=pred_path)
    result["run"] = {"name": run_dir.name, **_run_header(run)}
    paper = paper_reported(run.get("dataset"), run.get("arch"))
    if paper is not None:
        result["paper_reported"] = paper
    cv_path = run_dir / CV_FILE
    if cv_path.is_file():
        result["cv"] = summarize_cv(_read_json(cv_path), cv_path)
    result = _jsonable(result)
    atomic_write_json(run_dir / METRICS_FILE, result)
    return result
