"""The four-view hanging as one picture, for outputs that cannot lay out widgets (the
PDF report): RCC beside LCC over RMLO beside LMLO, right views on the left, each
view drawn exactly as case review draws it (:mod:`core.review.overlay`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from core.grid import VIEWS
from core.predict import ViewResult
from core.review.overlay import cam_overlay, draw_outline, hang

HANGING_ROWS: tuple[tuple[str, str], ...] = (("RCC", "LCC"), ("RMLO", "LMLO"))
GAP = 6  # pixels of grey between the four frames, so two black frames never merge
GAP_GREY = 96
LABEL_RGB = (255, 255, 255)


def view_picture(base: np.ndarray, cam: np.ndarray | None, mask: np.ndarray | None,
                 view: str | None, height: int, opacity: float) -> np.ndarray:
    """One view in its hanging frame: Grad-CAM blended, the ROI outlined, oriented."""
    return hang(draw_outline(cam_overlay(base, cam, opacity), mask), view, height, base)


def result_pictures(results: Sequence[ViewResult], grid: str, opacity: float,
                    height: int) -> dict[str, np.ndarray]:
    """Each predicted view of a study as :func:`view_picture` draws it, keyed by view.

    The picture is the model's own input (the breast crop it read) with the
    ``grid``'s Grad-CAM and the ROI that routed the view; a view that failed
    or has no view name is left out (the report lists it in words).
    """
    out: dict[str, np.ndarray] = {}
    for r in results:
        if r.error or r.preprocessed is None or r.view not in VIEWS or r.view in out:
            continue
        cam = getattr(r, f"cam_{grid}")
        out[r.view] = view_picture(r.preprocessed, cam, r.mask if r.roi else None, r.view,
                                   height, opacity)
    return out


def empty_cams(results: Sequence[ViewResult], grid: str) -> list[str]:
    """Views whose ``grid`` Grad-CAM is all zero: nothing in them pushed towards malignant."""
    empty = {r.view for r in results
             if (cam := getattr(r, f"cam_{grid}")) is not None and float(np.max(cam)) <= 0}
    return [v for v in VIEWS if v in empty] + sorted(str(v) for v in empty - set(VIEWS))


def hanging_image(pictures: Mapping[str, np.ndarray], height: int) -> np.ndarray:
    """The 2 × 2 hanging of ``pictures`` (view → frame ``height`` px tall), each view named
    in its outer top corner; an absent view is an empty frame saying so."""
    width = max([p.shape[1] for p in pictures.values()] + [height])
    rows = []
    for pair in HANGING_ROWS:
        frames = []
        for view in pair:
            frame = np.zeros((height, width, 3), np.uint8)
            pic = pictures.get(view)
            if pic is not None:  # right views hug the middle from the left, left from the right
                left = width - pic.shape[1] if view.startswith("R") else 0
                frame[:, left:left + pic.shape[1]] = pic
            else:
                _label(frame, "not in this study", view, middle=True)
            _label(frame, view, view)
            frames.append(frame)
        rows.append(np.hstack([frames[0], _gap(height, GAP), frames[1]]))
    return np.vstack([rows[0], _gap(GAP, rows[0].shape[1]), rows[1]])


def _gap(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), GAP_GREY, np.uint8)


def _label(frame: np.ndarray, text: str, view: str, middle: bool = False) -> None:
    """``text`` on ``frame``: in its outer top corner (away from the chest wall), or centred."""
    h, w = frame.shape[:2]
    scale = max(0.4, h / 600)
    thick = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(4, h // 60)
    if middle:
        x, y = (w - tw) // 2, (h + th) // 2
    else:
        x, y = (pad if view.startswith("R") else w - tw - pad), pad + th
    cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2,
                cv2.LINE_AA)
    cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, LABEL_RGB, thick,
                cv2.LINE_AA)
