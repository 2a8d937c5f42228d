"""The Streamlit app through streamlit.testing (AppTest), and core.runfolder.jobs on its own.

Runs and datasets are built in temporary folders: a small manifest dataset of
PNG files, and a run folder whose cells hold freshly initialised (untrained)
ConvNeXtV2-atto weights, so the real Predictor, routing and Grad-CAM run in a
second instead of training for minutes.  Background jobs are replaced by a
sleeping stand-in through ``$MAMMOROUTE_JOB_COMMAND``.

AppTest loses the entrypoint's sidebar state after ``switch_page`` (a testing
quirk; a browser keeps it, see test_browser.py), so pages other than Home are
run from their own files with the selected run put into session state.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.errors import TrainingError
from core.grid import plan
from core.models import create_model, save_weights
from core.pixels.spec import PreprocessParams
from core.runfolder import jobs
from helpers import edit_meta, write_meta

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = REPO / "pages"
TIMEOUT = 90
SLEEPER = f'{sys.executable} -c "import time; time.sleep(60)"'
RUN_NAME = "tiny-run"
IMG = 64
SPEC = PreprocessParams(IMG, crop=False)  # the spec the hand-made run stores


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Empty checkpoints and data folders, a stand-in job command; no job left behind."""
    ck, data = tmp_path / "checkpoints", tmp_path / "data"
    ck.mkdir()
    data.mkdir()
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(ck))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(data))
    monkeypatch.setenv(jobs.COMMAND_ENV, SLEEPER)
    yield ck, data
    jobs.cancel_job(ck, grace_s=2)


