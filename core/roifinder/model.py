"""The finder network: a small U-Net (segmentation-models-pytorch) with a presence head.

One forward pass gives two things: a per-pixel ROI logit map over the model
input (what the boxes come from) and one image-level ROI-presence logit from
smp's auxiliary classification head on the deepest encoder features.  The
encoder is timm's ``resnet10t`` (``tu-resnet10t``: 4.9 M parameters in full,
here four stages deep) trained from scratch (``encoder_weights=None``: no
network, and a grey mammogram is far from ImageNet anyway).
"""
from __future__ import annotations

import torch
from torch import nn

ARCH = "unet-resnet10t"
ENCODER = "tu-resnet10t"
ENCODER_DEPTH = 4
DECODER_CHANNELS = (64, 32, 16, 8)
MIN_MULTIPLE = 16  # 2 ** ENCODER_DEPTH: the U-Net's skip connections need it


class FinderNet(nn.Module):
    """Grey ``(B, 1, S, S)`` image in [0, 1] → ``(mask logits (B, 1, S, S), presence logit (B,))``.

    The input is centred at 0.5 / 0.25 (a fixed grey normalisation; no
    ImageNet statistics, since the encoder starts from random weights).
    """

    def __init__(self, size: int):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.arch = ARCH
        self.size = int(size)
        self.net = smp.Unet(ENCODER, encoder_weights=None, in_channels=1, classes=1,
                            encoder_depth=ENCODER_DEPTH, decoder_channels=DECODER_CHANNELS,
                            aux_params={"classes": 1, "dropout": 0.0})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask, presence = self.net((x - 0.5) / 0.25)
        return mask, presence[:, 0]


def create_finder(size: int) -> FinderNet:
    """A fresh finder for ``size``-pixel inputs; ``size`` must be a multiple of 16."""
    from core.errors import CheckpointError

    if size < MIN_MULTIPLE or size % MIN_MULTIPLE:
        raise CheckpointError(f"ROI finder size {size} is not a multiple of {MIN_MULTIPLE} "
                              f"(≥ {MIN_MULTIPLE}) as its U-Net needs")
    return FinderNet(size)
