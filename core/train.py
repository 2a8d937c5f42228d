"""Training: one cell's loop, the grid runner, resume, cancellation, CV.

One cell = one model (DESIGN.md).  A run trains the cells of the chosen
grids in order (baseline, then ROI-aware), then predicts the test split with
:mod:`core.predict` and scores it with :mod:`core.evaluate`.  The run folder
follows :mod:`core.runs` exactly; every file is written atomically.

Decisions the paper leaves open, and what is done here:

* **Skip rule.**  A cell is trained when its training rows hold at least
  ``MIN_IMAGES`` (8) images and at least ``MIN_PER_CLASS`` (2) of each class;
  otherwise it is skipped and the reason recorded in ``run.json`` (its test
  images are then served by :mod:`core.predict`'s fallback).  Two per class
  is the least that lets a model see a class twice; VinDr's ``noroi`` cells
  (≈ 7 malignant training images each) pass, a phantom's may not.
* **Validation.**  15 % of a cell's training rows, patient-grouped and
  label-stratified (:func:`core.datasets.split.grouped_split`), select the
  epoch (lowest validation loss by default) and the threshold (maximum
  Youden's J).  When the carve leaves the training side without a class, or
  the validation side is empty or one-class, the cell trains on all its rows,
  keeps the last epoch (or the lowest-loss one if the validation side is
  non-empty) and picks the threshold on its own training images; ``meta.json``
  says so (``selection``, ``threshold_source``) because such a threshold is
  optimistic.
* **Balanced training** (``balanced``) uses a BCE ``pos_weight`` of
  n_benign / n_malignant, not a sampler: every image is still seen once per
  epoch and the batch order stays a pure function of the seed.
* **Exact resume.**  Randomness never carries over an epoch boundary: the
  global RNGs, the shuffle and the augmentation are re-seeded from
  (seed, cell, epoch) at the start of each epoch, so an epoch repeated after
  an interruption is the same epoch, and only model + optimizer tensors need
  saving (``last.safetensors``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

import core
from core import runs
from core.augment import augment_batch, to_float
from core.errors import CheckpointError, MammoError, TrainingError
from core.grid import Cell, modes_for, plan
from core.models import (MammoNet, arch_spec, atomic_write_bytes, atomic_write_json, create_model,
                         load_tensors, load_weights, pick_device, save_tensors, save_weights)

MIN_IMAGES = 8
MIN_PER_CLASS = 2
LOCK_FILE = ".lock"
PHANTOM_MARKERS: tuple[str, ...] = ("phantom.json", ".phantom")
ProgressCallback = Callable[[dict[str, Any]], None]

_CANCEL = threading.Event()


class TrainingCancelled(TrainingError):
    """SIGTERM / SIGINT arrived: the run stopped after a step and can be resumed."""


@dataclass
class TrainConfig:
    """Every option of a run; the paper's values are the defaults (lr, epochs, size).

    ``weight_decay`` is torch's AdamW default (the paper keeps "defaults").
    ``batch_size`` is not in the paper.  ``workers`` bounds preprocessing
    processes (0 = all cores).
    """

    arch: str = "convnextv2"
    img_size: int = 384
    epochs: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 16
    val_fraction: float = 0.15
    balanced: bool = False
    seed: int = 0
    device: str = "auto"
    mode: str = "both"
    pretrained: str | None = None
    compile: bool = False
    workers: int = 0
    cv: int = 0
    resume: bool = False
    augment: bool = True
    select: str = "val_loss"  # or "val_auc"
    log_every: int = 10
    synthetic: bool | None = None
    clahe_clip: float = 2.0
    clahe_tiles: int = 8

    def check(self) -> None:
        """Refuse nonsense before any work starts (one clear message)."""
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be ≥ 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch size must be ≥ 1 (got {self.batch_size})")
        if not self.lr > 0:
            problems.append(f"learning rate must be > 0 (got {self.lr})")
        if not 0 < self.val_fraction <= 0.5:
            problems.append(f"validation fraction must be in (0, 0.5] (got {self.val_fraction})")
        if self.cv == 1 or self.cv < 0:
            problems.append(f"--cv needs K ≥ 2 folds (got {self.cv})")
        if self.select not in ("val_loss", "val_auc"):
            problems.append(f"select must be val_loss or val_auc (got {self.select!r})")
        try:
            modes_for(self.mode)
        except ValueError as err:
            problems.append(str(err))
        try:
            multiple = arch_spec(self.arch).min_multiple
            if self.img_size < 8 or self.img_size % multiple:
                problems.append(f"image size {self.img_size} is not a multiple of {multiple} "
                                f"as {self.arch} needs")
        except CheckpointError as err:
            problems.append(str(err))
        if problems:
            raise TrainingError("; ".join(problems))

    def identity(self) -> dict[str, Any]:
        """The options a resumed run must share with the interrupted one."""
        keys = ("arch", "img_size", "epochs", "lr", "weight_decay", "batch_size",
                "val_fraction", "balanced", "seed", "mode", "augment", "select", "cv",
                "clahe_clip", "clahe_tiles")
        return {k: getattr(self, k) for k in keys}


@dataclass
class CellResult:
    """What run.json records for one cell."""

    cell: str
    status: str  # done | skipped
    reason: str | None = None
    sha256: str | None = None
    n_train: int = 0
    n_val: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    threshold: float | None = None
    best_epoch: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "cell"}
        if self.status == "skipped":
            return {"status": "skipped", "reason": self.reason, "counts": self.counts}
        return data


# ------------------------------------------------------------------ small helpers

def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run seed and a path of names (cell, epoch, purpose)."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _generator(seed: int, *parts: Any) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _labels(df: pd.DataFrame) -> np.ndarray:
    return (df["label"].astype(str) == "malignant").to_numpy(dtype=np.float32)


def class_counts(df: pd.DataFrame) -> dict[str, int]:
    """``{"benign": n, "malignant": m}`` of a manifest slice."""
    y = _labels(df)
    return {"benign": int((y == 0).sum()), "malignant": int((y == 1).sum())}


def cell_rows(df: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """The rows a cell trains on or serves (baseline cells ignore ROI presence)."""
    mask = df["view_name"] == cell.view
    if cell.roi is not None:
        mask &= df["roi"].astype(bool) == cell.roi
    return df[mask]


def skip_reason(train_df: pd.DataFrame) -> str | None:
    """Why a cell's training rows cannot make a model, or None when they can."""
    counts = class_counts(train_df)
    n = len(train_df)
    if n < MIN_IMAGES:
        return f"{n} training image(s), fewer than {MIN_IMAGES}"
    few = [f"{counts[c]} {c}" for c in ("benign", "malignant") if counts[c] < MIN_PER_CLASS]
    if few:
        return f"only {' and '.join(few)} training image(s) (need ≥ {MIN_PER_CLASS} of each class)"
    return None


