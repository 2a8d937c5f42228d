"""The on-disk cache of model inputs, and the cached loader training and evaluation use.

Decoding a 30 MP DICOM costs about a second; training reads every image every
epoch, so results are cached as plain ``.npy`` (loaded without pickle) keyed by
the file's absolute path, size, mtime and the spec.  The cache lives in
``$MAMMOROUTE_CACHE`` or ``<repo>/.cache/preprocessed`` and is safe to delete
at any time.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.errors import CheckpointError, ImageReadError
from core.pixels.crop import CropBox
from core.pixels.preprocess import preprocess_file
from core.pixels.spec import PREPROCESS_VERSION, PreprocessParams
from core.runfolder.atomic import atomic_write_bytes

CACHE_ENV = "MAMMOROUTE_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
_log = logging.getLogger(__name__)


class PreprocessCache:
    """Preprocessed arrays on disk, one ``.npy`` per (file version, params).

    Keys hash the absolute path, size, ``mtime_ns``, the params and
    :data:`PREPROCESS_VERSION`, so an edited file or a new setting misses by
    itself and nothing ever needs invalidating.  Writes are atomic
    (:mod:`core.runfolder.atomic`), so concurrent workers and interrupted runs leave
    either a whole entry or none; a damaged entry reads as a miss.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"PreprocessCache({str(self.root)!r})"

    def key(self, path: str | Path, params: PreprocessParams) -> str:
        """Hex digest naming the entry for this version of ``path`` under ``params``."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageReadError("file not found", path) from None
        except OSError as err:
            raise ImageReadError(f"cannot be read ({err.strerror or err})", path) from None
        ident = [str(path.resolve()), st.st_size, st.st_mtime_ns, asdict(params), PREPROCESS_VERSION]
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    @staticmethod
    def box_entry(entry: Path) -> Path:
        """The crop box's side file (:meth:`CropBox.to_array`) of an entry."""
        return entry.with_suffix(".box")

    def get(self, path: str | Path, params: PreprocessParams) -> tuple[np.ndarray, CropBox] | None:
        """The cached ``(array, crop box)``, or ``None`` on a miss or a damaged entry."""
        entry = self.entry(self.key(path, params))
        try:
            arr = np.load(entry, allow_pickle=False)
            box = CropBox.from_array(np.frombuffer(self.box_entry(entry).read_bytes(), np.float64))
        except (OSError, ValueError, TypeError, EOFError):
            return None
        if arr.dtype != np.uint8 or arr.shape != (params.size, params.size):
            return None
        return arr, box

    def put(self, path: str | Path, params: PreprocessParams, arr: np.ndarray,
            box: CropBox) -> Path:
        """Store ``arr`` and its box atomically (box first, so an entry never lacks
        one); returns the entry's path."""
        target = self.entry(self.key(path, params))
        atomic_write_bytes(self.box_entry(target), box.to_array().tobytes())
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr, np.uint8), allow_pickle=False)
        atomic_write_bytes(target, buf.getvalue())
        return target


def default_cache() -> PreprocessCache:
    """``$MAMMOROUTE_CACHE`` if set, else ``<repo>/.cache/preprocessed`` (read at each call)."""
    root = os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache" / "preprocessed"
    return PreprocessCache(root)


class DefaultCache:
    """Marker for "use :func:`default_cache` at call time" (so the env var is honoured)."""

    def __repr__(self) -> str:
        return "default_cache()"



DEFAULT_CACHE = DefaultCache()


def resolve_cache(cache: PreprocessCache | None | DefaultCache) -> PreprocessCache | None:
    return default_cache() if isinstance(cache, DefaultCache) else cache


def load_preprocessed_with_box(path: str | Path, params: PreprocessParams,
                               cache: PreprocessCache | None | DefaultCache = DEFAULT_CACHE
                               ) -> tuple[np.ndarray, CropBox]:
    """``(model input, crop box)`` for ``path``: from the cache if there, else decoded and stored.

    ``cache=None`` disables caching.  A cache that cannot be written (read-only
    disk, disk full) only costs speed: the array is still returned.
    """
    store = resolve_cache(cache)
    if store is not None:
        hit = store.get(path, params)
        if hit is not None:
            return hit
    arr, box = preprocess_file(path, params)
    if store is not None:
        try:
            store.put(path, params, arr, box)
        except CheckpointError as err:
            _log.warning("preprocess cache %s not written: %s", store.root, err)
    return arr, box


def load_preprocessed(path: str | Path, params: PreprocessParams,
                      cache: PreprocessCache | None | DefaultCache = DEFAULT_CACHE) -> np.ndarray:
    """The model input for ``path`` alone (see :func:`load_preprocessed_with_box`)."""
    return load_preprocessed_with_box(path, params, cache)[0]
