"""How often the pixels alone give the right laterality and CC / MLO (core.pixels.viewfind).

Why: a view read from the image routes the image to a model without anyone
checking, so the reader's record must be known: how often it is right, how
often it abstains (None: the user is asked) and, above all, how often it is
confidently wrong.  Every tag and file name is ignored here; only the
8-bit rendering the app starts from is read.

Sources, each scored on its own:

* ``--phantom-views N``: N phantom views (``core.phantom.render.render_view``:
  off-centre breast, burned-in label, densities A-D in turn), seeded;
* any dataset path ``core.datasets.load_dataset`` reads (its laterality and
  view columns are the truth);
* a folder with a ``views.csv`` of ``image_id, laterality, view`` beside
  ``<image_id>.dcm`` files (the layout of the real RSNA check files).

    python -m benchmarks.viewfind --phantom-views 96 ../shared/real-mammograms/rsna-10008 --json
"""
from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import base_parser, emit, rounded
from core.pixels.viewfind import find_view

VIEWS4 = ("RCC", "LCC", "RMLO", "LMLO")


def phantom_views(n: int, size: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """``(true view, uint8 rendering)`` of ``n`` phantom views."""
    from core.phantom.render import render_view

    for i in range(n):
        view, density = VIEWS4[i % 4], "ABCD"[(i // 4) % 4]
        img, _ = render_view(np.random.default_rng([seed, i]), view, density, size=size)
        yield view, np.rint(img * 255).astype(np.uint8)


def file_views(path: Path, cdd_type: str = "DM") -> Iterator[tuple[str, np.ndarray]]:
    """``(true view, uint8 rendering)`` of every image of a dataset or a views.csv folder."""
    from core.pixels.read import render_uint8
    from core.pixels.spec import SOURCE_SIDE

    if (path / "views.csv").is_file():
        with open(path / "views.csv", newline="") as f:
            rows = [(path / f"{r['image_id']}.dcm", r["laterality"] + r["view"])
                    for r in csv.DictReader(f)]
    else:
        from core.datasets import load_dataset

        df = load_dataset(path, cdd_type=cdd_type)
        rows = [(Path(p), f"{lat}{view}")
                for p, lat, view in zip(df["image_path"], df["laterality"], df["view"])]
    for file, view in rows:
        yield view, render_uint8(file, SOURCE_SIDE).pixels


def score(cases: Iterator[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Right / abstained / wrong counts for laterality, position and the whole view."""
    counts = {k: 0 for k in ("n", "laterality_right", "laterality_none", "laterality_wrong",
                             "position_right", "position_none", "position_wrong", "view_right")}
    ms = []
    for truth, img in cases:
        t0 = time.perf_counter()
        guess = find_view(img)
        ms.append((time.perf_counter() - t0) * 1000)
        counts["n"] += 1
        for part, said, true in (("laterality", guess.laterality, truth[0]),
                                 ("position", guess.position, truth[1:])):
            counts[f"{part}_" + ("none" if said is None else "right" if said == true
                                 else "wrong")] += 1
        counts["view_right"] += guess.view == truth
    n = max(1, counts["n"])
    return {**counts, "view_accuracy": rounded(counts["view_right"] / n, 3),
            "median_ms": rounded(float(np.median(ms)) if ms else None, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser("Laterality and CC / MLO from the pixels alone: right, unsure, wrong.")
    parser.add_argument("paths", nargs="*", type=Path,
                        help="datasets (any supported layout) or folders with a views.csv")
    parser.add_argument("--phantom-views", type=int, default=0, metavar="N",
                        help="also score N rendered phantom views")
    parser.add_argument("--size", type=int, default=512, help="phantom view height (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cdd-type", default="DM", choices=("DM", "CESM"),
                        help="CDD-CESM images to read: low-energy (DM) or subtracted (CESM)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.phantom_views:
        result[f"phantom ({args.phantom_views} views, {args.size} px)"] = score(
            phantom_views(args.phantom_views, args.size, args.seed))
    for path in args.paths:
        result[str(path)] = score(file_views(path, args.cdd_type))
    lines = [f"{name}: view {r['view_right']}/{r['n']} right; laterality wrong "
             f"{r['laterality_wrong']}, unsure {r['laterality_none']}; CC/MLO wrong "
             f"{r['position_wrong']}, unsure {r['position_none']}; {r['median_ms']} ms/image"
             for name, r in result.items()]
    emit(result, args.json, "\n".join(lines) or "nothing to score: give paths or --phantom-views")
    return result


if __name__ == "__main__":
    main()
