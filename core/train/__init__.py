"""Training: one cell's loop, the grid runner, resume, cancellation, CV.

One cell = one model.  A run trains the cells of the chosen
grids in order (baseline, then ROI-aware), then predicts the test split with
:mod:`core.predict` and scores it with :mod:`core.evaluate`.  The run folder
follows :mod:`core.runfolder.layout` exactly; every file is written atomically.

Decisions the paper leaves open, and what is done here:

* **Skip rule.**  A cell is trained when its training rows hold at least
  ``MIN_IMAGES`` (8) images and at least ``MIN_PER_CLASS`` (2) of each class;
  otherwise it is skipped and the reason recorded in ``run.json`` (its test
  images are then served by :mod:`core.predict`'s fallback).  Two per class
  is the least that lets a model see a class twice; VinDr's ``noroi`` cells
  (≈ 7 malignant training images each) pass, a phantom's may not.
* **Validation.**  15 % of the run's training patients, carved once
  (:mod:`~core.train.carve`: patient-grouped, stratified by label and ROI
  presence), are every model's validation patients: a cell's validation
  images are theirs in that cell, and the warm-start model never trains on
  them.  They select the epoch (lowest validation loss by default), fit the
  calibration (per grid, :mod:`~core.train.calibrate`) and the threshold
  (maximum Youden's J).  When a cell's share of the training side lacks a
  class, the cell trains on all its rows; when its validation side is empty
  or one-class it keeps the last epoch (or the lowest-loss one if the
  validation side is non-empty) and picks the threshold on its own training
  images; ``meta.json`` says so (``selection``, ``threshold_source``) because
  such a threshold is optimistic.  Each model's ``split.json`` lists what it
  trained and was validated on (:mod:`core.runfolder.splits`).
* **Balanced training** (``balanced``) uses a BCE ``pos_weight`` of
  n_benign / n_malignant, not a sampler: every image is still seen once per
  epoch and the batch order stays a pure function of the seed.
* **BatchNorm statistics** (generic timm models such as ``resnet10t``; the
  paper's Swin and ConvNeXt V2 use LayerNorm and are unaffected) are
  recomputed on the cell's unaugmented training images after every epoch
  (:func:`~core.train.loop.recalibrate_batchnorm`), before validation.  The
  running averages training keeps mix the weights of a whole epoch; after a
  short run from scratch they are stale, and a resnet10t's test AUC swung
  between 0.70 and 0.96 from epoch to epoch (0.93-0.97 once recomputed).
* **Exact resume.**  Randomness never carries over an epoch boundary: the
  global RNGs, the shuffle and the augmentation are re-seeded from
  (seed, cell, epoch) at the start of each epoch, so an epoch repeated after
  an interruption is the same epoch, and only model + optimizer tensors need
  saving (``last.safetensors``).

The modules, from the bottom up:

- :mod:`~core.train.config`: training configuration, per-cell results, seeds, and the skip
  / validation rules.
- :mod:`~core.train.cancel`: cancellation: the shared cancel flag, SIGTERM / SIGINT
  handling, :class:`TrainingCancelled`.
- :mod:`~core.train.metrics`: small scoring helpers: Youden's threshold, validation ROC AUC
  (evaluation's :func:`~core.evaluate.roc.roc_auc`), sigmoid and BCE on numpy arrays.
- :mod:`~core.train.data`: images and batches: the preprocessed :class:`ImageBank`, a
  cell's staged data, batch order.
- :mod:`~core.train.progress`: :class:`Progress`: progress.jsonl events, the run's ETA and
  the terminal line.
- :mod:`~core.train.device`: device set-up: per-cell memory scope, CPU threads, the
  optimizer and autocast.
- :mod:`~core.train.checkpoint`: resume checkpoints: ``last.*`` save / load, optimizer
  tensors, a done cell's result.
- :mod:`~core.train.loop`: one cell's training loop: epochs, selection, the threshold and
  the cell's files.
- :mod:`~core.train.runinfo`: the run folder's ``run.json``: manifest loading, dataset
  hash, opening and writing a run.
- :mod:`~core.train.lock`: the run lock: one training process per run folder (``flock``).
- :mod:`~core.train.planned`: planning the grid's cells (skip / validation per cell) and
  training them in order.
- :mod:`~core.train.carve`: the run's one validation carve and each cell's share of it.
- :mod:`~core.train.calibrate`: the served calibration and threshold, per grid (per cell
  on a large validation set).
- :mod:`~core.train.recipe`: the served recipe on one training set (warm start, cells,
  calibration), for the run and for each CV fold.
- :mod:`~core.train.cv`: patient-grouped K-fold cross-validation of that recipe.
- :mod:`~core.train.grid`: the grid runner: :func:`train_grid`, then prediction and
  evaluation of the test split; its executor trains the parts in this process
  (:func:`~core.train.grid.train_serially`) or as Ray tasks (:mod:`core.scale.train`).
"""
from __future__ import annotations

from core.train.checkpoint import load_optimizer_tensors, optimizer_tensors
from core.train.config import CellResult, TrainConfig, skip_reason
from core.train.data import ImageBank
from core.train.grid import train_grid
from core.train.lock import run_lock
from core.train.loop import recalibrate_batchnorm, train_cell
from core.train.progress import Progress

__all__ = [
    "CellResult", "ImageBank", "Progress", "TrainConfig", "load_optimizer_tensors",
    "optimizer_tensors", "recalibrate_batchnorm", "run_lock", "skip_reason", "train_cell",
    "train_grid",
]
