"""Keep every test hermetic: its own preprocessing cache and checkpoints root."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    os.environ["MAMMOROUTE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("MAMMOROUTE_CHECKPOINTS", str(tmp_path_factory.mktemp("checkpoints")))
    yield
