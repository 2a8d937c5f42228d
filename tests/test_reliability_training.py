"""Reliability of training runs: SIGKILL at random moments, disk full, cancel, locks, checkpoints.

The training runs are tiny (convnextv2_atto at 32 px, baseline grid, two views
→ two trained cells, 3 epochs each) on a manifest of PNGs written here.  The
interrupted run is ``python -m core train --resume`` as a real subprocess,
SIGKILLed ``KILLS`` times (default 10, env ``RELIABILITY_KILLS``) at seeded
random moments, and resumed until complete; its predictions must equal an
uninterrupted run's.  Figures are written to ``tests/artifacts/reliability-training.json``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import CheckpointError, TrainingError
from core.models import create_model, load_tensors, save_weights
from core.pixels.spec import PreprocessParams
from core.runfolder import jobs
from core.runfolder import layout as runs
from core.train import TrainConfig, run_lock, train_grid
from helpers import record_figures, write_meta, write_two_view_blobs

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
SIZE = 32
EPOCHS = 3
KILLS = int(os.environ.get("RELIABILITY_KILLS", "10"))
SEED = 2026
TRAIN_ARGS = ["--arch", "convnextv2_atto", "--img-size", str(SIZE), "--epochs", str(EPOCHS),
              "--mode", "baseline", "--device", "cpu", "--batch-size", "8", "--seed", "0"]


def _record(name: str, figures: dict) -> None:
    record_figures("reliability-training.json", name, figures)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_two_view_blobs(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted run through the same command line, in-process."""
    from core.__main__ import main

    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--dataset", str(data), "--out", str(out), *TRAIN_ARGS]) == 0
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _lines(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut by SIGKILL
    return out


def _wait(pred, timeout: float, proc: subprocess.Popen | None = None, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(step)
    return False


def _check_folder_after_kill(run: Path) -> int:
    """Every *.safetensors loads (hash-checked where recorded); temp files are hidden .tmp."""
    info = json.loads((run / runs.RUN_FILE).read_text()) if (run / runs.RUN_FILE).exists() else {}
    loaded = 0
    for weights in run.rglob("*.safetensors"):
        sha = (info.get("cells", {}).get(weights.parent.name, {}).get("sha256")
               if weights.name == runs.WEIGHTS_FILE and
               info.get("cells", {}).get(weights.parent.name, {}).get("status") == "done" else None)
        load_tensors(weights, sha)  # raises CheckpointError on a half-written file
        loaded += 1
    for state in run.rglob(runs.LAST_STATE_FILE):
        json.loads(state.read_text())  # JSON written atomically too
    for f in run.rglob("*"):
        if f.is_file() and f.suffix == ".tmp":
            assert f.name.startswith("."), f  # a reader globbing *.safetensors never sees it
    return loaded


# ------------------------------------------------------------------ SIGKILL and resume

def _distinct(progress: Path) -> int:
    """Distinct progress events so far (an epoch redone after a kill is not counted twice)."""
    return len({(e.get("event"), e.get("cell"), e.get("epoch")) for e in _lines(progress)})


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(data, reference, tmp_path):
    """Kill moments: KILLS seeded draws over the reference run's event sequence (so they
    spread over both cells, every epoch and the predict step), each followed by a random
    0–1 s delay; a draw already passed kills while the resumed process starts up."""
    rng = np.random.default_rng(SEED)
    n_events = _distinct(reference / runs.PROGRESS_FILE)
    targets = sorted(int(t) for t in rng.integers(0, n_events - 1, size=KILLS))
    run = tmp_path / "killed"
    progress = run / runs.PROGRESS_FILE
    cmd = [sys.executable, "-m", "core", "train", "--dataset", str(data), "--out", str(run),
           *TRAIN_ARGS, "--resume"]
    kills: list[dict] = []
    loaded_total = 0
    t_start = time.monotonic()
    for target in targets + [None]:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        if target is None:  # the last start runs to the end
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode()[-2000:]
            break

        def locked(pid: int = proc.pid) -> bool:
            try:
                return json.loads((run / ".lock").read_text()).get("pid") == pid
            except (OSError, ValueError):
                return False

        during_startup = _distinct(progress) >= target
        if during_startup:
            _wait(locked, 300, proc)
        else:
            _wait(lambda target=target: _distinct(progress) >= target, 300, proc)
        jitter = float(rng.uniform(0.0, 1.0 if target < n_events - 3 else 0.2))
        time.sleep(jitter)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # not finished yet
        try:
            running = [c for c, v in json.loads((run / runs.RUN_FILE).read_text())["cells"].items()
                       if v.get("status") == "running"]
        except (OSError, ValueError, KeyError):
            running = []
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
        last = (_lines(progress) or [{}])[-1]
        states = {p.parent.name: json.loads(p.read_text())["epoch"]
                  for p in run.rglob(runs.LAST_STATE_FILE)}
        kills.append({"target_event": target, "during_startup": during_startup,
                      "jitter_s": round(jitter, 2), "after": f"{last.get('event')} "
                      f"{last.get('cell') or ''} {last.get('epoch') or ''}".strip(),
                      "running_cell": running[0] if running else None, "saved_epochs": states})
        loaded_total += _check_folder_after_kill(run)
        if (run / ".lock").exists():  # the dead holder's lock stays; the next start takes it
            assert json.loads((run / ".lock").read_text())["pid"] == proc.pid
    seconds = time.monotonic() - t_start
    assert len(kills) >= KILLS, kills
    assert len({k["running_cell"] for k in kills if k["running_cell"]}) >= 2, kills  # across cells
    info = runs.read_run(run).info
    assert info["status"] == "complete"
    a = pd.read_csv(reference / runs.PREDICTIONS_FILE)
    b = pd.read_csv(run / runs.PREDICTIONS_FILE)
    assert len(a) == len(b) == 8
    assert list(a["image_path"]) == list(b["image_path"]) and list(a["cell"]) == list(b["cell"])
    np.testing.assert_allclose(a["p_malignant"].to_numpy(), b["p_malignant"].to_numpy(),
                               rtol=0, atol=1e-6)
    for name, cell in info["cells"].items():  # run.json records the hash of every weights file
        if cell["status"] == "done":
            digest = hashlib.sha256((run / name / runs.WEIGHTS_FILE).read_bytes()).hexdigest()
            assert digest == cell["sha256"]
    assert not list(run.rglob(runs.LAST_WEIGHTS_FILE)) and not (run / ".lock").exists()
    cells_hit = {k["running_cell"] for k in kills if k["running_cell"]}
    _record("sigkill", {"kills": len(kills), "safetensors_loaded_after_kills": loaded_total,
                        "cells_hit": sorted(cells_hit), "seconds": round(seconds, 1),
                        "leftover_hidden_tmp_files": len(list(run.rglob(".*.tmp"))),
                        "detail": kills})
    print(f"\nSIGKILL reliability: {len(kills)} kills survived, {loaded_total} weight files "
          f"loaded after kills, {seconds:.0f} s")


# ------------------------------------------------------------------ disk full / read-only

def test_unwritable_checkpoint_folder_is_a_clear_error_and_keeps_earlier_cells(
        data, tmp_path, capsys, monkeypatch):
    """As a normal user: the second cell's folder is read-only.  As root (chmod has no
    effect) the write of that cell's weights fails with ENOSPC instead."""
    import core.runfolder.atomic as atomic
    from core.__main__ import main

    out = tmp_path / "full"
    args = ["train", "--dataset", str(data), "--out", str(out), *TRAIN_ARGS[:4], "--epochs", "1",
            *TRAIN_ARGS[6:]]
    as_root = os.geteuid() == 0
    real_fdopen = os.fdopen

    if as_root:
        def fdopen(fd, *a, **kw):
            target = os.readlink(f"/proc/self/fd/{fd}")
            fh = real_fdopen(fd, *a, **kw)
            if "/all-LCC/" in target and ".safetensors" in target:
                def write(_data):
                    raise OSError(errno.ENOSPC, "No space left on device")
                fh.write = write
            return fh

        proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
        proxy.fdopen = fdopen
        monkeypatch.setattr(atomic, "os", proxy)
    else:
        (out / "all-LCC").mkdir(parents=True)
        (out / "all-LCC").chmod(0o500)
    try:
        rc = main(args)
    finally:
        if not as_root:
            (out / "all-LCC").chmod(0o700)
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("error:")]  # after progress
    assert rc == 2 and len(err) == 1 and stderr.strip().endswith(err[0]), stderr
    assert "Traceback" not in stderr
    assert ("No space left" if as_root else "Permission denied") in err[0] and "all-LCC" in err[0]
    assert "Traceback" not in err[0]
    info = runs.read_run(out).info
    assert info["status"] == "failed"
    rcc = info["cells"]["all-RCC"]
    assert rcc["status"] == "done"
    assert hashlib.sha256((out / "all-RCC" / runs.WEIGHTS_FILE).read_bytes()).hexdigest() \
        == rcc["sha256"]
    assert not [f for f in out.rglob("*.tmp")]  # the failed write removed its temp file
    monkeypatch.undo()
    assert main(args + ["--resume"]) == 0  # space back: the run completes, RCC is kept
    info = runs.read_run(out).info
    assert info["status"] == "complete" and info["cells"]["all-RCC"]["sha256"] == rcc["sha256"]
    _record("unwritable", {"simulated": "ENOSPC" if as_root else "chmod 500",
                           "message": err[0]})


# ------------------------------------------------------------------ cancel and one-at-a-time

def test_cancel_stops_within_seconds_and_lock_is_respected(data, tmp_path, capsys, monkeypatch):
    from core.__main__ import main

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    monkeypatch.delenv(jobs.COMMAND_ENV, raising=False)
    out = ck / "cancel-me"
    args = jobs.train_args(data, out, {"arch": "convnextv2_atto", "img_size": SIZE, "epochs": 40,
                                       "mode": "baseline", "device": "cpu"})
    job = jobs.start_job(args, "train", run_dir=out, root=ck)
    try:
        progress = out / runs.PROGRESS_FILE
        assert _wait(lambda: any(e["event"] == "epoch" for e in _lines(progress)), 300), \
            Path(job.log).read_text()[-2000:]
        # one training at a time: core.runfolder.jobs and a second command line start are both refused
        with pytest.raises(TrainingError, match="already running"):
            jobs.start_job(args, "train", run_dir=out, root=ck)
        rc = main(["train", "--dataset", str(data), "--out", str(out), *TRAIN_ARGS])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"pid {job.pid}" in err[0], err
        t0 = time.monotonic()
        done = jobs.cancel_job(ck, grace_s=30)
        stop_s = time.monotonic() - t0
    finally:
        jobs.cancel_job(ck, grace_s=2)
    assert done is not None and done.cancelled and stop_s < 30, stop_s  # SIGTERM, not SIGKILL:
    assert jobs.process_start_ticks(job.pid) is None
    info = runs.read_run(out).info
    assert info["status"] == "cancelled" and "cancelled" in info["error"]
    assert not (out / ".lock").exists()
    state = json.loads((out / "all-RCC" / runs.LAST_STATE_FILE).read_text())
    assert state["epoch"] >= 1 and info["cells"]["all-RCC"]["status"] == "pending"
    seen: list[int] = []

    def stop_after_one_epoch(event):
        if event["event"] == "epoch":
            seen.append(event["epoch"])
            raise RuntimeError("enough")

    config = TrainConfig(arch="convnextv2_atto", img_size=SIZE, epochs=40, mode="baseline",
                         device="cpu", resume=True)
    with pytest.raises(RuntimeError, match="enough"):
        train_grid(data, out, config, progress=stop_after_one_epoch)
    assert seen == [state["epoch"] + 1]  # resumable: it continued after the saved epoch
    _record("cancel", {"stop_seconds": round(stop_s, 2), "saved_epoch": state["epoch"]})


def test_a_lock_file_nobody_holds_is_taken_over_and_a_held_one_is_refused(tmp_path):
    """What counts is the kernel's lock, not the note: a note naming a live pid (this very
    process) in a file nobody holds is taken over; a held lock is refused, naming its holder."""
    me = os.getpid()
    (tmp_path / ".lock").write_text(json.dumps({"pid": me, "since": "yesterday"}))
    with run_lock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["since"] != "yesterday"
        with pytest.raises(TrainingError, match=f"this run is locked.*pid {me}"), \
                run_lock(tmp_path):
            pass
    assert not (tmp_path / ".lock").exists()


def write_slow_images(root: Path, n: int = 80) -> Path:
    """``n`` training images that each cost the preprocessor about 0.2 s: one 2400×1900
    16-bit PNG under ``n`` names (hard links, so writing them is instant; the cache keys
    by path, so each is decoded).  More than 64, so training preprocesses with a pool."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    img = cv2.resize(cv2.GaussianBlur(rng.normal(30000, 8000, (300, 240)), (0, 0), 3), (1900, 2400))
    cv2.imwrite(str(root / "source.png"), img.clip(0, 65535).astype(np.uint16))
    rows = []
    for i in range(n):
        os.link(root / "source.png", root / f"img{i:03d}.png")
        rows.append({"image_path": f"img{i:03d}.png", "patient_id": f"p{i}", "study_id": f"s{i}",
                     "laterality": "RL"[i % 2], "view": "CC",
                     "label": ("benign", "malignant")[i // 2 % 2], "mask_path": "",
                     "split": "train"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_cancel_during_preprocessing_stops_within_the_grace_period(tmp_path, monkeypatch):
    """SIGTERM to the job's process group also kills the preprocessing pool's workers; the
    run must not finish the files in the main process but stop, cancelled and resumable."""
    n = 80
    data = write_slow_images(tmp_path / "slow", n)
    ck, cache = tmp_path / "checkpoints", tmp_path / "cache"
    ck.mkdir()
    monkeypatch.delenv(jobs.COMMAND_ENV, raising=False)
    monkeypatch.setenv("MAMMOROUTE_CACHE", str(cache))
    out = ck / "cancel-early"
    args = ["train", "--dataset", str(data), "--out", str(out), *TRAIN_ARGS, "--workers", "2"]
    job = jobs.start_job(args, "train", run_dir=out, root=ck)
    try:
        assert _wait(lambda: any(cache.rglob("*.npy")), 120), Path(job.log).read_text()[-2000:]
        t0 = time.monotonic()
        done = jobs.cancel_job(ck)  # the app's cancel: SIGTERM, SIGKILL after the grace period
        stop_s = time.monotonic() - t0
    finally:
        jobs.cancel_job(ck, grace_s=2)
    log = Path(job.log).read_text()
    assert done is not None and stop_s < jobs.CANCEL_GRACE_S, (stop_s, log[-2000:])  # no SIGKILL
    assert len(list(cache.rglob("*.npy"))) < n  # it stopped instead of finishing the files
    info = runs.read_run(out).info
    assert info["status"] == "cancelled", info
    assert info["error"] == "cancelled while preprocessing images"
    assert {c["status"] for c in info["cells"].values()} == {"pending"}
    assert log.strip().splitlines()[-1].endswith("training cancelled; continue it with --resume")
    _record("cancel_preprocessing", {"stop_seconds": round(stop_s, 2)})


_GATE = """
import os, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
(folder / f"ready.{os.getpid()}").touch()
while not (folder / "go").exists():
    time.sleep(0.0005)
"""

_LOCK_LOOP = _GATE + """
from core.errors import TrainingError
from core.train.lock import run_lock
(folder / "run").mkdir(exist_ok=True)
held = overlaps = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with run_lock(folder / "run"):
            held += 1
            try:  # only one holder may be inside at a time
                fd = os.open(folder / "inside", os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                overlaps += 1
                continue
            time.sleep(0.0002)
            os.close(fd)
            os.unlink(folder / "inside")
    except TrainingError:
        pass
print(held, overlaps)
"""

_TRAIN = _GATE + """
from core.errors import TrainingError
from core.train import TrainConfig, train_grid
config = TrainConfig(arch="convnextv2_atto", img_size=32, epochs=1, mode="baseline",
                     device="cpu", batch_size=8)
try:
    train_grid(sys.argv[2], folder / "run", config)
except TrainingError as err:
    print(err, file=sys.stderr)
    sys.exit(2)
"""


def _race(folder: Path, script: str, *args: str) -> list[subprocess.CompletedProcess]:
    """Two processes run ``script`` from the same instant (both wait at a gate file)."""
    folder.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), *args], cwd=REPO,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        assert _wait(lambda: len(list(folder.glob("ready.*"))) == 2, 120)
        (folder / "go").touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [subprocess.CompletedProcess(p.args, p.returncode, o, e)
            for p, (o, e) in zip(procs, outs)]


def test_run_lock_admits_one_holder_at_a_time_under_contention(tmp_path):
    """Two processes take and release the lock as fast as they can for 2 s: never both in."""
    results = _race(tmp_path, _LOCK_LOOP, "2.0")
    counts = [tuple(map(int, r.stdout.split())) for r in results]
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    assert sum(held for held, _ in counts) > 100, counts  # they did contend
    assert [overlaps for _, overlaps in counts] == [0, 0], counts
    assert not (tmp_path / "run" / ".lock").exists()
    _record("lock_contention", {"acquisitions": sum(held for held, _ in counts),
                                "both_inside": sum(overlaps for _, overlaps in counts)})


def test_two_processes_racing_to_train_one_run_exactly_one_trains(data, tmp_path):
    results = _race(tmp_path, _TRAIN, str(data))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [r.stderr[-2000:] for r in results]
    refused = next(r for r in results if r.returncode == 2).stderr.strip().splitlines()
    assert len(refused) == 1 and "this run is locked" in refused[0], refused
    run = tmp_path / "run"
    assert runs.read_run(run).info["status"] == "complete"
    done = [e["cell"] for e in runs.read_progress(run) if e["event"] == "cell_done"]
    assert sorted(done) == ["all-LCC", "all-RCC"]  # each cell trained once, by one process
    _record("lock_race", {"trained": codes.count(0), "refused": refused[0]})


# ------------------------------------------------------------------ checkpoint integrity

def _tiny_run(root: Path, arch: str = "convnextv2_atto", size: int = 64) -> Path:
    torch.manual_seed(0)
    model = create_model(arch, size)
    cells = {}
    for view in ("RCC", "LCC", "RMLO", "LMLO"):
        sha = save_weights(model, root / f"all-{view}" / runs.WEIGHTS_FILE)
        cells[f"all-{view}"] = {"status": "done", "sha256": sha,
                                "meta_sha256": write_meta(root / f"all-{view}", {"threshold": 0.4})}
    (root / runs.RUN_FILE).write_text(json.dumps({
        "arch": "convnextv2_atto", "img_size": 64, "modes": ["baseline"], "cells": cells,
        "preprocess": PreprocessParams(64, crop=False).to_json()}))
    return root


def _png(path: Path) -> Path:
    cv2.imwrite(str(path), (np.random.default_rng(0).random((96, 80)) * 200 + 20).astype(np.uint8))
    return path


@pytest.mark.parametrize("damage, words", [
    ("flip", "SHA-256 differs"),
    ("truncate", "SHA-256 differs"),
    ("foreign_arch", "weights are for swin_micro"),
    ("foreign_size", "weights are for convnextv2_atto at 32 px"),
    ("no_hash", "no SHA-256"),
    ("no_meta", "missing: a trained cell records its decision threshold here"),
    ("no_threshold", "records no threshold"),
    ("edited_threshold", "threshold or calibration was changed"),
    ("no_meta_hash", "records no SHA-256 of this file"),
])
def test_predictor_refuses_bad_checkpoints(tmp_path, capsys, damage, words):
    from core.__main__ import main

    run = _tiny_run(tmp_path / "run")
    target = run / "all-LCC" / runs.WEIGHTS_FILE
    info = json.loads((run / runs.RUN_FILE).read_text())
    if damage == "flip":
        blob = bytearray(target.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        target.write_bytes(bytes(blob))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-1000])
    elif damage in ("foreign_arch", "foreign_size"):
        arch, size = ("swin_micro", 64) if damage == "foreign_arch" else ("convnextv2_atto", 32)
        info["cells"]["all-LCC"]["sha256"] = save_weights(create_model(arch, size), target)
    elif damage == "no_hash":
        del info["cells"]["all-LCC"]["sha256"]
    elif damage in ("edited_threshold", "no_meta_hash"):  # served numbers are checked like weights
        target = target.with_name(runs.META_FILE)
        if damage == "edited_threshold":
            target.write_text(json.dumps({"threshold": 0.9}))
        else:
            del info["cells"]["all-LCC"]["meta_sha256"]
    else:  # a cell's threshold is never guessed
        target = target.with_name(runs.META_FILE)
        target.unlink()
        if damage == "no_threshold":
            target.write_text(json.dumps({"temperature": 1.5}))
    (run / runs.RUN_FILE).write_text(json.dumps(info))
    from core.predict import Predictor

    with pytest.raises(CheckpointError) as exc:
        Predictor(run)
    assert str(exc.value).startswith(str(target)) and words in str(exc.value)
    rc = main(["predict", str(run), str(_png(tmp_path / "x_RCC.png")), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0] and "all-LCC" in err[0], err


SOURCE_DIRS = ("core", "ui", "pages")


def test_nothing_is_unpickled():
    """No torch.load, pickle, joblib or np.load without allow_pickle=False in the app's code."""
    files = [p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py")] + [REPO / "app.py"]
    patterns = {
        "torch.load": re.compile(r"\btorch\.load\s*\("),
        "pickle import": re.compile(r"^\s*(import|from)\s+(c?pickle|dill|joblib|cloudpickle)\b", re.M),
        "pickle call": re.compile(r"\b(pickle|dill|joblib)\.loads?\s*\(|read_pickle\s*\("),
        "np.load without allow_pickle=False": re.compile(r"\bnp\.load\s*\((?![^\n]*allow_pickle\s*=\s*False)"),
    }
    found = [f"{f.relative_to(REPO)}: {name}" for f in files for name, rx in patterns.items()
             if rx.search(f.read_text(encoding="utf-8"))]
    assert not found, found
    assert len(files) > 20
    _record("unpickling", {"files_scanned": len(files)})
