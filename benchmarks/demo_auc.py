"""The demo's recipe against phantom difficulty: baseline ROC AUC on a phantom of another seed.

For each difficulty: write a training phantom (the demo's size and seed) and
a test phantom of another seed, train the demo's grids with the demo's recipe
(``core.demo.FULL``), and evaluate them on every labelled image of the test
phantom (``evaluate --dataset``, split ``all``).  Prints, per grid, the ROC
AUC, the served and unscaled ECE and Brier score, the Grad-CAM hit rate, and
the seconds per difficulty, all read from that one evaluation.
Synthetic phantom data throughout: figures about the software, not patients.

    python -m benchmarks.demo_auc [--difficulties easy obvious moderate subtle]
        [--test-seed 101] [--test-studies 100] [--mode baseline] [--clahe-clip C] [--json]
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import NOTE_CPU, base_parser, emit, private_cache, rounded, temp_dir

DIFFICULTIES = ("easy", "obvious", "moderate", "subtle")


def one_difficulty(root: Path, difficulty: str, test_seed: int, test_studies: int,
                   mode: str, clahe_clip: float | None = None) -> dict[str, Any]:
    from core.demo import FULL
    from core.phantom import write_phantom
    from core.predict.external import validate_external
    from core.train import train_grid

    plan = replace(FULL, difficulty=difficulty,
                   clahe_clip=FULL.clahe_clip if clahe_clip is None else clahe_clip)
    start = time.perf_counter()
    train, test = root / f"train-{difficulty}", root / f"test-{difficulty}"
    write_phantom(train, "vindr", plan.studies["vindr"], plan.phantom_size, plan.seed, difficulty)
    write_phantom(test, "vindr", test_studies, plan.phantom_size, test_seed, difficulty)
    run = root / f"run-{difficulty}"
    config = replace(plan.config(FULL.archs[0], resume=False), mode=mode, roi_model=mode == "both")
    train_grid(train, run, config)
    seconds = time.perf_counter() - start
    result = validate_external(run, test, split="all", device="cpu", n_boot=0)
    out = {"difficulty": difficulty, "seconds": rounded(seconds, 1),
           "n_images": result["dataset"]["n_images"]}
    for grid in ("baseline", "roi_aware"):
        out.update(grid_figures(result, grid))
    return out


def grid_figures(result: dict[str, Any], grid: str) -> dict[str, Any]:
    """One grid's figures of an evaluation (``validate_external``'s result), keyed
    ``<grid>_<figure>``: ROC AUC, served and unscaled ECE and Brier, Grad-CAM hits."""
    block = result.get(grid) or {}
    auc = block.get("roc_auc")
    calibration = (result.get("calibration") or {}).get(grid) or {}
    unscaled = calibration.get("uncalibrated") or {}
    pointing = (result.get("cam_pointing") or {}).get(grid) or {}
    figures = {"roc_auc": auc.get("value") if isinstance(auc, dict) else auc,
               "ece": calibration.get("ece"), "ece_unscaled": unscaled.get("ece"),
               "brier": calibration.get("brier"), "brier_unscaled": unscaled.get("brier"),
               "cam_hit_rate": pointing.get("hit_rate"), "cam_chance": pointing.get("chance")}
    return {f"{grid}_{name}": rounded(value, 3) for name, value in figures.items()}


def describe(row: dict[str, Any]) -> str:
    """One printed line per difficulty and grid."""
    parts = []
    for grid, label in (("baseline", "baseline"), ("roi_aware", "ROI-aware")):
        if row.get(f"{grid}_roc_auc") is None:
            continue
        parts.append(f"{label} ROC AUC {row[f'{grid}_roc_auc']}, ECE {row[f'{grid}_ece']} "
                     f"(unscaled {row[f'{grid}_ece_unscaled']}), Brier {row[f'{grid}_brier']} "
                     f"(unscaled {row[f'{grid}_brier_unscaled']}), Grad-CAM hits "
                     f"{row[f'{grid}_cam_hit_rate']} (chance {row[f'{grid}_cam_chance']})")
    return f"{row['difficulty']:>9}: " + "; ".join(parts) + f" in {row['seconds']} s"


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--difficulties", nargs="+", default=list(DIFFICULTIES), choices=DIFFICULTIES)
    parser.add_argument("--test-seed", type=int, default=101)
    parser.add_argument("--test-studies", type=int, default=100)
    parser.add_argument("--mode", choices=("baseline", "both"), default="baseline")
    parser.add_argument("--clahe-clip", type=float, help="override the demo's CLAHE (0 = off)")
    args = parser.parse_args(argv)
    rows = []
    with temp_dir() as root, private_cache(root / "cache"):
        for difficulty in args.difficulties:
            rows.append(one_difficulty(root, difficulty, args.test_seed, args.test_studies,
                                       args.mode, args.clahe_clip))
            if not args.json:
                print(rows[-1], flush=True)
    lines = [describe(r) for r in rows]
    emit({"rows": rows, "note": NOTE_CPU + "; synthetic phantom data"}, args.json,
         "demo recipe on a phantom of another seed (SYNTHETIC):\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
