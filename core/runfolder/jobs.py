"""Background jobs: one ``python -m core train|demo`` process at a time, tracked on disk.

The app starts training from the browser, but a Streamlit session is the
wrong place to keep a process: a reload, a second tab or a server restart
would lose it.  So a job is a detached process (its own session and process
group, output to ``checkpoints/.jobs/<id>.log``) recorded in
``checkpoints/.jobs/current.json`` with its pid and the kernel's start time
of that pid.  Anyone can ask :func:`current_job` and get the same answer; a
record whose pid is gone, is a zombie, or now belongs to another process
(different start time) is stale and is moved to ``last.json`` with its exit
status when it can be known.

Records are written through :mod:`core.runfolder.atomic` (a unique temporary
file per write, so two app sessions, threads of one process, never share
one), and a record is retired only under the start lock and only if
``current.json`` still holds the job that was read: a job started between
the read and the retirement keeps its record.

Only one job runs at a time (a second :func:`start_job` raises
:class:`~core.errors.TrainingError`); the training command takes its own
per-run lock as well.  ``$MAMMOROUTE_JOB_COMMAND`` replaces the
``python -m core`` prefix (tests use it to run a stand-in process).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import TrainingError
from core.runfolder.atomic import atomic_write_json
from core.runfolder.layout import checkpoints_root
from core.runfolder.lock import exclusive_lock

JOBS_DIR = ".jobs"
CURRENT_FILE = "current.json"
LAST_FILE = "last.json"
LOCK_FILE = ".start.lock"
COMMAND_ENV = "MAMMOROUTE_JOB_COMMAND"
CANCEL_GRACE_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Job:
    """One background process as recorded on disk."""

    id: str
    kind: str  # "train" or "demo"
    pid: int
    start_ticks: int
    command: list[str]
    run_dir: str | None
    started: str
    log: str
    returncode: int | None = None
    finished: str | None = None
    cancelled: bool = False

    @property
    def name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else self.kind


def jobs_dir(root: str | Path | None = None) -> Path:
    """``<checkpoints>/.jobs``; created on demand."""
    path = (Path(root) if root is not None else checkpoints_root()) / JOBS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def core_command() -> list[str]:
    """The prefix that runs the command line: ``python -m core`` or the override."""
    override = os.environ.get(COMMAND_ENV, "").strip()
    return shlex.split(override) if override else [sys.executable, "-m", "core"]


def train_args(dataset: str | Path, out: str | Path, options: Mapping[str, Any]) -> list[str]:
    """Arguments of ``python -m core train``; ``options`` are TrainConfig field names.

    Built from the command line's own parser, so what the app starts is a
    command a user can type (and the README documents).
    """
    from core.cli.train import command_args

    return command_args(dataset, out, options)


def resume_args(info: Mapping[str, Any], run_dir: str | Path) -> list[str]:
    """The command that continues an interrupted run: its recorded options and ``--resume``.

    The options come from ``run.json`` (``config``, ``dataset_path``), not from
    the page, so a resume cannot drift from the run it continues.  A run trained on Ray
    resumes on Ray at the same address (its GPU and CPU shares are sized again, for the
    cluster as it is now).
    """
    from core.cli.scale_args import executor_args
    from core.cli.train import option_actions

    config, dataset = info.get("config"), info.get("dataset_path")
    if not isinstance(config, Mapping) or not dataset:
        raise TrainingError("run.json does not record the options or the dataset this run was "
                            "started with; resume it from the command line with --resume",
                            Path(run_dir) / "run.json")
    known = option_actions()
    options = {k: v for k, v in config.items() if k in known}
    executor = info.get("executor") if isinstance(info.get("executor"), Mapping) else {}
    where = executor_args(str(executor.get("kind", "local")), executor.get("address"))
    return train_args(dataset, run_dir, {**options, "resume": True}) + where


def demo_args(tiny: bool = False) -> list[str]:
    """Arguments of ``python -m core demo`` (``--tiny``: one small phantom, 1 epoch)."""
    return ["demo", "--tiny"] if tiny else ["demo"]


# --------------------------------------------------------------------------- /proc

def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); None if gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive(job: Job) -> bool:
    return process_start_ticks(job.pid) == job.start_ticks


def _reap(pid: int) -> int | None:
    """The exit status of our own finished child (None when not ours or still running)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


