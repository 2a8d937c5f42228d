"""Which per-breast probability: the maximum, the mean or the noisy-or of its views' probabilities.

A breast's probability ranks breasts for the breast-level ROC AUC and is the
number beside a breast's call.  This measures the three rules on a trained
run's **validation** patients (the run's one patient-grouped carve, read from
its models' ``split.json``: every model of the run was selected, calibrated and
thresholded on them, and the test split chooses nothing): each validation image
is predicted as ``evaluate`` predicts (:func:`core.predict.predict_manifest`),
then, per grid and rule, breast-level ROC AUC with a patient-bootstrap 95 % CI,
the paired AUC difference of each rule against the maximum (same resamples),
ECE and Brier score.  Synthetic phantom data when the run is a demo run.

    python -m benchmarks.breast_rule --run checkpoints/demo-vindr-resnet10t [--boot 1000] [--json]
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import NOTE_CPU, base_parser, emit, rounded

RULES: dict[str, Callable[[pd.Series], float]] = {
    "max": lambda p: float(p.max()),
    "mean": lambda p: float(p.mean()),
    "noisy_or": lambda p: float(1.0 - np.prod(1.0 - p.to_numpy())),
}
"""Rule name → a breast's probability from its views' probabilities."""
GRIDS: dict[str, str] = {"baseline": "baseline", "roi": "roi_aware",
                         "roi_proposed": "roi_aware_proposed"}
KEY = ["patient_id", "study_id", "laterality"]


def breast_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (grid mode, breast): the label (any view malignant), the view count and
    each rule's probability."""
    rows = predictions.assign(laterality=predictions["view"].str[0])
    grouped = rows.groupby(["mode", *KEY], sort=True)
    out = grouped.agg(label=("label", "max"), n_views=("view", "size"))
    for name, rule in RULES.items():
        out[name] = grouped["p_malignant"].agg(rule)
    return out.reset_index()


def compare_rules(predictions: pd.DataFrame, n_boot: int = 1000, seed: int = 0
                  ) -> dict[str, Any]:
    """Per grid: each rule's breast-level AUC [CI], its paired AUC difference from the
    maximum [CI], ECE and Brier score (see the module docstring)."""
    from core.evaluate.bootstrap import auc_samples, patient_bootstrap_weights
    from core.evaluate.calibration import brier_score, expected_calibration_error

    breasts = breast_table(predictions)
    patients = pd.Index(sorted(breasts["patient_id"].unique()))
    boot = patient_bootstrap_weights(len(patients), n_boot, seed)
    out: dict[str, Any] = {}
    for mode, grid in GRIDS.items():
        b = breasts[breasts["mode"] == mode]
        if b.empty:
            continue
        y = b["label"].to_numpy().astype(int)
        codes = patients.get_indexer(b["patient_id"])
        aucs = {name: auc_samples(y, b[name].to_numpy(), codes, boot) for name in RULES}
        block: dict[str, Any] = {"n_breasts": int(len(b)), "n_malignant": int(y.sum()),
                                 "n_one_view": int((b["n_views"] == 1).sum())}
        for name in RULES:
            point, samples = aucs[name]
            diff = samples - aucs["max"][1]
            block[name] = {
                "auc": float(point[0]), "auc_ci": _ci(samples),
                "auc_minus_max": float(point[0] - aucs["max"][0][0]),
                "auc_minus_max_ci": _ci(diff),
                "ece": expected_calibration_error(b[name].to_numpy(), y),
                "brier": brier_score(b[name].to_numpy(), y)}
        out[grid] = block
    return out


def _ci(samples: np.ndarray) -> list[float | None]:
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return [None, None]
    return [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]


def validation_rows(run_dir: Path) -> pd.DataFrame:
    """The run's dataset rows of its validation patients (the union of its models'
    ``split.json`` validation patients: one carve per run)."""
    from core.datasets import read_dataset
    from core.datasets.run_data import run_options
    from core.runfolder.layout import read_run
    from core.runfolder.splits import SPLIT_FILE, read_split

    run = read_run(run_dir)
    patients: set[str] = set()
    for file in sorted(run_dir.glob(f"*/{SPLIT_FILE}")):
        if file.parent.name != "roi_model":  # the finder carves its own
            patients |= set(map(str, read_split(file.parent)["validation"]["patients"]))
    df = read_dataset(run.info["dataset_path"], run_options(run.info).options)
    return df[(df["split"] == "train") & df["patient_id"].astype(str).isin(patients)]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run folder")
    parser.add_argument("--boot", type=int, default=1000, help="patient-bootstrap resamples")
    args = parser.parse_args(argv)
    from core.predict import predict_manifest
    from core.runfolder.layout import read_run

    rows = validation_rows(args.run)
    predictions = predict_manifest(args.run, rows, device="cpu")
    result = {"benchmark": "breast_rule", "note": NOTE_CPU, "run": args.run.name,
              "synthetic": bool(read_run(args.run).synthetic), "split": "validation",
              "n_images": int(len(rows)), "n_patients": int(rows["patient_id"].nunique()),
              "grids": compare_rules(predictions, args.boot)}
    lines = []
    for grid, block in result["grids"].items():
        lines.append(f"{grid}: {block['n_breasts']} breasts, {block['n_malignant']} malignant")
        for name in RULES:
            r = block[name]
            lines.append(f"  {name:8s} AUC {rounded(r['auc'], 3)} "
                         f"[{rounded(r['auc_ci'][0], 3)}, {rounded(r['auc_ci'][1], 3)}], "
                         f"minus max {rounded(r['auc_minus_max'], 3)} "
                         f"[{rounded(r['auc_minus_max_ci'][0], 3)}, "
                         f"{rounded(r['auc_minus_max_ci'][1], 3)}], ECE {rounded(r['ece'], 3)}, "
                         f"Brier {rounded(r['brier'], 3)}")
    emit(result, args.json, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