def carve_validation(df: pd.DataFrame, fraction: float, seed: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient-grouped validation rows; empty when a usable carve is impossible.

    "Usable" means the training side keeps both classes; otherwise all rows
    train and the caller falls back as the module docstring says.
    """
    from core.datasets.split import grouped_split

    try:
        side = grouped_split(df, fraction, seed)
    except ValueError:
        return df, df.iloc[:0]
    fit, val = df[side == "train"], df[side == "test"]
    if min(class_counts(fit).values()) < 1:
        return df, df.iloc[:0]
    return fit, val


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut maximising sensitivity + specificity − 1 (malignant iff p ≥ t)."""
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# ------------------------------------------------------------------ images

class ImageBank:
    """Every image of a split preprocessed once into one uint8 (N, 1, S, S) tensor.

    Batches are slices of this tensor, so no epoch decodes a file.  The
    preprocess cache (:mod:`core.preprocess`) makes a second run start fast.
    """

    def __init__(self, paths: list[str], size: int, clahe_clip: float = 2.0,
                 clahe_tiles: int = 8, workers: int = 0):
        from core.preprocess import PreprocessParams, load_preprocessed, preprocess_many

        params = PreprocessParams(size, clahe_clip, clahe_tiles)
        unique = list(dict.fromkeys(paths))
        if len(unique) > 64 and workers != 1:
            report = preprocess_many(unique, params, workers or None)
            if report.errors:
                shown = "; ".join(err for _, err in report.errors[:3])
                raise TrainingError(f"{len(report.errors)} image(s) cannot be preprocessed: {shown}")
        self.index = {p: i for i, p in enumerate(unique)}
        self.images = torch.empty((len(unique), 1, size, size), dtype=torch.uint8)
        for i, path in enumerate(unique):
            if _CANCEL.is_set():
                raise TrainingCancelled("cancelled while preprocessing images")
            self.images[i, 0] = torch.from_numpy(load_preprocessed(path, params))

    def take(self, paths: list[str] | pd.Series) -> torch.Tensor:
        """The images of ``paths`` in that order (a copy)."""
        idx = torch.tensor([self.index[p] for p in paths], dtype=torch.long)
        return self.images.index_select(0, idx)


class _CellData:
    """One cell's images and labels, staged for the device.

    On CUDA the uint8 images go to GPU memory when they fit a budget (a
    384-px image is 144 KiB, so thousands fit); otherwise batches are
    gathered into pinned host memory and copied with ``non_blocking``.
    """

    GPU_BUDGET = 4 << 30

    def __init__(self, x: torch.Tensor, y: np.ndarray, device: torch.device):
        self.device = device
        self.n = int(x.shape[0])
        self.y = torch.from_numpy(y).to(device)
        resident = device.type != "cuda" or x.numel() <= self.GPU_BUDGET
        self.x = x.to(device) if resident else x.pin_memory()
        self.resident = resident

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.resident:
            dev_idx = idx.to(self.device)
            return self.x.index_select(0, dev_idx), self.y.index_select(0, dev_idx)
        xb = self.x.index_select(0, idx).pin_memory().to(self.device, non_blocking=True)
        return xb, self.y.index_select(0, idx.to(self.device))


# ------------------------------------------------------------------ progress

class Progress:
    """progress.jsonl events, an ETA for the whole run and a terminal line.

    ``callback`` (the UI, a test) receives every event; an exception it raises
    stops training like a crash would (that is how tests interrupt a run).
    """

    def __init__(self, run_dir: Path | None, total_steps: int,
                 callback: ProgressCallback | None = None, stream: Any = None):
        self.file = run_dir / runs.PROGRESS_FILE if run_dir is not None else None
        self.total = max(1, int(total_steps))
        self.done = 0
        self.callback = callback
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.session_done = 0
        self.window = (time.perf_counter(), 0)

    def advance(self, steps: int, images: int) -> float:
        """Count finished steps; returns images/s since the last call."""
        self.done += steps
        self.session_done += steps
        t_prev, _ = self.window
        now = time.perf_counter()
        self.window = (now, 0)
        return images / (now - t_prev) if now > t_prev else 0.0

    def skip(self, steps: int) -> None:
        """Steps already done before this process (a resumed cell)."""
        self.done += steps

    def eta(self) -> float | None:
        if self.session_done == 0:
            return None
        rate = (time.perf_counter() - self.t0) / self.session_done
        return max(0.0, (self.total - self.done) * rate)

    def emit(self, event: str, **fields: Any) -> None:
        eta = self.eta()
        record = {"time": _now(), "event": event, **fields,
                  "eta_s": round(eta, 1) if eta is not None else None}
        if self.file is not None:
            with open(self.file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
        self._show(record)
        if self.callback is not None:
            self.callback(record)

    def _show(self, r: dict[str, Any]) -> None:
        ev = r["event"]
        if ev == "step" and not self.tty:
            return
        eta = r.get("eta_s")
        eta_txt = f"ETA {int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else ""
        if ev in ("step", "epoch"):
            loss = r.get("loss")
            text = (f"{r.get('cell')} epoch {r.get('epoch')}/{r.get('epochs')} "
                    f"step {r.get('step')}/{r.get('steps')} "
                    f"loss {loss:.4f} " if loss is not None else f"{r.get('cell')} ")
            text += f"{r.get('img_s') or 0:.0f} img/s {eta_txt}"
        else:
            text = f"{ev} {r.get('cell') or ''} {r.get('reason') or r.get('message') or ''}".strip()
        if self.tty:
            end = "" if ev == "step" else "\n"
            self.stream.write("\r\033[K" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# ------------------------------------------------------------------ device setup

@contextmanager
def _cell_scope(device: torch.device) -> Iterator[None]:
    """Forked RNG state and deterministic kernels (CPU) for one cell, restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    prev_det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=devices):
        np_state, py_state = np.random.get_state(), random.getstate()
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev_det)
            np.random.set_state(np_state)
            random.setstate(py_state)


def _setup_threads(device: torch.device) -> None:
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, int(cores or 1)))


def _make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device
                    ) -> torch.optim.Optimizer:
    fused = device.type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=config.lr,
                             weight_decay=config.weight_decay, fused=fused or None)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ------------------------------------------------------------------ checkpoints

def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """AdamW state flattened to ``optim.<param>.<key>`` tensors + JSON param groups."""
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           param_groups: list[Any]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def _save_last(cell_dir: Path, model: MammoNet, opt: torch.optim.Optimizer,
               state: dict[str, Any]) -> None:
    """The epoch checkpoint: tensors first, then the JSON that names their hash."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim, groups = optimizer_tensors(opt)
    tensors.update(optim)
    sha = save_tensors(tensors, cell_dir / runs.LAST_WEIGHTS_FILE,
                       {"arch": model.arch, "img_size": str(model.img_size)})
    atomic_write_json(cell_dir / runs.LAST_STATE_FILE,
                      {**state, "last_sha256": sha, "param_groups": groups})


def _load_last(cell_dir: Path, model: MammoNet, opt: torch.optim.Optimizer,
               identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved epoch state, or None when absent, foreign or inconsistent."""
    state_file = cell_dir / runs.LAST_STATE_FILE
    if not state_file.is_file():
        return None
    try:
        state = runs.read_json(state_file)
        if state.get("identity") != identity:
            return None
        best_sha = state.get("best_sha256")
        if best_sha and _file_sha256(cell_dir / runs.WEIGHTS_FILE) != best_sha:
            return None
        tensors, _ = load_tensors(cell_dir / runs.LAST_WEIGHTS_FILE, state.get("last_sha256"))
    except CheckpointError:
        return None
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    model.load_state_dict(model_sd, strict=True)
    load_optimizer_tensors(opt, optim, state["param_groups"])
    return state


def _done_result(cell: Cell, cell_dir: Path, expected_sha: str | None = None) -> CellResult | None:
    """A finished cell kept on resume: meta.json present and weights hash verified."""
    try:
        meta = runs.read_json(cell_dir / runs.META_FILE)
    except CheckpointError:
        return None
    sha = meta.get("sha256")
    if not sha or (expected_sha and sha != expected_sha):
        return None
    if _file_sha256(cell_dir / runs.WEIGHTS_FILE) != sha:
        return None
    return CellResult(cell.name, "done", sha256=sha, n_train=meta["n_train"], n_val=meta["n_val"],
                      counts=meta["counts"], threshold=meta["threshold"],
                      best_epoch=meta["best_epoch"], seconds=meta.get("seconds", 0.0))


# ------------------------------------------------------------------ the loop

@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device,
                   batch_size: int = 64) -> np.ndarray:
    """Logits of uint8 images (N, 1, S, S) in eval mode, no augmentation."""
    model.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = to_float(x[start:start + batch_size].to(device, non_blocking=True))
        if device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            out.append(model(xb).float().squeeze(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _bce(logits: np.ndarray, y: np.ndarray, pos_weight: float) -> float:
    z = torch.from_numpy(logits.astype(np.float32))
    return float(nn.functional.binary_cross_entropy_with_logits(
        z, torch.from_numpy(y), pos_weight=torch.tensor(pos_weight)))


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A seeded permutation in batches; a trailing batch of one is dropped
    (normalisation layers of generic timm models fail on it; shuffling lets
    that image train in other epochs)."""
    perm = torch.randperm(n, generator=gen)
    parts = list(perm.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts.pop()
    return parts


@dataclass
class _Loop:
    """Everything one cell's epochs share."""

    cell: Cell
    config: TrainConfig
    device: torch.device
    model: MammoNet
    step_model: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: nn.Module
    train: _CellData
    progress: Progress


def _train_epoch(loop: _Loop, epoch: int) -> float:
    """One pass over the cell's images; the loss is synchronised every ``log_every`` steps."""
    cfg, dev = loop.config, loop.device
    loop.step_model.train()
    batches = _batches(loop.train.n, cfg.batch_size, _generator(cfg.seed, loop.cell, epoch, "shuffle"))
    aug_gen = _generator(cfg.seed, loop.cell, epoch, "augment")
    total = torch.zeros((), device=dev)
    seen = since = 0
    for step, idx in enumerate(batches, start=1):
        xb, yb = loop.train.batch(idx)
        xb = augment_batch(xb, aug_gen) if cfg.augment else to_float(xb)
        if dev.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(dev):
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
        if _CANCEL.is_set():
            raise TrainingCancelled("training cancelled by a signal")
    loop.progress.advance(len(batches) % cfg.log_every or cfg.log_every, since)
    return float(total.item()) / max(seen, 1)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many optimiser steps one epoch of ``n`` images takes."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


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
        kept = _done_result(cell, cell_dir)
        if kept is not None:
            return kept
    if bank is None:
        bank = ImageBank(list(train_df["image_path"]) + list(val_df["image_path"]),
                         config.img_size, config.clahe_clip, config.clahe_tiles, config.workers)
    device = pick_device(config.device)
    _setup_threads(device)
    cell_dir.mkdir(parents=True, exist_ok=True)
    with _cell_scope(device):
        return _train_cell_scoped(cell, train_df, val_df, config, cell_dir, progress, bank,
                                  device, counts)


def _train_cell_scoped(cell: Cell, train_df: pd.DataFrame, val_df: pd.DataFrame,
                       config: TrainConfig, cell_dir: Path, progress: Progress, bank: ImageBank,
                       device: torch.device, counts: dict[str, dict[str, int]]) -> CellResult:
    t0 = time.perf_counter()
    _seed_everything(derive_seed(config.seed, cell, "init"))
    model = create_model(config.arch, config.img_size, config.pretrained).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, config, device)
    n_pos, n_neg = counts["train"]["malignant"], counts["train"]["benign"]
    pos_weight = n_neg / n_pos if config.balanced else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    data = _CellData(bank.take(train_df["image_path"]), _labels(train_df), device)
    x_val, y_val = bank.take(val_df["image_path"]), _labels(val_df)
    step_model = torch.compile(model) if config.compile else model
    loop = _Loop(cell, config, device, model, step_model, opt, loss_fn, data, progress)
    identity = {**config.identity(), "cell": cell.name, "n_train": len(train_df),
                "n_val": len(val_df)}
    state = (_load_last(cell_dir, model, opt, identity) if config.resume else None) or {
        "epoch": 0, "best": None, "best_epoch": None, "best_sha256": None, "history": [],
        "identity": identity}
    steps = steps_per_epoch(data.n, config.batch_size)
    progress.skip(state["epoch"] * steps)
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        state = _run_epoch(loop, epoch, state, x_val, y_val, pos_weight, cell_dir, steps)
    return _finish_cell(loop, state, x_val, y_val, bank, train_df, cell_dir, counts,
                        time.perf_counter() - t0, pos_weight)


def _run_epoch(loop: _Loop, epoch: int, state: dict[str, Any], x_val: torch.Tensor,
               y_val: np.ndarray, pos_weight: float, cell_dir: Path, steps: int) -> dict[str, Any]:
    """Train, validate, keep the best weights, write the epoch checkpoint."""
    t0 = time.perf_counter()
    _seed_everything(derive_seed(loop.config.seed, loop.cell, epoch, "global"))
    train_loss = _train_epoch(loop, epoch)
    val_loss = val_auc = None
    if len(y_val):
        logits = predict_logits(loop.model, x_val, loop.device)
        val_loss, val_auc = _bce(logits, y_val, pos_weight), _auc(y_val, _sigmoid(logits))
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
    _save_last(cell_dir, loop.model, loop.opt, state)
    loop.progress.emit("epoch", cell=loop.cell.name, mode=loop.cell.mode, epoch=epoch,
                       epochs=loop.config.epochs, step=steps, steps=steps,
                       loss=round(train_loss, 5), val_loss=history[-1]["val_loss"],
                       val_auc=val_auc, img_s=round(loop.train.n / seconds, 1))
    return state


def _finish_cell(loop: _Loop, state: dict[str, Any], x_val: torch.Tensor, y_val: np.ndarray,
                 bank: ImageBank, train_df: pd.DataFrame, cell_dir: Path,
                 counts: dict[str, dict[str, int]], seconds: float,
                 pos_weight: float) -> CellResult:
    """Reload the best epoch, choose the threshold, write meta.json, drop last.*."""
    model = load_weights(loop.model, cell_dir / runs.WEIGHTS_FILE, state["best_sha256"])
    two_class_val = len(np.unique(y_val)) == 2
    if two_class_val:
        y_thr, p_thr, source = y_val, _sigmoid(predict_logits(model, x_val, loop.device)), "val"
    else:
        y_thr = _labels(train_df)
        p_thr = _sigmoid(predict_logits(model, bank.take(train_df["image_path"]), loop.device))
        source = "train"
    threshold = youden_threshold(y_thr, p_thr)
    best_row = next(h for h in state["history"] if h["epoch"] == state["best_epoch"])
    meta = {
        "cell": loop.cell.name, "mode": loop.cell.mode, "arch": loop.config.arch,
        "img_size": loop.config.img_size, "n_train": int(loop.train.n), "n_val": int(len(y_val)),
        "counts": counts, "threshold": threshold, "threshold_source": source,
        "threshold_rule": "max Youden J; malignant iff p >= threshold",
        "selection": ("last_epoch" if not len(y_val) else loop.config.select),
        "best_epoch": state["best_epoch"], "val_loss": best_row["val_loss"],
        "val_auc": best_row["val_auc"], "pos_weight": pos_weight,
        "sha256": state["best_sha256"], "seconds": round(seconds, 2),
        "history": state["history"],
    }
    atomic_write_json(cell_dir / runs.META_FILE, meta)
    for name in (runs.LAST_WEIGHTS_FILE, runs.LAST_STATE_FILE):
        (cell_dir / name).unlink(missing_ok=True)
    return CellResult(loop.cell.name, "done", sha256=state["best_sha256"], n_train=meta["n_train"],
                      n_val=meta["n_val"], counts=counts, threshold=threshold,
                      best_epoch=state["best_epoch"], seconds=meta["seconds"])


# ------------------------------------------------------------------ run folder

def _dataset_hash(df: pd.DataFrame, root: Path | None) -> str:
    """SHA-256 of the manifest's columns as sorted CSV text, paths relative to the dataset."""
    from core.manifest import COLUMNS

    table = df[list(COLUMNS)].copy()
    if root is not None:
        base = root if root.is_dir() else root.parent

        def rel(p: str) -> str:
            try:
                return str(Path(p).relative_to(base)) if p else ""
            except ValueError:
                return p
        table["image_path"] = table["image_path"].map(rel)
        table["mask_path"] = table["mask_path"].map(rel)
    text = table.sort_values("image_path").to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def _is_phantom(path: Path | None) -> bool:
    if path is None:
        return False
    folder = path if path.is_dir() else path.parent
    return any((d / m).is_file() for d in (folder, folder.parent) for m in PHANTOM_MARKERS)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(core.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def load_manifest(dataset: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, Path | None]:
    """A finalized manifest and the path it came from (None for an in-memory table)."""
    if isinstance(dataset, pd.DataFrame):
        src = dataset.attrs.get("source")
        return dataset.reset_index(drop=True), Path(src) if src else None
    from core.datasets import load_dataset

    return load_dataset(dataset), Path(dataset).expanduser().resolve()


def _new_run_info(out_dir: Path, df: pd.DataFrame, source: Path | None, config: TrainConfig,
                  device: torch.device) -> dict[str, Any]:
    train = df[df["split"] == "train"]
    synthetic = config.synthetic if config.synthetic is not None else _is_phantom(source)
    name = (source.name if source.is_dir() else source.parent.name) if source else "in-memory"
    return {
        "name": out_dir.name, "dataset": name, "dataset_path": str(source) if source else None,
        "dataset_hash": _dataset_hash(df, source), "synthetic": bool(synthetic),
        "arch": config.arch, "img_size": config.img_size, "epochs": config.epochs,
        "lr": config.lr, "weight_decay": config.weight_decay, "batch_size": config.batch_size,
        "balanced": config.balanced, "seed": config.seed, "device": str(device),
        "modes": list(modes_for(config.mode)), "val_fraction": config.val_fraction,
        "augment": config.augment, "select": config.select, "cv": config.cv,
        "preprocess": {"clahe_clip": config.clahe_clip, "clahe_tiles": config.clahe_tiles},
        "pretrained": config.pretrained, "config": asdict(config),
        "split_counts": {s: int((df["split"] == s).sum()) for s in ("train", "test")},
        "train_counts": class_counts(train),
        "code_version": core.__version__, "git_commit": _git_commit(),
        "started": _now(), "finished": None, "status": "running", "cells": {},
        "rules": {"min_images": MIN_IMAGES, "min_per_class": MIN_PER_CLASS,
                  "balanced": "BCE pos_weight = n_benign / n_malignant"},
    }


def _open_run(out_dir: Path, df: pd.DataFrame, source: Path | None, config: TrainConfig,
              device: torch.device) -> dict[str, Any]:
    """A fresh run.json, or the existing one when resuming a compatible run."""
    run_file = out_dir / runs.RUN_FILE
    fresh = _new_run_info(out_dir, df, source, config, device)
    if not run_file.is_file():
        return fresh  # --resume of a run that never wrote run.json simply starts it
    if not config.resume:
        raise TrainingError("the run folder already holds a run; pass --resume to continue it "
                            "or choose another --out", out_dir)
    info = runs.read_json(run_file)
    if info.get("dataset_hash") != fresh["dataset_hash"]:
        raise TrainingError("cannot resume: the dataset differs from the one this run used "
                            "(manifest hash changed)", out_dir)
    old = TrainConfig(**{k: v for k, v in (info.get("config") or {}).items()
                         if k in TrainConfig.__dataclass_fields__})
    diff = [k for k, v in config.identity().items() if old.identity().get(k) != v]
    if diff:
        raise TrainingError(f"cannot resume with different options: {', '.join(diff)}", out_dir)
    info.update(status="running", finished=None, device=str(device), resumed=_now())
    info.pop("error", None)
    return info


def _write_run(out_dir: Path, info: dict[str, Any]) -> None:
    atomic_write_json(out_dir / runs.RUN_FILE, info)


# ------------------------------------------------------------------ locking & signals

def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live lock holder from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _holder_alive(holder: dict[str, Any]) -> bool:
    """Is the lock's holder still running?  One on another host is assumed to be."""
    if holder.get("host") not in (None, socket.gethostname()):
        return True
    pid = int(holder.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _proc_start(pid)
    return start is None or holder.get("start") in (None, start)


@contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """One training process per run folder; a dead holder's lock is taken over."""
    path = Path(out_dir) / LOCK_FILE
    me = {"pid": os.getpid(), "start": _proc_start(os.getpid()), "host": socket.gethostname(),
          "since": _now()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if holder and _holder_alive(holder):
                raise TrainingError(
                    f"another training process (pid {holder.get('pid')}, since "
                    f"{holder.get('since')}) is using this run folder; wait for it or cancel it",
                    out_dir) from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise TrainingError("cannot take the run folder's lock", out_dir)
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
        except (OSError, json.JSONDecodeError):
            pass


@contextmanager
def cancel_on_signals() -> Iterator[None]:
    """SIGTERM / SIGINT set a flag checked after every step; a second one stops at once."""
    _CANCEL.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if _CANCEL.is_set():
            raise KeyboardInterrupt
        _CANCEL.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _CANCEL.clear()


def request_cancel() -> None:
    """Ask a training loop in this process to stop after its current step."""
    _CANCEL.set()


# ------------------------------------------------------------------ the grid

@dataclass
class _PlannedCell:
    cell: Cell
    fit: pd.DataFrame
    val: pd.DataFrame
    reason: str | None


def plan_cells(train_df: pd.DataFrame, config: TrainConfig) -> list[_PlannedCell]:
    """Every cell of the chosen grids with its training / validation rows or skip reason."""
    planned = []
    for mode in modes_for(config.mode):
        for cell in plan(mode):
            rows = cell_rows(train_df, cell)
            reason = skip_reason(rows)
            fit, val = (rows, rows.iloc[:0]) if reason else carve_validation(
                rows, config.val_fraction, derive_seed(config.seed, cell, "val") % 2**31)
            planned.append(_PlannedCell(cell, fit, val, reason))
    return planned


def _total_steps(planned: list[_PlannedCell], config: TrainConfig) -> int:
    return sum(config.epochs * steps_per_epoch(len(p.fit), config.batch_size)
               for p in planned if p.reason is None)


def _train_planned(planned: list[_PlannedCell], out_dir: Path, config: TrainConfig,
                   progress: Progress, bank: ImageBank, info: dict[str, Any] | None
                   ) -> dict[str, CellResult]:
    """Train (or keep, or skip) each planned cell, recording it in ``info`` as it goes."""
    results = {}
    for p in planned:
        name = p.cell.name
        if p.reason is not None:
            result = CellResult(name, "skipped", reason=p.reason,
                                counts={"train": class_counts(p.fit), "val": class_counts(p.val)})
            progress.emit("cell_skipped", cell=name, mode=p.cell.mode, reason=p.reason)
        else:
            if info is not None:
                info["cells"][name] = {**info["cells"].get(name, {}), "status": "running"}
                _write_run(out_dir, info)
            result = train_cell(p.cell, p.fit, p.val, config, out_dir, progress, bank)
            progress.emit("cell_done", cell=name, mode=p.cell.mode, threshold=result.threshold,
                          best_epoch=result.best_epoch)
        results[name] = result
        if info is not None:
            info["cells"][name] = result.to_json()
            _write_run(out_dir, info)
    return results


def _predict_and_evaluate(out_dir: Path, test_df: pd.DataFrame, info: dict[str, Any],
                          device: torch.device) -> None:
    """predictions.csv via core.predict, metrics.json via core.evaluate (clear notes if absent)."""
    if test_df.empty:
        info["evaluation"] = "no test images in the dataset: nothing predicted"
        return
    if not any(c.get("status") == "done" for c in info["cells"].values()):
        info["evaluation"] = "no cell was trained: nothing to predict"
        return
    try:
        from core.predict import predict_manifest
    except ImportError as err:
        info["evaluation"] = f"core.predict is not available ({err}); no predictions.csv"
        return
    _write_run(out_dir, info)  # the predictor reads the finished cells from run.json
    predictions = predict_manifest(out_dir, test_df, device=device)
    info["unpredicted"] = int(predictions.attrs.get("unpredicted", 0))
    atomic_write_bytes(out_dir / runs.PREDICTIONS_FILE, predictions.to_csv(index=False).encode())
    try:
        from core.evaluate import evaluate_run
    except ImportError as err:
        info["evaluation"] = f"core.evaluate is not available ({err}); no metrics.json"
        return
    evaluate_run(out_dir)
    info["evaluation"] = "complete"


def train_grid(dataset: str | Path | pd.DataFrame, out_dir: str | Path,
               config: TrainConfig, progress: ProgressCallback | None = None) -> runs.RunSummary:
    """Train a whole run (CV first when asked), predict its test split, evaluate it.

    Holds the run folder's lock throughout.  On SIGTERM/SIGINT the run is
    marked ``cancelled``, on any error ``failed`` (both resumable with
    ``config.resume``), and the exception propagates.
    """
    config.check()
    df, source = load_manifest(dataset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir), cancel_on_signals():
        device = pick_device(config.device)
        info = _open_run(out_dir, df, source, config, device)
        _write_run(out_dir, info)
        reporter = Progress(out_dir, 1, progress)
        try:
            _run(df, out_dir, config, device, info, reporter)
        except TrainingCancelled as err:
            _close_run(out_dir, info, "cancelled", reporter, str(err), "cancelled")
            raise TrainingCancelled("training cancelled; continue it with --resume", out_dir) from None
        except BaseException as err:
            message = str(err) if isinstance(err, MammoError) else f"{type(err).__name__}: {err}"
            _close_run(out_dir, info, "failed", reporter, message, "run_failed")
            raise
        _close_run(out_dir, info, "complete", reporter, None, "run_done")
    return runs.read_run(out_dir)


def _close_run(out_dir: Path, info: dict[str, Any], status: str, reporter: Progress,
               message: str | None, event: str) -> None:
    info.update(status=status, finished=_now())
    for entry in info["cells"].values():
        if entry.get("status") == "running":
            entry["status"] = "pending"
    if message:
        info["error"] = message
    _write_run(out_dir, info)
    reporter.emit(event, message=message)


def _run(df: pd.DataFrame, out_dir: Path, config: TrainConfig, device: torch.device,
         info: dict[str, Any], reporter: Progress) -> None:
    _setup_threads(device)
    train_df = df[df["split"] == "train"].reset_index(drop=True)
    test_df = df[df["split"] == "test"].reset_index(drop=True)
    planned = plan_cells(train_df, config)
    for p in planned:
        info["cells"].setdefault(p.cell.name, {"status": "pending"})
    _write_run(out_dir, info)
    folds = _cv_plan(train_df, config) if config.cv and not _cv_complete(out_dir, config) else []
    reporter.total = max(1, _total_steps(planned, config)
                         + sum(_total_steps(fp, config) for _, fp, _ in folds))
    bank = ImageBank(list(train_df["image_path"]), config.img_size, config.clahe_clip,
                     config.clahe_tiles, config.workers)
    if folds:
        atomic_write_json(out_dir / runs.CV_FILE,
                          cross_validate(folds, out_dir, config, bank, reporter, device))
    for name, res in info["cells"].items():  # a done cell is kept only if its hash still holds
        if res.get("status") == "done" and _done_result(Cell.parse(name), out_dir / name,
                                                        res.get("sha256")) is None:
            res["status"] = "pending"
    _train_planned(planned, out_dir, config, reporter, bank, info)
    _predict_and_evaluate(out_dir, test_df, info, device)


# ------------------------------------------------------------------ cross-validation

def _cv_complete(out_dir: Path, config: TrainConfig) -> bool:
    try:
        cv = runs.read_json(out_dir / runs.CV_FILE)
    except CheckpointError:
        return False
    return config.resume and all(len(cv.get(m, [])) == config.cv for m in modes_for(config.mode))


def _cv_plan(train_df: pd.DataFrame, config: TrainConfig
             ) -> list[tuple[int, list[_PlannedCell], pd.DataFrame]]:
    """(fold, planned cells on the other folds, held-out rows) for each fold."""
    from core.datasets.split import grouped_folds

    try:
        fold_of = grouped_folds(train_df, config.cv, config.seed)
    except ValueError as err:
        raise TrainingError(f"--cv {config.cv}: {err}") from None
    out = []
    for k in range(config.cv):
        fit, held = train_df[fold_of != k], train_df[fold_of == k]
        out.append((k, plan_cells(fit, config), held))
    return out


def _fold_metrics(y: np.ndarray, p: np.ndarray, thr: np.ndarray, fold: int,
                  n_unserved: int) -> dict[str, Any]:
    from core import evaluate as ev

    pred = (p >= thr).astype(int)
    out: dict[str, Any] = {"fold": fold, "n": int(len(y)), "n_malignant": int(y.sum()),
                           "n_unserved": n_unserved}
    for name in ("sensitivity", "specificity", "f1_malignant", "f1_weighted", "accuracy",
                 "balanced_accuracy"):
        out[name] = getattr(ev, name)(y, pred) if len(y) else None
    out["roc_auc"] = ev.roc_auc(y, p) if len(y) else None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def cross_validate(folds: list[tuple[int, list[_PlannedCell], pd.DataFrame]], out_dir: Path,
                   config: TrainConfig, bank: ImageBank, progress: Progress,
                   device: torch.device) -> dict[str, list[dict[str, Any]]]:
    """Patient-grouped K-fold CV on the training split → ``{mode: [per-fold metrics]}``.

    Each fold trains every cell on the other folds (same skip / validation
    rules), predicts its held-out rows at the cell's threshold and is scored
    with :mod:`core.evaluate`'s metric functions.  Held-out images whose cell
    was skipped are counted as ``n_unserved`` and left out of the metrics.
    Fold weights are deleted afterwards; only their meta.json stays.
    """
    result: dict[str, list[dict[str, Any]]] = {m: [] for m in modes_for(config.mode)}
    for k, planned, held in folds:
        fold_dir = out_dir / "cv" / f"fold-{k + 1}"
        trained = _train_planned(planned, fold_dir, config, progress, bank, None)
        for mode in result:
            ys, ps, ts, unserved = [], [], [], 0
            for cell in plan(mode):  # type: ignore[arg-type]
                rows = cell_rows(held, cell)
                res = trained[cell.name]
                if res.status != "done":
                    unserved += len(rows)
                    continue
                if rows.empty:
                    continue
                model = create_model(config.arch, config.img_size).to(device)
                load_weights(model, fold_dir / cell.name / runs.WEIGHTS_FILE, res.sha256)
                p = _sigmoid(predict_logits(model, bank.take(rows["image_path"]), device))
                ys.append(_labels(rows)), ps.append(p), ts.append(np.full(len(p), res.threshold))
            cat = (lambda a: np.concatenate(a) if a else np.zeros(0))
            result[mode].append(_fold_metrics(cat(ys).astype(int), cat(ps), cat(ts), k + 1,
                                              unserved))
        for weights in fold_dir.glob(f"*/{runs.WEIGHTS_FILE}"):
            weights.unlink()
    return result
