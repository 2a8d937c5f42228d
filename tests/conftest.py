"""Keep every test hermetic: its own preprocessing cache and checkpoints root."""
from __future__ import annotations

import os

import pytest

import core  # noqa: F401  (first: caps OpenCV's decode limit before a test imports cv2)


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    os.environ["MAMMOROUTE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("MAMMOROUTE_CHECKPOINTS", str(tmp_path_factory.mktemp("checkpoints")))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Two OpenMP threads on two shared cores spin-wait badly when other jobs run."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
