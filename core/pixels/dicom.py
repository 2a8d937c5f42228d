"""Read one mammogram (DICOM or an image file) into a float image in [0, 1].

Whatever the source, the result follows one convention so the rest of the
code never has to ask: ``pixels`` is a 2-D float32 array in [0, 1] after
windowing, **tissue is bright** and background / padding is dark.

DICOM path (PS3.3 C.11): stored values → modality LUT (Rescale Slope /
Intercept) → VOI (the first VOI LUT Sequence item, else the first Window
Center/Width with its VOI LUT Function, else a robust percentile window) →
MONOCHROME1 inverted → padding pixels set to 0.  Image files (PNG, JPEG, PGM,
TIFF): 8-bit is scaled by 255 (such files are already rendered for display,
e.g. CDD-CESM JPEGs); 16-bit and float files are raw detector values more often
than not, so they get the same percentile window as a DICOM without one.

Decisions a caller must know:

* **Multi-frame DICOM is refused** (tomosynthesis, cine): frame 0 of a stack is
  not a 2-D mammogram, and silently showing one slice would mislead.
* Colour (RGB, YBR, palette) is converted to grey by luminance.
* Constant images are refused ("nothing to show"), as are images with a side
  under :data:`MIN_SIDE` and, *before decoding*, images above
  :data:`MAX_PIXELS` (a decompression-bomb guard read from the header).
* Every failure on bad bytes is an :class:`~core.errors.ImageReadError` naming
  the file; no pydicom / OpenCV exception escapes.
"""
from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.errors import ImageReadError

if TYPE_CHECKING:  # pydicom loads on the first DICOM read, not with the app
    from pydicom import Dataset

MAX_PIXELS = 80_000_000  # largest FFDM detectors are ~30 MP; anything above is refused
MAX_SIDE = 32_767  # OpenCV's own hard limit on one side
MIN_SIDE = 16  # smaller is a thumbnail or an icon, not a mammogram
PERCENTILES = (0.5, 99.5)  # robust window when the file carries none
PERCENTILE_SAMPLES = 1_000_000  # percentiles on a strided sample: same answer, 10x faster
RENDER_TOLERANCE = 1.0  # mean |Δ| (grey levels of 255) allowed for averaging before the table
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_IMAGE_VIEW_CODES = {  # ViewCodeSequence fallback: SNOMED-RT and SNOMED-CT codes
    "R-10242": "CC", "399162004": "CC", "R-10226": "MLO", "399368009": "MLO",
}


@dataclass(frozen=True)
class MammoImage:
    """A decoded mammogram: windowed pixels, the original shape and what was read.

    ``tags`` holds ``laterality`` (L/R/None), ``view_position`` (CC/MLO/None),
    ``photometric``, ``bits_stored``, ``format`` ("dicom" or "image") and
    ``window`` = ``(center, width, kind)`` with kind one of ``LINEAR``,
    ``LINEAR_EXACT``, ``SIGMOID`` (from the file), ``percentile`` (computed;
    center/width describe the range used), ``voi_lut`` or ``dtype`` (8-bit
    image scaled by 255); center/width are ``None`` for the last two.
    """

    pixels: np.ndarray
    source_shape: tuple[int, int]
    tags: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- entry points

def read_image(path: str | Path) -> MammoImage:
    """Read a DICOM or image file; see the module docstring for the contract."""
    return _guarded(path, _read_dicom, _read_picture)


