"""Model factory, weight files and Grad-CAM targets.

Every classifier is a timm backbone with one output logit (malignant), wrapped
in :class:`MammoNet`, which takes a ``(B, 1, H, W)`` grey image in [0, 1],
repeats it to three channels and applies the backbone's own normalisation on
the device, so data loaders move uint8 and the ImageNet statistics a
pretrained backbone expects are never forgotten.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError
from core.runfolder.atomic import atomic_write_bytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture at a given image size."""

    timm_name: str
    family: str  # "swin" (NHWC features) or "convnext" / "generic" (NCHW)
    kwargs: Callable[[int], dict[str, Any]] = field(default=lambda size: {})
    paper: bool = False  # one of the paper's two architectures
    min_multiple: int = 32  # image size must be a multiple of this


def _swin_kwargs(size: int) -> dict[str, Any]:
    # Swin-T ships for 224 px with window 7; at 384 px the paper-size model
    # uses window 12, i.e. one window covers the last stage (size / 32).
    return {"img_size": size, "window_size": max(1, size // 32)}


def _swin_micro_kwargs(size: int) -> dict[str, Any]:
    # A reduced Swin that trains at ~23 ms/image at 128 px on two CPU cores:
    # same code path and NHWC feature layout as Swin-T, for tests and demos.
    return {"img_size": size, "window_size": max(1, min(4, size // 32)), "embed_dim": 48,
            "depths": (1, 1, 2, 1), "num_heads": (2, 4, 8, 16)}


ARCHS: dict[str, ArchSpec] = {
    "swin": ArchSpec("swin_tiny_patch4_window7_224", "swin", _swin_kwargs, paper=True),
    "convnextv2": ArchSpec("convnextv2_tiny", "convnext", paper=True),
    "swin_micro": ArchSpec("swin_tiny_patch4_window7_224", "swin", _swin_micro_kwargs),
    "convnextv2_atto": ArchSpec("convnextv2_atto", "convnext"),
    "resnet10t": ArchSpec("resnet10t", "generic", min_multiple=1),
}
DEMO_ARCHS: tuple[str, ...] = ("resnet10t", "convnextv2_atto", "swin_micro")
PAPER_ARCHS: tuple[str, ...] = ("swin", "convnextv2")


def architecture_note(arch: str) -> str | None:
    """A sentence for a run whose architecture is not one of the paper's, else None.

    The demo trains a small BatchNorm CNN because, from scratch on two CPU
    cores and a few hundred images, it learns the phantom's lesions where
    the paper's Swin-T / ConvNeXt V2 (and their tiny variants) do not; a
    reader must not take its figures for the paper's models.
    """
    spec = ARCHS.get(arch)
    if spec is not None and spec.paper:
        return None
    family = {"swin_micro": "a reduced Swin", "convnextv2_atto": "the smallest ConvNeXt V2"}.get(
        arch, "a small CNN")
    return (f"Architecture {arch} ({family}) is not one of the paper's (Swin-T, ConvNeXt V2 at "
            f"384 px); it is used here because it trains on a CPU. Train `swin` or `convnextv2` "
            f"for the paper's models.")


def arch_spec(arch: str) -> ArchSpec:
    """The spec of an alias, or of any timm classifier name as a generic model."""
    if arch in ARCHS:
        return ARCHS[arch]
    import timm

    if not timm.is_model(arch):
        raise CheckpointError(f"unknown architecture {arch!r}: not an alias "
                              f"({', '.join(ARCHS)}) nor a timm model name")
    family = "swin" if arch.startswith("swin") else "convnext" if "convnext" in arch else "generic"
    return ArchSpec(arch, family, min_multiple=1)


class MammoNet(nn.Module):
    """Grey [0, 1] image in, one malignancy logit out (shape ``(B, 1)``)."""

    def __init__(self, backbone: nn.Module, arch: str, img_size: int):
        super().__init__()
        self.backbone = backbone
        self.arch = arch
        self.img_size = img_size
        cfg = getattr(backbone, "pretrained_cfg", {}) or {}
        mean = cfg.get("mean", IMAGENET_MEAN)
        std = cfg.get("std", IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1)
        return self.backbone((x - self.mean) / self.std)


def create_model(arch: str, img_size: int, pretrained: str | Path | bool | None = None) -> MammoNet:
    """Build ``arch`` for square images of ``img_size`` with a one-logit head.

    ``pretrained`` is a local ``.safetensors`` file (the head is dropped and,
    for Swin, relative-position tables are resized by timm's own filter),
    ``True`` or ``"hub"`` for timm's hub weights (needs a network), or
    None/False for random weights.
    Pickled checkpoints are refused: weights are never unpickled here.
    """
    import timm

    spec = arch_spec(arch)
    if img_size % spec.min_multiple:
        raise CheckpointError(f"image size {img_size} is not a multiple of {spec.min_multiple} "
                              f"as {arch} needs")
    kwargs: dict[str, Any] = {"num_classes": 1, **spec.kwargs(img_size)}
    if pretrained == "hub":
        pretrained = True
    if pretrained in (None, False, ""):
        backbone = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    elif pretrained is True:
        backbone = timm.create_model(spec.timm_name, pretrained=True, **kwargs)
    else:
        path = Path(pretrained)
        if path.suffix != ".safetensors":
            raise CheckpointError("pretrained weights must be a .safetensors file "
                                  "(pickled checkpoints are never loaded)", path)
        if not path.is_file():
            raise CheckpointError("pretrained weights file not found", path)
        try:
            backbone = timm.create_model(spec.timm_name, pretrained=True,
                                         pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"weights do not fit {arch}: {str(err).splitlines()[0]}",
                                  path) from None
    return MammoNet(backbone, arch, img_size)


@dataclass(frozen=True)
class CamRecipe:
    """Which Grad-CAM variant watches which feature stages.

    ``stages`` index timm's ``feature_info`` (``-1`` the last stage, stride 32;
    ``-2`` the one before, stride 16; ...), which names the same depth in a
    ResNet, a ConvNeXt and a Swin, so one recipe reads alike for every family.
    Several stages are averaged by pytorch-grad-cam (each scaled to [0, 1]).
    """

    method: str  # a key of CAM_METHODS
    stages: tuple[int, ...] = (-1,)

    def describe(self) -> str:
        """``"HiResCAM on stage -2"``: how a map was made, for reports."""
        where = ", ".join(str(s) for s in self.stages)
        return f"{CAM_METHODS[self.method]} on stage{'s' if len(self.stages) > 1 else ''} {where}"


CAM_METHODS: dict[str, str] = {
    "gradcam": "GradCAM", "hirescam": "HiResCAM", "layercam": "LayerCAM",
    "gradcam++": "GradCAMPlusPlus",
}
"""Recipe method names → pytorch-grad-cam class names."""

CAM_RECIPES: dict[str, CamRecipe] = {
    "generic": CamRecipe("layercam", (-3, -2, -1)),
    "convnext": CamRecipe("hirescam", (-2,)),
    "swin": CamRecipe("gradcam", (-2,)),
}
"""The recipe per architecture family (:attr:`ArchSpec.family`), chosen by pointing hit rate.

Measured with ``benchmarks.cam_pointing`` (README, "Grad-CAM pointing").
The last stage alone is 3 × 3 at 96 px and pointed badly there: resnet10t on
the easy phantom hit 0.51 at stage -1 against 0.83-0.87 at the stride-16 stage
(chance 0.07).  At 192 px (6 × 6) the last stage pointed best (0.92, stage -2
0.84), so for CNNs LayerCAM over stages -3..-1 (strides 8, 16, 32, each map
scaled to [0, 1] and averaged) is the one choice that is near the top at
both sizes (0.87 and 0.90) and on the moderate phantom.  ConvNeXt and Swin
were measured at 96 px only, on models that had learnt little (test AUC 0.58),
where the stride-16 stage again beat the last (convnextv2_atto HiResCAM 0.22
vs 0.06, swin_micro GradCAM 0.43 vs 0.14, chance 0.09) and the best method at
that stage is kept; at 384 px that stage is 24 × 24.
"""


def _nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


_CAM_RESHAPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"swin": _nhwc_to_nchw}
"""Families whose stages emit NHWC tensors (timm's Swin) and how to make them NCHW."""


@dataclass(frozen=True)
class CamTarget:
    """What a CAM watches: the method, the layers (and their names) and the NCHW reshape."""

    recipe: CamRecipe
    layers: tuple[nn.Module, ...]
    names: tuple[str, ...]
    reshape: Callable[[torch.Tensor], torch.Tensor] | None


def cam_target(model: MammoNet, recipe: CamRecipe | None = None) -> CamTarget:
    """The layers Grad-CAM should watch for ``model`` (its family's recipe unless given).

    Stages are taken from ``feature_info``; timm's Swin stages emit NHWC
    tensors and get a reshape, ConvNeXt and CNN stages are already NCHW.
    """
    family = arch_spec(model.arch).family
    recipe = recipe or CAM_RECIPES[family]
    if recipe.method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {recipe.method!r}; expected one of "
                         f"{', '.join(CAM_METHODS)}")
    info = model.backbone.feature_info
    names = tuple(info[s]["module"] for s in recipe.stages)
    layers = tuple(model.backbone.get_submodule(n) for n in names)
    return CamTarget(recipe, layers, names, _CAM_RESHAPES.get(family))


def make_cam(model: MammoNet, recipe: CamRecipe | None = None) -> Any:
    """A pytorch-grad-cam object for ``model`` following :func:`cam_target`."""
    import pytorch_grad_cam

    target = cam_target(model, recipe)
    cls = getattr(pytorch_grad_cam, CAM_METHODS[target.recipe.method])
    return cls(model=model, target_layers=list(target.layers), reshape_transform=target.reshape)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path,
                 metadata: dict[str, str] | None = None) -> str:
    """Save tensors as safetensors atomically; returns the file's SHA-256."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)
    return _sha256(data)


def load_tensors(path: str | Path, expected_sha256: str | None = None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file, verifying its hash first when one is recorded."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read weights ({err.strerror})", path) from None
    if expected_sha256 is not None and _sha256(data) != expected_sha256:
        raise CheckpointError("SHA-256 differs from the one recorded in run.json: "
                              "the file was changed or truncated", path)
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"not a valid safetensors file ({err})", path) from None
    return tensors, metadata


def save_weights(model: MammoNet, path: str | Path) -> str:
    """Store a model's weights with its architecture in the header; returns SHA-256."""
    meta = {"arch": model.arch, "img_size": str(model.img_size), "format": "mammoroute-1"}
    return save_tensors(model.state_dict(), path, meta)


def load_weights(model: MammoNet, path: str | Path, expected_sha256: str | None = None) -> MammoNet:
    """Fill ``model`` from a file, refusing tampered or foreign-architecture weights."""
    tensors, meta = load_tensors(path, expected_sha256)
    if meta.get("arch") != model.arch or meta.get("img_size") != str(model.img_size):
        raise CheckpointError(
            f"weights are for {meta.get('arch')} at {meta.get('img_size')} px, "
            f"not {model.arch} at {model.img_size} px", path)
    return fill_state(model, tensors, path, model.arch)


def fill_state(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path,
               what: str) -> nn.Module:
    """Load ``tensors`` strictly; a mismatch is one CheckpointError naming the file."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not fit {what}: {str(err).splitlines()[0]}",
                              path) from None
    return model


def available_devices() -> tuple[str, ...]:
    """The ``--device`` choices that can work here: ``cuda`` only when a GPU is visible."""
    return ("auto", "cpu", "cuda") if torch.cuda.is_available() else ("auto", "cpu")


def pick_device(choice: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda asked for, but no CUDA GPU is visible")
    return torch.device(choice)
