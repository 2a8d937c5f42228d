"""What a run tells its watchers: step counts and ETA over every part, and the options
the command line hands to the dataset loader (--cdd-type, --split-seed).

Tiny models (convnextv2_atto at 32 px) on the stripes manifest of test_train.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_train import tiny, write_blobs

from core.datasets import load_dataset
from core.datasets.fingerprint import dataset_hash
from core.datasets.roi import shapes_json
from core.datasets.run_data import load_run_dataset
from core.runfolder import layout as runs
from core.train import train_grid


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _with_rois(tmp_path):
    """Stripes manifest whose malignant images carry a box: the ROI finder has work."""
    manifest = write_blobs(tmp_path / "data", 32, 8)
    df = pd.read_csv(manifest, keep_default_na=False)
    box = shapes_json(64, 64, [{"type": "box", "xmin": 8, "ymin": 8, "xmax": 40, "ymax": 40}])
    df["roi_shapes"] = np.where(df["label"] == "malignant", box, "")
    df.to_csv(manifest, index=False)
    return manifest


def test_eta_waits_for_the_roi_finder(tmp_path):
    """After the last cell the finder still trains: its first epoch must not read ETA 0."""
    events: list[dict] = []
    train_grid(_with_rois(tmp_path), tmp_path / "run",
               tiny(epochs=1, roi_model=True, roi_size=32, roi_epochs=2), progress=events.append)
    finder = [e for e in events if e["event"] == "roi_epoch"]
    assert [e["epoch"] for e in finder] == [1, 2]
    assert finder[0]["eta_s"] > 0 and finder[0]["steps_done"] < finder[0]["steps_total"]
    last = events[-1]
    assert last["event"] == "run_done" and last["steps_done"] == last["steps_total"]


def test_steps_of_cells_kept_on_resume_count_as_done(blobs_two_cells, tmp_path):
    """all-RCC finishes, noroi-RCC is interrupted; the resumed process starts its count
    with all-RCC's steps done and ends with every step counted."""
    out = tmp_path / "run"

    def stop_in_second_cell(event):
        if event.get("cell") == "noroi-RCC" and event["event"] == "step":
            raise RuntimeError("simulated power cut")

    with pytest.raises(RuntimeError):
        train_grid(blobs_two_cells, out, tiny(mode="both", epochs=2), progress=stop_in_second_cell)
    kept_images = json.loads((out / "all-RCC" / runs.META_FILE).read_text())["n_train"]
    resumed: list[dict] = []
    train_grid(blobs_two_cells, out, tiny(mode="both", epochs=2, resume=True),
               progress=resumed.append)
    kept = resumed[0]
    assert (kept["event"], kept["cell"]) == ("cell_done", "all-RCC")
    assert kept["steps_done"] == 2 * -(-kept_images // 8)  # all-RCC's 2 epochs of batches of 8
    assert resumed[-1]["steps_done"] == resumed[-1]["steps_total"]


@pytest.fixture
def blobs_two_cells(tmp_path):
    return write_blobs(tmp_path / "blobs", 32, 8)


def test_cli_hands_cdd_type_and_split_seed_to_the_loader(tmp_path, capsys):
    from core.__main__ import main
    from core.phantom import write_phantom

    data = tmp_path / "cdd"
    write_phantom(data, "cddcesm", 8, size=64, seed=1, workers=1)
    out = tmp_path / "run"
    rc = main(["train", "--dataset", str(data), "--out", str(out), "--cdd-type", "cesm",
               "--split-seed", "3", "--arch", "convnextv2_atto", "--img-size", "32",
               "--epochs", "1", "--mode", "baseline", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    info = runs.read_run(out).info
    assert (info["config"]["cdd_type"], info["config"]["split_seed"]) == ("CESM", 3)
    assert info["dataset_options"] == {"split_seed": 3, "cdd_type": "CESM"}
    chosen = load_dataset(data, split_seed=3, cdd_type="CESM")
    pd.testing.assert_frame_equal(load_run_dataset(runs.read_run(out)), chosen)
    assert info["dataset_hash"] == dataset_hash(chosen, data)
    assert chosen["image_path"].str.contains("Subtracted images").all()
    for other in (load_dataset(data, split_seed=0, cdd_type="CESM"),
                  load_dataset(data, split_seed=3, cdd_type="DM")):
        assert dataset_hash(other, data) != info["dataset_hash"]


def test_cv_fold_events_name_their_fold(blobs_two_cells, tmp_path):
    """A fold's all-RCC is not the grid's all-RCC: the watcher must tell them apart."""
    events: list[dict] = []
    train_grid(blobs_two_cells, tmp_path / "run", tiny(epochs=1, cv=2), progress=events.append)
    trained = [e for e in events if e["event"] == "cell_done" and e["cell"] == "all-RCC"]
    assert [e.get("fold") for e in trained] == [1, 2, None]  # folds first, then the grid
