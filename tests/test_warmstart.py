"""Warm start: the pooled model is trained on the training split and every cell starts from it."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_train import write_blobs

from core.errors import CheckpointError
from core.models import create_model, load_weights
from core.runfolder import layout as runs
from core.train import train_grid
from core.train.carve import run_carve
from core.train.warmstart import POOLED
from helpers import stripes_over_two_views, warm_start_config


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))




def _conv_weights(path) -> dict[str, torch.Tensor]:
    model = load_weights(create_model("resnet10t", 32), path)
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith("conv1.weight")}


def test_cells_start_from_the_pooled_model(tmp_path):
    manifest = stripes_over_two_views(write_blobs(tmp_path / "blobs", 48, 16))
    df = pd.read_csv(manifest, keep_default_na=False)
    out = tmp_path / "run"
    train_grid(manifest, out, warm_start_config(lr=1e-9))  # cells barely move: their weights are their start
    info = runs.read_run(out).info
    pooled = info[POOLED.name]
    assert pooled["status"] == "done"
    train = df[df["split"] == "train"].assign(roi=False)
    fit, val = run_carve(train, warm_start_config())
    assert pooled["n_train"] == len(fit) and pooled["n_val"] == len(val)
    assert len(fit) + len(val) == (df["split"] == "train").sum()  # every view, training split only
    start = _conv_weights(out / POOLED.name / runs.WEIGHTS_FILE)
    done = [c for c, e in info["cells"].items() if e["status"] == "done"]
    assert done == ["all-RCC", "all-LCC"]
    for cell in done:
        weights = _conv_weights(out / cell / runs.WEIGHTS_FILE)
        for key, value in start.items():
            torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-6)
    # without the warm start the same cell starts elsewhere
    train_grid(manifest, tmp_path / "cold", warm_start_config(lr=1e-9, warm_start=0))
    cold = _conv_weights(tmp_path / "cold" / "all-RCC" / runs.WEIGHTS_FILE)
    assert any((cold[k] - start[k]).abs().max() > 1e-3 for k in start)
    assert not (tmp_path / "cold" / POOLED.name).exists()


def test_resume_keeps_the_pooled_model_and_refuses_a_changed_one(tmp_path):
    manifest = stripes_over_two_views(write_blobs(tmp_path / "blobs", 48, 16))
    out = tmp_path / "run"
    train_grid(manifest, out, warm_start_config())
    first = (out / POOLED.name / runs.WEIGHTS_FILE).read_bytes()
    train_grid(manifest, out, warm_start_config(resume=True))
    assert (out / POOLED.name / runs.WEIGHTS_FILE).read_bytes() == first  # kept, not retrained
    config = warm_start_config(init_weights=str(out / POOLED.name / runs.WEIGHTS_FILE), init_sha256="0" * 64)
    with pytest.raises(CheckpointError):
        load_weights(create_model("resnet10t", 32), config.init_weights, config.init_sha256)


def test_recommended_run_is_chosen_by_validation_evidence_never_by_test(tmp_path):
    import json

    from core.runfolder.layout import read_run, recommended_run

    def run(name, started, status="complete", val_auc=None, test_auc=None):
        folder = tmp_path / name
        folder.mkdir()
        info = {"status": status, "started": started}
        if val_auc is not None:
            info["calibration"] = {"baseline": {"validation": {"roc_auc": val_auc}}}
        (folder / runs.RUN_FILE).write_text(json.dumps(info))
        if test_auc is not None:
            (folder / runs.METRICS_FILE).write_text(json.dumps({"baseline": {"roc_auc": test_auc}}))
        return read_run(folder)

    # the luckiest test split must not win: only the validation figures decide
    lucky = run("lucky-test-split", "2026-01-03",
                val_auc={"value": 0.80, "ci_low": 0.62, "ci_high": 0.98},
                test_auc={"value": 0.97, "ci_low": 0.93, "ci_high": 1})
    solid = run("solid-validation", "2026-01-01",
                val_auc={"value": 0.86, "ci_low": 0.78, "ci_high": 0.94},
                test_auc={"value": 0.84, "ci_low": 0.76, "ci_high": 0.92})
    running = run("still-running", "2026-01-04", status="running",
                  val_auc={"value": 0.99, "ci_low": 0.98, "ci_high": 1})
    assert recommended_run([running, lucky, solid]).name == "solid-validation"
    bare = run("no-validation", "2026-01-05", test_auc={"value": 0.99, "ci_low": 0.97, "ci_high": 1})
    also_bare = run("no-validation-older", "2026-01-02")
    assert recommended_run([also_bare, bare]).name == "no-validation"  # no evidence: the newest
    assert recommended_run([running]).name == "still-running"  # nothing complete: what there is
    assert recommended_run([]) is None
