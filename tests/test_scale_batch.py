"""Batch prediction on Ray Data gives the one-process answer and writes the same files.

One local Ray (2 CPUs) serves the module: external validation runs on it
in process, and ``predict --manifest`` joins it with ``--ray-address`` (so the address path is
exercised, and no test pays for a second Ray start).  The run is test_predict's
hand-made one with random heads (probabilities depend on the pixels), two
missing cells (a fallback, and baseline images no model serves) and an ROI
finder (the finder-routed grid and its table).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from functools import partial
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


def test_evaluate_on_ray_equals_one_process_and_writes_its_files(ray_cluster, run_dir, dataset):
    """External validation scored on Ray Data: the one-process table (within 1e-5) and the
    same five files, whose non-probability contents are identical."""
    from core.predict.external import validate_external
    from core.scale.batch import predict_manifest_ray

    folder = run_dir / "external" / "cdd-phantom-all"
    serial = validate_external(run_dir, dataset, split="all", device="cpu", n_boot=20)
    files = {f.name: f.read_text() for f in folder.iterdir()}
    assert set(files) == {"predictions.csv", "roi_proposals.csv", "cam_pointing.json",
                          "dataset.json", "metrics.json"}
    for f in folder.iterdir():
        f.unlink()
    on_ray = validate_external(run_dir, dataset, split="all", device="cpu", n_boot=20,
                               predict=partial(predict_manifest_ray, batch_size=5))
    assert sorted(f.name for f in folder.iterdir()) == sorted(files)
    table = pd.read_csv(folder / "predictions.csv")
    assert_same_table(pd.read_csv(io.StringIO(files["predictions.csv"])), table)
    assert set(table["mode"]) == {"baseline", "roi", "roi_proposed"}
    assert table["fallback"].any()  # roi-LMLO's images went to a stand-in
    assert table["p_malignant"].nunique() > 4  # the pixels decide, not only the cell
    assert on_ray["dataset"]["unpredicted"] == serial["dataset"]["unpredicted"] > 0  # all-LMLO
    for name in ("roi_proposals.csv", "cam_pointing.json", "dataset.json"):
        assert (folder / name).read_text() == files[name], name
    assert_close(json.loads((folder / "metrics.json").read_text()), serial)
    assert_close(on_ray, serial)


def test_predict_manifest_command_on_ray_writes_the_one_process_files(ray_cluster, dataset,
                                                                     tmp_path, capsys):
    """The command joins the cluster at ``--ray-address`` (a smaller run: one grid)."""
    run = make_run(tmp_path / "run", modes=("baseline",), marked=False)
    manifest = tmp_path / "manifest.csv"
    write_manifest(load_dataset(dataset), manifest)
    assert main(["predict", str(run), "--manifest", str(manifest), "--out",
                 str(tmp_path / "serial"), "--device", "cpu"]) == 0
    assert f"16 image(s) of {manifest} predicted (local)" in capsys.readouterr().out
    out = subprocess.run([sys.executable, "-m", "core", "predict", str(run), "--manifest",
                          str(manifest), "--out", str(tmp_path / "ray"), "--device", "cpu",
                          "--executor", "ray", "--ray-address", ray_cluster],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"16 image(s) of {manifest} predicted (ray)" in out.stdout
    assert [f.name for f in (tmp_path / "ray").iterdir()] == ["predictions.csv"]
    assert_same_table(pd.read_csv(tmp_path / "serial" / "predictions.csv"),
                      pd.read_csv(tmp_path / "ray" / "predictions.csv"))


def test_a_bad_image_on_a_worker_is_its_one_line_error(ray_cluster, dataset, tmp_path):
    """A file a worker cannot read fails the batch as the one-process path fails: the
    project's own error naming the file, not a Ray traceback."""
    from core.errors import ImageReadError
    from core.predict import Predictor
    from core.scale.batch import predict_manifest_ray

    run = make_run(tmp_path / "run", modes=("baseline",))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a JPEG")
    df = load_dataset(dataset)
    df.loc[3, "image_path"] = str(bad)
    with pytest.raises(ImageReadError) as err:
        predict_manifest_ray(Predictor(run, "cpu"), df)
    assert str(err.value).startswith(f"{bad}: ") and "\n" not in str(err.value)


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
