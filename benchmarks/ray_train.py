"""Training on Ray against one process: wall time with start-up, Ray's own start-up and
shutdown cost, and the timeline of a retried task.

Three ``python -m core train`` commands on one synthetic VinDr-profile phantom with the
demo's recipe (resnet10t, both grids, warm start, balanced, no CLAHE, no augmentation)
at the sizes given: one process, ``--executor ray``, and ``--executor ray`` again with one
cell's worker SIGKILLed at the end of its first epoch (``MAMMOROUTE_RAY_CRASH``).  Each is
timed from process start to exit, so Python's and Ray's start-up are in the figures; the
preprocess cache is filled first (untimed) so no run pays for decoding.  A fourth
command, one process with the tasks' torch thread count (``MAMMOROUTE_THREADS``), checks
that the answers are the same: with another thread count the float sums run in another
order, and a few epochs carry that difference into the predictions.  The retry
timeline is what a reader of ``progress.jsonl`` sees (polled every 20 ms; the driver
relays events every 0.5 s, so each time may be up to that late).  Ray's own cost: a local
Ray started (``ray.init``) and stopped (``ray.shutdown``) through
:func:`core.scale.session.ray_session`, in this process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import base_parser, emit, private_cache, rounded, temp_dir

REPO = Path(__file__).resolve().parents[1]


def _command(data: Path, out: Path, args: Any, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "train", "--dataset", str(data), "--out", str(out),
            "--arch", "resnet10t", "--img-size", str(args.img_size), "--epochs", str(args.epochs),
            "--warm-start", str(args.warm_start), "--mode", "both", "--device", "cpu",
            "--batch-size", "16", "--lr", "1e-3", "--clahe-clip", "0", "--no-augment",
            "--balanced", "--seed", "0", *extra]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[3:6])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def _events(run: Path) -> list[dict[str, Any]]:
    from core.runfolder.layout import read_progress

    return read_progress(run)


def retry_timeline(cmd: list[str], env: dict[str, str], run: Path, cell: str) -> dict[str, Any]:
    """Seconds from the command's start to: the kill, the retry's cell_start, the retried
    cell's cell_done, the command's exit (as seen in progress.jsonl)."""
    seen: dict[str, float] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**env, "MAMMOROUTE_RAY_CRASH": cell},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marks = {"killed": lambda e: e["event"] == "worker_killed",
             "retry_started": lambda e: e["event"] == "cell_start" and e.get("attempt") == 2,
             "retried_cell_done": lambda e: e["event"] == "cell_done"}
    while proc.poll() is None:
        for event in _events(run):
            if event.get("cell") != cell:
                continue
            for name, test in marks.items():
                if name not in seen and test(event) and (name != "retried_cell_done"
                                                         or "retry_started" in seen):
                    seen[name] = time.perf_counter() - t0
        time.sleep(0.02)
    end = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    if proc.returncode:
        raise SystemExit(f"the retry run failed:\n{err[-2000:]}")
    attempts = sorted({e.get("attempt") for e in _events(run)
                       if e["event"] == "cell_start" and e.get("cell") == cell})
    return {"cell": cell, "attempts": attempts, **{f"{k}_s": rounded(v, 2) for k, v in seen.items()},
            "kill_to_retry_start_s": rounded(seen["retry_started"] - seen["killed"], 2),
            "retry_start_to_cell_done_s": rounded(seen["retried_cell_done"]
                                                  - seen["retry_started"], 2),
            "command_exit_s": rounded(end, 2)}


def ray_overhead(repeats: int) -> dict[str, Any]:
    """Median seconds to start a local Ray and to shut it down."""
    from statistics import median

    from core.scale.session import ray_session

    starts, stops = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session = ray_session(None)
        session.__enter__()
        t1 = time.perf_counter()
        session.__exit__(None, None, None)
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return {"ray_start_s": rounded(median(starts), 2), "ray_shutdown_s": rounded(median(stops), 2),
            "ray_start_runs_s": [rounded(s, 2) for s in starts],
            "ray_shutdown_runs_s": [rounded(s, 2) for s in stops]}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60, help="VinDr-profile phantom studies")
    parser.add_argument("--phantom-size", type=int, default=192)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warm-start", type=int, default=2)
    parser.add_argument("--cpus-per-cell", type=int, default=1)
    parser.add_argument("--crash-cell", default="all-LCC", help="the cell whose worker is killed")
    parser.add_argument("--repeats", type=int, default=2, help="Ray start/stop repeats")
    args = parser.parse_args(argv)
    import numpy as np
    import pandas as pd

    from core.datasets import load_dataset
    from core.phantom import write_phantom
    from core.train import ImageBank, TrainConfig

    with temp_dir() as root, private_cache(root / "cache"):
        data = root / "phantom-vindr"
        write_phantom(data, profile="vindr", studies=args.studies, size=args.phantom_size,
                      seed=0, workers=1)
        df = load_dataset(data)
        config = TrainConfig(img_size=args.img_size, clahe_clip=0.0)
        ImageBank(list(df["image_path"]), config.preprocess_params(), 1)  # fill the cache
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        ray_args = ("--executor", "ray", "--cpus-per-cell", str(args.cpus_per_cell))
        serial_s = _timed(_command(data, root / "serial", args), env)
        ray_s = _timed(_command(data, root / "ray", args, *ray_args), env)
        threads = str(args.cpus_per_cell)  # one process with the tasks' thread count
        serial_same_s = _timed(_command(data, root / "serial-same", args),
                               {**env, "MAMMOROUTE_THREADS": threads})
        timeline = retry_timeline(_command(data, root / "retry", args, *ray_args), env,
                                  root / "retry", args.crash_cell)
        a, b, c, d = (pd.read_csv(root / r / "predictions.csv")
                      for r in ("serial", "ray", "retry", "serial-same"))
        overhead = ray_overhead(args.repeats)
        info = json.loads((root / "serial" / "run.json").read_text())
        trained = sum(1 for x in info["cells"].values() if x["status"] == "done")
    result = {
        "what": (f"phantom vindr {args.studies} studies at {args.phantom_size} px (SYNTHETIC), "
                 f"resnet10t {args.img_size} px, both grids, {args.epochs} epochs per cell, "
                 f"warm start {args.warm_start}, {trained} cells trained"),
        "cpus": len(os.sched_getaffinity(0)), "cpus_per_cell": args.cpus_per_cell,
        "serial_s": rounded(serial_s, 1), "ray_s": rounded(ray_s, 1),
        "ray_over_serial": rounded(ray_s / serial_s, 2),
        "serial_same_threads_s": rounded(serial_same_s, 1),
        "max_abs_diff_ray_vs_serial": float(np.abs(a["p_malignant"] - b["p_malignant"]).max()),
        "max_abs_diff_ray_vs_serial_same_threads": float(
            np.abs(d["p_malignant"] - b["p_malignant"]).max()),
        "max_abs_diff_retry_vs_ray": float(np.abs(b["p_malignant"] - c["p_malignant"]).max()),
        "retry": timeline, **overhead,
    }
    emit(result, args.json,
         f"serial {serial_s:.1f} s, Ray {ray_s:.1f} s ({ray_s / serial_s:.2f}x); Ray start "
         f"{overhead['ray_start_s']} s, shutdown {overhead['ray_shutdown_s']} s; retry: killed at "
         f"{timeline.get('killed_s')} s, restarted {timeline.get('retry_started_s')} s, cell done "
         f"{timeline.get('retried_cell_done_s')} s, exit {timeline['command_exit_s']} s")


if __name__ == "__main__":
    main()
