"""Case-review latency: one four-view study through :class:`core.predict.Predictor`.

Why: the clinician waits for this.  *Cold* is what the first review after
opening a run costs (Predictor construction: 12 models loaded and
hash-verified, plus the first call); *warm* is every later study (median of
``--repeats`` calls).  Both with and without Grad-CAM, which doubles the
work (a backward pass per model call).  Issue 6's target: warm four-view
with CAM ≤ 1.5 s on two CPU cores.

Weights are random (a run folder made in a temp dir, every cell of both
grids): latency does not depend on their values.  The study is a phantom
VinDr study (four DICOMs of ``--phantom-size`` px, as the demo writes), read
from disk on every call, as the UI does; the first view gets an ROI mask so
both the with- and without-ROI cells are exercised.

    python -m benchmarks.predict --json
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import base_parser, emit, make_random_run, median, phantom_manifest, rounded, temp_dir

DEFAULT_CASES = ("convnextv2_atto:96", "swin:384", "convnextv2:384")


def study_inputs(df) -> list:
    """The first phantom study's four views as ViewInputs (an ROI mask on the first)."""
    from core.predict import ViewInput

    study = df[df["study_id"] == df["study_id"].iloc[0]]
    inputs = []
    for i, row in enumerate(study.itertuples()):
        mask = None
        if i == 0:
            from core.pixels.read import read_image

            h, w = read_image(row.image_path).source_shape
            mask = np.zeros((h, w), np.uint8)
            mask[h // 3:h // 2, w // 3:w // 2] = 1
        inputs.append(ViewInput(path=row.image_path, mask=mask))
    return inputs


def time_case(run_dir: Path, inputs: list, cam: bool, repeats: int) -> dict[str, float]:
    """Cold (construct + first call) and warm (median of later calls) ms."""
    from core.predict import Predictor

    t0 = time.perf_counter()
    predictor = Predictor(run_dir, device="cpu")
    results = predictor.predict_study(inputs, cam=cam)
    cold = (time.perf_counter() - t0) * 1000
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"prediction failed: {errors[0]}")
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.predict_study(inputs, cam=cam)
        warm.append((time.perf_counter() - t0) * 1000)
    return {"cold_ms": cold, "warm_ms": median(warm)}


def _warm_torch() -> None:
    """One tiny forward/backward so the first case does not also pay torch's own start-up."""
    from core.models import create_model

    m = create_model("convnextv2_atto", 32)
    x = torch.rand(1, 1, 32, 32, requires_grad=True)
    m(x).sum().backward()


def measure(cases: list[tuple[str, int]], phantom_size: int, repeats: int,
            threads: int | None) -> dict[str, Any]:
    from core.train.device import setup_threads

    setup_threads(torch.device("cpu"))  # as the app's predictor runs: all cores
    if threads:
        torch.set_num_threads(threads)
    _warm_torch()
    out = []
    with temp_dir() as tmp:
        df = phantom_manifest(tmp, studies=1, size=phantom_size)
        inputs = study_inputs(df)
        for arch, size in cases:
            run = make_random_run(tmp / f"run-{arch}-{size}", arch, size)
            for cam in (False, True):
                times = time_case(run, inputs, cam, repeats)
                out.append({"arch": arch, "img_size": size, "cam": cam,
                            "cold_ms": rounded(times["cold_ms"], 1),
                            "warm_ms": rounded(times["warm_ms"], 1)})
    return {"device": "cpu", "threads": torch.get_num_threads(), "views": 4,
            "phantom_size": phantom_size, "repeats": repeats, "cases": out}


def _parse_cases(archs: list[str] | None, img_size: int | None) -> list[tuple[str, int]]:
    specs = archs or list(DEFAULT_CASES)
    cases = []
    for spec in specs:
        arch, _, size = spec.partition(":")
        cases.append((arch, img_size or int(size or (96 if arch == "convnextv2_atto" else 384))))
    return cases


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser("cold / warm latency of one four-view study, with and without Grad-CAM")
    parser.add_argument("--archs", nargs="+", default=None, metavar="ARCH[:SIZE]",
                        help="architectures (default: convnextv2_atto:96 swin:384 convnextv2:384)")
    parser.add_argument("--img-size", type=int, default=None, help="one size for every arch")
    parser.add_argument("--phantom-size", type=int, default=384,
                        help="side of the phantom DICOMs (the demo writes 384)")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    result = measure(_parse_cases(args.archs, args.img_size), args.phantom_size,
                     max(1, args.repeats), args.threads)
    lines = [f"{c['arch']} {c['img_size']}px cam={c['cam']}: cold {c['cold_ms']:.0f} ms, "
             f"warm {c['warm_ms']:.0f} ms" for c in result["cases"]]
    emit(result, args.json, "\n".join(lines))
    return result


if __name__ == "__main__":
    main()
