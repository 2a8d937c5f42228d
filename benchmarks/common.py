"""Helpers the benchmark scripts share: output, timing, memory, temp data.

Why a shared module: every script must print exactly one JSON object with
``--json`` (so tests and CI can parse it) and one readable line otherwise,
and every script builds its synthetic inputs the same way (a phantom in a
temp dir, a private preprocess cache) so no benchmark touches the user's
``data/`` or ``.cache/``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOTE_CPU = "CPU figures; the machine may be shared with other jobs"


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--json`` switch every script has."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    return parser


def emit(result: dict[str, Any], as_json: bool, readable: str) -> None:
    """Print ``result`` as one JSON line, or ``readable`` for a person."""
    if as_json:
        print(json.dumps(result, default=_plain))
    else:
        print(readable)
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and paths."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def time_call(fn: Callable[[], Any], repeats: int = 1) -> list[float]:
    """Wall times (ms) of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak RSS of this process so far in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def temp_dir(prefix: str = "mammoroute-bench-") -> Iterator[Path]:
    """A temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@contextmanager
def private_cache(root: Path) -> Iterator[Path]:
    """Point ``$MAMMOROUTE_CACHE`` at ``root`` for the duration (the user's cache stays untouched)."""
    from core.pixels.cache import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    root.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old


def phantom_manifest(root: Path, studies: int = 4, size: int = 256, seed: int = 0):
    """A small VinDr-layout phantom written under ``root``, read back as a manifest."""
    from core.datasets import load_dataset
    from core.phantom import write_phantom

    out = root / "phantom-vindr"
    write_phantom(out, profile="vindr", studies=studies, size=size, seed=seed, workers=1)
    return load_dataset(out)


def make_random_run(root: Path, arch: str, img_size: int, seed: int = 0) -> Path:
    """A run folder with random weights in every cell of both grids, as core.train writes it.

    Prediction speed does not depend on the weights' values, so random ones
    let the predictor be timed for the paper's architectures without training.
    """
    import torch

    from core.grid import plan
    from core.models import create_model, save_weights
    from core.pixels.spec import PreprocessParams

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = create_model(arch, img_size)
    cells = {}
    first: Path | None = None
    for mode in ("baseline", "roi"):
        for cell in plan(mode):
            target = root / cell.name / "weights.safetensors"
            if first is None:  # one file, hard-linked: 12 cells of Swin-T would be 1.3 GB
                sha, first = save_weights(model, target), target
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(first, target)
            meta = json.dumps({"threshold": 0.5}).encode()
            (root / cell.name / "meta.json").write_bytes(meta)  # hash-checked like the weights
            cells[cell.name] = {"status": "done", "sha256": sha,
                                "meta_sha256": hashlib.sha256(meta).hexdigest()}
    info = {"arch": arch, "img_size": img_size, "modes": ["baseline", "roi"], "cells": cells,
            "preprocess": PreprocessParams(img_size).to_json()}
    (root / "run.json").write_text(json.dumps(info))
    return root
