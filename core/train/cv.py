"""Patient-grouped K-fold cross-validation on the training split."""
from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.errors import CheckpointError, TrainingError
from core.evaluate.calibration import Calibration
from core.evaluate.cv import RECIPE_KEY
from core.grid import Mode, modes_for, serve
from core.models import create_model, load_weights
from core.runfolder import layout as runs
from core.train.config import CellResult, TrainConfig, label_targets
from core.train.data import ImageBank
from core.train.loop import predict_logits
from core.train.progress import Progress


def cv_complete(out_dir: Path, config: TrainConfig) -> bool:
    """Whether a resumed run already holds every fold of this config's cross-validation."""
    try:
        cv = runs.read_json(out_dir / runs.CV_FILE)
    except CheckpointError:
        return False
    return (config.resume and RECIPE_KEY in cv
            and all(len(cv.get(m, [])) == config.cv for m in modes_for(config.mode)))


def cv_plan(train_df: pd.DataFrame, config: TrainConfig
             ) -> list[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(fold, its training rows (the other folds), held-out rows) for each fold."""
    from core.datasets.split import grouped_folds

    try:
        fold_of = grouped_folds(train_df, config.cv, config.seed)
    except ValueError as err:
        raise TrainingError(f"--cv {config.cv}: {err}") from None
    return [(k, train_df[fold_of != k], train_df[fold_of == k]) for k in range(config.cv)]


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _fold_metrics(y: np.ndarray, p: np.ndarray, thr: np.ndarray, fold: int,
                  n_unserved: int, n_fallback: int = 0) -> dict[str, Any]:
    from core import evaluate as ev

    pred = (p >= thr).astype(int)
    out: dict[str, Any] = {"fold": fold, "n": int(len(y)), "n_malignant": int(y.sum()),
                           "n_unserved": n_unserved, "n_fallback": n_fallback}
    for name in ("sensitivity", "specificity", "f1_malignant", "f1_weighted", "accuracy",
                 "balanced_accuracy"):
        out[name] = getattr(ev, name)(y, pred) if len(y) else None
    out["roc_auc"] = ev.roc_auc(y, p) if len(y) else None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def serving_groups(held: pd.DataFrame, mode: Mode, trained: Collection[str]
                   ) -> tuple[dict[str, pd.DataFrame], int, int]:
    """``({serving cell: rows}, n_fallback, n_unserved)`` of held-out rows under ``mode``.

    Rows are routed by :func:`core.grid.serve`, the rule the test split and
    case review follow, so an image of a skipped cell is scored through the
    same stand-in here as there.
    """
    routes = [serve(view, bool(roi), mode, trained)
              for view, roi in zip(held["view_name"], held["roi"])]
    cells = pd.Series([r.cell for r in routes], index=held.index, dtype=object)
    groups = {cell: held[cells == cell] for cell in dict.fromkeys(cells.dropna())}
    return groups, sum(r.fallback for r in routes), int(cells.isna().sum())


def fold_dir(out_dir: Path, k: int) -> Path:
    """Where fold ``k`` (0-based) keeps its models: ``cv/fold-<k+1>``."""
    return out_dir / "cv" / f"fold-{k + 1}"


def cross_validate(folds: list[tuple[int, pd.DataFrame, pd.DataFrame]], out_dir: Path,
                   config: TrainConfig, bank: ImageBank, progress: Progress,
                   device: torch.device) -> dict[str, Any]:
    """Patient-grouped K-fold CV on the training split → ``{mode: [per-fold metrics]}``
    and ``recipe``, the sentence saying what each fold trained.

    Each fold trains the served recipe on the other folds
    (:func:`core.train.recipe.train_recipe`: warm start when the run has
    one, the cells, per-grid calibration), then :func:`score_folds` scores it.
    """
    from core.train.recipe import train_recipe

    trained = {}
    for k, fit, _ in folds:
        progress.context = {"fold": k + 1}  # a fold's events are not its grid cell's
        try:
            trained[k] = train_recipe(fit, fold_dir(out_dir, k), config, progress, bank, None)
        finally:
            progress.context = {}
    return score_folds(folds, trained, out_dir, config, bank, device)


def score_folds(folds: list[tuple[int, pd.DataFrame, pd.DataFrame]],
                trained: dict[int, dict[str, CellResult]], out_dir: Path, config: TrainConfig,
                bank: ImageBank, device: torch.device) -> dict[str, Any]:
    """cv.json from the folds' trained recipes (``trained[k]``: fold k's cell results).

    Each fold predicts its held-out rows at the serving cell's threshold and
    is scored with :mod:`core.evaluate`'s metric functions.  An image whose
    cell was skipped is served by its stand-in (:func:`serving_groups`,
    counted in ``n_fallback``), as on the test split; one no model can serve
    is counted in ``n_unserved`` and left out, as the test split leaves it
    out.  Fold weights are deleted afterwards; their meta.json and
    split.json stay.
    """
    from core.train.recipe import describe_recipe

    result: dict[str, Any] = {m: [] for m in modes_for(config.mode)}
    for k, _, held in folds:
        folder = fold_dir(out_dir, k)
        done = {name for name, res in trained[k].items() if res.status == "done"}
        for mode in modes_for(config.mode):
            ys, ps, ts = [], [], []
            groups, fallback, unserved = serving_groups(held, mode, done)
            for name, rows in groups.items():
                res = trained[k][name]
                model = create_model(config.arch, config.img_size).to(device)
                load_weights(model, folder / name / runs.WEIGHTS_FILE, res.sha256)
                served = Calibration(res.temperature or 1.0, res.logit_offset or 0.0)
                p = served.probability(predict_logits(model, bank.take(rows["image_path"]), device))
                ys.append(label_targets(rows)), ps.append(p), ts.append(np.full(len(p), res.threshold))
            result[mode].append(_fold_metrics(_cat(ys).astype(int), _cat(ps), _cat(ts), k + 1,
                                              unserved, fallback))
        for weights in folder.glob(f"*/{runs.WEIGHTS_FILE}"):
            weights.unlink()
    result[RECIPE_KEY] = describe_recipe(config)
    return result
