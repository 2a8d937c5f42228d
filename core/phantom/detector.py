"""What a real detector adds around the breast: air, an off-centre breast, burned-in labels.

On a full-field screening image the breast rarely fills the detector: it
sits against the chest-wall edge, off-centre vertically, with air on the
nipple side, and the view is burned into the pixels as text ("R-MLO",
"L CC") in that air.  The phantom draws both so the breast crop
(:mod:`core.pixels.crop`) is exercised on the same problem it solves on real files.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

FILL = (0.72, 0.92)  # share of the detector's height (and width) the breast's canvas takes
LABEL_VALUE = 1.0  # burned-in text is the brightest thing on the image
_LABEL_FORMS = ("{lat} {pos}", "{lat}-{pos}", "{lat}{pos}")


def detector_layout(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int]:
    """``(breast canvas height, width, vertical offset)`` on an ``h`` × ``w`` detector."""
    fill = float(rng.uniform(*FILL))
    hb, wb = max(8, int(round(h * fill))), max(8, int(round(w * fill)))
    return hb, wb, int(rng.integers(0, h - hb + 1))


def place(img: np.ndarray, h: int, w: int, y_off: int, fill: float) -> np.ndarray:
    """The breast canvas on the detector: chest wall at x = 0, ``fill`` elsewhere."""
    out = np.full((h, w), fill, np.float32)
    out[y_off:y_off + img.shape[0], :img.shape[1]] = img
    return out


def shift_drawn(item: dict[str, Any], dy: float) -> dict[str, Any]:
    """A drawn lesion's shape and box moved down by ``dy`` pixels."""
    s = dict(item["shape"])
    if s["type"] == "polygon":
        s["y"] = [y + dy for y in s["y"]]
    else:
        s["cy"] = s["cy"] + dy
    x0, y0, x1, y1 = item["box"]
    return {**item, "shape": s, "box": (x0, y0 + dy, x1, y1 + dy)}


def burn_label(img: np.ndarray, view: str, rng: np.random.Generator,
               value: float = LABEL_VALUE) -> tuple[int, int, int, int]:
    """Write the view as text in the air on the nipple side; returns its box (x0, y0, x1, y1).

    ``img`` is in its final orientation (left views: chest wall on the left).
    The label goes in whichever top or bottom corner holds less tissue.
    """
    h, w = img.shape
    text = str(rng.choice(_LABEL_FORMS)).format(lat=view[0], pos=view[1:])
    scale = h / 700
    thick = max(1, int(round(h / 400)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, h // 80)
    x = pad if view.startswith("R") else w - tw - pad  # right views: chest wall on the right
    corners = (pad + th, h - pad - base)
    tissue = [float((img[max(0, y - th):y + base, max(0, x):x + tw] > 0.05).mean()) for y in corners]
    y = corners[int(np.argmin(tissue))]
    ink = np.zeros(img.shape, np.uint8)  # OpenCV draws text on 8-bit images only
    cv2.putText(ink, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    np.maximum(img, ink.astype(np.float32) * np.float32(value / 255), out=img)
    return x, y - th, x + tw, y + base
