"""The ROI finder at the target setting: presence AUC, box IoU and FROC on the test split.

For each seed: write a VinDr-profile phantom (``--studies`` studies, difficulty
``--difficulty``), train the finder alone on its training split (the run's
rendering: crop, ``--clahe-clip``; its own ``--roi-size`` and ``--roi-epochs``)
and score its proposals on the test split, as ``evaluate`` does.  Prints the
training seconds, the presence score chosen on the finder's validation carve
(with both validation AUCs), its Platt scaling and threshold fitted there, presence AUC
[95 % CI] (and sensitivity / specificity at that threshold), mean best box IoU and
FROC sensitivity at 0.5 and 1 false positive per image on the test split,
which chose nothing.  Synthetic phantom data: figures about the software,
not patients.

    python -m benchmarks.roifinder [--seeds 21 22] [--studies 100] [--roi-size 96]
        [--roi-epochs 12] [--clahe-clip 0] [--difficulty moderate] [--phantom-size 384] [--json]
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import NOTE_CPU, base_parser, emit, private_cache, rounded, temp_dir


def one_seed(root: Path, seed: int, studies: int, size: int, epochs: int, clahe_clip: float,
             difficulty: str, phantom_size: int = 384) -> dict[str, Any]:
    from core.datasets import load_dataset
    from core.evaluate.roifinder import roi_model_metrics
    from core.phantom import write_phantom
    from core.pixels.spec import PreprocessParams
    from core.roifinder.infer import RoiFinder
    from core.roifinder.proposals import propose_manifest
    from core.roifinder.train import FinderConfig, train_finder

    data = root / f"phantom-{seed}"
    write_phantom(data, "vindr", studies, phantom_size, seed, difficulty)
    df = load_dataset(data)
    run = root / f"run-{seed}"
    run.mkdir()
    spec = PreprocessParams(size, clahe_clip)
    config = FinderConfig(size=size, epochs=epochs, seed=seed, clahe_clip=clahe_clip,
                          source_side=spec.source_side)
    start = time.perf_counter()
    entry = train_finder(df[df["split"] == "train"], run, config)
    seconds = time.perf_counter() - start
    finder = RoiFinder.from_run(run, {"roi_model": entry, "preprocess": spec.to_json()})
    by_source = finder.meta.get("presence_auc_val_by_source") or {}
    test = df[df["split"] == "test"].reset_index(drop=True)
    metrics = roi_model_metrics(propose_manifest(finder, test), n_boot=1000, seed=0)["roi_model"]
    auc = metrics["presence_auc"]
    froc = metrics["froc"]
    return {"seed": seed, "train_seconds": rounded(seconds, 1), "test_images": len(test),
            "test_with_roi": int(test["roi"].sum()),
            "presence_source": finder.source,
            "presence_auc_val": {k: rounded(v, 3) for k, v in by_source.items()},
            "threshold": rounded(finder.threshold, 4),
            "presence_calibration": {"temperature": rounded(finder.calibration.temperature, 4),
                                     "offset": rounded(finder.calibration.offset, 4)},
            "presence_sensitivity": rounded(metrics["presence_sensitivity"]["value"], 3),
            "presence_specificity": rounded(metrics["presence_specificity"]["value"], 3),
            "presence_auc": rounded(auc["value"], 3), "presence_auc_ci": [
                rounded(auc["ci_low"], 3), rounded(auc["ci_high"], 3)],
            "box_iou": rounded(metrics["box_iou"]["value"], 3),
            "froc_at_0.5": rounded(froc.get("sensitivity_at_0.5_fp"), 3),
            "froc_at_1": rounded(froc.get("sensitivity_at_1_fp"), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 22])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--roi-size", type=int, default=96)
    parser.add_argument("--roi-epochs", type=int, default=12)
    parser.add_argument("--clahe-clip", type=float, default=0.0)
    parser.add_argument("--difficulty", default="moderate")
    parser.add_argument("--phantom-size", type=int, default=384, help="the phantom's long side")
    args = parser.parse_args(argv)
    rows = []
    with temp_dir() as root, private_cache(root):
        for seed in args.seeds:
            rows.append(one_seed(root, seed, args.studies, args.roi_size, args.roi_epochs,
                                 args.clahe_clip, args.difficulty, args.phantom_size))
    result = {"benchmark": "roifinder", "note": NOTE_CPU, "synthetic": True,
              "studies": args.studies, "roi_size": args.roi_size, "roi_epochs": args.roi_epochs,
              "clahe_clip": args.clahe_clip, "difficulty": args.difficulty, "seeds": rows}
    lines = [f"seed {r['seed']}: presence from the {r['presence_source']} (validation AUC "
             f"{r['presence_auc_val']}; Platt {r['presence_calibration']}, threshold "
             f"{r['threshold']}), test presence AUC {r['presence_auc']} "
             f"(sensitivity {r['presence_sensitivity']}, specificity {r['presence_specificity']} "
             "at the threshold) "
             f"{r['presence_auc_ci']}, "
             f"box IoU {r['box_iou']}, FROC {r['froc_at_0.5']} / {r['froc_at_1']} "
             f"(0.5 / 1 FP per image), trained in {r['train_seconds']} s" for r in rows]
    emit(result, args.json, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
