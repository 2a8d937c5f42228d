"""Atomic file writes: write a temporary file, fsync, rename.

Why: checkpoints, run.json and metrics.json are read by other processes (the
app, a second command) while training writes them; a reader must see the old
file or the whole new one, and an interrupted write must leave no half file.
Kept free of torch so light modules (evaluation) can use it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from core.errors import CheckpointError


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


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())
