"""Helpers shared by several test modules (imported as ``helpers``)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def write_meta(cell_dir: Path, meta: dict[str, Any]) -> str:
    """Write a cell's meta.json as training does; its SHA-256, for run.json's ``meta_sha256``."""
    import hashlib
    import json

    cell_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(meta).encode()
    (cell_dir / "meta.json").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def edit_meta(run_dir: Path, cell: str, **fields: Any) -> None:
    """Change a cell's meta.json and record its new SHA-256 in run.json, as a retraining would
    (a bare edit is refused by the predictor)."""
    import json

    meta = json.loads((run_dir / cell / "meta.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    info["cells"][cell]["meta_sha256"] = write_meta(run_dir / cell, {**meta, **fields})
    (run_dir / "run.json").write_text(json.dumps(info))


def dicom_real(name: str) -> str:
    """A pydicom-data radiograph, skipped (never downloaded) when the package is absent."""
    from pydicom.data import get_testdata_file

    if importlib.util.find_spec("data_store") is None:
        pytest.skip("pydicom-data is not installed (pip install -r requirements-dev.txt)")
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom-data version")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on a free loopback port, in its own process group."""
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return server, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer within {seconds}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def app_env(tmp: Path, **extra: str) -> tuple[dict[str, str], Path, Path]:
    """An environment for one app server with its own checkpoints, data and cache folders
    (created), no stand-in job command; returns ``(env, checkpoints, data)``."""
    from core.runfolder import jobs

    ck, data, cache = tmp / "checkpoints", tmp / "data", tmp / "cache"
    for d in (ck, data, cache):
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MAMMOROUTE_CHECKPOINTS": str(ck), "MAMMOROUTE_DATA": str(data),
           "MAMMOROUTE_CACHE": str(cache), **extra}
    env.pop(jobs.COMMAND_ENV, None)
    return env, ck, data


@contextmanager
def app_in_chromium(env: dict[str, str], log: Path, width: int = 1400, height: int = 1600,
                    timeout_ms: int = 120_000) -> Iterator[tuple[Any, str]]:
    """``streamlit run app.py`` and a headless Debian-chromium page on it: yields
    ``(page, url)``; browser and server are stopped whatever happens."""
    from playwright.sync_api import expect, sync_playwright

    server, url = start_streamlit(env, log)
    try:
        wait_healthy(url, server, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium"), headless=True,
                args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": width, "height": height},
                                        accept_downloads=True)
                page.set_default_timeout(timeout_ms)
                expect.set_options(timeout=timeout_ms)
                try:
                    yield page, url
                except BaseException:  # what the page showed when the test failed
                    (REPO / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(REPO / "tests" / "artifacts" / "failure.png"),
                                    full_page=True)
                    (REPO / "tests" / "artifacts" / "failure.txt").write_text(
                        page.locator("body").inner_text())
                    raise
            finally:
                browser.close()
    finally:
        stop(server)


def open_upload(page: Any, url: str) -> Any:
    """Case review at ``url`` with "Upload a study" chosen; returns the page's main area."""
    page.goto(f"{url}/case_review")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("Upload a study", exact=True).click()
    return main


def choose_files(main: Any, files: list[Path]) -> None:
    """Hand ``files`` to the study uploader (the first on the page), as a file dialog does."""
    main.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(
        [str(f) for f in files])


def upload_study(page: Any, url: str, files: list[Path], images: int = 4) -> Any:
    """Case review at ``url`` with ``files`` uploaded, once their ``images`` thumbnails are
    hung; returns the page's main area."""
    from playwright.sync_api import expect

    main = open_upload(page, url)
    choose_files(main, files)
    expect(main.locator("[data-testid='stImage'] img")).to_have_count(images)
    return main


def type_box(page: Any, card: Any, box: tuple[int, int, int, int]) -> None:
    """Type the corners ``(x0, y0, x1, y1)`` into a view card's box fields, each confirmed
    with Enter and given time to rerun (a field typed during a rerun may be lost)."""
    for name, value in zip(("x min", "y min", "x max", "y max"), box):
        field = card.get_by_role("spinbutton", name=name)
        field.fill(str(value))
        field.press("Enter")
        page.wait_for_timeout(300)


