"""Pictures of a mammogram for people: grey → RGB, Grad-CAM overlays, ROI outlines, and
the hanging orientation.  One implementation serves the app and the command line.

The Grad-CAM map is blended in proportion to its own value (weak activations
stay grey), in the JET colours of :func:`cam_scale_bar`; ROI outlines are cyan,
a colour the blend leaves rare, so an outline is never mistaken for a hot spot.
"""
from __future__ import annotations

import cv2
import numpy as np

from core.datasets.roi import outline
from core.pixels.orientation import chest_wall

ROI_OUTLINE_RGB: tuple[int, int, int] = (0, 230, 255)


def to_rgb(grey: np.ndarray) -> np.ndarray:
    img = np.asarray(grey)
    if img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img.astype(np.float32)) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img


def cam_overlay(grey: np.ndarray, cam: np.ndarray | None, opacity: float) -> np.ndarray:
    """Blend a [0, 1] Grad-CAM map (jet colours) over a grey image; opacity 0 = image only.

    A map over the model input is stretched to the image; a map already
    placed on the whole image (:func:`core.pixels.crop.map_to_full`) fits as it is.
    Weak activations stay grey.
    """
    rgb = to_rgb(grey)
    if cam is None or opacity <= 0:
        return rgb
    cam = np.clip(np.asarray(cam, np.float32), 0, 1)
    if cam.shape != rgb.shape[:2]:
        cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((cam * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (opacity * cam)[..., None]
    return (rgb * (1 - weight) + heat * weight).astype(np.uint8)


def draw_outline(rgb: np.ndarray, mask: np.ndarray | None,
                 colour: tuple[int, int, int] = ROI_OUTLINE_RGB) -> np.ndarray:
    """The ROI's contour drawn over ``rgb`` (mask resized to it if needed)."""
    if mask is None or not np.any(mask):
        return rgb
    if mask.shape[:2] != rgb.shape[:2]:  # area + "> 0": a small ROI survives shrinking
        mask = (cv2.resize(mask.astype(np.float32), (rgb.shape[1], rgb.shape[0]),
                           interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    out = rgb.copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 200))
    cv2.polylines(out, [c.reshape(-1, 1, 2).astype(np.int32) for c in outline(mask)], True,
                  colour, thickness, cv2.LINE_AA)
    return out


def fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    """Resize to ``height`` pixels, aspect kept."""
    h, w = rgb.shape[:2]
    width = max(1, round(height * w / max(1, h)))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


def needs_mirror(view: str, chest_on_left: bool) -> bool:
    """Hanging convention: right views sit on the left of the screen, chest walls meet in
    the middle, so a right view's chest wall must be on its right edge (and vice versa)."""
    return chest_on_left if view.startswith("R") else not chest_on_left


HANG_ASPECT = 1.0
"""Width / height of a hanging frame: a whole CC or MLO view fits with room to spare."""


def hang(rgb: np.ndarray, view: str | None, height: int,
         grey: np.ndarray | None = None, chest_on_left: bool | None = None) -> np.ndarray:
    """An image in its hanging frame: oriented by the hanging convention, on black,
    with the chest wall against the frame's inner edge, so the two breasts meet
    back to back across the middle of the screen.

    ``chest_on_left`` is the decision the model's input was turned by
    (:func:`core.pixels.orientation.chest_wall`, tags first); when not given it
    is made on ``grey``, the plain image (default: ``rgb`` itself; pass it for an
    overlay, whose colours must not sway the orientation).
    """
    if chest_on_left is None:
        if grey is None:
            grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        chest_on_left = chest_wall(grey).on_left
    if view and needs_mirror(view, chest_on_left):
        rgb = rgb[:, ::-1]
    img = fit_height(to_rgb(np.ascontiguousarray(rgb)), height)
    width = max(img.shape[1], round(height * HANG_ASPECT))
    frame = np.zeros((height, width, 3), np.uint8)
    left = width - img.shape[1] if view and view.startswith("R") else 0
    if view is None:
        left = (width - img.shape[1]) // 2
    frame[:, left:left + img.shape[1]] = img
    return frame


def cam_scale_bar(width: int = 240, height: int = 12) -> np.ndarray:
    """The Grad-CAM colour scale (as :func:`cam_overlay` blends it), low on the left."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return cam_overlay(np.full((height, width), 128, np.uint8), ramp, 1.0)
