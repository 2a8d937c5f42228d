"""Images and batches: the preprocessed :class:`ImageBank`, a cell's staged data, batch order."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from core.errors import TrainingError
from core.pixels.spec import PreprocessParams
from core.train.cancel import CANCEL, TrainingCancelled


class ImageBank:
    """Every image of a split preprocessed once into one uint8 (N, 1, S, S) tensor.

    Batches are slices of this tensor, so no epoch decodes a file.  The
    preprocess cache (:mod:`core.pixels.cache`) makes a second run start fast.
    """

    def __init__(self, paths: list[str], params: PreprocessParams, workers: int = 0):
        from core.pixels.cache import load_preprocessed
        from core.pixels.pool import preprocess_many

        size = params.size
        unique = list(dict.fromkeys(paths))
        if len(unique) > 64 and workers != 1:
            report = preprocess_many(unique, params, workers or None, stop=CANCEL.is_set)
            if report.stopped:
                raise TrainingCancelled("cancelled while preprocessing images")
            if report.errors:
                shown = "; ".join(err for _, err in report.errors[:3])
                raise TrainingError(f"{len(report.errors)} image(s) cannot be preprocessed: {shown}")
        self.index = {p: i for i, p in enumerate(unique)}
        self.images = torch.empty((len(unique), 1, size, size), dtype=torch.uint8)
        for i, path in enumerate(unique):
            if CANCEL.is_set():
                raise TrainingCancelled("cancelled while preprocessing images")
            self.images[i, 0] = torch.from_numpy(load_preprocessed(path, params))

    def take(self, paths: list[str] | pd.Series) -> torch.Tensor:
        """The images of ``paths`` in that order (a copy)."""
        idx = torch.tensor([self.index[p] for p in paths], dtype=torch.long)
        return self.images.index_select(0, idx)


class CellData:
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


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A seeded permutation in batches; a trailing batch of one is dropped
    (normalisation layers of generic timm models fail on it; shuffling lets
    that image train in other epochs)."""
    perm = torch.randperm(n, generator=gen)
    parts = list(perm.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts.pop()
    return parts


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many optimiser steps one epoch of ``n`` images takes."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps
