"""The benchmark scripts run end to end on tiny cases and print one JSON object.

No timing is compared with a fixed figure (the numbers depend on the machine);
what is checked is that each ``python -m benchmarks.<name> --json`` runs,
exits 0 and prints one JSON object whose values make sense: the settings it
was given, counts that match them, times and rates that are positive, and
every figure that is made of others (a ratio, a best of rounds, a flag
against its tolerance, a projection from a rate) equal to what it is made of,
up to the rounding the script applies.  The scripts start together (each
needs its own interpreter and torch import), so the file stays well under
90 s on two cores.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "train_throughput": ["--arch", "convnextv2_atto", "--img-size", "64", "--batch-size", "4",
                         "--steps", "2", "--warmup", "1", "--rounds", "2", "--studies", "1",
                         "--device", "cpu", "--paper-grid"],
    "preprocess": ["--n", "1", "--side", "256", "--size", "64", "--repeats", "1", "--pool-files", "4"],
    "predict": ["--archs", "convnextv2_atto", "--img-size", "64", "--phantom-size", "128",
                "--repeats", "1"],
    "memory": ["--parts", "review,cuda", "--cases", "3", "--warmup", "1", "--review-size", "64",
               "--phantom-size", "128"],
    "roifinder": ["--seeds", "3", "--studies", "30", "--roi-size", "32", "--roi-epochs", "1",
                  "--phantom-size", "128", "--difficulty", "easy"],
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[int, str, str, float]]:
    """Start every script at once; collect (returncode, stdout, stderr, seconds)."""
    env = {**os.environ, "MAMMOROUTE_CACHE": str(tmp_path_factory.mktemp("cache")),
           "PYTHONWARNINGS": "ignore"}
    procs = {}
    for name, args in COMMANDS.items():
        procs[name] = (time.perf_counter(), subprocess.Popen(
            [sys.executable, "-m", f"benchmarks.{name}", *args, "--json"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = {}
    for name, (t0, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (proc.returncode, stdout, stderr, time.perf_counter() - t0)
    return out


def _json(outputs, name: str) -> dict:
    code, stdout, stderr, _ = outputs[name]
    assert code == 0, stderr[-3000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line, got: {stdout!r}"
    return json.loads(lines[0])


def _rounding(value: float, digits: int) -> float:
    """The most a figure rounded to ``digits`` can differ from the value it came from."""
    return 0.5 * 10.0 ** -digits + 1e-12 * abs(value)


def _is_quotient(ratio: float, num: float, den: float, digits: int, parts_digits: int) -> bool:
    """Whether a rounded ``ratio`` is the quotient of two rounded figures, within their rounding."""
    err = _rounding(ratio, digits) + (num / den) * (_rounding(num, parts_digits) / num
                                                    + _rounding(den, parts_digits) / den) * 1.01
    return abs(ratio - num / den) <= err


def _number(value, low: float = 0.0, high: float = math.inf, strict: bool = True) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (low < value if strict else low <= value) and value <= high


def test_train_throughput_json(outputs):
    from benchmarks.train_throughput import (
        INFERENCE_SPEEDUP,
        PAPER_ARCHS,
        PAPER_EPOCHS,
        PAPER_TEST,
        PAPER_TRAIN,
    )

    data = _json(outputs, "train_throughput")
    assert (data["device"], data["arch"], data["img_size"], data["batch_size"]) == (
        "cpu", "convnextv2_atto", 64, 4)
    assert (data["steps"], data["warmup_steps"], data["rounds"], data["compile"]) == (2, 1, 2, False)
    assert isinstance(data["threads"], int) and data["threads"] >= 1
    assert _number(data["bank_setup_s"], strict=False)
    for path in ("model_only", "end_to_end"):
        rounds = data[f"{path}_rounds"]
        assert len(rounds) == data["rounds"] and all(_number(r) for r in rounds)
        assert data[f"{path}_img_s"] == max(rounds)  # the least disturbed round is kept
    assert _is_quotient(data["ratio"], data["end_to_end_img_s"], data["model_only_img_s"], 3, 2)

    # the projection of the paper's grid, from the end-to-end rate it reports
    assert data["paper_train_images"] == sum(PAPER_TRAIN.values()) == 5276 + 600  # paper Tables 1-4
    assert data["paper_test_images"] == sum(PAPER_TEST.values()) == 1318 + 62
    assert (data["paper_epochs"], data["paper_modes"]) == (PAPER_EPOCHS, 2)
    assert data["assumed_inference_speedup"] == INFERENCE_SPEEDUP
    rate, infer = data["end_to_end_img_s"], data["end_to_end_img_s"] * INFERENCE_SPEEDUP
    train, test = data["paper_train_images"], data["paper_test_images"]
    seconds = 2 * (PAPER_EPOCHS * (train / rate + data["paper_val_fraction"] * train / infer)
                   + test / infer)
    per_arch = data["paper_grid_minutes_per_arch"]
    assert set(per_arch) == set(PAPER_ARCHS)  # neither measured here: both at this arch's rate
    assert all(abs(m - seconds / 60) <= _rounding(m, 1) for m in per_arch.values())
    assert abs(data["paper_grid_minutes"] - sum(per_arch.values())) <= 0.05 * (len(per_arch) + 1)
    assumed = [a for a in data["assumptions"] if "assumed at the convnextv2_atto rate" in a]
    assert sorted(a.split()[0] for a in assumed) == sorted(PAPER_ARCHS)


def test_preprocess_json(outputs):
    from benchmarks.preprocess import CLAHE_TOLERANCE, COLS, ROWS
    from core.pixels.read import RENDER_TOLERANCE

    data = _json(outputs, "preprocess")
    assert (data["rows"], data["cols"], data["size"], data["n"]) == (
        256, round(256 * COLS / ROWS), 64, 1)
    for key in ("decode_ms", "read_image_ms", "full_ms", "float_path_ms", "clahe_reduced_ms",
                "clahe_full_ms", "workers_1_img_s", "workers_2_img_s"):
        assert _number(data[key]), key
    assert _number(data["cache_hit_ms"], strict=False)
    assert _is_quotient(data["ratio"], data["full_ms"], data["decode_ms"], 3, 3)
    assert data["pool_files"] == 4
    assert data["clahe_tolerance_mad"] == CLAHE_TOLERANCE
    assert data["render_tolerance_mad"] == RENDER_TOLERANCE
    for name in ("clahe_reduced_vs_full", "render_vs_exact"):
        mad = data[f"{name}_mad"]
        assert _number(mad, high=255, strict=False)
    assert data["clahe_within_tolerance"] is (data["clahe_reduced_vs_full_mad"] <= CLAHE_TOLERANCE)
    assert data["render_within_tolerance"] is (data["render_vs_exact_mad"] <= RENDER_TOLERANCE)
    assert data["render_within_tolerance"]  # the shortcut the model input takes holds
    assert not any(k.startswith("j2k") for k in data)  # not asked for


def test_predict_json(outputs):
    data = _json(outputs, "predict")
    assert (data["device"], data["views"], data["phantom_size"], data["repeats"]) == (
        "cpu", 4, 128, 1)
    assert isinstance(data["threads"], int) and data["threads"] >= 1
    cases = data["cases"]
    assert [(c["arch"], c["img_size"], c["cam"]) for c in cases] == [
        ("convnextv2_atto", 64, False), ("convnextv2_atto", 64, True)]
    assert all(_number(c["cold_ms"]) and _number(c["warm_ms"]) for c in cases)


def test_memory_json(outputs):
    data = _json(outputs, "memory")
    assert data["parts"] == ["review", "cuda"] and "train_peak_rss_mb" not in data
    assert (data["review_arch"], data["review_img_size"], data["review_cases"]) == (
        "convnextv2_atto", 64, 3)
    rss = data["review_rss_mb"]
    assert len(rss) == data["review_cases"] and all(_number(v) for v in rss)
    warm = data["review_warmup_cases"]
    assert warm == 2  # --warmup 1: growth counted from the second review on
    assert abs(data["review_growth_after_warmup_mb"] - (rss[-1] - rss[warm - 1])) <= 0.1 + 1e-9
    # the peak is at least every sample, up to the kernel's lazy RSS accounting (64 pages)
    assert 0 < data["review_rss_after_load_mb"] <= data["review_peak_rss_mb"] + 1
    assert max(rss) <= data["review_peak_rss_mb"] + 1
    import torch

    if torch.cuda.is_available():
        assert all(_number(data[f"cuda_{a}_max_allocated_mb"]) for a in ("swin", "convnextv2"))
    else:
        assert "no CUDA GPU" in data["cuda_note"] and not any(k.endswith("allocated_mb") for k in data)


def test_roifinder_json(outputs):
    data = _json(outputs, "roifinder")
    assert data["benchmark"] == "roifinder" and data["synthetic"] is True
    assert (data["studies"], data["roi_size"], data["roi_epochs"], data["difficulty"]) == (
        30, 32, 1, "easy")
    (seed,) = data["seeds"]
    assert seed["seed"] == 3 and _number(seed["train_seconds"])
    n = seed["test_images"]
    assert n % 4 == 0 and 0 < n < 4 * data["studies"]  # four views per study, some in train
    assert 0 < seed["test_with_roi"] <= n
    assert _number(seed["presence_auc"], high=1, strict=False)
    low, high = seed["presence_auc_ci"]
    assert 0 <= low <= seed["presence_auc"] <= high <= 1
    assert _number(seed["box_iou"], high=1, strict=False)
    froc = seed["froc_at_0.5"], seed["froc_at_1"]
    assert all(_number(v, high=1, strict=False) for v in froc)
    assert froc[0] <= froc[1]  # more false positives allowed never finds fewer lesions
    by_source = seed["presence_auc_val"]  # chosen on validation: the higher AUC there
    assert set(by_source) == {"head", "map"}
    assert by_source[seed["presence_source"]] == max(by_source.values())
    assert _number(seed["threshold"], high=1) and seed["presence_calibration"]["temperature"] > 0


def test_readable_line_without_json():
    """Without --json a person gets a line of text, not JSON."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.preprocess", "--n", "1", "--side",
                           "128", "--size", "32", "--repeats", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "decode" in proc.stdout and not proc.stdout.lstrip().startswith("{")


