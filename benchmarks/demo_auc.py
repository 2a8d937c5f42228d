"""The demo's recipe against phantom difficulty: baseline ROC AUC on a phantom of another seed.

For each difficulty: write a training phantom (the demo's size and seed) and
a test phantom of another seed, train the demo's grids with the demo's recipe
(``core.demo.FULL``), and evaluate them on every labelled image of the test
phantom (``evaluate --dataset``, split ``all``).  Prints the baseline and
ROI-aware ROC AUC, the Grad-CAM hit rate and the seconds per difficulty.
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
        block = result.get(grid) or {}
        out[f"{grid}_roc_auc"] = rounded((block.get("roc_auc") or {}).get("value")
                                         if isinstance(block.get("roc_auc"), dict)
                                         else block.get("roc_auc"), 3)
        pointing = (result.get("cam_pointing") or {}).get(grid) or {}
        out[f"{grid}_cam_hit_rate"] = rounded(pointing.get("hit_rate"), 3)
        out[f"{grid}_cam_chance"] = rounded(pointing.get("chance"), 3)
    return out


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
    lines = [f"{r['difficulty']:>9}: baseline ROC AUC {r['baseline_roc_auc']} "
             f"(Grad-CAM hits {r['baseline_cam_hit_rate']}, chance {r['baseline_cam_chance']}) "
             f"in {r['seconds']} s" for r in rows]
    emit({"rows": rows, "note": NOTE_CPU + "; synthetic phantom data"}, args.json,
         "demo recipe on a phantom of another seed (SYNTHETIC):\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