def _mammo(rng: np.random.Generator, view: str, lesion: bool) -> np.ndarray:
    """A grey portrait image with a bright half-disc on the chest-wall side."""
    h, w = 96, 72
    yy, xx = np.mgrid[0:h, 0:w]
    cx = 0 if view.startswith("L") else w - 1
    img = np.where((xx - cx) ** 2 / (0.9 * w) ** 2 + (yy - h / 2) ** 2 / (0.45 * h) ** 2 < 1,
                   120 + rng.integers(0, 40, (h, w)), 5).astype(np.uint8)
    if lesion:
        cv2.circle(img, (w // 2, h // 2), 6, 250, -1)
    return img


def write_dataset(root: Path, studies: int = 3) -> Path:
    """A manifest dataset: ``studies`` four-view studies (the last one is the test split)."""
    folder = root / "mini"
    (folder / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for s in range(studies):
        for view in ("RCC", "LCC", "RMLO", "LMLO"):
            lesion = view.startswith("L") and s % 2 == 0
            name = f"img/p{s}_{view}.png"
            cv2.imwrite(str(folder / name), _mammo(rng, view, lesion))
            mask = ""
            if lesion:
                m = np.zeros((96, 72), np.uint8)
                cv2.circle(m, (36, 48), 8, 255, -1)
                mask = f"img/p{s}_{view}_mask.png"
                cv2.imwrite(str(folder / mask), m)
            rows.append({"image_path": name, "patient_id": f"P{s}", "study_id": f"S{s}",
                         "laterality": view[0], "view": view[1:],
                         "label": "malignant" if lesion else "benign", "mask_path": mask,
                         "split": "test" if s == studies - 1 else "train"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> tuple[bytes, str]:
    """One untrained ConvNeXtV2-atto, saved once and copied into every cell."""
    path = tmp_path_factory.mktemp("weights") / "w.safetensors"
    sha = save_weights(create_model("convnextv2_atto", IMG), path)
    return path.read_bytes(), sha


def write_run(ck: Path, dataset: Path, weights: tuple[bytes, str], name: str = RUN_NAME) -> Path:
    """A run folder with untrained weights in every cell (real files, real hashes)."""
    run = ck / name
    cells = {}
    data, sha = weights
    for mode in ("baseline", "roi"):
        for cell in plan(mode):
            (run / cell.name).mkdir(parents=True)
            (run / cell.name / "weights.safetensors").write_bytes(data)
            meta_sha = write_meta(run / cell.name, {
                "threshold": 0.5, "counts": {"train": {"benign": 30, "malignant": 1}}})
            cells[cell.name] = {"status": "done", "sha256": sha, "meta_sha256": meta_sha}
    info = {"name": name, "dataset": "phantom-vindr", "dataset_path": str(dataset),
            "synthetic": True, "arch": "convnextv2_atto", "img_size": IMG, "epochs": 1,
            "preprocess": SPEC.to_json(),
            "modes": ["baseline", "roi"], "status": "complete", "cells": cells,
            "started": "2026-01-01T00:00:00+00:00", "train_counts": {"benign": 9, "malignant": 3}}
    (run / "run.json").write_text(json.dumps(info))
    return run


def write_predictions(run: Path) -> None:
    """A small, plausible predictions.csv (40 images, both grids) for the Compare page."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        label = int(i % 4 == 0)
        roi = bool(label or i % 7 == 0)
        view = ("RCC", "LCC", "RMLO", "LMLO")[i % 4]
        for mode, p in (("baseline", 0.1 + 0.2 * rng.random()),
                        ("roi", float(np.clip(0.6 * label + 0.3 * roi + 0.2 * rng.random(), 0, 1)))):
            cell = f"all-{view}" if mode == "baseline" else f"{'roi' if roi else 'noroi'}-{view}"
            rows.append({"image_path": f"img{i}.png", "patient_id": f"P{i // 2}",
                         "study_id": f"S{i // 4}", "view": view, "roi": roi, "label": label,
                         "mode": mode, "cell": cell, "fallback": False, "p_malignant": p,
                         "threshold": 0.5})
    pd.DataFrame(rows).to_csv(run / "predictions.csv", index=False)


def page(name: str, run: str | None = RUN_NAME) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)
    if run:
        at.session_state["run_name"] = run
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for kind in (at.info, at.warning, at.error, at.success) for e in kind]
    return "\n".join(str(p) for p in parts)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------------- core.runfolder.jobs

def test_job_start_refuse_cancel(dirs):
    ck, _ = dirs
    job = jobs.start_job(["demo", "--tiny"], "demo", root=ck)
    assert job.command[-2:] == ["demo", "--tiny"]
    assert jobs.current_job(ck) == job
    record = json.loads((ck / ".jobs" / "current.json").read_text())
    assert record["pid"] == job.pid and record["start_ticks"] == jobs.process_start_ticks(job.pid)
    with pytest.raises(TrainingError, match="already running"):
        jobs.start_job(["demo"], "demo", root=ck)
    done = jobs.cancel_job(ck, grace_s=3)
    assert done is not None and done.cancelled
    assert jobs.current_job(ck) is None
    assert jobs.last_job(ck).id == job.id


def test_stale_job_record_is_ignored(dirs):
    ck, _ = dirs
    folder = jobs.jobs_dir(ck)
    me = os.getpid()
    stale = {"id": "x", "kind": "train", "pid": me, "start_ticks": 1, "command": ["x"],
             "run_dir": None, "started": "2026-01-01T00:00:00+00:00", "log": str(folder / "x.log")}
    (folder / "current.json").write_text(json.dumps(stale))  # our pid, another start time
    assert jobs.current_job(ck) is None
    assert not (folder / "current.json").exists()
    started = jobs.start_job(["demo"], "demo", root=ck)  # the stale record does not block
    assert jobs.current_job(ck).id == started.id


def test_cancel_escalates_to_sigkill(dirs, monkeypatch):
    ck, _ = dirs
    monkeypatch.setenv(jobs.COMMAND_ENV, 'sh -c "trap \\"\\" TERM; sleep 60"')
    job = jobs.start_job(["x"], "train", root=ck)
    time.sleep(0.3)
    t0 = time.monotonic()
    done = jobs.cancel_job(ck, grace_s=1)
    assert time.monotonic() - t0 < 5
    assert jobs.process_start_ticks(job.pid) is None
    assert done.returncode in (None, -9)


def test_train_arguments_are_what_the_command_line_reads():
    import argparse

    from core.cli.train import register

    options = {"arch": "swin", "img_size": 384, "epochs": 100, "mode": "both", "lr": 1e-4,
               "batch_size": 64, "weight_decay": 0.05, "seed": 3, "split_seed": 7,
               "cdd_type": "CESM", "cv": 5, "balanced": True, "compile": True,
               "augment": False, "crop": False, "pretrained": "data/weights/swin.safetensors",
               "roi_model": True, "roi_size": 64, "roi_epochs": 3, "device": "cuda",
               "warm_start": 2, "clahe_clip": 0.0, "synthetic": None}
    args = jobs.train_args("data/x", "checkpoints/r", options)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    parsed = vars(parser.parse_args(args))
    assert parsed["dataset"] == "data/x" and parsed["out"] == "checkpoints/r"
    assert {k: parsed[k] for k in options} == options
    assert "--no-augment" in args and "--synthetic" not in args
    assert jobs.demo_args(tiny=True) == ["demo", "--tiny"]


# --------------------------------------------------------------------------- Home

def test_home_without_runs_offers_the_demo_and_starts_it(dirs):
    ck, _ = dirs
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    no_exception(at)
    assert [b.label for b in at.button] == ["Build demo data and train demo models"]
    at.button[0].click().run()
    no_exception(at)
    job = jobs.current_job(ck)
    assert job is not None and job.kind == "demo" and job.command[-1] == "demo"
    assert "Building the demo" in texts(at)
    assert not [b for b in at.button if b.label.startswith("Build demo")]


def test_home_with_runs_summarises(dirs, weights):
    ck, data = dirs
    write_run(ck, write_dataset(data), weights)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    no_exception(at)
    assert at.sidebar.selectbox[0].value == RUN_NAME
    assert "synthetic" in texts(at).lower()
    assert at.dataframe[0].value["run"].tolist() == [RUN_NAME]


# --------------------------------------------------------------------------- Train

def test_train_starts_a_job_and_refuses_a_second(dirs):
    ck, data = dirs
    write_dataset(data)
    at = page("train.py", run=None).run()
    no_exception(at)
    at.selectbox[0].set_value("Other folder or manifest…").run()
    at.text_input[0].input("../elsewhere").run()
    assert any("outside the data folder" in e.value for e in at.error)
    at.text_input[0].input("mini").run()
    no_exception(at)
    at.text_input[1].input("first-run").run()
    at.button[0].click().run()
    no_exception(at)
    job = jobs.current_job(ck)
    assert job is not None and job.kind == "train"
    assert job.command[job.command.index("--dataset") + 1] == str((data / "mini").resolve())
    assert job.run_dir == str(ck / "first-run")
    assert "running" in texts(at)
    at.text_input[1].input("second-run").run()
    [b for b in at.button if b.label == "Start training"][0].click().run()
    assert any("already running" in e.value for e in at.error)
    assert jobs.current_job(ck).id == job.id
    [b for b in at.button if b.label == "Cancel"][0].click().run()
    assert jobs.current_job(ck) is None


def test_train_shows_progress_of_a_run(dirs, weights):
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    events = [{"event": "step", "cell": "all-RCC", "epoch": 1, "epochs": 2, "step": 5,
               "steps": 10, "loss": 0.7, "img_s": 12.5, "eta_s": 90},
              {"event": "epoch", "cell": "all-RCC", "epoch": 1, "epochs": 2, "step": 10,
               "steps": 10, "loss": 0.6, "val_loss": 0.65, "img_s": 13.0, "eta_s": 60}]
    (run / "progress.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{half")
    info = json.loads((run / "run.json").read_text())
    info["status"] = "running"
    info["cells"]["all-RCC"]["status"] = "running"
    (run / "run.json").write_text(json.dumps(info))
    at = page("train.py").run()
    no_exception(at)
    bars = {p.proto.text.split("**")[1]: p.value for p in at.get("progress")}
    assert bars["all-RCC"] == 50  # epoch 1 of 2 done
    assert bars["all-LCC"] == 100  # done
    assert len(at.get("plotly_chart")) == 1  # loss curves
    import socket

    cells = at.dataframe[0].value  # per cell; events without a node: this machine
    assert cells.to_dict("records") == [{"cell": "all-RCC", "status": "running",
                                         "node": socket.gethostname(), "epoch": "1/2",
                                         "attempt": "1"}]
    assert "no process is working on it" in texts(at)
    assert [b.label for b in at.button] == ["Start training", "Resume"]  # killed: resumable


def _edit_run(run: Path, **changes) -> dict:
    info = {**json.loads((run / "run.json").read_text()), **changes}
    (run / "run.json").write_text(json.dumps(info))
    return info


def _write_events(run: Path, events: list[dict]) -> None:
    (run / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_train_command_carries_every_setting(dirs):
    ck, data = dirs
    cdd = data / "cdd"
    cdd.mkdir()
    (cdd / "Radiology-manual-annotations.xlsx").write_bytes(b"")  # detected by name
    (data / "weights").mkdir()
    (data / "weights" / "swin-in1k.safetensors").write_bytes(b"")
    at = page("train.py", run=None).run()
    at.selectbox[0].set_value("Other folder or manifest…").run()
    at.text_input[0].input("cdd").run()
    at.selectbox(key="arch").set_value("convnextv2").run()
    assert at.selectbox(key="pretrained").value == ""  # the Swin file would not load
    at.selectbox(key="arch").set_value("swin").run()
    no_exception(at)
    # the paper's recipe follows the architecture: weights, size, epochs, lr, batch
    assert at.selectbox(key="pretrained").value == str(data / "weights" / "swin-in1k.safetensors")
    assert (at.selectbox(key="img_size").value, at.number_input(key="epochs").value) == (384, 100)
    assert (at.number_input(key="lr").value, at.number_input(key="batch_size").value) == (1e-4, 64)
    at.radio(key="cdd_type").set_value("CESM")
    at.checkbox(key="balanced").check()
    at.toggle(key="roi_model").set_value(True).run()
    at.number_input(key="roi_size").set_value(64)
    at.number_input(key="roi_epochs").set_value(3)
    at.number_input(key="epochs").set_value(7)
    at.number_input(key="batch_size").set_value(32)
    at.number_input(key="lr").set_value(5e-4)
    at.number_input(key="weight_decay").set_value(0.05)
    at.number_input(key="seed").set_value(3)
    at.number_input(key="split_seed").set_value(11)
    at.selectbox(key="cv").set_value(5)
    at.number_input(key="warm_start").set_value(2)
    at.number_input(key="clahe_clip").set_value(0.0)
    at.checkbox(key="augment").uncheck()
    at.checkbox(key="crop").uncheck()
    at.checkbox(key="compile").check()
    at.text_input[1].input("paper-run").run()
    no_exception(at)
    shown = at.code[0].value
    [b for b in at.button if b.label == "Start training"][0].click().run()
    no_exception(at)
    command = jobs.current_job(ck).command
    assert shown.endswith(" ".join(command[command.index("train"):]))  # what was shown runs
    cmd = command[command.index("train") + 1:]

    def value(flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    expected = {"--dataset": str(cdd.resolve()), "--out": str(ck / "paper-run"),
                "--arch": "swin", "--img-size": "384", "--epochs": "7", "--batch-size": "32",
                "--lr": "0.0005", "--weight-decay": "0.05", "--seed": "3", "--split-seed": "11",
                "--cdd-type": "CESM", "--cv": "5", "--warm-start": "2", "--clahe-clip": "0.0",
                "--roi-size": "64", "--roi-epochs": "3", "--mode": "both", "--device": "auto",
                "--pretrained": str(data / "weights" / "swin-in1k.safetensors")}
    assert {flag: value(flag) for flag in expected} == expected
    for switch in ("--balanced", "--compile", "--roi-model", "--no-augment", "--no-crop"):
        assert switch in cmd, switch
    assert "--resume" not in cmd


def test_train_starts_a_ray_run_with_the_command_it_shows(dirs):
    """"Ray cluster" adds the executor flags to the command shown, and that command starts."""
    import shlex

    ck, data = dirs
    write_dataset(data)
    at = page("train.py", run=None).run()
    at.selectbox[0].set_value("Other folder or manifest…").run()
    at.text_input[0].input("mini").run()
    assert "--executor" not in at.code[0].value  # this machine: the default, no flags
    at.radio(key="executor").set_value("ray").run()
    no_exception(at)
    assert at.code[0].value.endswith(" --executor ray")  # a local Ray, the default shares
    at.text_input(key="ray_address").input(" 10.0.0.5:6379 ").run()
    at.number_input(key="gpus_per_cell").set_value(0.5).run()
    at.number_input(key="cpus_per_cell").set_value(2).run()
    next(t for t in at.text_input if t.label == "Run name").input("ray-run").run()
    no_exception(at)
    shown = at.code[0].value
    [b for b in at.button if b.label == "Start training"][0].click().run()
    no_exception(at)
    job = jobs.current_job(ck)
    started = job.command[job.command.index("train"):]
    assert shown == shlex.join(["python", "-m", "core", *started])  # what was shown runs
    assert started[started.index("--out") + 1] == str(ck / "ray-run")
    assert started[-8:] == ["--executor", "ray", "--ray-address", "10.0.0.5:6379",
                            "--gpus-per-cell", "0.5", "--cpus-per-cell", "2"]
    assert job.run_dir == str(ck / "ray-run")


@pytest.mark.parametrize("gpu", [False, True])
def test_train_offers_only_devices_that_exist(dirs, monkeypatch, gpu):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    at = page("train.py", run=None).run()
    no_exception(at)
    offered = at.selectbox(key="device").options
    assert offered == (["auto", "cpu", "cuda"] if gpu else ["auto", "cpu"])


def test_complete_run_with_skipped_cells_reads_all_cells_done(dirs, weights):
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    info = json.loads((run / "run.json").read_text())
    for name in ("roi-RCC", "roi-LCC", "roi-RMLO", "roi-LMLO"):
        info["cells"][name] = {"status": "skipped", "reason": "3 training image(s), fewer than 8"}
    _edit_run(run, cells=info["cells"])
    at = page("train.py").run()
    no_exception(at)
    assert _metric(at, "Cells done") == "12/12"
    assert "8 trained · 4 skipped" in texts(at)
    assert _metric(at, "ETA") == "–"
    assert not at.error and not at.warning


def test_running_run_eta_and_the_evaluation_after_the_last_cell(dirs, weights):
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    info = json.loads((run / "run.json").read_text())
    info["cells"]["noroi-LMLO"]["status"] = "running"
    _edit_run(run, status="running", cells=info["cells"])
    step = {"event": "step", "cell": "noroi-LMLO", "epoch": 1, "epochs": 4, "step": 2,
            "steps": 4, "loss": 0.5, "img_s": 20.0, "eta_s": 125.0, "steps_done": 46,
            "steps_total": 60}
    _write_events(run, [step])
    at = page("train.py").run()
    no_exception(at)
    assert _metric(at, "ETA") == "2m05s" and _metric(at, "Cells done") == "11/12"
    bars = {p.proto.text: p.value for p in at.get("progress")}
    assert bars["Whole run: 77% of its training steps"] == 76  # 46 of 60 steps
    assert bars["**noroi-LMLO** · epoch 1/4 · loss 0.500"] == 12  # 2 of 16 steps
    # every model trained, the run still running: the test split is being scored
    info["cells"]["noroi-LMLO"]["status"] = "done"
    _edit_run(run, cells=info["cells"])
    _write_events(run, [step, {**step, "event": "cell_done", "eta_s": 0.0}])
    at = page("train.py").run()
    assert _metric(at, "ETA") == "–" and _metric(at, "Cells done") == "12/12"
    assert "predicting and scoring the test split" in texts(at)


def test_curves_have_a_colour_per_cell_and_validation_auc(dirs, weights):
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    events = [{"event": "epoch", "cell": cell, "epoch": e, "epochs": 2, "step": 4, "steps": 4,
               "loss": 0.7 - 0.1 * e, "val_loss": 0.8 - 0.1 * e, "val_auc": 0.5 + 0.1 * e}
              for cell in ("all-RCC", "all-LCC", "roi-LMLO") for e in (1, 2)]
    events.append({**events[0], "fold": 1, "val_auc": 0.99})  # a CV fold: not the grid's cell
    _write_events(run, events)
    at = page("train.py").run()
    no_exception(at)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = figure["data"]
    colour = {t["name"]: t["line"]["color"] for t in traces if t.get("showlegend", True)}
    assert set(colour) == {"all-RCC", "all-LCC", "roi-LMLO"}
    assert len(set(colour.values())) == 3
    auc = {t["legendgroup"]: t["y"] for t in traces if t.get("xaxis") == "x2"}
    assert auc == {"all-RCC": [0.6, 0.7], "all-LCC": [0.6, 0.7], "roi-LMLO": [0.6, 0.7]}
    for t in traces:  # validation curves share their cell's colour
        assert t["line"]["color"] == colour[t["legendgroup"]]


def test_cancelled_run_is_neutral_and_resumes_from_the_button(dirs, weights):
    ck, data = dirs
    dataset = write_dataset(data)
    run = write_run(ck, dataset, weights)
    info = json.loads((run / "run.json").read_text())
    info["cells"]["noroi-LMLO"]["status"] = "pending"
    config = {"arch": "convnextv2_atto", "img_size": IMG, "epochs": 3, "mode": "both",
              "lr": 0.001, "batch_size": 8, "balanced": True, "augment": False, "seed": 5,
              "split_seed": 0, "cdd_type": "DM", "resume": False, "pretrained": None,
              "log_every": 10, "init_weights": None}
    _edit_run(run, status="cancelled", error="training cancelled by a signal",
              cells=info["cells"], config=config)
    at = page("train.py").run()
    no_exception(at)
    assert not at.error
    assert any("Cancelled, 11 of 12 cells finished" in i.value for i in at.info)
    [b for b in at.button if b.label == "Resume"][0].click().run()
    no_exception(at)
    job = jobs.current_job(ck)
    assert job is not None and job.run_dir == str(run)
    cmd = job.command[job.command.index("train") + 1:]
    assert cmd[cmd.index("--out") + 1] == str(run)
    assert cmd[cmd.index("--dataset") + 1] == str(dataset)
    assert cmd[cmd.index("--arch") + 1] == "convnextv2_atto"
    assert cmd[cmd.index("--seed") + 1] == "5" and cmd[cmd.index("--epochs") + 1] == "3"
    assert {"--resume", "--balanced", "--no-augment"} <= set(cmd)
    assert "--pretrained" not in cmd and "--log-every" not in cmd
    assert not [b for b in at.button if b.label == "Resume"]  # the job now owns the run
    assert "Resuming" in texts(at)


# --------------------------------------------------------------------------- Case review

def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def test_case_review_upload_one_bad_view(dirs, weights):
    ck, data = dirs
    write_run(ck, write_dataset(data), weights)
    rng = np.random.default_rng(3)
    files = [(f"anon_{v}.png", _png(_mammo(rng, v, False)), "image/png")
             for v in ("RCC", "LCC", "RMLO")]
    files.append(("anon_LMLO.png", b"not an image at all", "image/png"))
    at = page("case_review.py").run()
    no_exception(at)
    at.get("button_group")[0].set_value("upload").run()
    at.file_uploader[0].set_value(files).run()
    no_exception(at)
    assert [s.value for s in at.selectbox[:3]] == ["RCC", "LCC", "RMLO"]
    assert len(at.image) == 3  # the study is shown before anything is predicted
    assert any("anon_LMLO.png" not in e.value and "file 4" in e.value for e in at.error)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert shown.count("ROI-aware: **") == 3 and shown.count("Baseline: **") == 3
    assert shown.count("no call: demonstration") == 6  # a phantom-trained run on an upload
    assert "called malignant at ≥ 50 %" in shown
    assert "read by the model for RCC views without a finding" in shown  # why, in words
    assert len(at.image) == 3 + 3 + 1  # thumbnails, results, the Grad-CAM colour scale
    assert "anon_" not in shown  # identifiers hidden by default
    downloads = [d.label for d in at.get("download_button")]
    assert downloads == ["Download CSV", "Download JSON", "Download PDF report"]
    assert "Store results in the PACS" not in [b.label for b in at.button]  # PNGs: not DICOM


def _bytes_within(obj, seen=None) -> list[int]:
    """Sizes of every bytes-like object reachable from ``obj`` (containers, dataclasses)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, int, float, np.ndarray)) or obj is None:
        return []
    seen.add(id(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return [len(obj)]
    if isinstance(obj, dict):
        items = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
    else:
        items = list(getattr(obj, "__dict__", {}).values())
    return [n for item in items for n in _bytes_within(item, seen)]


def _upload_rcc_lcc(dirs, weights, seed: int):
    """Case review on a tiny run with an RCC and an LCC image uploaded (names carry nothing)."""
    ck, data = dirs
    write_run(ck, write_dataset(data), weights)
    rng = np.random.default_rng(seed)
    files = [(f"anon_{v}.png", _png(_mammo(rng, v, False)), "image/png") for v in ("RCC", "LCC")]
    at = page("case_review.py").run()
    at.get("button_group")[0].set_value("upload").run()
    at.file_uploader[0].set_value(files).run()
    return at


def test_case_review_keeps_decoded_uploads_not_their_bytes(dirs, weights):
    at = _upload_rcc_lcc(dirs, weights, seed=4)
    no_exception(at)
    kept = at.session_state["upload_study"]
    assert _bytes_within(kept) == []  # old code kept every upload's bytes beside its image
    views = kept.study()
    assert [v.view for v in views] == ["RCC", "LCC"] and all(v.pixels is not None for v in views)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    assert texts(at).count("ROI-aware: **") == 2


def test_case_review_a_view_set_twice_is_shown_once_and_stops_predict(dirs, weights):
    at = _upload_rcc_lcc(dirs, weights, seed=5)
    at.selectbox[0].set_value("LCC").run()  # the RCC file set to LCC by hand
    no_exception(at)
    assert [s.value for s in at.selectbox] == ["LCC", "LCC"]  # each file has one card
    assert any("LCC is assigned twice" in w.value for w in at.warning)
    assert [b for b in at.button if b.label == "Predict"][0].disabled


def test_case_review_builtin_study_with_roi(dirs, weights):
    ck, data = dirs
    write_run(ck, write_dataset(data), weights)
    at = page("case_review.py").run()
    no_exception(at)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert len(at.image) == 4 + 4 + 1
    assert "An ROI was given (the dataset's annotation): read by the model for LCC views" in shown
    assert "ROI-aware model **roi-LCC**" in shown and "ROI-aware model **noroi-RCC**" in shown
    assert "Ground truth (dataset): **malignant**" in shown
    assert at.table[0].value.index.tolist() == ["right", "left"]


def test_case_review_refuses_a_run_of_another_preprocessing_version(dirs, weights):
    """A run whose spec this code does not render is refused on opening, saying what to
    do, before any image is read."""
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    info = json.loads((run / "run.json").read_text())
    info["preprocess"]["version"] = 3
    (run / "run.json").write_text(json.dumps(info))
    at = page("case_review.py").run()
    no_exception(at)
    [error] = [e.value for e in at.error]
    assert error.startswith(f"{run / 'run.json'}: this run was made under preprocessing version 3")
    assert "retrain it with this MammoRoute" in error
    assert not [b for b in at.button if b.label == "Predict"] and not at.image


def test_case_review_roi_finder_switch_and_source(dirs, weights):
    from test_roifinder import add_finder

    ck, data = dirs
    add_finder(write_run(ck, write_dataset(data), weights), presence_logit=6.0)
    at = page("case_review.py").run()
    no_exception(at)
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert "ROI-aware model **roi-RCC**" in shown  # no dataset ROI: the finder proposed one
    assert "ROI source: the ROI finder (ROI proposed, 100 % ≥ its threshold 50 %" in shown
    assert "ROI source: your mask or box" in shown  # LCC's dataset ROI wins
    proposed, own = shown.count("ROI source: the ROI finder"), shown.count("your mask or box")
    # the clinician rejects the first proposal: that view routes as without ROI
    next(b for b in at.button if b.label == "Reject").click().run()
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert "ROI-aware model **noroi-" in shown and "ROI source: none given" in shown
    assert shown.count("ROI source: the ROI finder") == proposed - 1
    assert shown.count("your mask or box") == own  # the dataset ROI is untouched
    # back to the finder, then accept its box: it becomes the view's own box
    next(s for s in at.segmented_control if s.value == "none").set_value("finder").run()
    [b for b in at.button if b.label == "Predict"][0].click().run()
    assert texts(at).count("ROI source: the ROI finder") == proposed
    next(b for b in at.button if b.label == "Accept / edit box").click().run()
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert shown.count("ROI source: the ROI finder") == proposed - 1
    assert shown.count("your mask or box") == own + 1  # the accepted box routes as the user's
    next(s for s in at.segmented_control if s.value == "box").set_value("finder").run()
    switch = next(t for t in at.toggle if t.label.startswith("ROI finder proposes"))
    switch.set_value(False).run()
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    shown = texts(at)
    assert "ROI-aware model **noroi-RCC**" in shown and "ROI source: none given" in shown


def test_upload_helpers_strip_identifiers_and_temp_paths():
    from core.predict import ViewResult
    from core.review.case import box_mask, read_upload
    from core.review.export import export_record
    from core.review.report import view_call
    from core.review.study import view_problems
    from core.runfolder.layout import RunSummary

    bad = read_upload("Doe_John_RCC.png", b"\x89PNG broken", SPEC)
    assert bad.error and bad.error.startswith("Doe_John_RCC.png: ") and "/tmp" not in bad.error
    good = read_upload("Doe_John_RCC.png", _png(_mammo(np.random.default_rng(0), "RCC", False)),
                       SPEC)
    assert good.view == "RCC" and good.view_source == "filename" and good.pixels.dtype == np.uint8
    twin = read_upload("x_RCC.png", _png(_mammo(np.random.default_rng(1), "RCC", True)), SPEC)
    assert any("assigned twice" in p for p in view_problems([good, twin]))
    mask = box_mask(good.shape, (10, 20, 30, 50))
    assert mask.sum() == 20 * 30 and mask[20, 10] == 1
    record = export_record([ViewResult(image="Doe_John_RCC.png", view="RCC",
                                       warnings=["Doe_John_RCC.png looks odd"],
                                       p_malignant_roi_aware=0.7, threshold_roi_aware=0.4)],
                           RunSummary(Path("/runs/r1"), {}), "tuned",
                           lambda r, g: view_call(r, g, {}, "tuned"), {},
                           scrub=[good.name])
    assert "Doe" not in json.dumps(record)
    assert record["views"][0]["call_roi_aware"] == "malignant"


# --------------------------------------------------------------------------- Compare

def test_compare_tables_references_and_paper_row(dirs, weights):
    from core.evaluate import evaluate_run

    ck, data = dirs
    run = write_run(ck, data, weights)
    write_predictions(run)
    evaluate_run(run, n_boot=100)
    at = page("compare.py").run()
    no_exception(at)
    table = at.table[0].value  # a static table whose cells wrap: no column is hidden
    systems = table.index.tolist()
    assert systems[:4] == ["without ROI consideration (baseline)",
                           "with ROI consideration (ROI-aware)",
                           "reference: ROI presence only", "reference: majority class"]
    assert any(s.startswith("paper (reported, not reproduced here)") for s in systems)
    f_score = next(c for c in table.columns if c.startswith("F-score"))
    assert "sens" in f_score and "F1 weighted" in table.columns and "F1 malignant" in table.columns
    paper = table.loc[[s for s in systems if s.startswith("paper")][1]]  # with ROI: 0.90
    from ui.metrics_view import nearest_paper

    reported = nearest_paper(json.loads((run / "run.json").read_text()))["roi_aware"]["f_score"]
    assert paper[f_score] == f"{reported:.2f}"  # the paper's numbers: its F-score column only
    assert paper["F1 weighted"] == "–" and paper["F1 malignant"] == "–"
    assert "harmonic mean of sensitivity and specificity" in texts(at)
    assert "[" in table.loc["with ROI consideration (ROI-aware)", "Accuracy"]
    assert "McNemar" in texts(at)
    assert len(at.get("plotly_chart")) == 4  # ROC + two confusion matrices + reliability
    calibration = next(d.value for d in at.table if "ECE (served)" in d.value.columns)
    assert calibration.loc["baseline", "ECE (served)"] == \
        f"{evaluate_run(run, n_boot=0)['calibration']['baseline']['ece']:.2f}"
    assert "Synthetic phantom data" in texts(at)


def test_compare_shows_the_breast_table_beside_the_image_table(dirs, weights):
    from core.evaluate import evaluate_run
    from ui.metrics_view import with_ci

    ck, data = dirs
    run = write_run(ck, data, weights)
    write_predictions(run)
    level = evaluate_run(run, n_boot=100)["breast_level"]
    at = page("compare.py").run()
    no_exception(at)
    images, breasts = at.table[0].value, at.table[1].value
    assert breasts.index.tolist() == [s for s in images.index if not s.startswith("paper")]
    assert breasts.loc["with ROI consideration (ROI-aware)", "ROC AUC"] == \
        with_ci(level["roi_aware"]["roc_auc"])
    assert f"Per breast** ({level['n_breasts']} breasts" in texts(at)
    assert "any view's own call" in texts(at)


def test_compare_shows_cam_pointing_against_chance(dirs, weights):
    from core.evaluate import evaluate_run

    ck, data = dirs
    run = write_run(ck, data, weights)
    write_predictions(run)
    (run / "cam_pointing.json").write_text(json.dumps({
        "baseline": {"hit_rate": 0.6, "n": 10, "chance": 0.05},
        "roi_aware": {"hit_rate": 0.3, "n": 10, "chance": 0.05},
        "method": "HiResCAM on stage -2", "dilation": 0.02}))
    evaluate_run(run, n_boot=0)
    at = page("compare.py").run()
    no_exception(at)
    table = next(d.value for d in at.table if "CAM hit rate" in d.value.columns)
    assert table.loc["baseline", ["CAM hit rate", "chance", "× chance"]].tolist() == \
        ["0.60", "0.05", "12.0"]
    assert table.loc["ROI-aware", "CAM hit rate"] == "0.30"
    assert "HiResCAM on stage -2" in texts(at)


def test_compare_shows_three_routings_and_froc(dirs, weights):
    from core.evaluate import evaluate_run

    ck, data = dirs
    run = write_run(ck, data, weights)
    write_predictions(run)
    table = pd.read_csv(run / "predictions.csv")
    proposed = table[table["mode"] == "roi"].assign(mode="roi_proposed")
    pd.concat([table, proposed]).to_csv(run / "predictions.csv", index=False)
    images = table.drop_duplicates("image_path")
    pd.DataFrame({"image_path": images["image_path"], "patient_id": images["patient_id"],
                  "label": images["label"], "roi": images["roi"],
                  "roi_probability": images["roi"].astype(float) * 0.8 + 0.1,
                  "roi_present": images["roi"], "threshold": 0.5,
                  "boxes": ["[[0, 0, 10, 10]]"] * len(images), "scores": ["[0.9]"] * len(images),
                  "truth_boxes": ["[[0, 0, 10, 20]]" if r else "[]" for r in images["roi"]]}
                 ).to_csv(run / "roi_proposals.csv", index=False)
    evaluate_run(run, n_boot=0)
    at = page("compare.py").run()
    no_exception(at)
    routing = next(d.value for d in at.table if d.value.index.name == "routing")
    assert routing.index.tolist() == [
        "ROI-aware, routed by the annotated ROI", "ROI-aware, routed by the ROI finder",
        "no routing (baseline)", "reference: annotated ROI presence only",
        "reference: proposed ROI presence only"]
    rows = routing
    assert rows.iloc[0]["Accuracy"] == rows.iloc[1]["Accuracy"]  # same calls, same routing
    assert "mean best box IoU 0.50" in texts(at) and "FROC" in texts(at)
    assert len(at.get("plotly_chart")) == 5  # ROC, two confusion matrices, reliability, FROC


# --------------------------------------------------------------------------- Data

def test_data_page_tables_and_gallery(dirs):
    _, data = dirs
    write_dataset(data)
    at = page("data.py", run=None).run()
    no_exception(at)
    split = at.table[0].value
    assert split.loc["total", "total"] == 12
    assert split.loc["malignant", "training"] == 2
    assert len(at.image) == 12
    at.selectbox[1].set_value("with ROI").run()
    assert len(at.image) == 4
    at.multiselect[1].set_value(["benign"]).run()
    assert len(at.image) == 0


@pytest.mark.parametrize("name", ["data.py", "train.py"])
def test_pages_call_a_dataset_synthetic_by_its_marker_not_its_name(dirs, name):
    from ui.common import SYNTHETIC_TEXT

    _, data = dirs
    folder = write_dataset(data).rename(data / "phantom-mine")  # a phantom's name, real files
    at = page(name, run=None).run()
    no_exception(at)
    assert SYNTHETIC_TEXT not in texts(at)
    (folder / "phantom.json").write_text("{}")
    at = page(name, run=None).run()
    no_exception(at)
    assert SYNTHETIC_TEXT in texts(at)


def test_case_review_holds_back_an_unfinished_run(dirs, weights):
    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "cancelled"}))
    at = page("case_review.py").run()
    no_exception(at)
    assert "is cancelled" in texts(at) and not [b for b in at.button if b.label == "Predict"]
    next(t for t in at.toggle if t.label == "Review with this run anyway").set_value(True).run()
    no_exception(at)
    assert [b for b in at.button if b.label == "Predict"]


@pytest.mark.parametrize("point", ["tuned", "paper"])
def test_no_call_contradicts_its_number_at_the_edge(dirs, weights, point):
    """Each serving cell's tuned threshold is set to the very probability it will give
    (or the next float above it): every call on the page must still agree with the two
    numbers printed beside it, at either operating point."""
    import re

    from core.datasets import load_dataset
    from core.predict import Predictor
    from core.review.study import study_choices, study_views, to_inputs

    ck, data = dirs
    run = write_run(ck, write_dataset(data), weights)
    df = load_dataset(data / "mini")
    views = study_views(df, study_choices(df)[0]["study_id"], SPEC)
    results = Predictor(run).predict_study(to_inputs(views))
    for i, r in enumerate(results):
        for grid in ("roi_aware", "baseline"):
            p = getattr(r, f"p_malignant_{grid}")
            edge = p if (i + len(grid)) % 2 else float(np.nextafter(p, 1.0))
            edit_meta(run, getattr(r, f"cell_{grid}"), threshold=edge)
    at = page("case_review.py")
    at.session_state["operating_point"] = point
    at.run()
    [b for b in at.button if b.label == "Predict"][0].click().run()
    no_exception(at)
    calls = re.findall(r"(ROI-aware|Baseline): :(red|green)\[\*\*([\d.]+) %\*\* → (\w+)\] · "
                       r"threshold ([\d.]+) %", texts(at))
    assert len(calls) == 8
    for _, colour, shown_p, word, shown_t in calls:
        assert (word == "malignant") == (colour == "red") == (float(shown_p) >= float(shown_t))
        if point == "paper":
            assert float(shown_t) == 50
    if point == "tuned":  # at the edge the numbers need decimals to stay truthful
        assert any("." in shown_p for _, _, shown_p, _, _ in calls)


def test_study_picker_belongs_to_its_run(dirs, weights):
    ck, data = dirs
    a = write_dataset(data / "a", studies=4)
    manifest = pd.read_csv(a / "manifest.csv")
    manifest.loc[manifest["study_id"] == "S2", "split"] = "test"
    manifest.to_csv(a / "manifest.csv", index=False)
    write_run(ck, a, weights, "run-a")
    write_run(ck, write_dataset(data / "b"), weights, "run-b")

    def picker(at: AppTest):
        return next(s for s in at.selectbox if s.label.startswith("Test study"))

    at = page("case_review.py", run="run-a").run()
    no_exception(at)
    assert picker(at).label.startswith("Test study (2 in")
    picker(at).set_value(1).run()
    at.session_state["run_name"] = "run-b"
    at.run()
    no_exception(at)
    assert picker(at).label.startswith("Test study (1 in") and picker(at).value == 0
    at.session_state["run_name"] = "run-a"
    at.run()
    assert picker(at).value == 1  # each run keeps the study it was left on


def _cesm_run(dirs, weights):
    """A run trained on a CDD-CESM phantom's subtracted images with split seed 3: the
    dataset as that run read it."""
    from core.datasets import load_dataset
    from core.phantom import write_phantom

    ck, data = dirs
    cdd = data / "cdd"
    write_phantom(cdd, "cddcesm", 8, size=IMG, seed=1, workers=1)
    run = write_run(ck, cdd, weights)
    info = json.loads((run / "run.json").read_text())
    info["dataset_options"] = {"split_seed": 3, "cdd_type": "CESM"}
    (run / "run.json").write_text(json.dumps(info))
    return load_dataset(cdd, split_seed=3, cdd_type="CESM")


def test_case_review_offers_the_runs_own_test_studies_in_its_image_type(dirs, weights):
    """A run trained on subtracted CDD-CESM images with split seed 3 is offered its own
    held-out studies, in subtracted images; never the defaults' split of low-energy ones."""
    trained = _cesm_run(dirs, weights)
    held_out = sorted(set(trained.loc[trained["split"] == "test", "study_id"].astype(str)))
    at = page("case_review.py").run()
    no_exception(at)
    picker = next(s for s in at.selectbox if s.label.startswith("Test study"))
    assert picker.label.startswith(f"Test study ({len(held_out)} in")
    shown = at.session_state["study_views"]
    assert {v.study_id for v in shown} == {held_out[0]}
    assert shown and all("_CM_" in v.name for v in shown)  # the subtracted images


def test_data_page_reads_a_runs_dataset_as_the_run_did(dirs, weights):
    from core.datasets import load_dataset
    from core.datasets.describe import describe, tables

    trained = _cesm_run(dirs, weights)
    at = page("data.py").run()
    no_exception(at)
    assert f"The dataset of run {RUN_NAME}. Read as this run read it (CDD-CESM images CESM, " \
           "split seed 3)." in texts(at)
    expected = tables(describe(trained))["split"]
    assert not expected.equals(tables(describe(load_dataset(dirs[1] / "cdd")))["split"])  # seeds differ
    pd.testing.assert_frame_equal(at.table[0].value, expected)
