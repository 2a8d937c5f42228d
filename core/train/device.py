"""Device set-up: per-cell memory scope, CPU threads, the optimizer and autocast."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from core.train.config import TrainConfig


@contextmanager
def cell_scope(device: torch.device) -> Iterator[None]:
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


THREADS_ENV = "MAMMOROUTE_THREADS"


def setup_threads(device: torch.device) -> None:
    """On CPU, use every core this process may run on (torch's default can be fewer), or
    ``$MAMMOROUTE_THREADS``: a Ray task's CPU share, so cells sharing a node do not
    oversubscribe it."""
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, int(os.environ.get(THREADS_ENV) or cores or 1)))


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device
                   ) -> torch.optim.Optimizer:
    """The paper's AdamW with the run's lr and weight decay (fused kernels on CUDA)."""
    fused = device.type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=config.lr,
                             weight_decay=config.weight_decay, fused=fused or None)


def autocast_for(device: torch.device) -> AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA, nothing on CPU (where it would only slow training)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