def case_review_upload(run_name: str, files: list[tuple[str, bytes, str]]) -> Any:
    """Case review in AppTest on run ``run_name`` with ``files`` (name, bytes, MIME type)
    in its study uploader."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "pages" / "case_review.py"), default_timeout=120)
    at.session_state["run_name"] = run_name
    at.run()
    at.get("button_group")[0].set_value("upload").run()
    at.file_uploader[0].set_value(files).run()
    return at


def record_figures(file: str, name: str, figures: dict) -> None:
    """Merge one test's measured figures into ``tests/artifacts/<file>`` (for docs/performance.md)."""
    import json

    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / file
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=2))


MAMMO_SOP = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
RAMP = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)  # stored values 0..1023


def dicom_write(path: Path, arr: np.ndarray = RAMP, *, transfer_syntax: str | None = None,
                pixel_bytes: bytes | None = None, preamble: bool = True, **attrs) -> Path:
    """A minimal single-frame grey DICOM with ``attrs`` set on top."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    transfer_syntax = transfer_syntax or ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = MAMMO_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = arr.tobytes() if pixel_bytes is None else pixel_bytes
    if pixel_bytes is not None and transfer_syntax != ExplicitVRLittleEndian:
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=preamble)
    return path


def stripes_over_two_views(path: Path) -> Path:
    """The stripes manifest over two views, so the pooled model sees more than any cell."""
    import pandas as pd

    df = pd.read_csv(path, keep_default_na=False)
    df.loc[df.index % 4 >= 2, "laterality"] = "L"
    df.to_csv(path, index=False)
    return path


def warm_start_config(**kw: Any) -> Any:
    """A one-epoch resnet10t config at 32 px with a one-epoch warm start, overridable."""
    from core.train import TrainConfig

    base = dict(arch="resnet10t", img_size=32, epochs=1, batch_size=8, lr=1e-3, seed=0,
                device="cpu", mode="baseline", warm_start=1, augment=False, log_every=50)
    return TrainConfig(**{**base, **kw})


def write_two_view_blobs(root: Path, n_train: int = 16, n_test: int = 4, seed: int = 0) -> Path:
    """RCC and LCC images (smooth noise; malignant ones carry stripes): two baseline cells."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for view in ("RCC", "LCC"):
        for i in range(n_train + n_test):
            malignant = i % 2 == 1
            img = cv2.GaussianBlur(rng.normal(110, 40, (64, 64)), (0, 0), 3)
            if malignant:
                img[(np.arange(64) + int(rng.integers(0, 8))) % 8 < 3, :] += 90
            name = f"{view}_{i:03d}.png"
            cv2.imwrite(str(root / name), np.clip(img, 0, 255).astype(np.uint8))
            rows.append({"image_path": name, "patient_id": f"p{view}{i // 2}",
                         "study_id": f"s{view}{i // 2}", "laterality": view[0], "view": view[1:],
                         "label": "malignant" if malignant else "benign", "mask_path": "",
                         "split": "train" if i < n_train else "test"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def ray_processes(ray_tmp: str) -> list[int]:
    """Live processes (zombies aside) whose environment holds ``RAY_TMPDIR=ray_tmp``: the
    Ray a command started under a private ``RAY_TMPDIR``, told from any other Ray on the
    machine (workers, whose command line Ray rewrites, inherit the variable too)."""
    tag = f"RAY_TMPDIR={ray_tmp}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if tag in (proc / "environ").read_bytes().split(b"\0") and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
                found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


def assert_no_ray_left(ray_tmp: str, within_s: float = 15.0) -> None:
    """No process of that Ray is left ``within_s`` seconds from now."""
    deadline = time.monotonic() + within_s
    while ray_processes(ray_tmp) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ray_processes(ray_tmp) == [], "Ray processes outlived the command"
