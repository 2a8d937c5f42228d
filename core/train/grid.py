"""The grid runner: :func:`train_grid`, then prediction and evaluation of the test split."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from core.errors import MammoError
from core.grid import Cell
from core.models import pick_device
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_bytes, atomic_write_json, sweep_partial_writes
from core.train.cancel import TrainingCancelled, cancel_on_signals
from core.train.checkpoint import done_result
from core.train.config import TrainConfig, now_iso, pretrained_digest
from core.train.cv import cross_validate, cv_complete, cv_plan
from core.train.data import ImageBank, steps_per_epoch
from core.train.device import setup_threads
from core.train.lock import run_lock
from core.train.planned import plan_cells
from core.train.progress import Progress, ProgressCallback
from core.train.recipe import recipe_steps, train_recipe
from core.train.runinfo import load_manifest, open_run, write_run


def _predict_and_evaluate(out_dir: Path, test_df: pd.DataFrame, info: dict[str, Any],
                          device: torch.device) -> None:
    """predictions.csv via core.predict, metrics.json via core.evaluate.

    Any failure here (a missing module included) fails the run: a run marked
    complete must hold the predictions and metrics it promises.
    """
    if test_df.empty:
        info["evaluation"] = "no test images in the dataset: nothing predicted"
        return
    if not any(c.get("status") == "done" for c in info["cells"].values()):
        info["evaluation"] = "no cell was trained: nothing to predict"
        return
    from core.evaluate import evaluate_run
    from core.predict import Predictor, predict_manifest
    from core.predict.cam_pointing import CAM_POINTING_FILE, run_cam_pointing

    write_run(out_dir, info)  # the predictor reads the finished cells from run.json
    predictor = Predictor(out_dir, device)
    predictions = predict_manifest(predictor, test_df)
    info["unpredicted"] = int(predictions.attrs.get("unpredicted", 0))
    atomic_write_bytes(out_dir / runs.PREDICTIONS_FILE, predictions.to_csv(index=False).encode())
    from core.roifinder.proposals import write_proposals

    write_proposals(out_dir, predictions)  # the ROI finder's per-image table, when it has one
    # Grad-CAM pointing needs the models and the ROI geometry, both at hand only here;
    # evaluation (which reads tables, not models) merges the file into metrics.json.
    atomic_write_json(out_dir / CAM_POINTING_FILE, run_cam_pointing(predictor, test_df))
    evaluate_run(out_dir)
    info["evaluation"] = "complete"


@dataclass
class RunWork:
    """Everything a run trains, as :func:`train_grid` planned it, for an :data:`Executor`."""

    train_df: pd.DataFrame
    folds: list[tuple[int, pd.DataFrame, pd.DataFrame]]  # CV folds still to train (none: no CV)
    out_dir: Path
    config: TrainConfig
    reporter: Progress
    bank: ImageBank
    info: dict[str, Any]  # run.json's dict, written as parts finish
    device: torch.device


Executor = Callable[[RunWork], None]
"""Trains a run's parts (CV folds, warm start, cells, ROI finder) into its folder and
run.json: :func:`train_serially` here, or :func:`core.scale.train.ray_executor`'s tasks."""


def train_serially(work: RunWork) -> None:
    """One process, in order: the CV folds (cv.json), the run's recipe, the ROI finder."""
    work.info["executor"] = {"kind": "local"}
    if work.folds:
        atomic_write_json(work.out_dir / runs.CV_FILE,
                          cross_validate(work.folds, work.out_dir, work.config, work.bank,
                                         work.reporter, work.device))
    train_recipe(work.train_df, work.out_dir, work.config, work.reporter, work.bank, work.info)
    if work.config.roi_model:
        _train_roi_model(work.train_df, work.out_dir, work.config, work.device, work.info,
                         work.reporter)


def train_grid(dataset: str | Path | pd.DataFrame, out_dir: str | Path,
               config: TrainConfig, progress: ProgressCallback | None = None,
               executor: Executor = train_serially) -> runs.RunSummary:
    """Train a whole run (CV first when asked), predict its test split, evaluate it.

    Holds the run folder's lock throughout.  On SIGTERM/SIGINT the run is
    marked ``cancelled``, on any error ``failed`` (both resumable with
    ``config.resume``), and the exception propagates.  ``executor`` trains the
    parts (one process by default); prediction and evaluation run here.
    """
    config.check()
    config = replace(config, pretrained_sha256=pretrained_digest(config.pretrained))
    df, source = load_manifest(dataset, config.load_options())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir), cancel_on_signals():
        sweep_partial_writes(out_dir)  # a process killed mid-write (SIGKILL, power) left them
        device = pick_device(config.device)
        info = open_run(out_dir, df, source, config, device)
        write_run(out_dir, info)
        reporter = Progress(out_dir, 1, progress)
        try:
            _run(df, out_dir, config, device, info, reporter, executor)
        except TrainingCancelled as err:
            close_run(out_dir, info, "cancelled", reporter, str(err), "cancelled")
            raise TrainingCancelled("training cancelled; continue it with --resume", out_dir) from None
        except BaseException as err:
            message = str(err) if isinstance(err, MammoError) else f"{type(err).__name__}: {err}"
            close_run(out_dir, info, "failed", reporter, message, "run_failed")
            raise
        close_run(out_dir, info, "complete", reporter, None, "run_done")
    return runs.read_run(out_dir)


