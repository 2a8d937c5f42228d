"""Light, anatomy-preserving augmentation applied on the device to uint8 batches.

Why these and only these: every cell is one view (e.g. LMLO), so a flip
would turn a left breast into a right one and feed a cell images it never
serves; large warps would bend the pectoral muscle and breast outline out of
anything a scanner produces.  So: a small affine (±10° rotation, ±10 % scale,
±4 % shift) and brightness / contrast jitter (±10 %).

The random numbers come from a caller-supplied CPU ``torch.Generator`` (a few
numbers per image, drawn on the CPU and moved to the device), so the same
(seed, cell, epoch) gives the same augmentation on any device and a resumed
run repeats an interrupted epoch exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random transform (each drawn uniformly in ±range)."""

    rotate_deg: float = 10.0
    scale: float = 0.10
    shift: float = 0.04
    brightness: float = 0.10
    contrast: float = 0.10


def _uniform(n: int, half_range: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * half_range


def random_affine_theta(n: int, params: AugmentParams, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine matrices for ``F.affine_grid`` (output → input coordinates)."""
    angle = _uniform(n, math.radians(params.rotate_deg), gen)
    scale = 1 + _uniform(n, params.scale, gen)
    tx, ty = _uniform(n, params.shift, gen) * 2, _uniform(n, params.shift, gen) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def augment_batch(x: torch.Tensor, gen: torch.Generator,
                  params: AugmentParams = AugmentParams()) -> torch.Tensor:
    """uint8 (B, 1, H, W) on any device → augmented float in [0, 1] on that device.

    Pixels moved in from outside the image are black, like the background of
    a mammogram.  Bilinear sampling keeps fine texture (calcifications) soft
    rather than aliased.
    """
    b = x.shape[0]
    theta = random_affine_theta(b, params, gen).to(x.device)
    gain = (1 + _uniform(b, params.contrast, gen)).view(b, 1, 1, 1).to(x.device)
    bias = _uniform(b, params.brightness, gen).view(b, 1, 1, 1).to(x.device)
    img = x.float().div_(255.0)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mean = img.mean(dim=(2, 3), keepdim=True)
    return ((img - mean) * gain + mean + bias).clamp_(0.0, 1.0)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float [0, 1] without augmentation (validation, prediction)."""
    return x.float().div_(255.0)
