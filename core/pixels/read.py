"""Read one mammogram (DICOM or a picture) into pixels in [0, 1] or 8 bits.

Whatever the source, the result follows one convention so the rest of the
code never has to ask: tissue is bright and background / padding is dark,
after the file's own windowing (:mod:`core.pixels.voi`).  The format is
sniffed from the first bytes (:mod:`core.pixels.sniff`); DICOM goes through
:mod:`core.pixels.dicom_render`, pictures through :mod:`core.pixels.picture`.

* Constant images are refused ("nothing to show"), as are images with a side
  under :data:`~core.pixels.limits.MIN_SIDE` and, *before decoding*, images
  above :data:`~core.pixels.limits.MAX_PIXELS` (a decompression-bomb guard).
* Every failure on bad bytes is an :class:`~core.errors.ImageReadError` naming
  the file; no pydicom / OpenCV exception escapes.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from core.errors import ImageReadError
from core.pixels.dicom_render import read_dicom, render_dicom
from core.pixels.image import MammoImage
from core.pixels.limits import short_error
from core.pixels.picture import read_picture, render_picture
from core.pixels.sniff import looks_like_dicom, read_head

RENDER_TOLERANCE = 1.0  # mean |Δ| (grey levels of 255) allowed for averaging before the table
Reader = Callable[[Path, bytes], MammoImage]  # (path, first bytes) → image


def read_image(path: str | Path) -> MammoImage:
    """Read a DICOM or image file; see the module docstring for the contract."""
    return _guarded(path, read_dicom, read_picture)


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
    return _guarded(path, lambda p, h: render_dicom(p, h, min_side),
                    lambda p, h: render_picture(p, h, min_side))


def _guarded(path: str | Path, dicom_reader: Reader, picture_reader: Reader) -> MammoImage:
    """Sniff the format and run its reader; any failure becomes an ImageReadError."""
    path = Path(path)
    head = read_head(path)
    reader = dicom_reader if looks_like_dicom(head, path) else picture_reader
    try:
        with warnings.catch_warnings():  # pydicom warns on every odd tag; errors say what matters
            warnings.simplefilter("ignore")
            return reader(path, head)
    except ImageReadError:
        raise
    except Exception as err:  # bad bytes surfacing somewhere unforeseen inside pydicom / cv2
        raise ImageReadError(f"corrupt or unsupported file ({type(err).__name__}: "
                             f"{short_error(err)})", path) from err
