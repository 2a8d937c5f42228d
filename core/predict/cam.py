"""Grad-CAM for the served models: hooks attached only while a map is computed.

A CAM object keeps forward and backward hooks on its model's target layers;
left attached, every later plain forward pass would record activations and
leak memory across case reviews.  So a CAM is made once per model with its
hooks released (:func:`new_cam`), and each pass attaches them, computes, and
releases them again, dropping the retained autograd graph (:func:`cam_pass`).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from core.models import CamRecipe, MammoNet, make_cam
from core.pixels.crop import tissue_mask


def new_cam(model: MammoNet, recipe: CamRecipe | None = None) -> Any:
    """A CAM for ``model`` (the family's recipe, or ``recipe``), hooks released."""
    cam = make_cam(model, recipe)
    cam.activations_and_grads.release()
    return cam


def cam_pass(cam: Any, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(malignancy logits, raw maps)`` of one batch; the target is the single logit
    (``ClassifierOutputTarget(0)``), so a map shows what pushes towards "malignant"."""
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam.activations_and_grads = ActivationsAndGradients(cam.model, cam.target_layers,
                                                        cam.reshape_transform)
    try:
        with torch.enable_grad():
            grey = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * len(x))
        logits = cam.outputs.detach().float()[:, 0].cpu().numpy()
    finally:
        cam.activations_and_grads.release()
        cam.outputs = None  # drops the retained autograd graph
    return logits, grey


WITHIN_BREAST = "normalised within the breast"
"""How :func:`unit_maps` scales a map when given the model inputs (said beside the map)."""


def unit_maps(maps: np.ndarray, shape: tuple[int, ...],
              images: np.ndarray | None = None) -> np.ndarray:
    """Each map resized to ``shape`` and scaled to [0, 1] as float32.

    With ``images`` (the model inputs the maps were made on), each map is first
    restricted to its input's breast (:func:`core.pixels.crop.tissue_mask`) and
    scaled by its range there: a crop keeps a margin of air, and a map whose
    peak sits in that air would paint the hottest colour where no lesion can
    be.  An input without a breast found keeps its whole map.
    """
    out = np.empty((len(maps), *shape), np.float32)
    for i, m in enumerate(np.nan_to_num(np.asarray(maps, np.float32))):
        if m.shape != tuple(shape):
            m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        breast = tissue_mask(images[i]) if images is not None else None
        if breast is not None and breast.shape == m.shape and breast.any():
            m = np.where(breast, m - m[breast].min(), 0.0)
        else:
            m = m - m.min()
        top = float(m.max())
        out[i] = m / top if top > 0 else m
    return np.clip(out, 0.0, 1.0)
