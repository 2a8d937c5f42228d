"""One cell's training loop: epochs, selection, the threshold and the cell's files."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.evaluate.calibration import IDENTITY
from core.grid import Cell
from core.models import MammoNet, create_model, load_weights, pick_device, save_weights
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_json
from core.runfolder.integrity import file_sha256
from core.runfolder.splits import write_split
from core.train.augment import augment_batch, to_float
from core.train.calibrate import calibration_data, own_calibration, serving_fields
from core.train.cancel import CANCEL, TrainingCancelled
from core.train.checkpoint import done_result, load_last, save_last
from core.train.config import (
    CellResult,
    TrainConfig,
    class_counts,
    derive_seed,
    label_targets,
    seed_everything,
    seeded_generator,
    skip_reason,
)
from core.train.data import CellData, ImageBank, shuffled_batches, steps_per_epoch
from core.train.device import autocast_for, cell_scope, make_optimizer, setup_threads
from core.train.metrics import auc_or_none, bce, sigmoid
from core.train.progress import Progress, ProgressCallback


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device,
                   batch_size: int = 64) -> np.ndarray:
    """Logits of uint8 images (N, 1, S, S) in eval mode, no augmentation, in fp32.

    Never under the training step's bf16 autocast: validation loss, epoch
    choice, temperature, threshold and CV scores must judge the logits the
    predictor serves, and it runs in fp32.
    """
    model.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = to_float(x[start:start + batch_size].to(device, non_blocking=True))
        if device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        out.append(model(xb).float().squeeze(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: CellData, device: torch.device,
                          batch_size: int = 64) -> bool:
    """Recompute every BatchNorm layer's running statistics on ``data``'s images
    (unaugmented, in order) with the model's current weights; False if it has none.

    Training updates them as a momentum average over the whole epoch, i.e.
    over weights that kept changing; after a short run from scratch that
    average is stale and the eval-mode model (what validation, selection and
    prediction see) swings from epoch to epoch although the features do not.
    Only the BatchNorm layers run in training mode here; no gradient, no
    randomness, so a resumed run repeats it exactly.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms or data.n < 2:
        return False
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    order = torch.arange(data.n)
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:  # a batch of one cannot give a variance
        parts[-2] = torch.cat(parts[-2:])
        parts.pop()
    for idx in parts:
        xb = to_float(data.batch(idx)[0])
        if device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_for(device):
            model(xb)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return True


@dataclass
class Loop:
    """Everything one cell's epochs share."""

    cell: Cell
    config: TrainConfig
    device: torch.device
    model: MammoNet
    step_model: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: nn.Module
    train: CellData
    progress: Progress


def train_epoch(loop: Loop, epoch: int) -> float:
    """One pass over the cell's images; the loss is synchronised every ``log_every`` steps."""
    cfg, dev = loop.config, loop.device
    loop.step_model.train()
    batches = shuffled_batches(loop.train.n, cfg.batch_size, seeded_generator(cfg.seed, loop.cell, epoch, "shuffle"))
    aug_gen = seeded_generator(cfg.seed, loop.cell, epoch, "augment")
    total = torch.zeros((), device=dev)
    seen = since = 0
    for step, idx in enumerate(batches, start=1):
        xb, yb = loop.train.batch(idx)
        xb = augment_batch(xb, aug_gen) if cfg.augment else to_float(xb)
        if dev.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_for(dev):
            logits = loop.step_model(xb).float().squeeze(1)
        loss = loop.loss_fn(logits, yb)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        loop.opt.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
        since += len(idx)
        if step % cfg.log_every == 0 and step < len(batches):
            img_s = loop.progress.advance(cfg.log_every, since)
            since = 0
            loop.progress.emit("step", cell=loop.cell.name, mode=loop.cell.mode, epoch=epoch,
                               epochs=cfg.epochs, step=step, steps=len(batches),
                               loss=round(float(total.item()) / seen, 5), img_s=round(img_s, 1))
        if CANCEL.is_set():
            raise TrainingCancelled("training cancelled by a signal")
    loop.progress.advance(len(batches) % cfg.log_every or cfg.log_every, since)
    return float(total.item()) / max(seen, 1)


def _better(score: tuple[float, float], best: list[float] | None) -> bool:
    return best is None or tuple(score) < tuple(best)


