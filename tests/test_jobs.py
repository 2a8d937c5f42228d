"""Job records under concurrency: two app sessions are two threads of one process."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from core.runfolder import jobs


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A checkpoints folder whose jobs are ``sleep``; no job left behind."""
    monkeypatch.setenv(jobs.COMMAND_ENV, "sleep")
    yield tmp_path
    jobs.cancel_job(tmp_path, grace_s=2)


def _write_stale(folder: Path) -> None:
    """A record naming this process with another start time: a job that has ended."""
    stale = {"id": "stale", "kind": "train", "pid": os.getpid(), "start_ticks": 1,
             "command": ["x"], "run_dir": None, "started": "2026-01-01T00:00:00+00:00",
             "log": str(folder / "stale.log")}
    (folder / jobs.CURRENT_FILE).write_text(json.dumps(stale))


def _in_threads(target, n: int = 2) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as err:  # noqa: BLE001 - reported to the test below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return errors


def test_a_job_started_while_a_stale_record_is_retired_keeps_its_record(root, monkeypatch):
    folder = jobs.jobs_dir(root)
    _write_stale(folder)
    read, resume = threading.Event(), threading.Event()
    real_ticks = jobs.process_start_ticks
    main = threading.current_thread()

    def slow_ticks(pid: int) -> int | None:
        """The other session pauses right after reading the stale record."""
        if threading.current_thread() is not main and pid == os.getpid():
            read.set()
            resume.wait(10)
        return real_ticks(pid)

    monkeypatch.setattr(jobs, "process_start_ticks", slow_ticks)
    other = threading.Thread(target=jobs.current_job, args=(root,))
    other.start()
    assert read.wait(10)
    started = jobs.start_job(["30"], "train", root=root)  # this session starts a job meanwhile
    resume.set()
    other.join(10)
    assert not other.is_alive()
    running = jobs.current_job(root)
    assert running is not None and running.id == started.id  # old code deleted its record
    assert jobs.last_job(root).id == "stale"


def test_two_sessions_retiring_one_record_at_once_both_succeed(root, monkeypatch):
    folder = jobs.jobs_dir(root)
    _write_stale(folder)
    meet = threading.Barrier(2, timeout=0.5)
    real_replace = os.replace

    def replace_together(src, dst) -> None:
        """Hold each rename until the other session's write has caught up (if it can)."""
        try:
            meet.wait()
        except threading.BrokenBarrierError:
            pass
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_together)
    errors = _in_threads(lambda: jobs.current_job(root))
    monkeypatch.setattr(os, "replace", real_replace)
    assert errors == []  # old code: both wrote .last.json.<pid>.tmp, one rename found it gone
    assert jobs.last_job(root).id == "stale"
    assert not (folder / jobs.CURRENT_FILE).exists()
    assert sorted(p.name for p in folder.iterdir()) == [jobs.LAST_FILE]  # no temporary left


def test_cancel_marks_the_record_it_retired(root):
    job = jobs.start_job(["30"], "train", root=root)
    errors = _in_threads(lambda: jobs.cancel_job(root, grace_s=2))
    assert errors == []
    last = jobs.last_job(root)
    assert last.id == job.id and last.cancelled
    assert jobs.current_job(root) is None


def test_resume_continues_where_the_run_was_trained():
    """Resume keeps a Ray run on Ray at its address, and a one-process run in one process."""
    from core.__main__ import build_parser

    info = {"config": {"arch": "resnet10t", "epochs": 2}, "dataset_path": "data/d",
            "executor": {"kind": "ray", "address": "head:6379", "num_cpus": 2}}
    args = jobs.resume_args(info, "checkpoints/r")
    parsed = build_parser().parse_args(args)
    assert (parsed.resume, parsed.epochs, parsed.executor, parsed.ray_address) == (
        True, 2, "ray", "head:6379")
    local = jobs.resume_args({**info, "executor": {"kind": "local"}}, "checkpoints/r")
    assert "--executor" not in local and "--resume" in local
    assert jobs.resume_args({k: v for k, v in info.items() if k != "executor"},
                            "checkpoints/r") == local
