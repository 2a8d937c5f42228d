"""Atomic file writes: write a temporary file, fsync, rename.

Why: checkpoints, run.json and metrics.json are read by other processes (the
app, a second command) while training writes them; a reader must see the old
file or the whole new one, and an interrupted write must leave no half file.
Kept free of torch so light modules (evaluation) can use it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CheckpointError, MammoError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write-temp, fsync, rename: a reader sees the old file or the whole new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:  # read-only folder, disk full: one clear line, not a traceback
        raise CheckpointError(f"cannot write ({err.strerror or err})", path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise CheckpointError(f"cannot write ({err.strerror or err})", path) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sweep_partial_writes(folder: str | Path) -> int:
    """Delete what a killed writer left of :func:`atomic_write_bytes` under ``folder`` (its
    ``.<name>.*.tmp`` files, never renamed into place, so never read); their count.  Only
    for a folder whose lock is held, where no other writer can be half-way."""
    leftovers = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return len(leftovers)


def atomic_write_png(path: str | Path, img: np.ndarray) -> None:
    """``img`` (gray, or BGR as OpenCV orders colour) as a PNG, encoded before anything is written."""
    import cv2  # only the writers of pictures pay for OpenCV

    ok, data = cv2.imencode(".png", img)
    if not ok:
        raise MammoError("PNG encoding failed", path)
    atomic_write_bytes(path, data.tobytes())


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars become Python numbers, NaN and infinities null.

    Strict JSON has no NaN, and the app, a browser and other tools read these files.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (:func:`jsonable`; any other object as its text), written atomically."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False, default=str)
    atomic_write_bytes(path, (text + "\n").encode())