def _selection_score(select: str, val_loss: float | None, val_auc: float | None, epoch: int
                     ) -> tuple[float, float]:
    """Lower is better.  Without validation the latest epoch wins."""
    if val_loss is None:
        return (-float(epoch), 0.0)
    if select == "val_auc" and val_auc is not None:
        return (-val_auc, val_loss)
    return (val_loss, 0.0)


def train_cell(cell: Cell, train_df: pd.DataFrame, val_df: pd.DataFrame, config: TrainConfig,
               run_dir: str | Path, progress: Progress | ProgressCallback | None = None,
               bank: ImageBank | None = None) -> CellResult:
    """Train one cell's model; writes ``<run_dir>/<cell>/`` and returns its summary.

    ``train_df`` / ``val_df`` are that cell's rows (``val_df`` may be empty).
    Too few images → a skipped result, never an exception.  With
    ``config.resume`` a finished cell is kept (hash verified) and an
    interrupted one continues from its last epoch.
    """
    run_dir = Path(run_dir)
    cell_dir = run_dir / cell.name
    counts = {"train": class_counts(train_df), "val": class_counts(val_df)}
    reason = skip_reason(pd.concat([train_df, val_df]))
    if reason is not None:
        return CellResult(cell.name, "skipped", reason=reason, counts=counts)
    if not isinstance(progress, Progress):
        progress = Progress(None, config.epochs * steps_per_epoch(len(train_df), config.batch_size),
                            progress)
    if config.resume:
        kept = done_result(cell, cell_dir)
        if kept is not None:  # its steps are behind us: the ETA must not wait for them
            progress.skip(config.epochs * steps_per_epoch(len(train_df), config.batch_size))
            return kept
    if bank is None:
        bank = ImageBank(list(train_df["image_path"]) + list(val_df["image_path"]),
                         config.preprocess_params(), config.workers)
    device = pick_device(config.device)
    setup_threads(device)
    cell_dir.mkdir(parents=True, exist_ok=True)
    progress.start(cell.name, cell.mode)
    with cell_scope(device):
        return _train_cell_scoped(cell, train_df, val_df, config, cell_dir, progress, bank,
                                  device, counts)


def _train_cell_scoped(cell: Cell, train_df: pd.DataFrame, val_df: pd.DataFrame,
                       config: TrainConfig, cell_dir: Path, progress: Progress, bank: ImageBank,
                       device: torch.device, counts: dict[str, dict[str, int]]) -> CellResult:
    t0 = time.perf_counter()
    seed_everything(derive_seed(config.seed, cell, "init"))
    model = create_model(config.arch, config.img_size, config.pretrained)
    if config.init_weights:  # warm start: the pooled model's weights, hash verified
        load_weights(model, config.init_weights, config.init_sha256)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, config, device)
    n_pos, n_neg = counts["train"]["malignant"], counts["train"]["benign"]
    pos_weight = n_neg / n_pos if config.balanced else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    data = CellData(bank.take(train_df["image_path"]), label_targets(train_df), device)
    x_val, y_val = bank.take(val_df["image_path"]), label_targets(val_df)
    step_model = torch.compile(model) if config.compile else model
    loop = Loop(cell, config, device, model, step_model, opt, loss_fn, data, progress)
    identity = {**config.identity(), "cell": cell.name, "n_train": len(train_df),
                "n_val": len(val_df)}
    state = (load_last(cell_dir, model, opt, identity) if config.resume else None) or {
        "epoch": 0, "best": None, "best_epoch": None, "best_sha256": None, "history": [],
        "identity": identity}
    steps = steps_per_epoch(data.n, config.batch_size)
    progress.skip(state["epoch"] * steps)
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        state = _run_epoch(loop, epoch, state, x_val, y_val, pos_weight, cell_dir, steps)
    return _finish_cell(loop, state, x_val, y_val, bank, train_df, val_df, cell_dir, counts,
                        time.perf_counter() - t0, pos_weight)


