"""Batch prediction on Ray Data gives the one-process answer and writes the same files.

One local Ray (2 CPUs) serves the module: the in-process comparison runs on it,
and the commands join it with ``--ray-address`` (so the address path is the one
exercised, and no test pays for a second Ray start).  The run is test_predict's
hand-made one with random heads (probabilities depend on the pixels), two
missing cells (a fallback, and baseline images no model serves) and an ROI
finder (the finder-routed grid and its table).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_predict import make_run
from test_roifinder import add_finder

from core.__main__ import main
from core.cli.data import write_manifest
from core.datasets import load_dataset
from core.phantom import write_phantom

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5
FLOAT_COLUMNS = ("p_malignant", "p_uncalibrated")

pytestmark = pytest.mark.usefixtures("one_thread")


def _descendants(pid: int) -> dict[int, str]:
    """``{pid: command name}`` of every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        me = int(stat.parent.name)
        names[me] = name
        children.setdefault(ppid, []).append(me)
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out[p] = names.get(p, "")
        todo.extend(children.get(p, []))
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for the module; afterwards no Ray process of ours is left."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 20
        while (left := {p: n for p, n in _descendants(os.getpid()).items()
                        if "raylet" in n or "gcs_server" in n}) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"Ray processes left after shutdown: {left}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny CDD-CESM-layout phantom: 6 patients, 16 images, 128 px."""
    out = tmp_path_factory.mktemp("batch") / "cdd-phantom"
    write_phantom(out, "cddcesm", 6, 128, seed=3)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("batchrun") / "run", marked=False,
                   skipped={"all-LMLO": "too few images", "roi-LMLO": "too few images"})
    add_finder(run, 0.0, threshold=0.4)
    return run


@pytest.fixture(scope="module")
def serial(run_dir, dataset) -> pd.DataFrame:
    """The one-process prediction of every image of the dataset."""
    from core.predict import Predictor, predict_manifest

    return predict_manifest(Predictor(run_dir, "cpu"), load_dataset(dataset))


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal but for the probabilities, which agree within :data:`TOL`."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    floats = [c for c in FLOAT_COLUMNS if c in a.columns]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    for column in floats:
        assert np.abs(a[column].to_numpy() - b[column].to_numpy()).max() <= TOL, column


def assert_close(a, b, where: str = "") -> None:
    """JSON values equal, numbers within :data:`TOL`."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert abs(a - b) <= TOL, where
    else:
        assert a == b, where


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_ray_batch_prediction_equals_one_process(ray_cluster, run_dir, dataset, serial):
    from core.predict import Predictor
    from core.scale.batch import predict_manifest_ray

    on_ray = predict_manifest_ray(Predictor(run_dir, "cpu"), load_dataset(dataset),
                                  batch_size=5)  # batches unlike the serial's
    assert_same_table(serial, on_ray)
    assert set(serial["mode"]) == {"baseline", "roi", "roi_proposed"}
    assert serial["fallback"].any()  # roi-LMLO's images went to a stand-in
    assert serial.attrs["unpredicted"] == on_ray.attrs["unpredicted"] > 0  # all-LMLO: none
    assert serial["p_malignant"].nunique() > 4  # the pixels decide, not only the cell
    pd.testing.assert_frame_equal(serial.attrs["roi_proposals"], on_ray.attrs["roi_proposals"])


def test_evaluate_dataset_on_ray_writes_the_one_process_files(ray_cluster, run_dir, dataset):
    from core.predict.external import validate_external

    folder = run_dir / "external" / "cdd-phantom-test"  # the test split: a few images suffice
    serial = validate_external(run_dir, dataset, device="cpu", n_boot=20)
    files = {f.name: f.read_text() for f in folder.iterdir()}
    assert set(files) == {"predictions.csv", "roi_proposals.csv", "cam_pointing.json",
                          "dataset.json", "metrics.json"}
    for f in folder.iterdir():
        f.unlink()
    out = _cli("evaluate", str(run_dir), "--dataset", str(dataset), "--json",
               "--boot", "20", "--device", "cpu", "--executor", "ray",
               "--ray-address", ray_cluster)
    assert out.returncode == 0, out.stderr
    assert sorted(f.name for f in folder.iterdir()) == sorted(files)
    assert_same_table(pd.read_csv(folder / "predictions.csv"),
                      pd.read_csv(pd.io.common.StringIO(files["predictions.csv"])))
    for name in ("roi_proposals.csv", "cam_pointing.json", "dataset.json"):
        assert (folder / name).read_text() == files[name], name
    assert_close(json.loads(out.stdout), serial)
    assert_close(json.loads((folder / "metrics.json").read_text()), serial)


def test_predict_manifest_on_ray_writes_the_one_process_files(ray_cluster, run_dir, dataset,
                                                              serial, tmp_path):
    from core.predict.manifest import write_predictions

    manifest = tmp_path / "manifest.csv"
    write_manifest(load_dataset(dataset), manifest)
    write_predictions(tmp_path / "serial", serial)  # what the one-process command writes
    out = _cli("predict", str(run_dir), "--manifest", str(manifest), "--out",
               str(tmp_path / "ray"), "--device", "cpu", "--executor", "ray",
               "--ray-address", ray_cluster)
    assert out.returncode == 0, out.stderr
    assert f"16 image(s) of {manifest} predicted (ray)" in out.stdout
    names = sorted(f.name for f in (tmp_path / "serial").iterdir())
    assert names == ["predictions.csv", "roi_proposals.csv"]
    assert sorted(f.name for f in (tmp_path / "ray").iterdir()) == names
    assert_same_table(pd.read_csv(tmp_path / "serial" / "predictions.csv"),
                      pd.read_csv(tmp_path / "ray" / "predictions.csv"))
    assert ((tmp_path / "serial" / "roi_proposals.csv").read_text()
            == (tmp_path / "ray" / "roi_proposals.csv").read_text())


def test_unreachable_address_and_missing_ray_are_one_line(run_dir, dataset, tmp_path,
                                                          monkeypatch, capsys):
    started = time.monotonic()
    code = main(["evaluate", str(run_dir), "--dataset", str(dataset), "--executor", "ray",
                 "--ray-address", "127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and time.monotonic() - started < 30
    assert len(err) == 1 and err[0].startswith("error: 127.0.0.1:9: no Ray cluster answers")
    manifest = tmp_path / "manifest.csv"
    write_manifest(load_dataset(dataset), manifest)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code = main(["predict", str(run_dir), "--manifest", str(manifest), "--out",
                 str(tmp_path / "o"), "--executor", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --executor ray needs Ray: pip install 'ray[data]==2.60.*'"]
    assert not (tmp_path / "o").exists()