def render_uint8(path: str | Path, min_side: int = 0) -> MammoImage:
    """The file as 8-bit pixels, shrunk by the largest power-of-two factor that
    keeps the shorter side at least ``min_side`` (0: full size).

    Why: the model sees a few hundred pixels, yet windowing a 13.6 MP image in
    float32 and then shrinking it costs five decodes.  Integer grey DICOMs
    (nearly every mammogram) go through one lookup table over all stored
    values instead (modality LUT, VOI, polarity, padding and the rounding to
    8 bits folded in), applied *after* a power-of-two block average of the
    stored values, so only the small image is looked up.

    * ``min_side=0`` gives exactly ``to_uint8(read_image(path).pixels)``.
    * With a factor above 1 the table comes after the average instead of
      before: the two differ only where the window bends inside one block
      (clipped ranges, sigmoid, skin line); ``benchmarks.preprocess`` measures
      the mean difference against :data:`RENDER_TOLERANCE`.  The last rows and
      columns that do not fill a whole block (fewer than the factor) are
      dropped.
    * Padding is averaged with tissue only when its table entries are already
      black; otherwise the table is applied at full size first.

    ``source_shape`` stays the file's full size (masks are drawn at it);
    ``pixels`` is uint8, not the float of :func:`read_image`.
    """
    if min_side < 0:
        raise ValueError(f"min_side must be >= 0, got {min_side}")
    return _guarded(path, lambda p, h: _render_dicom(p, h, min_side),
                    lambda p, h: _render_picture(p, h, min_side))


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8, rounding and clipping (NaN becomes 0); uint8 passes through."""
    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8:
        return pixels
    arr = np.nan_to_num(np.asarray(pixels, np.float32), nan=0.0)
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _guarded(path: str | Path, dicom_reader, picture_reader) -> MammoImage:
    """Sniff the format and run its reader; any failure becomes an ImageReadError."""
    path = Path(path)
    head = _read_head(path)
    reader = dicom_reader if _looks_like_dicom(head, path) else picture_reader
    try:
        with warnings.catch_warnings():  # pydicom warns on every odd tag; errors say what matters
            warnings.simplefilter("ignore")
            return reader(path, head)
    except ImageReadError:
        raise
    except Exception as err:  # bad bytes surfacing somewhere unforeseen inside pydicom / cv2
        raise ImageReadError(f"corrupt or unsupported file ({type(err).__name__}: {_short(err)})",
                             path) from err


def read_view_tags(path: str | Path) -> tuple[str | None, str | None]:
    """``(laterality, view)`` from a DICOM header only (pixels are not read).

    Used to assign views when the manifest lacks them; a non-DICOM file has
    no such tags and gives ``(None, None)``.
    """
    path = Path(path)
    head = _read_head(path)
    if not _looks_like_dicom(head, path):
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _dcmread(path, head, stop_before_pixels=True)
            return _laterality(ds), _view_position(ds)
    except ImageReadError:
        raise
    except Exception as err:  # a garbled tag that pydicom only converts on access
        raise ImageReadError(f"corrupt DICOM header ({type(err).__name__}: {_short(err)})",
                             path) from err


# --------------------------------------------------------------------------- sniffing

def _read_head(path: Path) -> bytes:
    """The first bytes of the file; refuses missing, unreadable and empty files."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a folder, not an image file", path) from None
    except OSError as err:
        raise ImageReadError(f"cannot be read ({err.strerror or err})", path) from None
    if not head:
        raise ImageReadError("empty file (0 bytes)", path)
    return head


def _looks_like_dicom(head: bytes, path: Path) -> bool:
    """DICM marker, a DICOM file name, or a preamble-less dataset's first group."""
    if head[128:132] == b"DICM":
        return True
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) >= 8


def _content_hint(head: bytes) -> str:
    """Name obvious non-DICOM contents, so the error says what the file really is."""
    for magic, name in ((b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"),
                        (b"\xff\xd8\xff", "a JPEG image"), (b"PK\x03\x04", "a ZIP archive")):
        if head.startswith(magic):
            return name
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:128]):
        return "a text file"
    return "unrecognised bytes"


# --------------------------------------------------------------------------- DICOM

