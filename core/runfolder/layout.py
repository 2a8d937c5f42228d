"""The run folder: where a training run keeps everything, and how to read it.

``checkpoints/<name>/``::

    run.json            options, dataset + hash, code version, times, status,
                        the preprocessing spec every pixel of the run is made by
                        (``preprocess``, core.pixels.spec), per cell: status
                        (done|skipped|pending), reason, weights and meta.json SHA-256; per
                        grid (``calibration``): its calibration and validation figures
    progress.jsonl      one JSON object per line: cell, epoch, step, loss, img_s, eta_s
    <cell>/weights.safetensors   best-epoch weights of that cell
    <cell>/meta.json    n_train/n_val, threshold and calibration (SHA-256 in run.json),
                        validation metrics, history, the validation logits they were fitted on
    <model>/split.json  training and validation image ids and patients (core.runfolder.splits)
    <cell>/last.safetensors + <cell>/last.json   epoch checkpoint for --resume
    predictions.csv     one row per (test image, mode); see core.evaluate
    metrics.json        core.evaluate's output
    cam_pointing.json   Grad-CAM pointing on the test split (written after prediction)
    external/<dataset>-<split>/   evaluate --dataset: predictions.csv, cam_pointing.json,
                        dataset.json, metrics.json of another dataset (core.predict.external)
    cv.json             cross-validation results when --cv was given

Every file is written atomically (core.runfolder.atomic).  This module
only reads; training writes through :mod:`core.train`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_FILE = "run.json"
PROGRESS_FILE = "progress.jsonl"
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
CV_FILE = "cv.json"
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"
PAPER_COUNTS_KEY = "threshold_counts_at_0.5"
"""meta.json: validation counts (tp, fn, tn, fp) at p >= 0.5, beside ``threshold_counts`` at the
tuned threshold, so either operating point can be stated by what it caught."""
LAST_WEIGHTS_FILE = "last.safetensors"
LAST_STATE_FILE = "last.json"


def checkpoints_root() -> Path:
    """``$MAMMOROUTE_CHECKPOINTS`` or ``<repo>/checkpoints``."""
    env = os.environ.get("MAMMOROUTE_CHECKPOINTS")
    return Path(env) if env else REPO_ROOT / "checkpoints"


def data_root() -> Path:
    """``$MAMMOROUTE_DATA`` or ``<repo>/data``: where datasets live, and the only place
    the app reads them from."""
    env = os.environ.get("MAMMOROUTE_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError("file not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"unreadable JSON ({err})", path) from None


@dataclass(frozen=True)
class RunSummary:
    """What the UI and the command line need to know of a run without loading it."""

    path: Path
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def synthetic(self) -> bool:
        return bool(self.info.get("synthetic", False))

    @property
    def has_metrics(self) -> bool:
        return (self.path / METRICS_FILE).is_file()

    def cell_dir(self, cell_name: str) -> Path:
        return self.path / cell_name


VALIDATION_EVIDENCE_GRIDS: tuple[str, ...] = ("baseline", "roi")
"""The grids whose validation AUC ranks runs, in order of preference."""


def evidence(run: RunSummary) -> float:
    """The lower 95 % bound of the run's validation ROC AUC (its baseline grid's, else
    its ROI-aware grid's, as run.json's ``calibration`` records it); -inf without one.

    Validation, never test: picking the run with the best test AUC would serve
    the luckiest of several seeds and leave its test figure an optimistic
    one.  The lower bound, not the AUC itself: a small validation set can
    show a high AUC by chance, and its wide interval says so.
    """
    grids = run.info.get("calibration") or {}
    for grid in VALIDATION_EVIDENCE_GRIDS:
        auc = ((grids.get(grid) or {}).get("validation") or {}).get("roc_auc")
        try:
            value = float(auc["ci_low"])
        except (KeyError, TypeError, ValueError):
            continue
        if value == value:  # NaN: no evidence
            return value
    return float("-inf")


def recommended_run(found: list[RunSummary]) -> RunSummary | None:
    """The complete run to open first: the best validation evidence, newest on ties."""
    complete = [r for r in found if r.status == "complete"]
    if not complete:
        return found[0] if found else None
    order = sorted(complete, key=lambda r: str(r.info.get("started", "")), reverse=True)
    return max(order, key=evidence)  # max keeps the first (newest) of equals


def read_run(path: str | Path) -> RunSummary:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError("run folder not found", path)
    return RunSummary(path, read_json(path / RUN_FILE))


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    """All readable runs under ``root``, newest first; unreadable ones are skipped."""
    root = Path(root) if root is not None else checkpoints_root()
    runs = []
    for child in sorted(root.glob("*/" + RUN_FILE)):
        try:
            runs.append(read_run(child.parent))
        except CheckpointError:
            continue
    return sorted(runs, key=lambda r: str(r.info.get("started", "")), reverse=True)


def read_progress(path: str | Path) -> list[dict[str, Any]]:
    """Progress events of a run; a half-written last line (a live run) is ignored."""
    file = Path(path) / PROGRESS_FILE
    if not file.is_file():
        return []
    events = []
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
