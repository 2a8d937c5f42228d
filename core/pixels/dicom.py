"""Open a DICOM file: header checks before decoding, the decoded stored values, its tags.

Decisions a caller must know:

* **Multi-frame DICOM is refused** (tomosynthesis, cine): frame 0 of a stack is
  not a 2-D mammogram, and silently showing one slice would mislead.
* Size limits (:mod:`core.pixels.limits`) are checked from ``Rows`` /
  ``Columns`` before the pixel data is decoded.
* ``PresentationIntentType`` FOR PROCESSING is refused: raw detector data,
  not what a model or a reader should see.
* Every failure on bad bytes is an :class:`~core.errors.ImageReadError` naming
  the file; no pydicom exception escapes.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ImageReadError
from core.pixels.limits import check_size, short_error
from core.pixels.sniff import content_hint

if TYPE_CHECKING:  # pydicom loads on the first DICOM read, not with the app
    from pydicom import Dataset

_IMAGE_VIEW_CODES = {  # ViewCodeSequence fallback: SNOMED-RT and SNOMED-CT codes
    "R-10242": "CC", "399162004": "CC", "R-10226": "MLO", "399368009": "MLO",
}


def _dcmread(path: Path, head: bytes, stop_before_pixels: bool = False) -> Dataset:
    """pydicom's reader with every failure turned into an ImageReadError."""
    import pydicom

    has_marker = head[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(path, force=not has_marker, stop_before_pixels=stop_before_pixels)
    except Exception as err:  # pydicom raises a dozen types on bad bytes; all mean "unreadable"
        if not has_marker:
            raise ImageReadError(f"not a DICOM file (no 'DICM' marker; looks like "
                                 f"{content_hint(head)})", path) from None
        raise ImageReadError(f"unreadable or truncated DICOM ({short_error(err)})", path) from None
    if not has_marker and not _has_image_header(ds):
        raise ImageReadError(f"not a DICOM file (no 'DICM' marker; looks like "
                             f"{content_hint(head)})", path)
    return ds


def _has_image_header(ds: Dataset) -> bool:
    """A force-read dataset is only believed when it parsed into real image tags."""
    try:
        return ("Rows" in ds and "Columns" in ds) or "SOPClassUID" in ds
    except Exception:  # garbage that pydicom parsed lazily and cannot even list
        return False


def open_dicom(path: Path, head: bytes) -> tuple[Dataset, np.ndarray]:
    """``(dataset, stored values)`` after every header check (before decoding)."""
    ds = _dcmread(path, head)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError("DICOM has no pixel data (not an image, e.g. a report)", path)
    rows, cols = _tag_int(ds, "Rows", path), _tag_int(ds, "Columns", path)
    check_size(rows, cols, path)
    frames = _tag_int(ds, "NumberOfFrames", path, default=1)
    if frames > 1:
        raise ImageReadError(f"multi-frame DICOM ({frames} frames, e.g. tomosynthesis or cine) "
                             "is not supported; export one 2-D view", path)
    if str(ds.get("PresentationIntentType", "") or "").strip().upper() == "FOR PROCESSING":
        raise ImageReadError("PresentationIntentType is FOR PROCESSING: raw detector data, not "
                             "an image to read; use the FOR PRESENTATION image", path)
    stored = _decode(ds, path)
    if str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE"):
        stored = _palette_to_rgb(ds, stored, path)
    return ds, stored


def dicom_tags(ds: Dataset, window_used: tuple, path: Path) -> dict[str, Any]:
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    return {
        "format": "dicom",
        "laterality": _laterality(ds),
        "view_position": _view_position(ds),
        "photometric": photometric or None,
        "bits_stored": _tag_int(ds, "BitsStored", path, default=0) or None,
        "window": window_used,
        "patient_orientation": _patient_orientation(ds),
        "patient_id": _text_tag(ds, "PatientID"),
        "study_uid": _text_tag(ds, "StudyInstanceUID"),
    }


def _text_tag(ds: Dataset, keyword: str) -> str | None:
    """A tag's text, None when absent or blank (a file then names no patient or study)."""
    value = str(ds.get(keyword, "") or "").strip()
    return value or None


def _patient_orientation(ds: Dataset) -> tuple[str, ...] | None:
    """``PatientOrientation``'s values (row direction, column direction), or None."""
    value = ds.get("PatientOrientation")
    if not value:
        return None
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).strip().upper() for v in values) or None


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
                             f"({short_error(err)})", path) from None
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        raise ImageReadError(f"unexpected pixel array shape {arr.shape}", path)
    return arr


def _palette_to_rgb(ds: Dataset, indices: np.ndarray, path: Path) -> np.ndarray:
    """PALETTE COLOR stores indices: look them up, then they are grey-converted like RGB."""
    from pydicom.pixels import apply_color_lut

    try:
        return apply_color_lut(indices, ds)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
        raise ImageReadError(f"invalid palette colour lookup table ({short_error(err)})", path) from None


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
