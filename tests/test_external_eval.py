"""External validation: ``python -m core evaluate RUN --dataset DIR`` on a second phantom.

The run is the routing fixture of test_predict (one random model per cell,
head zeroed, a distinct bias per cell), so no training is needed: what is
checked is that the other dataset is read in its own layout, every image of
the split is predicted by its cell, the result lands in its own folder and
names the dataset, and the run's own metrics.json is left alone.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_predict import BIAS, make_run, served_by

from core.datasets import load_dataset
from core.errors import ManifestError
from core.evaluate import format_report
from core.phantom import write_phantom
from core.predict.external import dataset_name, validate_external

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """A second, tiny CDD-CESM-layout phantom: 6 patients, 16 images, 128 px."""
    out = tmp_path_factory.mktemp("external") / "cdd-phantom"
    write_phantom(out, "cddcesm", 6, 128, seed=3)
    return out


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    run = make_run(tmp_path / "vindr-run")
    (run / "metrics.json").write_text('{"own": "result"}\n')
    return run


def test_external_folder_holds_predictions_pointing_and_metrics(run_dir, phantom):
    df = load_dataset(phantom)
    result = validate_external(run_dir, phantom, split="all", device="cpu", n_boot=20)
    folder = run_dir / "external" / "cdd-phantom-all"
    assert result["dataset"] == {
        "name": "cdd-phantom-all", "path": str(phantom.resolve()), "layout": "cdd-cesm",
        "split": "all", "n_images": len(df), "unpredicted": 0, "synthetic": True,
        "training_dataset": False, "options": {"split_seed": 0, "cdd_type": "DM"}}
    assert json.loads((folder / "metrics.json").read_text()) == result
    assert (run_dir / "metrics.json").read_text() == '{"own": "result"}\n'  # untouched
    pred = pd.read_csv(folder / "predictions.csv")
    assert len(pred) == 2 * len(df) and result["n_images"] == len(df)
    for row in pred.itertuples():  # every image served by its own routed cell
        assert served_by(row.p_malignant) == row.cell and row.cell in BIAS
    malignant_roi = int(((df["label"] == "malignant") & df["roi"]).sum())
    assert malignant_roi > 0
    pointing = result["cam_pointing"]
    for grid in ("baseline", "roi_aware"):
        assert pointing[grid]["n"] == malignant_roi
        assert 0 < pointing[grid]["chance"] < 0.5
    # zeroed heads have no gradient: flat maps point nowhere, so nothing is a hit
    assert pointing["baseline"]["hit_rate"] == 0.0
    text = format_report(result)
    assert f"External dataset cdd-phantom-all (cdd-cesm layout, split all, {len(df)} images)" in text
    assert "Grad-CAM pointing" in text and "SYNTHETIC PHANTOM DATA" in text


def test_split_selects_rows_and_names_the_folder(run_dir, phantom):
    df = load_dataset(phantom)
    result = validate_external(run_dir, phantom, device="cpu", n_boot=0)
    assert result["dataset"]["split"] == "test"
    assert result["n_images"] == result["dataset"]["n_images"] == int((df["split"] == "test").sum())
    assert (run_dir / "external" / "cdd-phantom-test" / "metrics.json").is_file()


def test_empty_split_and_unknown_layout_are_one_line_errors(run_dir, phantom, tmp_path):
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    df = load_dataset(phantom)
    df.assign(split="train")[["image_path", "patient_id", "study_id", "laterality", "view",
                              "label", "mask_path", "split"]].to_csv(manifest, index=False)
    with pytest.raises(ManifestError, match="no test images in this dataset"):
        validate_external(run_dir, manifest, device="cpu", n_boot=0)
    assert dataset_name(manifest) == "data" and dataset_name(tmp_path / "x" / "set.csv") == "x-set"
    (tmp_path / "junk").mkdir()
    with pytest.raises(ManifestError, match="not a dataset this app can read"):
        validate_external(run_dir, tmp_path / "junk", device="cpu")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", "evaluate", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_json_names_the_dataset_and_bad_path_is_one_line(run_dir, phantom, tmp_path):
    out = _cli(str(run_dir), "--dataset", str(phantom), "--split", "all", "--json", "--boot", "0",
               "--device", "cpu")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["dataset"]["layout"] == "cdd-cesm" and result["dataset"]["split"] == "all"
    assert set(result["cam_pointing"]) >= {"baseline", "roi_aware", "method"}
    bad = _cli(str(run_dir), "--dataset", str(tmp_path / "nowhere"))
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "no such file or folder" in lines[0]
