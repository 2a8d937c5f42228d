"""The built-in demo: phantom datasets and the demo grids, trained on the CPU.

What a first visit (or ``python -m core demo``) gets without downloading
anything: both synthetic profiles written in their real on-disk layouts, and
baseline + ROI-aware grids trained with the tiny CPU architectures.  The
order puts the first usable run (VinDr profile, ConvNeXtV2-atto) first, so
case review works within a few minutes while the rest trains.

Everything here is synthetic phantom data: a fixture and a demonstration,
never evidence about real patients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from core.runs import RUN_FILE, checkpoints_root, read_run


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo; ``tiny`` is for the browser test and a quick look."""

    studies: dict[str, int]
    phantom_size: int
    img_size: int
    epochs: int
    archs: tuple[str, ...]
    profiles: tuple[str, ...] = ("vindr", "cddcesm")
    batch_size: int = 16
    seed: int = 0
    difficulty: str = "moderate"
    lr: float = 1e-3  # from scratch: the paper's 1e-4 is for fine-tuning pretrained weights


# Sized so the full demo fits 10 minutes on two CPU cores and the first run
# (VinDr profile, ConvNeXtV2-atto) is usable within about three.  The tiny
# plan still has enough ROI images for the ROI-aware cells to train.
FULL = DemoPlan(studies={"vindr": 120, "cddcesm": 50}, phantom_size=384, img_size=96,
                epochs=6, archs=("convnextv2_atto", "swin_micro"))
TINY = DemoPlan(studies={"vindr": 60}, phantom_size=192, img_size=64, epochs=1,
                archs=("convnextv2_atto",), profiles=("vindr",))


def data_root() -> Path:
    """``$MAMMOROUTE_DATA`` or ``<repo>/data``: where datasets live."""
    env = os.environ.get("MAMMOROUTE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


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
    from core.train import TrainConfig, train_grid

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
            config = TrainConfig(arch=arch, img_size=plan.img_size, epochs=plan.epochs,
                                 mode="both", batch_size=plan.batch_size, seed=plan.seed, lr=plan.lr,
                                 device="cpu", resume=(out / RUN_FILE).is_file())
            train_grid(dataset, out, config)
            done.append(out)
    return done


def plan_for(tiny: bool = False, epochs: int | None = None) -> DemoPlan:
    plan = TINY if tiny else FULL
    return replace(plan, epochs=epochs) if epochs else plan
