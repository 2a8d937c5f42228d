"""``metrics.json`` output: plain JSON types (NaN → null) written atomically.

Readers (the UI, a second CLI call) must see the old file or the new one,
never half of one, and strict JSON has no NaN.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluate.metrics import nan_to_none
from core.runfolder.atomic import atomic_write_bytes


def _jsonable(obj: Any) -> Any:
    """Plain JSON types only; NaN and infinities become null."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return nan_to_none(float(obj))
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN → null) written atomically (:mod:`core.runfolder.atomic`)."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n").encode())
