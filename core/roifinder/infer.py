"""Inference: a presence probability and boxes in the image's own pixels, per image.

The raw presence score is the one ``meta.json`` names (``presence_source``):
the logit of the U-Net map's highest pixel (``"map"``) or of its
classification head (``"head"``), whichever training found the better on its
validation carve.  Raw, either can saturate (sigmoids within a hair of 1,
which float32 rounds to exactly 1), and a threshold there cannot be read.  The served
probability is that logit Platt-scaled on the validation carve
(``presence_calibration``: a temperature and an offset), and the image
counts as having an ROI when it reaches the stored threshold (Youden's J on
validation, on the calibrated probability).  Logits, not sigmoids, are
carried through: float32 sigmoids of two peaks above 17 are both exactly 1.
Boxes are the connected regions of the map at
:data:`MAP_LEVEL`, best first, at most :data:`MAX_BOXES`, each scored by its
peak; a map that stays below that level gives the one region around its
peak (at half the peak), so every image has the finder's best guess of
where (scored low) for the FROC, and a routed "ROI" always has a box to show.
Case review and ``predict`` show boxes only for images called "ROI".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError
from core.evaluate.calibration import Calibration
from core.pixels.crop import CropBox
from core.pixels.preprocess import prepare_input
from core.roifinder.geometry import Box, component_boxes, input_to_full
from core.roifinder.model import FinderNet
from core.roifinder.store import CALIBRATION_KEY

MAP_LEVEL = 0.5
MAX_BOXES = 3
BATCH = 32
PRESENCE_SOURCES = ("head", "map")


@torch.no_grad()
def predict_maps(model: FinderNet, images: torch.Tensor | np.ndarray, device: torch.device
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(presence head logits (N,), map logits (N, S, S))`` of uint8 images
    ``(N, S, S)`` or ``(N, 1, S, S)``, in eval mode."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    model.eval()
    heads, maps = [], []
    for start in range(0, x.shape[0], BATCH):
        xb = x[start:start + BATCH].to(device).float().div_(255.0)
        mask, presence = model(xb)
        heads.append(presence.float().cpu())
        maps.append(mask.float()[:, 0].cpu())
    if not heads:
        size = int(x.shape[-1]) if x.ndim == 4 else 0
        return np.zeros(0), np.zeros((0, size, size), np.float32)
    return torch.cat(heads).numpy().astype(np.float64), torch.cat(maps).numpy()


def presence_logits(heads: np.ndarray, maps: np.ndarray, source: str) -> np.ndarray:
    """The raw presence logit of each image under ``source``: the head's, or the map's
    peak (the logit of its highest pixel probability: the sigmoid is monotone)."""
    if source == "head":
        return np.asarray(heads, np.float64)
    if source == "map":
        return maps.reshape(len(maps), -1).max(1).astype(np.float64) if len(maps) else np.zeros(0)
    raise ValueError(f"unknown presence source {source!r}; expected one of {PRESENCE_SOURCES}")


def probability_map(logit_map: np.ndarray) -> np.ndarray:
    """Pixel probabilities of one map of logits (what boxes are drawn from)."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logit_map, np.float64)))).astype(np.float32)


def map_boxes(prob_map: np.ndarray) -> tuple[list[Box], list[float]]:
    """Input-frame boxes and scores of one probability map (see the module docstring)."""
    boxes, scores = component_boxes(prob_map, MAP_LEVEL, MAX_BOXES)
    if not boxes and float(prob_map.max()) > 0:
        peak = float(prob_map.max())
        boxes, scores = component_boxes(prob_map, peak / 2, 1, min_pixels=1)
    return boxes, scores


@dataclass
class Proposal:
    """The finder's answer for one image; ``boxes`` are ``[x0, y0, x1, y1]`` in the
    image's own pixels, ``scores`` their peak map probabilities."""

    probability: float
    threshold: float
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.probability >= self.threshold


RETRAIN = ("this run's ROI finder predates calibrated presence scores (its threshold on the "
           "raw score cannot be read); retrain the run (train --resume retrains only the finder)")


def presence_calibration(meta: dict[str, Any], where: str | Path | None = None) -> Calibration:
    """The stored Platt scaling of the raw presence logit; a finder without one is refused:
    its raw scores can saturate, and a threshold of 99.999 % is no threshold a reader can use."""
    block = meta.get(CALIBRATION_KEY)
    try:
        cal = Calibration(float(block["temperature"]), float(block["offset"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(RETRAIN, where) from None
    if not (np.isfinite(cal.temperature) and cal.temperature > 0 and np.isfinite(cal.offset)):
        raise CheckpointError(f"invalid {CALIBRATION_KEY} {block}; retrain the run", where)
    return cal


class RoiFinder:
    """A trained finder with its stored presence source, calibration and threshold."""

    def __init__(self, model: FinderNet, meta: dict[str, Any], device: torch.device | str = "cpu",
                 where: str | Path | None = None):
        """``where``: the finder's ``meta.json``, named when its preprocessing spec is refused."""
        from core.pixels.spec import PreprocessParams

        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.meta = meta
        self.size = int(meta["size"])
        self.threshold = float(meta["threshold"])
        self.calibration = presence_calibration(meta, where)
        self.source = str(meta.get("presence_source", "head"))
        if self.source not in PRESENCE_SOURCES:
            raise ValueError(f"unknown presence source {self.source!r}")
        self.params = PreprocessParams.from_json(meta.get("preprocess"), where,
                                                 "this run's ROI finder")
        if self.params.size != self.size:
            raise CheckpointError(f"the ROI finder's preprocessing spec is for {self.params.size}"
                                  f" px, its model for {self.size} px", where)

    @classmethod
    def from_run(cls, run_dir: str | Path, info: dict[str, Any],
                 device: torch.device | str = "cpu") -> RoiFinder | None:
        """The run's finder (SHA-256 verified), or None when the run has none."""
        from core.roifinder.store import ROI_DIR, load_run_finder

        loaded = load_run_finder(Path(run_dir), info)
        if loaded is None:
            return None
        return cls(loaded[0], loaded[1], device, Path(run_dir) / ROI_DIR / "meta.json")

    def propose_inputs(self, images: np.ndarray, boxes: Sequence[CropBox],
                       shapes: Sequence[tuple[int, int]]) -> list[Proposal]:
        """Proposals for model inputs ``(N, S, S)`` uint8 with their crop boxes and full shapes."""
        heads, maps = predict_maps(self.model, images, self.device)
        probs = self.calibration.probability(presence_logits(heads, maps, self.source))
        out = []
        for prob, logit_map, box, shape in zip(probs, maps, boxes, shapes):
            found, scores = map_boxes(probability_map(logit_map))
            out.append(Proposal(float(prob), self.threshold,
                                input_to_full(found, box, self.size, shape),
                                [round(s, 4) for s in scores]))
        return out

    def propose_pixels(self, pixels: np.ndarray, shape: tuple[int, int],
                       patient_orientation: str | Sequence[str] | None = None) -> Proposal:
        """The proposal for one windowed image (what :mod:`core.predict` reads) of full ``shape``,
        turned by the same chest-wall decision as the grids (``patient_orientation``: its tag)."""
        image, box = prepare_input(pixels, self.params, patient_orientation)
        return self.propose_inputs(image[None], [box], [shape])[0]
