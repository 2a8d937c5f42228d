"""Resume checkpoints: ``last.*`` save / load, optimizer tensors, a done cell's result."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError
from core.grid import Cell
from core.models import MammoNet, load_tensors, save_tensors
from core.runfolder import layout as runs
from core.runfolder.atomic import atomic_write_json
from core.runfolder.integrity import file_sha256
from core.train.config import CellResult


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """AdamW state flattened to ``optim.<param>.<key>`` tensors + JSON param groups."""
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           param_groups: list[Any]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def save_last(cell_dir: Path, model: MammoNet, opt: torch.optim.Optimizer,
              state: dict[str, Any]) -> None:
    """The epoch checkpoint: tensors first, then the JSON that names their hash."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim, groups = optimizer_tensors(opt)
    tensors.update(optim)
    sha = save_tensors(tensors, cell_dir / runs.LAST_WEIGHTS_FILE,
                       {"arch": model.arch, "img_size": str(model.img_size)})
    atomic_write_json(cell_dir / runs.LAST_STATE_FILE,
                      {**state, "last_sha256": sha, "param_groups": groups})


def load_last(cell_dir: Path, model: MammoNet, opt: torch.optim.Optimizer,
              identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved epoch state, or None when absent, foreign or inconsistent."""
    state_file = cell_dir / runs.LAST_STATE_FILE
    if not state_file.is_file():
        return None
    try:
        state = runs.read_json(state_file)
        if state.get("identity") != identity:
            return None
        best_sha = state.get("best_sha256")
        if best_sha and file_sha256(cell_dir / runs.WEIGHTS_FILE) != best_sha:
            return None
        tensors, _ = load_tensors(cell_dir / runs.LAST_WEIGHTS_FILE, state.get("last_sha256"))
    except CheckpointError:
        return None
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    model.load_state_dict(model_sd, strict=True)
    load_optimizer_tensors(opt, optim, state["param_groups"])
    return state


def done_result(cell: Cell, cell_dir: Path, expected_sha: str | None = None,
                 expected_meta_sha: str | None = None) -> CellResult | None:
    """A finished cell kept on resume: meta.json present (and as run.json recorded it, when
    it did) and weights hash verified."""
    try:
        meta = runs.read_json(cell_dir / runs.META_FILE)
    except CheckpointError:
        return None
    sha = meta.get("sha256")
    if not sha or (expected_sha and sha != expected_sha):
        return None
    if file_sha256(cell_dir / runs.WEIGHTS_FILE) != sha:
        return None
    meta_sha = file_sha256(cell_dir / runs.META_FILE)
    if (expected_meta_sha and meta_sha != expected_meta_sha) or "calibration_data" not in meta:
        return None
    return CellResult(cell.name, "done", sha256=sha, n_train=meta["n_train"], n_val=meta["n_val"],
                      counts=meta["counts"], threshold=meta["threshold"],
                      temperature=meta["temperature"], logit_offset=meta["logit_offset"],
                      best_epoch=meta["best_epoch"], seconds=meta.get("seconds", 0.0),
                      meta_sha256=meta_sha)
