"""What case review shows of a view: its thumbnail in the hanging, and a result drawn
back on the whole image (Grad-CAM through the breast crop, the ROI that routed it)."""
from __future__ import annotations

import numpy as np

from core.pixels.crop import map_to_full
from core.predict import ViewResult
from core.review.case import CaseView, box_mask
from core.review.overlay import cam_overlay, draw_outline, hang, to_rgb

CAM_SOURCES: dict[str, str | None] = {"ROI-aware": "roi_aware", "Baseline": "baseline",
                                      "Off": None}
"""Whose Grad-CAM a result shows: the page's choice → the grid."""


def thumbnail(view: CaseView, height: int) -> np.ndarray:
    """The decoded view in its hanging frame, with its ROI outlined."""
    return hang(draw_outline(to_rgb(view.display), view.mask), view.view, height, view.display,
                view.chest_on_left)


def result_mask(result: ViewResult, view: CaseView | None) -> np.ndarray | None:
    """The ROI to outline on a result: the finder's boxes when it proposed, else the
    view's own ROI when it routed with one, else the model-input mask."""
    if view is not None and result.roi_source == "proposed" and result.roi_boxes:
        return np.maximum.reduce([box_mask(view.shape, b) for b in result.roi_boxes])
    if view is not None and view.mask is not None and result.roi:
        return view.mask
    return result.mask


def whole_image_overlay(result: ViewResult, base: np.ndarray, grid: str | None, opacity: float,
                        mask: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """``(RGB, the Grad-CAM map is empty)``: ``grid``'s map drawn back on ``base`` (the
    whole image, as stored: not mirrored, not cropped) through the breast crop, and the
    ROI ``mask`` (any size) outlined.  What case review shows and the Secondary Capture
    stores."""
    cam = getattr(result, f"cam_{grid}") if grid else None
    if cam is not None and base is not result.preprocessed and result.box is not None:
        cam = map_to_full(cam, result.box, base.shape)
    return (draw_outline(cam_overlay(base, cam, opacity), mask),
            cam is not None and float(np.max(cam)) <= 0)


def result_picture(result: ViewResult, view: CaseView | None, grid: str | None,
                   opacity: float, height: int) -> tuple[np.ndarray, bool]:
    """``(picture, the Grad-CAM map is empty)``: ``grid``'s map over the whole image
    (back through the breast crop) or over the model input when the image is not at
    hand, the routing ROI outlined, in the hanging frame."""
    base = view.display if view is not None and view.display is not None else result.preprocessed
    rgb, empty = whole_image_overlay(result, base, grid, opacity, result_mask(result, view))
    picture = hang(rgb, result.view, height, base,
                   view.chest_on_left if view is not None and base is view.display else None)
    return picture, empty
