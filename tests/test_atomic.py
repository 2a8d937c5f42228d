"""core.runfolder.atomic: the one writer of run files, manifests and pictures."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import CheckpointError
from core.runfolder.atomic import atomic_write_json, atomic_write_png, jsonable


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_with_plain_types(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "meta.json"
    atomic_write_json(path, {"nan": float("nan"), "inf": [np.inf, -np.inf], "f32": np.float32(0.25),
                             "i64": np.int64(3), "flag": np.bool_(True), "where": Path("a/b"),
                             1: (np.float64(0.5), None)})
    assert _strict(path.read_text()) == {"nan": None, "inf": [None, None], "f32": 0.25, "i64": 3,
                                         "flag": True, "where": "a/b", "1": [0.5, None]}
    assert [p.name for p in path.parent.iterdir()] == ["meta.json"]  # no temporary file left


def test_jsonable_keeps_types_json_has() -> None:
    out = jsonable({"a": [1, 2.5, "x", None, False], "b": np.float16(np.nan)})
    assert out == {"a": [1, 2.5, "x", None, False], "b": None}
    assert type(jsonable(np.int32(7))) is int and type(jsonable(np.bool_(False))) is bool


def test_png_round_trips_and_a_bad_folder_is_one_error(tmp_path: Path) -> None:
    img = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    atomic_write_png(tmp_path / "a.png", img)
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED), img)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CheckpointError, match=r"file/b\.png: cannot write"):
        atomic_write_png(tmp_path / "file" / "b.png", img)


def test_a_killed_writers_leftovers_are_swept_and_nothing_else(tmp_path):
    """What SIGKILL leaves of an atomic write (the temp file, never renamed) goes; the
    files it was replacing, and files that only look alike, stay."""
    from core.runfolder.atomic import atomic_write_json, sweep_partial_writes

    atomic_write_json(tmp_path / "cell" / "meta.json", {"a": 1})
    (tmp_path / "cell" / ".meta.json.x1y2.tmp").write_text('{"a": ')  # killed mid-write
    (tmp_path / ".run.json.abc.tmp").write_text("")
    (tmp_path / "notes.tmp").write_text("kept: not a temp file of an atomic write")
    assert sweep_partial_writes(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["meta.json", "notes.tmp"]
    assert (tmp_path / "cell" / "meta.json").read_text().strip().startswith("{")
