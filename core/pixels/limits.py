"""The size limits every decoded picture must meet, and the one-line form of a library error.

Checked from a file's header before anything is decoded, and again on the
decoded array, so no file can make the app allocate more than
:data:`MAX_PIXELS` pixels.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from core.errors import ImageReadError

MAX_PIXELS = 80_000_000  # largest FFDM detectors are ~30 MP; anything above is refused
MAX_SIDE = 32_767  # OpenCV's own hard limit on one side
MIN_SIDE = 16  # smaller is a thumbnail or an icon, not a mammogram
OPENCV_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"  # OpenCV's own decode limit (default 2**30)


def cap_opencv_pixels() -> bool:
    """Lower OpenCV's own decode limit to :data:`MAX_PIXELS`; False when too late.

    The header check comes first, but a file one library sizes and the other
    decodes differently (a polyglot) must still not reach OpenCV's default of
    a gigapixel.  OpenCV reads the variable once, when ``cv2`` is first
    imported, so ``core/__init__.py`` calls this before any module imports
    ``cv2``; a smaller limit already set is kept.
    """
    current = os.environ.get(OPENCV_PIXELS_ENV, "")
    if current.isdigit() and int(current) <= MAX_PIXELS:
        return True  # set already, e.g. inherited by a worker process
    os.environ[OPENCV_PIXELS_ENV] = str(MAX_PIXELS)
    if "cv2" in sys.modules:
        logging.getLogger(__name__).warning(
            "cv2 was imported before core: OpenCV's decode limit stays at its default; "
            "import core first")
        return False
    return True


def check_size(rows: int, cols: int, path: str | Path) -> None:
    """Refuse thumbnails and decompression bombs (before decoding where possible)."""
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise ImageReadError(f"image of {rows}×{cols} pixels is too small "
                             f"(each side must be at least {MIN_SIDE})", path)
    if rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_PIXELS:
        raise ImageReadError(f"image of {rows}×{cols} pixels exceeds the "
                             f"{MAX_PIXELS // 1_000_000} megapixel limit", path)


def short_error(err: BaseException) -> str:
    """One line of an underlying library's error, for the message."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
