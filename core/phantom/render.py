"""A full view from a scene and its lesions: the low-energy / DM image, the
CESM subtracted image, and the lesion shapes in image pixels.

Orientation (the usual hanging convention, as in VinDr): left-breast views
have the chest wall on the image's left edge and the nipple pointing right;
right-breast views are mirrored.  Images are portrait; ``size`` is the long
(vertical) side.  The breast does not fill the detector: it sits off-centre
against the chest-wall edge, and the view is burned in as text in the air
(:mod:`core.phantom.detector`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from core.errors import MammoError
from core.phantom.anatomy import Scene, make_scene
from core.phantom.detector import burn_label, detector_layout, place, shift_drawn
from core.phantom.lesions import Lesion, draw_lesion
from core.phantom.profiles import DENSITIES, VIEWS, difficulty_value

CESM_AIR = 0.07  # the subtracted image's background grey


def _flip_shape(item: dict[str, Any], w: int) -> dict[str, Any]:
    """Mirror a drawn lesion's shapes for a right-breast view."""
    s = dict(item["shape"])
    if s["type"] == "polygon":
        s["x"] = [w - 1 - x for x in s["x"]]
    else:
        s["cx"] = w - 1 - s["cx"]
        if "theta" in s:
            s["theta"] = math.pi - s["theta"]
    x0, y0, x1, y1 = item["box"]
    return {**item, "shape": s, "box": (w - 1 - x1, y0, w - 1 - x0, y1)}


def _compose_dm(scene: Scene, lesion_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Density map → display intensity: thickness fall-off, skin line, soft
    saturation (why lesions in dense tissue lose contrast), blur and noise."""
    fat = 0.20 + 0.025 * scene.coarse + 0.02 * scene.fine + 0.045 * scene.strands
    tissue = fat + 0.34 * scene.gland * (1 + 0.1 * scene.fine) + 0.07 * scene.vessels
    muscle = 0.52 + 0.04 * scene.coarse + 0.02 * scene.fine + 0.08 * scene.gland
    tissue = tissue * (1 - scene.pectoral) + scene.pectoral * muscle
    dens = scene.thickness * tissue + lesion_map + 0.06 * np.exp(-scene.dist / max(1.0, scene.h / 500))
    img = (1 - np.exp(-1.5 * dens)) / (1 - math.exp(-1.5))
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), max(0.5, scene.h / 1000))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.007)
    img = np.where(scene.mask, np.clip(img, 0.02, 1.0), 0.0).astype(np.float32)
    return img


def _compose_cesm(scene: Scene, enh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recombined (subtracted) contrast image: grey, flat breast, bright vessels,
    background parenchymal enhancement, and the lesion's enhancement."""
    bpe = 0.06 * scene.gland * (0.6 + 0.4 * scene.fine)
    body = 0.40 + 0.03 * scene.coarse + bpe + 0.20 * scene.vessels + enh
    body = body + 0.05 * np.exp(-scene.dist / max(1.0, scene.h / 400)) - 0.08 * scene.pectoral
    img = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(0.6, scene.h / 800))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.012)
    return np.where(scene.mask, np.clip(img, 0.05, 1.0), CESM_AIR).astype(np.float32)


def render(rng: np.random.Generator, view: str, density: str, lesions: Sequence[Lesion],
           size: int, difficulty: float, aspect: float, subtracted: bool, labels: bool = True
           ) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    """The DM image, the CESM subtracted image when ``subtracted`` (else None)
    and the drawn lesions, all in the view's final orientation.

    Both images come from one scene so a CESM pair shows the same breast; the
    subtracted one is skipped when not asked for, since it costs a second pass.
    """
    h = int(size)
    w = max(8, int(round(size * aspect / 2)) * 2)
    hb, wb, y_off = detector_layout(rng, h, w)
    scene = make_scene(rng, view, density, hb, wb)
    lesion_map = np.zeros((hb, wb), np.float32)
    enh = np.zeros((hb, wb), np.float32)
    drawn = []
    for lesion in lesions:
        item = draw_lesion(scene, lesion, difficulty, lesion_map, enh)
        drawn.append(shift_drawn({**item, "kind": lesion.kind, "category": lesion.category}, y_off))
    lesion_map *= scene.mask
    dm = place(_compose_dm(scene, lesion_map, rng), h, w, y_off, 0.0)
    cm = place(_compose_cesm(scene, enh, rng), h, w, y_off, CESM_AIR) if subtracted else None
    if scene.flip:
        dm = dm[:, ::-1].copy()
        cm = cm[:, ::-1].copy() if cm is not None else None
        drawn = [_flip_shape(d, w) for d in drawn]
    label_seed = int(rng.integers(2**32))  # one label form for both images of a CESM pair
    for img in (dm, cm):
        if img is not None and labels:
            burn_label(img, view, np.random.default_rng(label_seed))
    return dm, cm, drawn


def render_view(rng: np.random.Generator, view: str, density: str = "B",
                lesions: Sequence[Lesion] = (), size: int = 512,
                difficulty: float | str = "moderate", aspect: float = 0.8, labels: bool = True
                ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One synthetic full-field mammogram, for tests and benchmarks.

    Returns a float32 ``(size, ≈size*aspect)`` image in 0..1 (0 = air, exactly;
    brighter = denser, as displayed) and one dict per lesion with ``kind``,
    ``category`` (VinDr finding), ``box`` ``(xmin, ymin, xmax, ymax)`` and
    ``shape`` (a :mod:`core.datasets.roi` shape: ellipse, polygon or circle), in pixels.
    ``labels=False`` leaves out the burned-in view label (the same breast otherwise).
    """
    if view not in VIEWS:
        raise MammoError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    if density not in DENSITIES:
        raise MammoError(f"unknown density {density!r}; expected one of {', '.join(DENSITIES)}")
    dm, _, drawn = render(rng, view, density, lesions, size, difficulty_value(difficulty),
                          aspect, subtracted=False, labels=labels)
    return dm, drawn


def render_task(task: dict[str, Any], subtracted: bool
                ) -> tuple[np.random.Generator, np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    """Render the view a writer's task describes (``seed``, ``view``, ``density``,
    ``lesions``, ``size``, ``difficulty``, ``aspect``).

    Each task carries its own seed, so a pool gives the same bytes as a loop;
    the generator is returned because the VinDr writer goes on drawing from it
    (the range a DICOM stores its pixels in).
    """
    rng = np.random.default_rng(task["seed"])
    dm, cm, drawn = render(rng, task["view"], task["density"], task["lesions"], task["size"],
                           task["difficulty"], task["aspect"], subtracted=subtracted)
    return rng, dm, cm, drawn