def close_run(out_dir: Path, info: dict[str, Any], status: str, reporter: Progress,
              message: str | None, event: str) -> None:
    """run.json's final status and the last event; a second call with the same status is a
    no-op (an executor may close a cancelled run before its own slow teardown)."""
    if info.get("status") == status and info.get("finished"):
        return
    info.update(status=status, finished=now_iso())
    for entry in [*info["cells"].values(), info.get("roi_model") or {}]:
        if entry.get("status") == "running":
            entry["status"] = "pending"
    if message:
        info["error"] = message
    write_run(out_dir, info)
    reporter.emit(event, message=message)


def _run(df: pd.DataFrame, out_dir: Path, config: TrainConfig, device: torch.device,
         info: dict[str, Any], reporter: Progress, executor: Executor) -> None:
    setup_threads(device)
    train_df = df[df["split"] == "train"].reset_index(drop=True)
    test_df = df[df["split"] == "test"].reset_index(drop=True)
    for p in plan_cells(train_df, config):
        info["cells"].setdefault(p.cell.name, {"status": "pending"})
    write_run(out_dir, info)
    folds = cv_plan(train_df, config) if config.cv and not cv_complete(out_dir, config) else []
    reporter.total = max(1, recipe_steps(train_df, config)
                         + sum(recipe_steps(fit, config) for _, fit, _ in folds)
                         + finder_steps(train_df, config))
    bank = ImageBank(list(train_df["image_path"]), config.preprocess_params(), config.workers)
    for name, res in info["cells"].items():  # a done cell is kept only if its hashes still hold
        if res.get("status") == "done" and done_result(
                Cell.parse(name), out_dir / name, res.get("sha256"), res.get("meta_sha256")) is None:
            res["status"] = "pending"
    executor(RunWork(train_df, folds, out_dir, config, reporter, bank, info, device))
    _predict_and_evaluate(out_dir, test_df, info, device)


def _train_roi_model(train_df: pd.DataFrame, out_dir: Path, config: TrainConfig,
                     device: torch.device, info: dict[str, Any], reporter: Progress) -> None:
    """The ROI finder (``--roi-model``) after the cells; ``--resume`` keeps a finished one
    whose weights still hash as run.json records."""
    from core.roifinder.train import RUN_KEY, finder_config, train_finder

    previous = info.get(RUN_KEY) or {}
    info[RUN_KEY] = {**previous, "status": "running"}
    write_run(out_dir, info)
    reporter.start(RUN_KEY, RUN_KEY)
    planned = finder_steps(train_df, config)
    per_epoch, until = planned // config.roi_epochs, reporter.done + planned

    def emit(event: str, **fields: Any) -> None:
        if event == "roi_epoch":
            reporter.advance(per_epoch, 0)
        reporter.emit(event, **fields)

    info[RUN_KEY] = train_finder(train_df, out_dir, finder_config(config), device, config.resume,
                                 previous.get("sha256"), emit)
    reporter.skip(max(0, until - reporter.done))  # a kept or skipped finder: nothing left
    record_finder(out_dir, info, reporter)


def record_finder(out_dir: Path, info: dict[str, Any], reporter: Progress) -> None:
    """run.json and ``roi_model_done`` once the ROI finder's entry is in ``info``."""
    from core.roifinder.train import RUN_KEY

    write_run(out_dir, info)
    reporter.emit("roi_model_done", cell=RUN_KEY, status=info[RUN_KEY]["status"],
                  threshold=info[RUN_KEY].get("threshold"), reason=info[RUN_KEY].get("reason"))


def finder_steps(train_df: pd.DataFrame, config: TrainConfig) -> int:
    """The ROI finder's optimiser steps (0 without ``--roi-model``), so the ETA waits for it."""
    if not config.roi_model:
        return 0
    from core.roifinder.data import carve
    from core.roifinder.train import finder_config

    finder = finder_config(config)
    fit, _ = carve(train_df, finder.val_fraction, finder.seed)
    return finder.epochs * steps_per_epoch(len(fit), finder.batch_size)