def _run_epoch(loop: Loop, epoch: int, state: dict[str, Any], x_val: torch.Tensor,
               y_val: np.ndarray, pos_weight: float, cell_dir: Path, steps: int) -> dict[str, Any]:
    """Train, validate, keep the best weights, write the epoch checkpoint."""
    t0 = time.perf_counter()
    seed_everything(derive_seed(loop.config.seed, loop.cell, epoch, "global"))
    train_loss = train_epoch(loop, epoch)
    recalibrate_batchnorm(loop.model, loop.train, loop.device)
    val_loss = val_auc = None
    if len(y_val):
        logits = predict_logits(loop.model, x_val, loop.device)
        val_loss, val_auc = bce(logits, y_val, pos_weight), auc_or_none(y_val, sigmoid(logits))
    seconds = time.perf_counter() - t0
    history = state["history"] + [{"epoch": epoch, "train_loss": round(train_loss, 6),
                                   "val_loss": None if val_loss is None else round(val_loss, 6),
                                   "val_auc": val_auc, "seconds": round(seconds, 3)}]
    score = _selection_score(loop.config.select, val_loss, val_auc, epoch)
    best, best_epoch, best_sha = state["best"], state["best_epoch"], state["best_sha256"]
    if _better(score, best):
        best, best_epoch = list(score), epoch
        best_sha = save_weights(loop.model, cell_dir / runs.WEIGHTS_FILE)
    state = {"epoch": epoch, "best": best, "best_epoch": best_epoch, "best_sha256": best_sha,
             "history": history, "identity": state["identity"]}
    save_last(cell_dir, loop.model, loop.opt, state)
    loop.progress.emit("epoch", cell=loop.cell.name, mode=loop.cell.mode, epoch=epoch,
                       epochs=loop.config.epochs, step=steps, steps=steps,
                       loss=round(train_loss, 5), val_loss=history[-1]["val_loss"],
                       val_auc=val_auc, img_s=round(loop.train.n / seconds, 1))
    return state


def _finish_cell(loop: Loop, state: dict[str, Any], x_val: torch.Tensor, y_val: np.ndarray,
                 bank: ImageBank, train_df: pd.DataFrame, val_df: pd.DataFrame, cell_dir: Path,
                 counts: dict[str, dict[str, int]], seconds: float,
                 pos_weight: float) -> CellResult:
    """Reload the best epoch, calibrate (on its own only with enough validation images,
    :mod:`core.train.calibrate`; the grid runner fits the rest per grid), choose the
    threshold on the served scale, write meta.json and split.json, drop last.*."""
    model = load_weights(loop.model, cell_dir / runs.WEIGHTS_FILE, state["best_sha256"])
    z_val = predict_logits(model, x_val, loop.device)
    if len(np.unique(y_val)) == 2:
        z_thr, y_thr, source = z_val, y_val, "val"
    else:  # training images are fitted, not held out: they choose a threshold, never a calibration
        y_thr = label_targets(train_df)
        z_thr = predict_logits(model, bank.take(train_df["image_path"]), loop.device)
        source = "train"
    data = calibration_data(z_val, y_val, z_thr, y_thr, source)
    own = own_calibration(np.asarray(data["val_logits"]), y_val)
    best_row = next(h for h in state["history"] if h["epoch"] == state["best_epoch"])
    meta = {
        "cell": loop.cell.name, "mode": loop.cell.mode, "arch": loop.config.arch,
        "img_size": loop.config.img_size, "n_train": int(loop.train.n), "n_val": int(len(y_val)),
        "counts": counts, "threshold_source": source,
        "threshold_rule": "max Youden J on the served (calibrated) probability; "
                          "malignant iff p >= threshold",
        **serving_fields(own or IDENTITY, "cell" if own else "none", data),
        "selection": ("last_epoch" if not len(y_val) else loop.config.select),
        "best_epoch": state["best_epoch"], "val_loss": best_row["val_loss"],
        "val_auc": best_row["val_auc"], "pos_weight": pos_weight,
        "sha256": state["best_sha256"], "seconds": round(seconds, 2),
        "history": state["history"], "calibration_data": data,
    }
    atomic_write_json(cell_dir / runs.META_FILE, meta)
    started_from = Path(loop.config.init_weights).parent.name if loop.config.init_weights else None
    write_split(cell_dir, train_df, val_df, started_from)
    for name in (runs.LAST_WEIGHTS_FILE, runs.LAST_STATE_FILE):
        (cell_dir / name).unlink(missing_ok=True)
    return CellResult(loop.cell.name, "done", sha256=state["best_sha256"], n_train=meta["n_train"],
                      n_val=meta["n_val"], counts=counts, threshold=meta["threshold"],
                      temperature=meta["temperature"], logit_offset=meta["logit_offset"],
                      best_epoch=state["best_epoch"], seconds=meta["seconds"],
                      meta_sha256=file_sha256(cell_dir / runs.META_FILE))
