"""A run's own dataset: read again with the options run.json records, by one function.

The phantom is a CDD-CESM-layout dataset (8 studies, 64 px) whose split seeds
0 and 3 hold out different studies, so reading it with the defaults gives
another "test" split (with the run's training images in it) and low-energy
images where the run trained on subtracted ones.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_predict import make_run

from core.datasets import LoadOptions, load_dataset
from core.datasets.run_data import OPTIONS_KEY, load_run_dataset, run_options
from core.errors import CheckpointError
from core.phantom import write_phantom
from core.pixels.preprocess import PreprocessParams
from core.runfolder.layout import read_run

pytestmark = pytest.mark.usefixtures("one_thread")

RUN_OPTIONS = {"split_seed": 3, "cdd_type": "CESM"}


@pytest.fixture(scope="module")
def cdd(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rundata") / "cdd"
    write_phantom(out, "cddcesm", 8, size=64, seed=1, workers=1)
    return out


def test_split_seeds_hold_out_different_studies(cdd):
    """The premise of the tests below: the defaults would give another test split."""
    ours = load_dataset(cdd, **RUN_OPTIONS)
    default = load_dataset(cdd)
    assert set(ours.loc[ours["split"] == "test", "study_id"]) \
        != set(default.loc[default["split"] == "test", "study_id"])


def _write_info(run: Path, **fields) -> None:
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, **fields}))


def test_case_review_study_list_is_the_runs_test_split_in_its_image_type(cdd, tmp_path):
    from core.review.study import study_choices, study_views

    run = make_run(tmp_path / "run")
    _write_info(run, dataset_path=str(cdd), **{OPTIONS_KEY: RUN_OPTIONS})
    df = load_run_dataset(read_run(run))
    trained = load_dataset(cdd, **RUN_OPTIONS)
    expected = sorted(set(trained.loc[trained["split"] == "test", "study_id"].astype(str)))
    studies = study_choices(df)
    assert sorted(s["study_id"] for s in studies) == expected
    training = set(trained.loc[trained["split"] == "train", "study_id"].astype(str))
    assert not training & {s["study_id"] for s in studies}
    views = study_views(df, studies[0]["study_id"], PreprocessParams(64, crop=False))
    assert views and all("_CM_" in v.name and v.error is None for v in views)  # subtracted


def test_older_runs_read_their_config_else_the_defaults_and_say_so(cdd, tmp_path):
    run = make_run(tmp_path / "run")
    _write_info(run, dataset_path=str(cdd), config={"seed": 0, **RUN_OPTIONS})
    read = run_options(read_run(run).info)
    assert (read.options, read.recorded) == (LoadOptions(3, "CESM"), True)
    assert read.sentence() == "Read as this run read it (CDD-CESM images CESM, split seed 3)."

    _write_info(run, config={"seed": 0})  # a run from before the options existed
    read = run_options(read_run(run).info)
    assert (read.options, read.recorded) == (LoadOptions(), False)
    assert "does not record how its dataset was read" in read.sentence()
    assert "CDD-CESM images DM, split seed 0" in read.sentence()
    df = load_run_dataset(read_run(run))
    pd.testing.assert_frame_equal(df, load_dataset(cdd))


def test_bad_options_and_a_run_without_a_folder_are_one_line_errors(cdd, tmp_path):
    run = make_run(tmp_path / "run")
    _write_info(run, dataset_path=str(cdd), **{OPTIONS_KEY: {"split_seed": "x", "cdd_type": "DM"}})
    with pytest.raises(CheckpointError, match=r"run\.json: unreadable dataset options"):
        load_run_dataset(read_run(run))
    _write_info(run, dataset_path=None, **{OPTIONS_KEY: RUN_OPTIONS})
    with pytest.raises(CheckpointError, match="records no dataset folder"):
        load_run_dataset(read_run(run))


def test_external_validation_on_the_runs_own_dataset_uses_its_options(cdd, tmp_path):
    from core.predict.external import validate_external

    run = make_run(tmp_path / "run")
    _write_info(run, dataset_path=str(cdd.resolve()), **{OPTIONS_KEY: RUN_OPTIONS})
    result = validate_external(run, cdd, split="test", device="cpu", n_boot=0)
    trained = load_dataset(cdd, **RUN_OPTIONS)
    expected = set(trained.loc[trained["split"] == "test", "image_path"])
    folder = run / "external" / "cdd-test"
    predicted = set(pd.read_csv(folder / "predictions.csv")["image_path"])
    assert predicted == expected
    assert result["dataset"]["training_dataset"] is True
    assert result["dataset"]["options"] == RUN_OPTIONS
