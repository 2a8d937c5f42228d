"""Training on Ray (``train --executor ray``): same answer as one process, the run folder's
contract, a killed worker retried, the driver killed then ``--resume``, no Ray process left,
and the one-line refusals (unreachable address, Ray missing).

Tiny on purpose: two PNG views (two baseline cells) at 32 px, resnet10t, a one-epoch warm
start and two epochs per cell, on a local Ray of 2 CPUs with one CPU per task.  Every Ray
run is a real ``python -m core train`` process with its own ``RAY_TMPDIR``, so the Ray
processes it starts can be told from any other Ray on the machine: a process is ours when
its environment holds that ``RAY_TMPDIR`` (the workers, whose command line Ray rewrites,
inherit it too).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ScaleError
from core.models import create_model, load_weights
from core.runfolder import layout as runs
from core.runfolder.integrity import file_sha256, verify_meta
from core.train import TrainConfig, train_grid
from helpers import assert_no_ray_left, write_two_view_blobs

REPO = Path(__file__).resolve().parent.parent
TRAIN_ARGS = ["--arch", "resnet10t", "--img-size", "32", "--epochs", "2", "--warm-start", "1",
              "--mode", "baseline", "--device", "cpu", "--batch-size", "8", "--lr", "1e-3",
              "--seed", "0", "--no-augment"]
RAY_ARGS = ["--executor", "ray", "--cpus-per-cell", "1"]
CELLS = ("all-RCC", "all-LCC")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_two_view_blobs(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def serial(data, tmp_path_factory) -> Path:
    """The one-process run, one torch thread (as each Ray task gets with one CPU)."""
    out = tmp_path_factory.mktemp("serial") / "run"
    config = TrainConfig(arch="resnet10t", img_size=32, epochs=2, warm_start=1, mode="baseline",
                         device="cpu", batch_size=8, lr=1e-3, seed=0, augment=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAMMOROUTE_THREADS", "1")
        train_grid(data, out, config)
    return out


@pytest.fixture
def ray_tmp():
    """A private RAY_TMPDIR (short: Ray's socket paths must stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as tmp:
        yield tmp


def _env(ray_tmp: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            "RAY_TMPDIR": ray_tmp, **extra}


def _train(out: Path, data: Path, ray_tmp: str, *extra: str, **env: str
           ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "core", "train", "--dataset", str(data), "--out", str(out),
           *TRAIN_ARGS, *extra]
    return subprocess.run(cmd, cwd=REPO, env=_env(ray_tmp, **env), capture_output=True,
                          text=True, timeout=400)


def _events(run: Path) -> list[dict]:
    return runs.read_progress(run)


def _same_predictions(a: Path, b: Path) -> None:
    pa, pb = pd.read_csv(a / runs.PREDICTIONS_FILE), pd.read_csv(b / runs.PREDICTIONS_FILE)
    assert len(pa) == len(pb) == 8
    assert list(pa["image_path"]) == list(pb["image_path"]) and list(pa["cell"]) == list(pb["cell"])
    np.testing.assert_allclose(pa["p_malignant"], pb["p_malignant"], rtol=0, atol=1e-4)


def _contract(run: Path) -> None:
    """Every model's weights load, hash as run.json says; meta.json too; no temp file left."""
    info = runs.read_run(run).info
    assert info["status"] == "complete" and info["executor"]["kind"] == "ray"
    for name in (*CELLS, "pooled"):
        entry = info[name] if name == "pooled" else info["cells"][name]
        weights = run / name / runs.WEIGHTS_FILE
        assert entry["status"] == "done" and file_sha256(weights) == entry["sha256"]
        load_weights(create_model("resnet10t", 32), weights, entry["sha256"])
        (run / name / "split.json").read_text()
        if name != "pooled":
            verify_meta(run / name / runs.META_FILE, entry["meta_sha256"])
    left = [*run.rglob("*.tmp"), *run.rglob(runs.LAST_WEIGHTS_FILE)]
    assert not left, f"left in the run folder: {left}"
    assert (run / runs.METRICS_FILE).is_file()


def test_ray_run_equals_one_process_and_a_killed_worker_is_retried(data, serial, tmp_path,
                                                                    ray_tmp):
    """The second cell's worker SIGKILLs itself after its first epoch (first attempt only):
    Ray retries the task, the run completes with loadable, hash-checked weights, and its
    predictions equal the one-process run's within 1e-4; no Ray process is left."""
    out = tmp_path / "ray"
    done = _train(out, data, ray_tmp, *RAY_ARGS, MAMMOROUTE_RAY_CRASH="all-LCC")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_no_ray_left(ray_tmp)
    _contract(out)
    _same_predictions(serial, out)
    events = _events(out)
    starts = [e for e in events if e["event"] == "cell_start"]
    assert {(e["cell"], e["attempt"]) for e in starts} == {
        ("pooled", 1), ("all-RCC", 1), ("all-LCC", 1), ("all-LCC", 2)}
    assert all(e["node"] and e["pid"] for e in starts)
    killed = next(e for e in events if e["event"] == "worker_killed")
    retry = next(e for e in starts if e["attempt"] == 2)
    assert killed["pid"] != retry["pid"] and killed["epoch"] == 1
    epochs = [e for e in events if e["event"] == "epoch" and e["cell"] == "all-LCC"]
    assert [(e["attempt"], e["epoch"]) for e in epochs] == [(1, 1), (2, 1), (2, 2)]
    assert all(e["node"] for e in epochs)
    last = events[-1]
    assert last["event"] == "run_done" and last["steps_done"] == last["steps_total"]
    one_process = [e for e in _events(serial) if e["event"] == "cell_start"]
    assert {e["cell"] for e in one_process} == {"pooled", *CELLS}
    assert all(e["node"] == socket.gethostname() and e["attempt"] == 1 for e in one_process)


def test_resume_after_the_driver_is_killed_keeps_finished_cells(data, serial, tmp_path, ray_tmp):
    """SIGKILL to the command's process group once a cell is finished (its local Ray's
    processes end with it: at once, or after their connection timeout for a worker that was
    still starting), then ``--resume --executor ray``: the finished models are kept, not retrained.
    Two CPUs per task, so the cells train one after the other and the second is unfinished."""
    out = tmp_path / "killed"
    one_at_a_time = ["--executor", "ray", "--cpus-per-cell", "2"]
    cmd = [sys.executable, "-m", "core", "train", "--dataset", str(data), "--out", str(out),
           *TRAIN_ARGS, *one_at_a_time]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(ray_tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(e["event"] == "cell_done" and e.get("cell") in CELLS
                      for e in _events(out)):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    finished = {e["cell"] for e in _events(out) if e["event"] == "cell_done"}
    assert runs.read_run(out).status == "running"  # killed: nobody closed it
    before = len(_events(out))
    done = _train(out, data, ray_tmp, *one_at_a_time, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_no_ray_left(ray_tmp)  # neither the killed command's Ray nor the resumed one's
    restarted = {e["cell"] for e in _events(out)[before:] if e["event"] == "cell_start"}
    assert finished & set(CELLS) and restarted and not finished & restarted
    assert restarted == {"pooled", *CELLS} - finished
    _contract(out)
    _same_predictions(serial, out)


def test_cancel_reaches_the_run_folder_at_once_and_leaves_it_resumable(data, tmp_path, ray_tmp):
    """SIGTERM to the command's process group (what the Train page's Cancel sends; it also
    stops the local Ray): run.json reads ``cancelled`` within the page's 5 s grace, the
    command exits as a cancelled one-process run does, and no Ray process is left."""
    out = tmp_path / "cancelled"
    cmd = [sys.executable, "-m", "core", "train", "--dataset", str(data), "--out", str(out),
           *TRAIN_ARGS, *RAY_ARGS]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(ray_tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(e["event"] == "cell_start" and e.get("cell") in CELLS for e in _events(out)):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no cell started in time"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        while runs.read_run(out).status != "cancelled" and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        assert runs.read_run(out).status == "cancelled"
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1] == (
        f"error: {out}: training cancelled; continue it with --resume")
    info = runs.read_run(out).info
    assert not any(c["status"] == "running" for c in info["cells"].values())
    assert_no_ray_left(ray_tmp, within_s=60)


def test_a_failing_ray_run_is_one_line_and_leaves_no_ray_process(data, tmp_path, ray_tmp):
    """A request no node can meet fails after Ray started: one line, the run marked failed
    (resumable), and Ray shut down."""
    out = tmp_path / "failed"
    done = _train(out, data, ray_tmp, "--executor", "ray", "--cpus-per-cell", "64")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [done.stderr.strip().splitlines()[-1]]
    assert "--cpus-per-cell 64" in errors[0] and "Traceback" not in done.stderr
    assert runs.read_run(out).status == "failed"
    assert_no_ray_left(ray_tmp)


def test_an_unreachable_ray_address_is_one_line_within_30_s(data, tmp_path, ray_tmp):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    t0 = time.monotonic()
    done = _train(tmp_path / "run", data, ray_tmp, "--executor", "ray", "--ray-address", address)
    assert time.monotonic() - t0 < 30
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {address}: no Ray cluster answers")
    assert not (tmp_path / "run").exists()  # refused before the run folder was touched


def test_without_ray_installed_the_command_says_how_to_install_it(data, tmp_path, capsys,
                                                                 monkeypatch):
    from core.__main__ import main
    from core.scale.session import ray_session

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = main(["train", "--dataset", str(data), "--out", str(tmp_path / "run"), *TRAIN_ARGS,
                 "--executor", "ray"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --executor ray needs Ray: pip install 'ray[data]==2.60.*'"]
    with pytest.raises(ScaleError, match="pip install"), ray_session(None):
        pass


def test_ray_flags_need_the_ray_executor(data, tmp_path, capsys):
    from core.__main__ import main

    code = main(["train", "--dataset", str(data), "--out", str(tmp_path / "run"), *TRAIN_ARGS,
                 "--gpus-per-cell", "0.5"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: --gpus-per-cell needs --executor ray"


def test_executor_args_are_what_the_parser_reads():
    from core.__main__ import build_parser
    from core.cli.scale_args import executor_args

    args = executor_args("ray", "head:6379", 0.5, 4)
    parsed = build_parser().parse_args(["train", "--dataset", "d", "--out", "o", *args])
    assert (parsed.executor, parsed.ray_address, parsed.gpus_per_cell, parsed.cpus_per_cell) == (
        "ray", "head:6379", 0.5, 4)
    assert executor_args("local") == []
    assert json.dumps(args)  # plain strings for a command line
