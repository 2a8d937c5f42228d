"""Batch prediction of a phantom dataset: one process against Ray Data, in images per second.

Why: ``evaluate --dataset`` and ``predict --manifest`` can score a dataset on
Ray (:mod:`core.scale.batch`); this says what that buys, and what Ray's own
start-up and shutdown cost, which a one-off command pays every time.  Both
paths score the same images with the same run (random weights in every cell of
both grids: speed does not depend on their values) from a cold preprocessing
cache each (a private one per path), so both decode every file; the tables
they give are checked to agree within 1e-5.

    python -m benchmarks.ray_predict --json
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import NOTE_CPU, base_parser, emit, make_random_run, private_cache, rounded, temp_dir


def phantom(root: Path, images: int, size: int):
    """The first ``images`` labelled images of a VinDr-profile phantom (its BI-RADS 1
    studies carry no label, so it is written with twice the studies that would hold them)."""
    from core.datasets import load_dataset
    from core.phantom import write_phantom

    out = root / "phantom-vindr"
    write_phantom(out, profile="vindr", studies=max(1, images // 2), size=size, seed=0)
    df = load_dataset(out)
    if len(df) < images:
        raise SystemExit(f"the phantom holds {len(df)} labelled images, fewer than {images}")
    return df.head(images).reset_index(drop=True)


def measure(images: int, size: int, arch: str, img_size: int, cpus: int,
            serial_threads: int | None) -> dict[str, Any]:
    import torch

    from core.predict import Predictor, predict_manifest
    from core.scale.batch import predict_manifest_ray
    from core.scale.session import ray_session

    with temp_dir() as tmp:
        t0 = time.perf_counter()
        df = phantom(tmp, images, size)
        phantom_s = time.perf_counter() - t0
        run = make_random_run(tmp / "run", arch, img_size)
        predictor = Predictor(run, "cpu")
        if serial_threads:
            torch.set_num_threads(serial_threads)
        threads = torch.get_num_threads()
        with private_cache(tmp / "cache-serial"):
            t0 = time.perf_counter()
            serial = predict_manifest(predictor, df)
            serial_s = time.perf_counter() - t0
        with private_cache(tmp / "cache-ray"):  # set before Ray starts: its workers inherit it
            t0 = time.perf_counter()
            with ray_session(None, num_cpus=cpus):
                start_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                on_ray = predict_manifest_ray(predictor, df)
                ray_s = time.perf_counter() - t1
                t2 = time.perf_counter()
            stop_s = time.perf_counter() - t2
    diff = float(np.abs(serial["p_malignant"].to_numpy() - on_ray["p_malignant"].to_numpy()).max())
    n = len(df)
    return {
        "images": n, "phantom_size": size, "arch": arch, "img_size": img_size, "ray_cpus": cpus,
        "prediction_rows": len(serial), "phantom_s": rounded(phantom_s, 1),
        "serial": {"seconds": rounded(serial_s, 1), "img_s": rounded(n / serial_s, 1),
                   "torch_threads": threads},
        "ray": {"seconds": rounded(ray_s, 1), "img_s": rounded(n / ray_s, 1),
                "startup_s": rounded(start_s, 1), "shutdown_s": rounded(stop_s, 1),
                "img_s_with_startup": rounded(n / (start_s + ray_s + stop_s), 1)},
        "max_abs_difference": diff, "load_average": rounded(os.getloadavg()[0], 1),
        "note": NOTE_CPU,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="phantom images (default 1000)")
    parser.add_argument("--size", type=int, default=256,
                        help="phantom image side in px (default 256)")
    parser.add_argument("--arch", default="convnextv2_atto")
    parser.add_argument("--img-size", type=int, default=64, help="the run's input side (64)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the local Ray (default: every core)")
    parser.add_argument("--serial-threads", type=int, default=None,
                        help="torch threads of the one-process path (default: torch's, one per "
                             "core); each Ray worker uses one")
    args = parser.parse_args()
    r = measure(args.images, args.size, args.arch, args.img_size, args.cpus, args.serial_threads)
    emit(r, args.json,
         f"{r['images']} images, {r['arch']} {r['img_size']} px, both grids: one process "
         f"{r['serial']['img_s']} img/s ({r['serial']['seconds']} s, "
         f"{r['serial']['torch_threads']} torch threads); Ray Data "
         f"{r['ray']['img_s']} img/s ({r['ray']['seconds']} s) plus start-up "
         f"{r['ray']['startup_s']} s and shutdown {r['ray']['shutdown_s']} s "
         f"({r['ray']['img_s_with_startup']} img/s all in); max |Δp| {r['max_abs_difference']:.1e}")


if __name__ == "__main__":
    main()
