"""Training configuration, per-cell results, seeds, and the skip / validation rules."""
from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.datasets.manifest import label_codes
from core.errors import CheckpointError, TrainingError
from core.grid import Cell, modes_for
from core.models import arch_spec

MIN_IMAGES = 8
MIN_PER_CLASS = 2


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
    pretrained_sha256: str | None = None  # set by the grid runner (see pretrained_digest)
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
    crop: bool = True
    fit: str = "stretch"
    warm_start: int = 0  # epochs of the pooled model each cell starts from (0: none)
    init_weights: str | None = None  # set by the grid runner: the pooled model (warm start)
    init_sha256: str | None = None
    roi_model: bool = False  # also train the ROI finder (core.roifinder) on the training split
    roi_size: int = 96  # the finder's input side
    roi_epochs: int = 20
    split_seed: int = 0  # seeds the train/test split of a dataset that ships none (CDD-CESM)
    cdd_type: str = "DM"  # CDD-CESM images: low-energy "DM" (the paper's) or subtracted "CESM"

    def load_options(self):
        """How this run reads its dataset (recorded in run.json as ``dataset_options``)."""
        from core.datasets import LoadOptions

        return LoadOptions(self.split_seed, self.cdd_type)

    def preprocess_params(self):
        """The preprocessing every image of this run goes through (one spec for all)."""
        from core.pixels.spec import PreprocessParams

        return PreprocessParams(self.img_size, self.clahe_clip, self.clahe_tiles, self.crop, self.fit)

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
        if self.roi_model and (self.roi_size < 16 or self.roi_size % 16 or self.roi_epochs < 1):
            problems.append(f"ROI finder needs a size that is a multiple of 16 (got "
                            f"{self.roi_size}) and ≥ 1 epoch (got {self.roi_epochs})")
        if self.warm_start < 0:
            problems.append(f"warm-start epochs must be ≥ 0 (got {self.warm_start})")
        if self.fit not in ("stretch", "pad"):
            problems.append(f"fit must be stretch or pad (got {self.fit!r})")
        if self.cdd_type not in ("DM", "CESM"):
            problems.append(f"CDD-CESM image type must be DM or CESM (got {self.cdd_type!r})")
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
                "clahe_clip", "clahe_tiles", "crop", "fit", "roi_model", "roi_size", "roi_epochs",
                "warm_start", "pretrained_sha256")
        return {k: getattr(self, k) for k in keys}


def pretrained_digest(pretrained: str | None) -> str | None:
    """What ``--pretrained`` stands for in a run's identity: the file's SHA-256, ``"hub"``
    for timm's own weights, None from scratch.

    The path alone would not do: another file can be put under the same name,
    and a resumed run would then mix cells started from two different weights.
    """
    if not pretrained:
        return None
    if pretrained == "hub":
        return "hub"
    digest = hashlib.sha256()
    try:
        with open(pretrained, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise CheckpointError(f"pretrained weights cannot be read ({err.strerror or err})",
                              pretrained) from None
    return digest.hexdigest()


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
    temperature: float | None = None
    logit_offset: float | None = None
    best_epoch: int | None = None
    seconds: float = 0.0
    meta_sha256: str | None = None  # meta.json's bytes: threshold and calibration are served from it

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "cell"}
        if self.status == "skipped":
            return {"status": "skipped", "reason": self.reason, "counts": self.counts}
        return data


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run seed and a path of names (cell, epoch, purpose)."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def seeded_generator(seed: int, *parts: Any) -> torch.Generator:
    """A generator of its own per purpose (cell, epoch, shuffle / augment), so one draw
    more in one place never shifts the random numbers of another."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random alike, so model initialisation repeats with the seed."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def now_iso() -> str:
    """UTC time to the second, as run.json and the progress log record start and end."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def label_targets(df: pd.DataFrame) -> np.ndarray:
    """The manifest's labels as the loss's float targets (1 = malignant)."""
    return label_codes(df["label"]).astype(np.float32)


def class_counts(df: pd.DataFrame) -> dict[str, int]:
    """``{"benign": n, "malignant": m}`` of a manifest slice."""
    y = label_targets(df)
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