# --------------------------------------------------------------------------- records

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read(path: Path) -> Job | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def _retire(folder: Path, job: Job, cancelled: bool = False) -> Job:
    """Move a finished job's record to last.json, with its exit status when known.

    The caller holds the start lock, so nothing writes ``current.json`` meanwhile;
    a record that no longer holds ``job`` (another session retired it, and a new
    job may have started) is left alone, and only that job's last.json entry is
    completed with what this caller knows (its exit status, a cancel).
    """
    code = _reap(job.pid)
    done = Job(**{**asdict(job), "returncode": code if code is not None else job.returncode,
                  "finished": job.finished or _now(), "cancelled": cancelled or job.cancelled})
    on_disk = _read(folder / CURRENT_FILE)
    if on_disk is not None and on_disk.id == job.id:
        atomic_write_json(folder / LAST_FILE, asdict(done))
        (folder / CURRENT_FILE).unlink(missing_ok=True)
        return done
    last = _read(folder / LAST_FILE)
    if last is not None and last.id == job.id:
        done = Job(**{**asdict(last), "cancelled": done.cancelled,
                      "returncode": done.returncode if done.returncode is not None
                      else last.returncode})
        if done != last:
            atomic_write_json(folder / LAST_FILE, asdict(done))
    return done


def _current_locked(folder: Path) -> Job | None:
    """:func:`current_job` for a caller that holds the start lock."""
    job = _read(folder / CURRENT_FILE)
    if job is None or _alive(job):
        return job
    _retire(folder, job)
    return None


def current_job(root: str | Path | None = None) -> Job | None:
    """The running job, or None; a stale record is retired on the way (under the start
    lock, looking again: a job may have started since the first look)."""
    folder = jobs_dir(root)
    job = _read(folder / CURRENT_FILE)
    if job is None or _alive(job):
        return job
    with exclusive_lock(folder / LOCK_FILE):
        return _current_locked(folder)


def last_job(root: str | Path | None = None) -> Job | None:
    """The most recent finished job (exit status, log), or None."""
    current_job(root)  # retires a job that just ended
    return _read(jobs_dir(root) / LAST_FILE)


def start_job(args: list[str], kind: str, run_dir: str | Path | None = None,
              root: str | Path | None = None) -> Job:
    """Start ``python -m core <args>`` detached; refuse while another job runs."""
    folder = jobs_dir(root)
    with exclusive_lock(folder / LOCK_FILE):  # two clicks at once start one job
        running = _current_locked(folder)
        if running is not None:
            raise TrainingError(
                f"a {running.kind} job ({running.name}) is already running since "
                f"{running.started}; wait for it to finish or cancel it first")
        job_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        log = folder / f"{job_id}.log"
        command = core_command() + list(args)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(log, "wb") as out:
            try:
                proc = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, close_fds=True)
            except OSError as err:
                raise TrainingError(f"cannot start {command[0]} ({err.strerror})", log) from None
        ticks = None
        for _ in range(50):  # /proc entry appears at once; be patient on a loaded machine
            ticks = process_start_ticks(proc.pid)
            if ticks is not None or proc.poll() is not None:
                break
            time.sleep(0.01)
        job = Job(job_id, kind, proc.pid, ticks or -1, command,
                  str(run_dir) if run_dir is not None else None, _now(), str(log))
        atomic_write_json(folder / CURRENT_FILE, asdict(job))
        if ticks is None:  # ended before we could look: keep its exit status and log
            proc.wait()
            job = _retire(folder, Job(**{**asdict(job), "returncode": proc.returncode}))
        return job


def cancel_job(root: str | Path | None = None, grace_s: float = CANCEL_GRACE_S) -> Job | None:
    """SIGTERM the running job's process group, SIGKILL it after ``grace_s``; None if none ran.

    Training stops after its current step on SIGTERM and marks the run
    ``cancelled`` (resumable); SIGKILL is the last resort for a stuck process.
    """
    folder = jobs_dir(root)
    job = current_job(root)
    if job is None:
        return None
    _signal_group(job, signal.SIGTERM)
    code = _wait_gone(job, grace_s)
    if code is None and _alive(job):
        _signal_group(job, signal.SIGKILL)
        code = _wait_gone(job, 5.0)
    if code is not None:
        job = Job(**{**asdict(job), "returncode": code})
    with exclusive_lock(folder / LOCK_FILE):
        return _retire(folder, job, cancelled=True)


def _wait_gone(job: Job, seconds: float) -> int | None:
    """Wait up to ``seconds`` for the process to end; its exit status if it was our child."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = _reap(job.pid)
        if code is not None:
            return code
        if not _alive(job):
            return None
        time.sleep(0.1)
    return None


def _signal_group(job: Job, sig: signal.Signals) -> None:
    if not _alive(job):
        return
    try:
        os.killpg(job.pid, sig)  # start_new_session made the pid its group's leader
    except ProcessLookupError:
        pass
    except PermissionError:
        raise TrainingError(f"not allowed to stop process {job.pid}", job.log) from None


def log_tail(job: Job, lines: int = 20, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a job's output (carriage-return progress collapsed)."""
    try:
        with open(job.log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    rows = [r.rsplit("\r", 1)[-1] for r in text.split("\n")]
    return "\n".join([r for r in rows if r.strip()][-lines:])