def _dcmread(path: Path, head: bytes, stop_before_pixels: bool = False) -> Dataset:
    """pydicom's reader with every failure turned into an ImageReadError."""
    import pydicom

    has_marker = head[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(path, force=not has_marker, stop_before_pixels=stop_before_pixels)
    except Exception as err:  # pydicom raises a dozen types on bad bytes; all mean "unreadable"
        if not has_marker:
            raise ImageReadError(f"not a DICOM file (no 'DICM' marker; looks like "
                                 f"{_content_hint(head)})", path) from None
        raise ImageReadError(f"unreadable or truncated DICOM ({_short(err)})", path) from None
    if not has_marker and not _has_image_header(ds):
        raise ImageReadError(f"not a DICOM file (no 'DICM' marker; looks like "
                             f"{_content_hint(head)})", path)
    return ds


def _has_image_header(ds: Dataset) -> bool:
    """A force-read dataset is only believed when it parsed into real image tags."""
    try:
        return ("Rows" in ds and "Columns" in ds) or "SOPClassUID" in ds
    except Exception:  # garbage that pydicom parsed lazily and cannot even list
        return False


def _open_dicom(path: Path, head: bytes) -> tuple[Dataset, np.ndarray]:
    """``(dataset, stored values)`` after every header check (before decoding)."""
    ds = _dcmread(path, head)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError("DICOM has no pixel data (not an image, e.g. a report)", path)
    rows, cols = _tag_int(ds, "Rows", path), _tag_int(ds, "Columns", path)
    _check_size(rows, cols, path)
    frames = _tag_int(ds, "NumberOfFrames", path, default=1)
    if frames > 1:
        raise ImageReadError(f"multi-frame DICOM ({frames} frames, e.g. tomosynthesis or cine) "
                             "is not supported; export one 2-D view", path)
    stored = _decode(ds, path)
    if str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE"):
        stored = _palette_to_rgb(ds, stored, path)
    return ds, stored


def _read_dicom(path: Path, head: bytes) -> MammoImage:
    """Header checks (before any decoding), decode, modality, VOI, polarity, padding."""
    ds, stored = _open_dicom(path, head)
    pixels, window_used = _render_float(ds, stored, path)
    return MammoImage(pixels, stored.shape[:2], _dicom_tags(ds, window_used, path))


def _render_float(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray, tuple]:
    """Stored values → float32 [0, 1], tissue bright, padding 0."""
    padding = _padding_mask(ds, stored)
    values = _modality(ds, stored, path)
    if values.ndim == 3:
        values = _to_grey(values)
    if values.dtype.kind == "f" and stored.dtype.kind == "f" and not np.isfinite(values).all():
        padding = padding | ~np.isfinite(values)
    pixels, window_used = _apply_voi(ds, values, padding, path)
    if _is_mono1(ds):
        np.subtract(np.float32(1.0), pixels, out=pixels)
    pixels[padding] = 0.0
    return np.ascontiguousarray(pixels, np.float32), window_used


def _is_mono1(ds: Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"


# --------------------------------------------------------------------------- 8-bit rendering

def _render_dicom(path: Path, head: bytes, min_side: int) -> MammoImage:
    """:func:`render_uint8` for a DICOM: the lookup table where it applies."""
    ds, stored = _open_dicom(path, head)
    k = _factor(stored.shape, min_side)
    if stored.ndim != 2 or stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        pixels, window_used = _render_float(ds, stored, path)  # colour, float, 32-bit
        img = _block_mean(to_uint8(pixels), k)
    else:
        table, black_padding, window_used = _display_table(ds, stored, path)
        if k > 1 and black_padding:
            img = table[_unsigned(_block_mean(stored, k))]
        else:
            img = _block_mean(table[_unsigned(stored)], k)
    return MammoImage(np.ascontiguousarray(img), stored.shape[:2],
                      _dicom_tags(ds, window_used, path))


def _display_table(ds: Dataset, stored: np.ndarray, path: Path) -> tuple[np.ndarray, bool, tuple]:
    """uint8 rendering of every possible stored value, indexed by their unsigned bits.

    The same float32 steps as :func:`_render_float`, run on the 256 or 65,536
    possible values instead of the pixels, so each entry is bit-identical to
    what the full-size path gives that value.  Also says whether padding
    values render black even before they are zeroed (then averaging them with
    tissue is harmless).
    """
    unsigned = np.dtype(f"u{stored.dtype.itemsize}")
    domain = np.arange(1 << (8 * stored.dtype.itemsize), dtype=unsigned).view(stored.dtype)[None]
    padding = _padding_mask(ds, domain)[0]
    values = _modality(ds, domain, path)
    rendered, window_used = _apply_voi(ds, values, None, path,
                                       sample=lambda: _percentile_sample(ds, stored, values[0]))
    if _is_mono1(ds):
        np.subtract(np.float32(1.0), rendered, out=rendered)
    table = to_uint8(rendered[0])
    black_padding = not padding.any() or not table[padding].any()
    table[padding] = 0
    return table, black_padding, window_used


def _percentile_sample(ds: Dataset, stored: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Modality values of the pixels :func:`percentile_window` would sample."""
    padding = _padding_mask(ds, stored)
    kept = stored[~padding] if padding.any() else stored.ravel()
    step = max(1, kept.size // PERCENTILE_SAMPLES)
    return table[_unsigned(kept[::step])]


def _unsigned(stored: np.ndarray) -> np.ndarray:
    """The same bits as unsigned integers: the table's index (no copy)."""
    return stored.view(np.dtype(f"u{stored.dtype.itemsize}")) if stored.dtype.kind == "i" else stored


def _factor(shape: tuple[int, ...], min_side: int) -> int:
    """Largest power-of-two shrink factor keeping the shorter side at least ``min_side``.

    Powers of two because halving is OpenCV's fastest area path (about 4 ms
    for 13.6 MP, against 10–15 ms for a single factor of 3 or 4).
    """
    k = 1
    while min_side > 0 and min(shape[0], shape[1]) // (2 * k) >= min_side:
        k *= 2
    return k


def _block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Mean of each ``k × k`` block (``k`` a power of two), by successive rounded halvings;
    an odd last row or column is dropped at each halving.  The dtype is kept: a
    block mean of stored values indexes the same lookup table they do."""
    dtype = img.dtype
    if dtype == np.int8 and k > 1:
        img = img.astype(np.int16)  # OpenCV does not resize int8
    while k > 1:
        h, w = img.shape[0] // 2, img.shape[1] // 2
        img = cv2.resize(img[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
        k //= 2
    return img.astype(dtype, copy=False)


def _dicom_tags(ds: Dataset, window_used: tuple, path: Path) -> dict[str, Any]:
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    return {
        "format": "dicom",
        "laterality": _laterality(ds),
        "view_position": _view_position(ds),
        "photometric": photometric or None,
        "bits_stored": _tag_int(ds, "BitsStored", path, default=0) or None,
        "window": window_used,
    }


def _tag_int(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise ImageReadError(f"DICOM lacks {keyword}", path)
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImageReadError(f"DICOM {keyword} is not a number ({value!r})", path) from None


def _check_decoder(ds: Dataset, path: Path) -> None:
    """Refuse, by name, a transfer syntax no installed pydicom plugin can decode."""
    from pydicom.pixels import get_decoder

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if not ts:
        return  # a preamble-less file: pydicom infers the encoding while decoding
    try:
        available = get_decoder(ts).is_available
    except Exception:  # pydicom has no decoder at all for this syntax
        available = False
    if not available:
        label = str(ts) if ts.name == str(ts) else f"{ts.name} ({ts})"
        raise ImageReadError(f"no decoder for transfer syntax {label}: not supported, or its "
                             "pylibjpeg plugin is not installed", path)


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Decode the stored values (any transfer syntax a pydicom plugin handles)."""
    _check_decoder(ds, path)
    try:
        arr = ds.pixel_array
    except (ValueError, RuntimeError, AttributeError, KeyError, TypeError, IndexError,
            EOFError, OSError, MemoryError, OverflowError, struct.error) as err:
        raise ImageReadError(f"pixel data cannot be decoded, truncated or corrupt "
                             f"({_short(err)})", path) from None
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        raise ImageReadError(f"unexpected pixel array shape {arr.shape}", path)
    return arr


def _palette_to_rgb(ds: Dataset, indices: np.ndarray, path: Path) -> np.ndarray:
    """PALETTE COLOR stores indices: look them up, then they are grey-converted like RGB."""
    from pydicom.pixels import apply_color_lut

    try:
        return apply_color_lut(indices, ds)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
        raise ImageReadError(f"invalid palette colour lookup table ({_short(err)})", path) from None


def _padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Pixels equal to PixelPaddingValue, or in [value, PixelPaddingRangeLimit].

    Padding is the area outside the detector or the collimation: it must
    neither stretch the window nor show up as tissue.
    """
    value = ds.get("PixelPaddingValue")
    if value is None or stored.ndim != 2:  # padding is defined for grey images only
        return np.zeros(stored.shape[:2], bool)
    value = int(value)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return stored == value
    lo, hi = sorted((value, int(limit)))
    return (stored >= lo) & (stored <= hi)


def _modality(ds: Dataset, stored: np.ndarray, path: Path) -> np.ndarray:
    """Modality LUT (rescale or LUT sequence) as float32 in output units.

    float32 holds every 16-bit value exactly and halves the memory of a 30 MP
    image compared with pydicom's float64.
    """
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(stored, ds), np.float32)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            raise ImageReadError(f"invalid modality LUT ({_short(err)})", path) from None
    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    values = stored.astype(np.float32)  # always a fresh array: edited in place below
    if slope is not None and slope != 1.0:
        values *= np.float32(slope)
    if intercept:
        values += np.float32(intercept)
    return values


def _to_grey(values: np.ndarray) -> np.ndarray:
    """Luminance (BT.601) of colour pixels; pydicom has already turned YBR into RGB."""
    return values[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)


def _apply_voi(ds: Dataset, values: np.ndarray, padding: np.ndarray | None, path: Path,
               sample: Callable[[], np.ndarray] | None = None
               ) -> tuple[np.ndarray, tuple[float | None, float | None, str]]:
    """First VOI LUT item, else first window, else a percentile window (of what
    ``sample()`` returns when given: the pixels' values, when ``values`` is a lookup
    table's domain; only called when no window of the file applies)."""
    seq = ds.get("VOILUTSequence")
    if seq:
        return _voi_lut(ds, seq[0], values, path), (None, None, "voi_lut")
    file_window = _file_window(ds)
    if file_window is not None:
        return window(values, *file_window), file_window
    if sample is None:
        return percentile_window(values, padding, path)
    lo, hi = percentile_range(sample(), None, path)
    return _stretch(values, lo, hi), ((lo + hi) / 2.0, hi - lo, "percentile")


def _file_window(ds: Dataset) -> tuple[float, float, str] | None:
    """The file's first usable ``(center, width, function)``, or None."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if center is not None and width is not None and _valid_width(width, function):
        return center, width, function
    return None


def _first(value: Any) -> float | None:
    """The first of a multi-valued window tag (the file's preferred one)."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _valid_width(width: float, function: str) -> bool:
    return width >= 1 if function == "LINEAR" else width > 0


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """PS3.3 C.11.2.1.2 windowing, output scaled to [0, 1] (float32).

    LINEAR: below ``c - 0.5 - (w-1)/2`` → 0, above ``c - 0.5 + (w-1)/2`` → 1,
    else ``((x - (c - 0.5)) / (w - 1) + 0.5)``.  LINEAR_EXACT: ``(x - c) / w + 0.5``
    clipped.  SIGMOID: ``1 / (1 + exp(-4 (x - c) / w))``.
    """
    x = np.array(values, np.float32)  # a copy, transformed in place
    if function == "SIGMOID":
        x -= np.float32(center)
        x *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):
            np.exp(x, out=x)
        x += 1.0
        np.reciprocal(x, out=x)
    elif function == "LINEAR_EXACT" or width > 1:
        offset, scale = (center, width) if function == "LINEAR_EXACT" else (center - 0.5, width - 1.0)
        x -= np.float32(offset)
        x *= np.float32(1.0 / scale)
        x += 0.5
    else:  # LINEAR with width 1: a threshold
        x = (x > center - 0.5).astype(np.float32)
    return np.clip(x, 0.0, 1.0, out=x)


def _voi_lut(ds: Dataset, item: Dataset, values: np.ndarray, path: Path) -> np.ndarray:
    """A VOI LUT Sequence item applied to modality values, scaled by its bit depth."""
    try:
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        n = n or 65536
        raw = item["LUTData"].value
        if isinstance(raw, (bytes, bytearray)):
            lut = np.frombuffer(bytes(raw)[: 2 * n], dtype=_word_order(ds))
        else:
            lut = np.asarray(list(raw) if not np.isscalar(raw) else [raw], np.float64)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ImageReadError(f"invalid VOI LUT Sequence ({_short(err)})", path) from None
    if lut.size == 0:
        raise ImageReadError("empty VOI LUT", path)
    lut = lut.astype(np.float64)
    index = np.clip(np.rint(np.nan_to_num(values)) - first, 0, lut.size - 1).astype(np.int64)
    top = max(float(2 ** bits - 1) if 1 <= bits <= 16 else 0.0, float(lut.max()), 1.0)
    return (lut[index] / top).astype(np.float32)


def _word_order(ds: Dataset) -> str:
    """numpy dtype of an OW LUT's 16-bit words: the file's byte order."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return "<u2" if ts is None or ts.is_little_endian else ">u2"
    except (AttributeError, ValueError):
        return "<u2"


def percentile_window(values: np.ndarray, padding: np.ndarray | None, path: str | Path
                      ) -> tuple[np.ndarray, tuple[float, float, str]]:
    """Window the 0.5–99.5 % range of the non-padding pixels onto [0, 1].

    Used when the file has no window of its own: robust to a few hot pixels
    and to large empty background, unlike min/max.
    """
    x = np.asarray(values)
    finite = np.isfinite(x) if x.dtype.kind == "f" else None
    lo, hi = percentile_range(x, padding, path)
    out = np.array(x, np.float32)
    if finite is not None:
        out[~finite] = lo
    return _stretch(out, lo, hi), ((lo + hi) / 2.0, hi - lo, "percentile")


def percentile_range(values: np.ndarray, padding: np.ndarray | None, path: str | Path
                     ) -> tuple[float, float]:
    """``(lo, hi)``: the 0.5 and 99.5 percentiles of the finite, non-padding values
    (a strided sample of at most 2 × :data:`PERCENTILE_SAMPLES`), min/max if equal."""
    x = np.asarray(values)
    finite = np.isfinite(x) if x.dtype.kind == "f" else np.ones(x.shape, bool)
    keep = finite if padding is None else (~padding & finite)
    sample = x[keep]
    if sample.size == 0:
        raise ImageReadError("every pixel is padding or not a number, nothing to show", path)
    step = max(1, sample.size // PERCENTILE_SAMPLES)
    lo, hi = (float(v) for v in np.percentile(sample[::step], PERCENTILES))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        raise ImageReadError("constant image, nothing to show", path)
    return lo, hi


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(values - lo) / (hi - lo)`` clipped to [0, 1], in place on a float32 array."""
    values -= np.float32(lo)
    values *= np.float32(1.0 / (hi - lo))
    return np.clip(values, 0.0, 1.0, out=values)


def _laterality(ds: Dataset) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in ("L", "R"):
            return value
    return None


def _view_position(ds: Dataset) -> str | None:
    value = str(ds.get("ViewPosition", "") or "").strip().upper()
    if value in ("CC", "MLO"):
        return value
    try:
        code = str(ds.ViewCodeSequence[0].CodeValue).strip()
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return _IMAGE_VIEW_CODES.get(code)


# --------------------------------------------------------------------------- image files

def _read_picture(path: Path, head: bytes) -> MammoImage:
    """PNG / JPEG / PGM / TIFF through OpenCV, size checked from the header first."""
    arr = _decode_picture(path, head)
    pixels, window_used = _picture_pixels(arr, path)
    return MammoImage(pixels, arr.shape[:2], _picture_tags(arr, window_used))


def _render_picture(path: Path, head: bytes, min_side: int) -> MammoImage:
    """:func:`render_uint8` for an image file: 8-bit files need no arithmetic at all."""
    arr = _decode_picture(path, head)
    if arr.dtype == np.uint8:
        img, window_used = arr, (None, None, "dtype")
    else:
        pixels, window_used = _picture_pixels(arr, path)
        img = to_uint8(pixels)
    return MammoImage(np.ascontiguousarray(_block_mean(img, _factor(arr.shape, min_side))),
                      arr.shape[:2], _picture_tags(arr, window_used))


def _picture_pixels(arr: np.ndarray, path: Path) -> tuple[np.ndarray, tuple]:
    """8-bit files are rendered for display already (÷ 255); deeper ones get a percentile window."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0), (None, None, "dtype")
    pixels, window_used = percentile_window(arr, None, path)
    pixels[~np.isfinite(arr)] = 0.0
    return np.ascontiguousarray(pixels, np.float32), window_used


def _decode_picture(path: Path, head: bytes) -> np.ndarray:
    """The grey 2-D array of an image file, refusing oversize and constant 8-bit images."""
    size = _picture_header_size(path)
    if size is not None:
        _check_size(*size, path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except (cv2.error, OSError, ValueError, MemoryError) as err:
        raise ImageReadError(f"image cannot be decoded ({_short(err)})", path) from None
    if arr is None:
        raise ImageReadError(f"not an image OpenCV can read (looks like {_content_hint(head)})",
                             path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = _picture_grey(arr)
    if arr.ndim != 2:
        raise ImageReadError(f"unexpected image shape {arr.shape}", path)
    _check_size(arr.shape[0], arr.shape[1], path)
    if arr.dtype == np.uint8 and int(arr.max()) == int(arr.min()):
        raise ImageReadError("constant image, nothing to show", path)
    return arr


def _picture_tags(arr: np.ndarray, window_used: tuple) -> dict[str, Any]:
    bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(arr.dtype, arr.dtype.itemsize * 8)
    return {"format": "image", "laterality": None, "view_position": None,
            "photometric": "MONOCHROME2", "bits_stored": bits, "window": window_used}


def _picture_grey(arr: np.ndarray) -> np.ndarray:
    """BGR(A) → grey by luminance, keeping the bit depth (alpha is ignored)."""
    bgr = arr[..., :3]
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)
    return (bgr.astype(np.float64) @ np.array([0.114, 0.587, 0.299])).astype(np.float32)


def _picture_header_size(path: Path) -> tuple[int, int] | None:
    """(rows, cols) from the image header without decoding, via Pillow.

    Pillow reads only the header here; it is a dependency of Streamlit and
    torchvision, so it is always installed with the app.  If it cannot tell
    (a format it does not know), the size is checked again after decoding.
    """
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise ImageReadError(f"image larger than the {MAX_PIXELS // 1_000_000} megapixel limit",
                             path) from None
    except Exception:  # Pillow does not know the format: OpenCV may, sizes checked after
        return None
    return int(height), int(width)


# --------------------------------------------------------------------------- shared checks

def _check_size(rows: int, cols: int, path: str | Path) -> None:
    """Refuse thumbnails and decompression bombs (before decoding where possible)."""
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise ImageReadError(f"image of {rows}×{cols} pixels is too small "
                             f"(each side must be at least {MIN_SIDE})", path)
    if rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_PIXELS:
        raise ImageReadError(f"image of {rows}×{cols} pixels exceeds the "
                             f"{MAX_PIXELS // 1_000_000} megapixel limit", path)


def _short(err: BaseException) -> str:
    """One line of an underlying library's error, for the message."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
