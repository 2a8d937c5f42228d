"""Window → 8-bit → resize → CLAHE, and the on-disk cache of the results.

The paper's preprocessing is "DICOM windowing → 8-bit, then CLAHE" at
384×384.  Two choices it leaves open, made here:

* **The breast is cropped first** (:mod:`core.pixels.crop`): its bounding box
  plus a 2 % margin, found on the 8-bit rendering, so air, burned-in labels
  and markers do not take the model's pixels.  ``crop=False`` (``--no-crop``)
  keeps the whole frame, for comparison.
* **The crop is stretched to the square input** (``fit="stretch"``, as the
  paper's fixed 384×384 input implies for the whole frame); ``fit="pad"``
  squares the box first so the aspect ratio is kept.  Stretch is the
  default because it gives the breast every input pixel (on the real RSNA
  exam the breast spans the whole input in both directions, where padding
  leaves it 0.5–0.8 of the width) and because its phantom AUC was no worse
  (README, "Preprocessing").  ROI masks and Grad-CAM maps follow the same
  geometry through the returned :class:`~core.pixels.crop.CropBox`.
* **CLAHE runs on the reduced image**, not the full-field one: 10–50x faster
  and, since the tile grid is relative to the image, the same contrast
  behaviour.
* **Windowing runs on a reduced image too**: every file is first rendered to
  8 bits at the largest power-of-two reduction whose shorter side stays at
  least the spec's ``source_side`` (:func:`render_source`; by default
  ``max(SOURCE_SIDE, size)``, so a large input is never upsampled).
* **One spec per run**: :class:`PreprocessParams` is everything that decides
  the pixels (size, source side, crop, fit, CLAHE) plus
  :data:`PREPROCESS_VERSION`.  A run stores it in ``run.json`` and training,
  review and the command line all build their pixels from that stored spec
  (:func:`render_source`, then :func:`prepare_input`), so a file gives the
  model the same input wherever it is read.  A spec of another version is
  refused rather than served with pixels its models never saw.

Defaults ``clahe_clip=2.0`` and ``clahe_tiles=8`` are OpenCV's customary
values and the ones most mammography CLAHE papers use; the paper gives none.

Decoding a 30 MP DICOM costs about a second; training reads every image every
epoch, so results are cached as plain ``.npy`` (loaded without pickle) keyed by
the file's absolute path, size, mtime and the parameters.  The cache lives in
``$MAMMOROUTE_CACHE`` or ``<repo>/.cache/preprocessed`` and is safe to delete
at any time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.errors import CheckpointError, ImageReadError, MammoError
from core.pixels.crop import CropBox, find_breast
from core.pixels.dicom import MammoImage, render_uint8, to_uint8

# The spec's version: bump whenever dicom.py or this file changes the pixels a spec
# produces, or the spec's fields change (a stored spec of another version is refused).
PREPROCESS_VERSION = 4
CACHE_ENV = "MAMMOROUTE_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_SIZE = 4096  # no model input is larger; bigger asks are a typo
FITS = ("stretch", "pad")  # how the breast's box becomes the square input
SOURCE_SIDE = 768  # default shorter side of the 8-bit rendering preprocessing starts from
MAX_SOURCE_SIDE = 16384  # larger than any mammogram's side
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that decides a model input's pixels: one spec per run.

    ``source_side`` is the shorter side of the 8-bit rendering the input is
    made from (``None``: ``max(SOURCE_SIDE, size)``); it is part of the spec
    because the rendering's reduction changes the pixels.  ``clahe_clip`` is
    OpenCV's clip limit (contrast amplification cap; 2.0 enhances parenchyma
    without blowing up noise), ``clahe_tiles`` the number of tiles per side
    (8 → 48-pixel tiles at 384, about a lesion's size).
    """

    size: int
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    crop: bool = True
    fit: str = "stretch"
    source_side: int | None = None

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if not 8 <= int(self.size) <= MAX_SIZE:
            raise ValueError(f"size must be between 8 and {MAX_SIZE}, got {self.size}")
        if not 0 <= float(self.clahe_clip) <= 100:
            raise ValueError(f"clahe_clip must be between 0 and 100, got {self.clahe_clip}")
        if not 1 <= int(self.clahe_tiles) <= 64:
            raise ValueError(f"clahe_tiles must be between 1 and 64, got {self.clahe_tiles}")
        if self.source_side is None:
            object.__setattr__(self, "source_side", max(SOURCE_SIDE, int(self.size)))
        if not 8 <= int(self.source_side) <= MAX_SOURCE_SIDE:
            raise ValueError(f"source_side must be between 8 and {MAX_SOURCE_SIDE}, "
                             f"got {self.source_side}")

    def to_json(self) -> dict[str, object]:
        """The spec as ``run.json`` stores it under ``preprocess``, with its version."""
        return {**asdict(self), "version": PREPROCESS_VERSION}

    @classmethod
    def from_json(cls, block: object, where: str | Path | None = None,
                  what: str = "this run", made_by: str = "") -> PreprocessParams:
        """The stored spec, refused unless this code renders its version.

        A missing spec or another version means this code cannot promise the
        pixels the models were trained on, so the message says what to do
        instead of serving them something else.  ``made_by`` names the code
        that wrote the spec.
        """
        version = block.get("version") if isinstance(block, dict) else None
        if version is None:
            raise CheckpointError(f"{what} records no preprocessing spec{made_by}: it predates "
                                  f"preprocessing version {PREPROCESS_VERSION}; {_RETRAIN}", where)
        if version != PREPROCESS_VERSION:
            raise CheckpointError(f"{what} was made under preprocessing version {version}"
                                  f"{made_by}; this MammoRoute renders version "
                                  f"{PREPROCESS_VERSION}, so its models would see other pixels "
                                  f"than they were trained on; {_RETRAIN}", where)
        missing = [k for k in SPEC_KEYS if k not in block]
        if missing:
            raise CheckpointError(f"the preprocessing spec of {what} lacks "
                                  f"{', '.join(missing)}", where)
        try:
            if not isinstance(block["crop"], bool):
                raise ValueError(f"crop must be true or false, got {block['crop']!r}")
            return cls(size=int(block["size"]), clahe_clip=float(block["clahe_clip"]),
                       clahe_tiles=int(block["clahe_tiles"]), crop=block["crop"],
                       fit=block["fit"], source_side=int(block["source_side"]))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"the preprocessing spec of {what} is invalid: {err}",
                                  where) from None

    @classmethod
    def from_run(cls, info: dict[str, object],
                 where: str | Path | None = None) -> PreprocessParams:
        """The spec a run was trained under, from its ``run.json`` (``where``: its path)."""
        spec = cls.from_json(info.get("preprocess"), where, "this run", _made_by(info))
        if info.get("img_size") is not None and info.get("img_size") != spec.size:
            raise CheckpointError(f"the preprocessing spec's size {spec.size} differs from the "
                                  f"run's img_size {info.get('img_size')}", where)
        return spec


