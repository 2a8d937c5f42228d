"""The benchmark scripts run end to end on tiny cases and print one JSON object.

No timing is asserted (the numbers depend on the machine); what is checked
is that each ``python -m benchmarks.<name> --json`` runs, exits 0 and prints
valid JSON with the documented keys.  The scripts start together (each
needs its own interpreter and torch import), so the file stays well under
90 s on two cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "train_throughput": ["--arch", "convnextv2_atto", "--img-size", "64", "--batch-size", "4",
                         "--steps", "2", "--warmup", "1", "--rounds", "1", "--studies", "1",
                         "--device", "cpu", "--paper-grid"],
    "preprocess": ["--n", "1", "--side", "256", "--size", "64", "--repeats", "1", "--pool-files", "4"],
    "predict": ["--archs", "convnextv2_atto", "--img-size", "64", "--phantom-size", "128",
                "--repeats", "1"],
    "memory": ["--parts", "review,cuda", "--cases", "2", "--warmup", "1", "--review-size", "64",
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


def test_train_throughput_json(outputs):
    data = _json(outputs, "train_throughput")
    for key in ("device", "arch", "img_size", "batch_size", "model_only_img_s",
                "end_to_end_img_s", "ratio", "paper_grid_minutes", "assumptions"):
        assert key in data, key
    assert data["arch"] == "convnextv2_atto" and data["img_size"] == 64 and data["batch_size"] == 4
    assert data["model_only_img_s"] > 0 and data["end_to_end_img_s"] > 0 and data["ratio"] > 0
    assert data["paper_train_images"] == 5276 + 600 and data["paper_test_images"] == 1318 + 62
    assert data["paper_grid_minutes"] > 0


def test_preprocess_json(outputs):
    data = _json(outputs, "preprocess")
    for key in ("decode_ms", "full_ms", "ratio", "cache_hit_ms", "workers_1_img_s",
                "workers_2_img_s", "clahe_reduced_vs_full_mad", "clahe_tolerance_mad"):
        assert key in data, key
    assert data["rows"] == 256 and data["full_ms"] > 0 and data["cache_hit_ms"] >= 0
    assert data["pool_files"] == 4 and data["workers_2_img_s"] > 0
    assert 0 <= data["clahe_reduced_vs_full_mad"] <= 255
    assert 0 <= data["render_vs_exact_mad"] <= data["render_tolerance_mad"]


def test_predict_json(outputs):
    data = _json(outputs, "predict")
    cases = data["cases"]
    assert [(c["arch"], c["img_size"], c["cam"]) for c in cases] == [
        ("convnextv2_atto", 64, False), ("convnextv2_atto", 64, True)]
    for case in cases:
        assert set(case) >= {"arch", "img_size", "cam", "cold_ms", "warm_ms"}
        assert case["cold_ms"] > 0 and case["warm_ms"] > 0


def test_memory_json(outputs):
    data = _json(outputs, "memory")
    assert len(data["review_rss_mb"]) == 2
    assert "review_growth_after_warmup_mb" in data and data["review_peak_rss_mb"] > 0
    assert "cuda_note" in data or "cuda_swin_max_allocated_mb" in data


def test_roifinder_json(outputs):
    data = _json(outputs, "roifinder")
    assert data["synthetic"] is True and (data["studies"], data["roi_size"]) == (30, 32)
    (seed,) = data["seeds"]
    assert seed["seed"] == 3 and seed["test_with_roi"] > 0 and seed["train_seconds"] > 0
    assert 0 <= seed["presence_auc"] <= 1 and 0 <= seed["box_iou"] <= 1
    assert seed["presence_auc_ci"][0] <= seed["presence_auc"] <= seed["presence_auc_ci"][1]
    by_source = seed["presence_auc_val"]  # chosen on validation: the higher AUC there
    assert set(by_source) == {"head", "map"}
    assert by_source[seed["presence_source"]] == max(by_source.values())


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
