"""Hashes that make a run folder's served numbers tamper-evident.

The weights' SHA-256 has always been checked before serving; a cell's
``meta.json`` holds the other half of what a reader is told (threshold,
temperature, logit offset), so ``run.json`` records its SHA-256 too
(``meta_sha256``) and a hand edit is refused the same way.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import CheckpointError


def file_sha256(path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def verify_meta(path: Path, expected_sha256: str | None) -> None:
    """Refuse a cell's meta.json whose bytes differ from what run.json recorded."""
    if not expected_sha256:
        raise CheckpointError("run.json records no SHA-256 of this file (a run made before "
                              "thresholds and calibration were hash-checked), so its threshold "
                              "and temperature cannot be trusted: retrain the run", path)
    if file_sha256(path) != expected_sha256:
        raise CheckpointError("SHA-256 differs from the one recorded in run.json: the "
                              "threshold or calibration was changed after training; retrain "
                              "the cell or restore the file", path)
