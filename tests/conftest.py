"""Keep every test hermetic: its own preprocessing cache and checkpoints root."""
from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture
def page(app, request):
    """A new page, so a new Streamlit session, on the module's ``app`` server (a module
    fixture yielding ``(page, url)``; the URL is kept as ``page.app_url``): the tests of a
    module share one server yet each starts fresh.  Its last state is saved, whatever
    happens, as ``tests/artifacts/<module>-last-<test>.png``."""
    from playwright.sync_api import expect

    first, url = app
    page = first.context.browser.new_page(viewport={"width": 1400, "height": 1800},
                                          accept_downloads=True)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=30_000)  # a wrong state fails fast
    page.app_url = url
    artifacts = Path(__file__).resolve().parent / "artifacts"
    module = request.module.__name__.removeprefix("test_browser_")
    try:
        yield page
    finally:
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / f"{module}-last-{request.node.name}.png"))
        page.close()
