"""Grad-CAM pointing of a trained run under several CAM recipes (method × feature stage).

Why: the CAM recipe of each architecture family (:data:`core.models.CAM_RECIPES`)
is chosen by this number, not by how the maps look.  For every recipe the
run's models make maps of the dataset's malignant images with an ROI, and
:mod:`core.evaluate.pointing` counts peaks inside the ROI (dilated by 2 % of
the side) against chance.  Stages index timm's ``feature_info`` (-1 = stride
32, -2 = stride 16, -3 = stride 8).

``--pool-views`` relabels every image as LCC, for runs trained with all
views pooled into one cell (as the learning test trains).

    python -m benchmarks.cam_pointing checkpoints/RUN --dataset data/phantom-test \\
        --split all --recipes gradcam:-1 layercam:-2 hirescam:-2 --json
"""
from __future__ import annotations

import time
from typing import Any

from benchmarks.common import base_parser, emit, rounded

DEFAULT_RECIPES = ("gradcam:-1", "hirescam:-1", "gradcam:-2", "hirescam:-2", "gradcam++:-2",
                   "layercam:-2", "layercam:-3,-2,-1", "layercam:-3")


def parse_recipe(text: str):
    """``layercam:-3,-2,-1`` → ``CamRecipe("layercam", (-3, -2, -1))``."""
    from core.models import CamRecipe

    method, _, stages = text.partition(":")
    return CamRecipe(method, tuple(int(s) for s in (stages or "-1").split(",")))


def measure(run: str, dataset: str, split: str, recipes: list[str], pool_views: bool,
            device: str) -> dict[str, Any]:
    from core.datasets import load_dataset
    from core.predict import Predictor
    from core.predict.cam_pointing import run_cam_pointing
    from core.predict.external import select_split

    df = select_split(load_dataset(dataset), split, dataset)
    if pool_views:
        df = df.assign(laterality="L", view="CC", view_name="LCC")
    predictor = Predictor(run, device)
    rows = []
    for text in recipes:
        predictor.cam_recipe = parse_recipe(text)
        t0 = time.perf_counter()
        score = run_cam_pointing(predictor, df)
        rows.append({"recipe": score["method"],
                     **{f"{grid}_{k}": rounded(score.get(grid, {}).get(k), 3)
                        for grid in ("baseline", "roi_aware") for k in ("hit_rate", "chance")},
                     "n": score["baseline"]["n"], "seconds": rounded(time.perf_counter() - t0, 1)})
    return {"run": run, "arch": predictor.arch, "img_size": predictor.img_size,
            "dataset": str(dataset), "split": split, "recipes": rows}


def main() -> None:
    parser = base_parser("Grad-CAM pointing hit rate of a run under several CAM recipes")
    parser.add_argument("run", help="a trained run folder")
    parser.add_argument("--dataset", required=True, help="dataset whose ROIs are pointed at")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                        help="METHOD:STAGES, e.g. layercam:-3,-2,-1 (default: eight recipes)")
    parser.add_argument("--pool-views", action="store_true",
                        help="route every image to the LCC cells (runs trained with views pooled)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    result = measure(args.run, args.dataset, args.split, args.recipes, args.pool_views, args.device)
    lines = [f"{result['arch']} {result['img_size']} px on {result['dataset']} ({args.split})"]
    for r in result["recipes"]:
        lines.append(f"  {r['recipe']:<32} baseline {r['baseline_hit_rate']}  ROI-aware "
                     f"{r['roi_aware_hit_rate']}  chance {r['baseline_chance']}  n {r['n']}")
    emit(result, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
