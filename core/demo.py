"""The built-in demo: phantom datasets and the demo grids, trained on the CPU.

What a first visit (or ``python -m core demo``) gets without downloading
anything: both synthetic profiles written in their real on-disk layouts, and
baseline + ROI-aware grids trained on the CPU.  The small CDD-CESM-profile
run comes first, so case review works within about two and a half minutes
while the VinDr-profile run trains; once both are complete the app opens the
run with the better validation evidence (:func:`core.runfolder.layout.recommended_run`),
normally the VinDr one, whose validation set is several times larger.

The recipe was chosen by measurement (README, "The demo's recipe"): a small
BatchNorm CNN (``resnet10t``; the paper's Swin-T / ConvNeXt V2 and their tiny
variants barely learn from scratch on a few hundred images), the breast crop,
no CLAHE (at 128 px its 16-px tiles equalise a lesion against the tissue
around it), no augmentation in so few epochs, class-balanced loss, and a warm
start: one model on every training image first, each cell fine-tuned from
it (:mod:`core.train.warmstart`).  The pages say that this is not the
paper's architecture.

Everything here is synthetic phantom data: a fixture and a demonstration,
never evidence about real patients.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.runfolder.layout import RUN_FILE, checkpoints_root, data_root, read_run

if TYPE_CHECKING:
    from core.train import TrainConfig


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo; ``tiny`` is for the browser test and a quick look."""

    studies: dict[str, int]
    phantom_size: int
    img_size: int
    epochs: int
    archs: tuple[str, ...]
    profiles: tuple[str, ...] = ("cddcesm", "vindr")  # the small one first: usable sooner
    batch_size: int = 16
    seed: int = 0
    difficulty: str = "moderate"
    lr: float = 1e-3  # from scratch: the paper's 1e-4 is for fine-tuning pretrained weights
    clahe_clip: float = 0.0
    augment: bool = False
    balanced: bool = True
    warm_start: int = 12  # epochs of the pooled model; each cell then fine-tunes ``epochs``
    roi_epochs: int = 12  # the ROI finder that proposes ROIs for views without a mask

    def config(self, arch: str, resume: bool) -> TrainConfig:
        """The training options of one demo run."""
        from core.train import TrainConfig

        return TrainConfig(arch=arch, img_size=self.img_size, epochs=self.epochs, mode="both",
                           batch_size=self.batch_size, seed=self.seed, lr=self.lr, device="cpu",
                           clahe_clip=self.clahe_clip, augment=self.augment,
                           balanced=self.balanced, warm_start=self.warm_start,
                           roi_model=self.roi_epochs > 0, roi_size=96,
                           roi_epochs=max(1, self.roi_epochs), resume=resume)


# Sized so the full demo fits 10 minutes on two idle CPU cores (7 min 40 s
# measured) and the first run (CDD-CESM profile) is usable within three.  The
# tiny plan still has enough ROI images for the ROI-aware cells to train.
FULL = DemoPlan(studies={"vindr": 200, "cddcesm": 50}, phantom_size=384, img_size=128,
                epochs=4, archs=("resnet10t",))
TINY = DemoPlan(studies={"vindr": 60}, phantom_size=192, img_size=64, epochs=1,
                archs=("resnet10t",), profiles=("vindr",), warm_start=1, roi_epochs=1)


def phantom_dir(profile: str, root: Path | None = None) -> Path:
    return (root or data_root()) / f"phantom-{profile}"


def run_name(profile: str, arch: str) -> str:
    return f"demo-{profile}-{arch}"


def ensure_phantom(profile: str, plan: DemoPlan, root: Path | None = None) -> Path:
    """Write the phantom once; an existing complete one is reused."""
    from core.phantom import write_phantom

    out = phantom_dir(profile, root)
    if not (out / "phantom.json").is_file():
        write_phantom(out, profile=profile, studies=plan.studies[profile], size=plan.phantom_size,
                      seed=plan.seed, difficulty=plan.difficulty)
    return out


def run_demo(plan: DemoPlan = FULL, data: Path | None = None, checkpoints: Path | None = None,
             log: Callable[[str], None] = print) -> list[Path]:
    """Build the phantoms and train every (profile, arch) demo run not yet complete."""
    from core.train import train_grid

    checkpoints = checkpoints or checkpoints_root()
    done: list[Path] = []
    for arch in plan.archs:
        for profile in plan.profiles:
            dataset = ensure_phantom(profile, plan, data)
            out = checkpoints / run_name(profile, arch)
            if (out / RUN_FILE).is_file() and read_run(out).status == "complete":
                log(f"{out.name}: already complete")
                done.append(out)
                continue
            log(f"{out.name}: training {arch} at {plan.img_size} px on {dataset.name}")
            train_grid(dataset, out, plan.config(arch, resume=(out / RUN_FILE).is_file()))
            done.append(out)
    return done


def plan_for(tiny: bool = False, epochs: int | None = None) -> DemoPlan:
    plan = TINY if tiny else FULL
    return replace(plan, epochs=epochs) if epochs else plan