SPEC_KEYS: tuple[str, ...] = tuple(PreprocessParams.__dataclass_fields__)
_RETRAIN = ("retrain it with this MammoRoute (Train page or `python -m core train`), or "
            "open it with the MammoRoute that made it")


def _made_by(info: dict[str, object]) -> str:
    """`` (MammoRoute 0.1.0, commit abc1234)`` from a run's ``run.json``, or ``""``."""
    parts = [f"MammoRoute {info['code_version']}" if info.get("code_version") else "",
             f"commit {str(info['git_commit'])[:7]}" if info.get("git_commit") else ""]
    said = ", ".join(p for p in parts if p)
    return f" ({said})" if said else ""


# --------------------------------------------------------------------------- pixels

def render_source(path: str | Path, params: PreprocessParams) -> MammoImage:
    """The 8-bit rendering of a file that ``params`` builds model inputs from.

    The only place a file is rendered for a model: training (through the
    cache), the predictor and the app all call it with the run's spec, so
    they all start from the same pixels (:func:`prepare_input` does the rest).
    """
    return render_uint8(path, int(params.source_side))


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when growing."""
    shrinking = width * height < img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def input_box(img: np.ndarray, params: PreprocessParams) -> CropBox:
    """The part of a uint8 rendering that becomes the model input, as fractions."""
    if not params.crop:
        return CropBox.full()
    box = find_breast(img)
    return box.squared(img.shape) if params.fit == "pad" else box


def prepare_input(pixels: np.ndarray, params: PreprocessParams) -> tuple[np.ndarray, CropBox]:
    """A windowed image (uint8, or float in [0, 1]) → ``(model input, crop box)``.

    8-bit first (the paper's step), then the breast crop, a square stretch,
    and CLAHE on the small image (clip 0 disables CLAHE).  The box maps masks
    in and Grad-CAM maps back out (:mod:`core.pixels.crop`).
    """
    img = to_uint8(pixels)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    box = input_box(img, params)
    img = _resize(box.crop(img), params.size, params.size)
    if params.clahe_clip > 0:
        clahe = cv2.createCLAHE(clipLimit=float(params.clahe_clip),
                                tileGridSize=(int(params.clahe_tiles),) * 2)
        img = clahe.apply(img)
    return np.ascontiguousarray(img), box


def preprocess_array(pixels: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """The model's uint8 ``(size, size)`` input alone (see :func:`prepare_input`)."""
    return prepare_input(pixels, params)[0]


def preprocess_file(path: str | Path, params: PreprocessParams) -> tuple[np.ndarray, CropBox]:
    """Decode one file and preprocess it, no cache involved: ``(input, crop box)``."""
    return prepare_input(render_source(path, params).pixels, params)


def to_display(path_or_pixels: str | Path | np.ndarray, size: int) -> np.ndarray:
    """A uint8 image for the UI: windowed, aspect kept, longer side ``size``, no CLAHE.

    The clinician sees the image as the file means it to be seen; the model's
    stretched, CLAHE-enhanced input is :func:`load_preprocessed`.
    """
    if isinstance(path_or_pixels, np.ndarray):
        pixels = path_or_pixels
    else:
        pixels = render_uint8(path_or_pixels, size).pixels
    img = to_uint8(pixels)
    h, w = img.shape[:2]
    scale = size / float(max(h, w))
    return np.ascontiguousarray(_resize(img, max(1, round(w * scale)), max(1, round(h * scale))))


# --------------------------------------------------------------------------- cache

class PreprocessCache:
    """Preprocessed arrays on disk, one ``.npy`` per (file version, params).

    Keys hash the absolute path, size, ``mtime_ns``, the params and
    :data:`PREPROCESS_VERSION`, so an edited file or a new setting misses by
    itself and nothing ever needs invalidating.  Writes are atomic (temporary
    file + ``os.replace``), so concurrent workers and interrupted runs leave
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
        """The crop box's side file (four float64 fractions) of an entry."""
        return entry.with_suffix(".box")

    def get(self, path: str | Path, params: PreprocessParams) -> tuple[np.ndarray, CropBox] | None:
        """The cached ``(array, crop box)``, or ``None`` on a miss or a damaged entry."""
        entry = self.entry(self.key(path, params))
        try:
            arr = np.load(entry, allow_pickle=False)
            box = CropBox(*np.frombuffer(self.box_entry(entry).read_bytes(), np.float64))
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
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_bytes(self.box_entry(target), np.asarray(box.as_tuple(), np.float64).tobytes())
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(arr, np.uint8), allow_pickle=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def _atomic_bytes(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_cache() -> PreprocessCache:
    """``$MAMMOROUTE_CACHE`` if set, else ``<repo>/.cache/preprocessed`` (read at each call)."""
    root = os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache" / "preprocessed"
    return PreprocessCache(root)


class _DefaultCache:
    """Marker for "use :func:`default_cache` at call time" (so the env var is honoured)."""

    def __repr__(self) -> str:
        return "default_cache()"


DEFAULT_CACHE = _DefaultCache()


def _resolve(cache: PreprocessCache | None | _DefaultCache) -> PreprocessCache | None:
    return default_cache() if isinstance(cache, _DefaultCache) else cache


def load_preprocessed_with_box(path: str | Path, params: PreprocessParams,
                               cache: PreprocessCache | None | _DefaultCache = DEFAULT_CACHE
                               ) -> tuple[np.ndarray, CropBox]:
    """``(model input, crop box)`` for ``path``: from the cache if there, else decoded and stored.

    ``cache=None`` disables caching.  A cache that cannot be written (read-only
    disk, disk full) only costs speed: the array is still returned.
    """
    store = _resolve(cache)
    if store is not None:
        hit = store.get(path, params)
        if hit is not None:
            return hit
    arr, box = preprocess_file(path, params)
    if store is not None:
        try:
            store.put(path, params, arr, box)
        except OSError as err:
            _log.warning("preprocess cache %s not written: %s", store.root, err)
    return arr, box


def load_preprocessed(path: str | Path, params: PreprocessParams,
                      cache: PreprocessCache | None | _DefaultCache = DEFAULT_CACHE) -> np.ndarray:
    """The model input for ``path`` alone (see :func:`load_preprocessed_with_box`)."""
    return load_preprocessed_with_box(path, params, cache)[0]


# --------------------------------------------------------------------------- batch

@dataclass
class PreprocessReport:
    """What :func:`preprocess_many` did: counts, time and every file's error."""

    total: int
    decoded: int
    cached: int
    seconds: float
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False  # ``stop()`` said yes before every file was done

    @property
    def images_per_s(self) -> float:
        """Files decoded per second (cache hits excluded: they cost nothing)."""
        return self.decoded / self.seconds if self.seconds > 0 else 0.0


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; threads inside would oversubscribe


def _fill_one(job: tuple[str, PreprocessParams, str]) -> tuple[str, str | None]:
    """Decode one file into the cache; returns ``(path, error or None)``."""
    path, params, root = job
    try:
        load_preprocessed(path, params, PreprocessCache(root))
    except MammoError as err:
        return path, str(err)
    except Exception as err:  # a reader bug must not sink the whole batch; reported as such
        return path, f"{path}: unexpected {type(err).__name__}: {err}"
    return path, None


def preprocess_many(paths: Iterable[str | Path], params: PreprocessParams,
                    workers: int | None = None,
                    cache: PreprocessCache | _DefaultCache = DEFAULT_CACHE,
                    progress: Callable[[int, int], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> PreprocessReport:
    """Fill the cache for ``paths`` with a process pool (all cores by default).

    Hits are found in this process first; only misses go to workers.  Errors
    are collected per file (every bad file is reported, not the first one).
    ``progress(done, total)`` is called as files finish.  Workers are started
    with "spawn": forking a process that holds threads (the Streamlit server,
    a torch runtime) can deadlock.  ``stop()`` is asked as files finish: once
    it says yes no further file is started and the report says ``stopped``
    (a cancelled training must end within its grace period).
    """
    start = time.perf_counter()
    store = _resolve(cache)
    if store is None:
        raise ValueError("preprocess_many fills a cache; pass one (or leave the default)")
    paths = [str(p) for p in paths]
    misses, errors = _split_hits(paths, params, store)
    cached = len(paths) - len(misses) - len(errors)
    done = cached + len(errors)
    if progress:
        progress(done, len(paths))
    jobs = [(p, params, str(store.root)) for p in misses]
    n_workers = max(1, min(workers or len(os.sched_getaffinity(0)) or 1, len(jobs)))
    stop = stop or (lambda: False)
    for path, error in _run_jobs(jobs, n_workers, stop):
        if error is not None:
            errors.append((path, error))
        done += 1
        if progress:
            progress(done, len(paths))
    return PreprocessReport(total=len(paths), decoded=done - cached - len(errors), cached=cached,
                            seconds=time.perf_counter() - start, errors=errors,
                            stopped=done < len(paths))


def _split_hits(paths: list[str], params: PreprocessParams,
                store: PreprocessCache) -> tuple[list[str], list[tuple[str, str]]]:
    """Paths still to decode, and files that are already missing or unreadable."""
    misses: list[str] = []
    errors: list[tuple[str, str]] = []
    for p in paths:
        try:
            if not store.entry(store.key(p, params)).is_file():
                misses.append(p)
        except MammoError as err:
            errors.append((p, str(err)))
    return misses, errors


def _run_jobs(jobs: list[tuple[str, PreprocessParams, str]], n_workers: int,
              stop: Callable[[], bool]) -> Iterator[tuple[str, str | None]]:
    """Yield ``(path, error)`` per job until ``stop()``: in this process for one worker,
    else a pool.

    If the pool cannot run at all (workers killed, a ``__main__`` that spawn
    cannot re-import), the remaining jobs are done here rather than lost,
    unless ``stop()`` says yes: the signal that cancels a training reaches
    its pool workers too, and decoding the rest here would outlast the grace
    period.  One file per task, so a stop waits for at most the files the
    workers hold (about two each), however long the list.
    """
    if n_workers <= 1 or len(jobs) <= 1:
        yield from _until_stopped(jobs, stop)
        return
    finished = 0
    try:
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_worker_init,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_fill_one, jobs):
                finished += 1
                yield result
                if stop():
                    pool.shutdown(wait=False, cancel_futures=True)
                    return
    except BrokenProcessPool as err:
        if stop():
            return
        _log.warning("preprocess pool broke (%s); finishing %d files in this process",
                     err, len(jobs) - finished)
        yield from _until_stopped(jobs[finished:], stop)


def _until_stopped(jobs: list[tuple[str, PreprocessParams, str]],
                   stop: Callable[[], bool]) -> Iterator[tuple[str, str | None]]:
    for job in jobs:
        if stop():
            return
        yield _fill_one(job)