def test_gpu_script_refuses_clearly_without_a_gpu(tmp_path):
    """benchmarks/gpu.sh is for a GPU machine; here it must stop at once, saying why."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run for minutes")
    proc = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHON": sys.executable,
                                            "OUT": str(tmp_path)})
    assert proc.returncode != 0 and "no CUDA GPU" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_breast_rules_on_a_hand_computed_table():
    """Max, mean and noisy-or of four two-view breasts (one patient each), by hand."""
    import pandas as pd

    from benchmarks.breast_rule import compare_rules

    views = {"A": (1, 0.9, 0.1), "B": (0, 0.6, 0.6), "C": (1, 0.55, 0.55), "D": (0, 0.2, 0.0)}
    rows = [{"mode": "roi", "patient_id": pid, "study_id": "s", "view": view, "label": label,
             "p_malignant": p} for pid, (label, cc, mlo) in views.items()
            for view, p in (("LCC", cc), ("LMLO", mlo))]
    block = compare_rules(pd.DataFrame(rows), n_boot=200)["roi_aware"]
    assert (block["n_breasts"], block["n_malignant"], block["n_one_view"]) == (4, 2, 0)
    # max: .9 .6 .55 .2; mean: .5 .6 .55 .1; noisy-or: .91 .84 .7975 .2
    assert block["max"]["auc"] == pytest.approx(3 / 4)
    assert block["mean"]["auc"] == pytest.approx(2 / 4)
    assert block["noisy_or"]["auc"] == pytest.approx(3 / 4)
    assert block["mean"]["auc_minus_max"] == pytest.approx(-1 / 4)
    assert block["max"]["auc_minus_max_ci"] == [0.0, 0.0]
    assert block["max"]["brier"] == pytest.approx((0.01 + 0.36 + 0.2025 + 0.04) / 4)
    assert block["max"]["ece"] == pytest.approx((0.1 + 0.6 + 0.45 + 0.2) / 4)
    low, high = block["max"]["auc_ci"]
    assert 0 <= low <= high <= 1
