"""Memory: peak RSS of a tiny demo training, RSS growth while reviewing cases,
and (on CUDA) peak GPU memory of a training step of the paper's models.

Why: the demo trains in a background process next to the Streamlit server
on small machines, and a case-review session may run for hours, so a leak
per reviewed study would eventually kill the app.  Each part runs in its own
child process so its peak RSS (``ru_maxrss``) is its own, not the sum of
everything measured before it.

    python -m benchmarks.memory --json
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    base_parser,
    emit,
    make_random_run,
    peak_rss_mb,
    phantom_manifest,
    private_cache,
    rss_mb,
    temp_dir,
)


def child_train(studies: int, img_size: int, epochs: int) -> dict[str, Any]:
    """The demo's training path (core.demo.run_demo: phantom → train_grid, both grids)
    on a tiny plan, in a temp dir."""
    from dataclasses import replace

    from core.demo import TINY, run_demo

    plan = replace(TINY, studies={"vindr": studies}, img_size=img_size, epochs=epochs)
    with temp_dir() as tmp, private_cache(tmp / "cache"):
        run_demo(plan, data=tmp / "data", checkpoints=tmp / "runs", log=lambda _m: None)
    return {"train_peak_rss_mb": round(peak_rss_mb(), 1), "train_plan": {
        "arch": plan.archs[0], "studies": studies, "img_size": img_size, "epochs": epochs,
        "phantom_size": plan.phantom_size}}


def child_review(cases: int, arch: str, img_size: int, phantom_size: int, warmup: int
                 ) -> dict[str, Any]:
    """RSS after each of ``cases`` four-view reviews (with Grad-CAM, as the UI shows it)."""
    import torch

    from benchmarks.predict import study_inputs
    from core.predict import Predictor
    from core.train.device import setup_threads

    setup_threads(torch.device("cpu"))
    with temp_dir() as tmp:
        df = phantom_manifest(tmp, studies=min(cases, 5), size=phantom_size)
        studies = [study_inputs(df[df["study_id"] == s]) for s in df["study_id"].unique()]
        predictor = Predictor(make_random_run(tmp / "run", arch, img_size), device="cpu")
        after_load = rss_mb()
        rss = []
        for i in range(cases):
            predictor.predict_study(studies[i % len(studies)], cam=True)
            rss.append(round(rss_mb(), 1))
    w = min(warmup, cases - 1)
    return {"review_arch": arch, "review_img_size": img_size, "review_cases": cases,
            "review_rss_after_load_mb": round(after_load, 1), "review_rss_mb": rss,
            "review_growth_after_warmup_mb": round(rss[-1] - rss[w], 1),
            "review_warmup_cases": w + 1, "review_peak_rss_mb": round(peak_rss_mb(), 1)}


def child_cuda(batch_size: int, img_size: int, steps: int) -> dict[str, Any]:
    """torch.cuda.max_memory_allocated of training steps (same AMP / channels_last as training)."""
    import torch

    if not torch.cuda.is_available():
        return {"cuda_note": "no CUDA GPU here: peak GPU memory not measured"}
    from benchmarks.train_throughput import cell_setup, model_only_rate

    out: dict[str, Any] = {"cuda_device": torch.cuda.get_device_name(0),
                           "cuda_batch_size": batch_size, "cuda_img_size": img_size}
    dev = torch.device("cuda")
    for arch in ("swin", "convnextv2"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        _, model, step_model, opt, loss_fn = cell_setup(arch, img_size, batch_size, dev, False)
        model_only_rate(step_model, opt, loss_fn, batch_size, img_size, dev, steps, 1)
        out[f"cuda_{arch}_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        del model, step_model, opt
    return out


def _run_child(part: str, args: list[str]) -> dict[str, Any]:
    """Run one part in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", part, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"{part} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser("peak RSS of a tiny demo training and of case review; CUDA peak memory")
    parser.add_argument("--studies", type=int, default=24, help="phantom studies for training (TINY: 24)")
    parser.add_argument("--img-size", type=int, default=64, help="training size (TINY: 64)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cases", type=int, default=20, help="four-view studies reviewed")
    parser.add_argument("--review-arch", default="convnextv2_atto")
    parser.add_argument("--review-size", type=int, default=96, help="the demo's model size")
    parser.add_argument("--phantom-size", type=int, default=384)
    parser.add_argument("--warmup", type=int, default=3, help="reviews before growth is counted")
    parser.add_argument("--cuda-batch", type=int, default=64)
    parser.add_argument("--cuda-size", type=int, default=384)
    parser.add_argument("--parts", default="train,review,cuda",
                        help="comma-separated parts to run (each in its own process)")
    parser.add_argument("--child", choices=("train", "review", "cuda"), help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.child:
        part = {"train": lambda: child_train(args.studies, args.img_size, args.epochs),
                "review": lambda: child_review(args.cases, args.review_arch, args.review_size,
                                               args.phantom_size, args.warmup),
                "cuda": lambda: child_cuda(args.cuda_batch, args.cuda_size, 3)}[args.child]()
        print(json.dumps(part))
        return part
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--json"]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"train", "review", "cuda"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    result: dict[str, Any] = {"parts": parts}
    for part in parts:
        result.update(_run_child(part, passthrough))
    emit(result, args.json, _readable(result))
    return result


def _readable(result: dict[str, Any]) -> str:
    bits = []
    if "train_peak_rss_mb" in result:
        bits.append(f"tiny demo training peak RSS {result['train_peak_rss_mb']:.0f} MiB")
    if "review_rss_mb" in result:
        bits.append(f"review of {result['review_cases']} cases: RSS {result['review_rss_mb'][0]:.0f}"
                    f" → {result['review_rss_mb'][-1]:.0f} MiB (growth after warm-up "
                    f"{result['review_growth_after_warmup_mb']:+.1f} MiB)")
    if "cuda_note" in result:
        bits.append(result["cuda_note"])
    bits += [f"{k}={v}" for k, v in result.items() if k.endswith("max_allocated_mb")]
    return "; ".join(bits)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
