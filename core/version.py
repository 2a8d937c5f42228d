"""Which MammoRoute made a file: the package version, and the commit when the code runs
from a git checkout (so an auditor can find the exact code behind an export)."""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import core


@lru_cache(maxsize=1)
def code_commit() -> str | None:
    """``git describe --always --dirty`` of the checkout holding :mod:`core`; None outside
    a checkout or without git (an installed copy has no history to name)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                             cwd=Path(core.__file__).parent, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def code_version() -> dict[str, str | None]:
    """``{"version": package version, "commit": git describe or None}``."""
    return {"version": core.__version__, "commit": code_commit()}
