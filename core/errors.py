"""The project's own error types.

Every error raised on purpose names the file and the problem in one line, so
the command line and the UI can show ``str(err)`` as it is, with no traceback.
Anything else escaping a reader is a bug.
"""
from __future__ import annotations

from pathlib import Path


class MammoError(Exception):
    """Base of all deliberate errors: ``str()`` is ``"<file>: <problem>"``."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ImageReadError(MammoError):
    """A mammogram (DICOM or image file) cannot be read or makes no sense."""


class MaskError(MammoError):
    """An ROI mask is unreadable, of the wrong size or not binary."""


class ManifestError(MammoError):
    """A dataset folder or manifest table is malformed."""


class CheckpointError(MammoError):
    """A run folder or weights file is missing, tampered with or foreign."""


class TrainingError(MammoError):
    """Training cannot start or continue (lock held, bad options, disk full)."""


class PacsError(MammoError):
    """A PACS cannot be started, reached or read: ``str()`` is ``"<URL>: <problem>"``."""


class ScaleError(MammoError):
    """Ray cannot be used: not installed, an unreachable address, a cluster short of what a
    task asks for; ``str()`` is ``"<address>: <problem>"`` where there is an address."""
