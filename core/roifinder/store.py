"""The finder in the run folder: ``roi_model/weights.safetensors`` + ``meta.json``.

Same integrity rules as the cells (:mod:`core.runfolder.layout`): weights only as
safetensors, their SHA-256 recorded in ``run.json`` under ``roi_model`` and
checked before a single tensor is used; a changed file is a
:class:`~core.errors.CheckpointError`, never a silent reload.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.roifinder.model import FinderNet, create_finder
from core.runfolder import layout as runs

ROI_DIR = "roi_model"
RUN_KEY = "roi_model"  # run.json's entry: {"status", "sha256", "threshold", "size", ...}
FORMAT = "mammoroute-roifinder-1"
CALIBRATION_KEY = "presence_calibration"  # meta.json: the Platt scaling of the raw score


def save_finder(model: FinderNet, folder: Path) -> str:
    """Write the weights with their architecture in the header; returns the file's SHA-256."""
    from core.models import save_tensors

    meta = {"arch": model.arch, "img_size": str(model.size), "format": FORMAT}
    return save_tensors(model.state_dict(), folder / runs.WEIGHTS_FILE, meta)


def load_finder_weights(folder: Path, size: int, expected_sha256: str | None) -> FinderNet:
    """A finder filled from ``folder``, refusing tampered or foreign weights."""
    from core.models import fill_state, load_tensors

    path = folder / runs.WEIGHTS_FILE
    tensors, meta = load_tensors(path, expected_sha256)
    model = create_finder(size)
    if meta.get("format") != FORMAT or meta.get("img_size") != str(size):
        raise CheckpointError(f"not ROI-finder weights for {size} px (header says "
                              f"{meta.get('format')} at {meta.get('img_size')} px)", path)
    return fill_state(model, tensors, path, "the ROI finder").eval()


def run_entry(info: dict[str, Any]) -> dict[str, Any] | None:
    """run.json's finder entry when the run has a finished finder, else None."""
    entry = info.get(RUN_KEY)
    return entry if isinstance(entry, dict) and entry.get("status") == "done" else None


def load_run_finder(run_dir: Path, info: dict[str, Any]) -> tuple[FinderNet, dict[str, Any]] | None:
    """``(model, meta)`` of a run's finder, verified against run.json; None when it has none.

    A finder listed as done without a SHA-256 is refused like a changed one.
    """
    entry = run_entry(info)
    if entry is None:
        return None
    folder = run_dir / ROI_DIR
    if not entry.get("sha256"):
        raise CheckpointError("run.json records no SHA-256 for the ROI finder; refusing to "
                              "load unverified weights", folder / runs.WEIGHTS_FILE)
    meta = runs.read_json(folder / runs.META_FILE)
    if meta.get("sha256") != entry["sha256"]:
        raise CheckpointError("meta.json and run.json disagree on the ROI finder's SHA-256",
                              folder / runs.META_FILE)
    try:
        size, threshold = int(meta["size"]), float(meta["threshold"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("meta.json lacks a valid 'size' / 'threshold'",
                              folder / runs.META_FILE) from None
    if not 0.0 <= threshold <= 1.0:
        raise CheckpointError(f"threshold {threshold} is not a probability", folder / runs.META_FILE)
    return load_finder_weights(folder, size, entry["sha256"]), meta


def finished(run_dir: Path, expected_sha256: str | None) -> dict[str, Any] | None:
    """The meta of a finished finder whose weights still hash as recorded and whose presence
    score is calibrated, else None (what ``--resume`` keeps; an older finder is retrained)."""
    from core.runfolder.integrity import file_sha256

    folder = run_dir / ROI_DIR
    try:
        meta = runs.read_json(folder / runs.META_FILE)
    except CheckpointError:
        return None
    sha = meta.get("sha256")
    if not sha or (expected_sha256 and sha != expected_sha256) or CALIBRATION_KEY not in meta:
        return None
    return meta if file_sha256(folder / runs.WEIGHTS_FILE) == sha else None
