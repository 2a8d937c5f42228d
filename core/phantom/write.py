"""The entry point: check arguments, write a profile's layout beside the
target folder, and move it into place.

Building beside ``out`` and renaming at the end means a failed run never
leaves half a dataset, and an earlier phantom is replaced only when the new
one is complete.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.errors import MammoError
from core.phantom.cddcesm import write_cdd
from core.phantom.profiles import PROFILES, SYNTHETIC_NAME, difficulty_value
from core.phantom.summary import PhantomSummary
from core.phantom.vindr import write_vindr

MARKER_FILE = "phantom.json"
# phantom.json is what write_phantom leaves; an empty ``.phantom`` marks any other synthetic set.
SYNTHETIC_MARKERS: tuple[str, ...] = (MARKER_FILE, ".phantom")
SYNTHETIC_TEXT = ("Synthetic phantom data: these images and results demonstrate the software; "
                  "they are not evidence about real patients.")
YOURS_ON_SYNTHETIC_TEXT = ("This run's models were trained on synthetic phantom images only. "
                           "The images under review are yours: the answers below demonstrate "
                           "the software and are not a reading of these images.")
"""The two wordings of the synthetic-data notice, one home for the app and the PDF report."""


def synthetic_notice_text(run_synthetic: bool, images_synthetic: bool) -> str | None:
    """The notice a study's results carry: phantom images, or the user's images read by
    models trained on phantoms; None when neither the images nor the training were synthetic."""
    if images_synthetic:
        return SYNTHETIC_TEXT
    return YOURS_ON_SYNTHETIC_TEXT if run_synthetic else None


def is_synthetic(path: str | Path | None) -> bool:
    """Whether ``path`` (a dataset folder, or a file in one) holds synthetic images.

    The evidence is a marker file in the folder or its parent (so a manifest, or
    a layout's sub-folder, inside a phantom counts too), never the folder's name:
    a name is the user's choice and says nothing about the pixels, while every
    phantom carries ``phantom.json``.  The answer labels runs (``run.json``),
    external evaluations and the Data page alike.
    """
    if path is None:
        return False
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return any((d / m).is_file() for d in (folder, folder.parent) for m in SYNTHETIC_MARKERS)


def synthetic_header(ds: Any) -> bool:
    """Whether a DICOM header (a pydicom dataset) is the phantom's: every file it writes
    names it as Manufacturer.  The evidence for images that come without their folder
    (from a PACS, or uploaded)."""
    return str(ds.get("Manufacturer", "") or "") == SYNTHETIC_NAME


def _check_args(profile: str, studies: int, size: int) -> None:
    if profile not in PROFILES:
        raise MammoError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if studies < 1:
        raise MammoError(f"--studies must be at least 1 (got {studies})")
    if not 64 <= size <= 4096:
        raise MammoError(f"--size must be within 64..4096 pixels (got {size})")


def _prepare_out(out: Path) -> Path:
    """A fresh temporary folder beside ``out``; refuse to replace a folder that
    holds anything but an earlier phantom, so no real data is ever overwritten."""
    if out.exists():
        if not out.is_dir():
            raise MammoError("exists and is not a folder", out)
        if any(out.iterdir()) and not (out / MARKER_FILE).is_file():
            raise MammoError("folder is not empty and holds no earlier phantom; choose another --out", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def write_phantom(out: str | Path, profile: str, studies: int, size: int = 512, seed: int = 0,
                  difficulty: float | str = "moderate", workers: int | None = None) -> PhantomSummary:
    """Write a seeded synthetic dataset in the real layout of ``profile``.

    The same arguments give the same bytes.  The folder is built beside
    ``out`` and moved into place at the end, replacing an earlier phantom.
    """
    out = Path(out)
    _check_args(profile, studies, size)
    diff = difficulty_value(difficulty)
    prof = PROFILES[profile]
    tmp = _prepare_out(out)
    try:
        writer = write_vindr if profile == "vindr" else write_cdd
        records, files = writer(tmp, prof, studies, size, seed, diff, workers)
        summary = PhantomSummary(profile, str(out), studies, size, seed, diff, files + 1, records)
        marker = {k: v for k, v in summary.to_dict().items() if k not in ("records", "out")}
        marker["note"] = f"{SYNTHETIC_NAME}: synthetic images, not patient data"
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
