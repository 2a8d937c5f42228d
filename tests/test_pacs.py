"""The PACS side: a real Orthanc on 127.0.0.1 (started and stopped here), the
DICOMweb client against it, ``pacs push`` / ``pacs serve`` as commands, and
every way a PACS can fail, each one PacsError naming the URL within 30 s."""
from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import JPEG2000Lossless, generate_uid

from core.__main__ import main
from core.errors import PacsError
from core.pacs import (
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_URL,
    ENV_USER,
    PacsClient,
    local_pacs,
    missing_orthanc,
    push_folder,
)
from core.pacs import server as pacs_server
from core.pacs.client import TIMEOUT, ImageRef, hanging_order, image_ref
from core.phantom import write_phantom
from helpers import REPO, dicom_write, free_port

needs_orthanc = pytest.mark.skipif(missing_orthanc() is not None, reason=f"no local PACS: {missing_orthanc()}")
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MG_SOP = "1.2.840.10008.5.1.4.1.1.1.2"
FOUR = ["RCC", "LCC", "RMLO", "LMLO"]


# -- helpers ---------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address hex, port) of every TCP socket ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                address, port = cols[1].split(":")
                found.add((address, int(port, 16)))
    return found


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def own_address() -> str | None:
    """This machine's non-loopback IPv4 address, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def write_instance(path: Path, study: pydicom.Dataset, sop_class: str, modality: str, **attrs) -> Path:
    """A non-image instance (SR, presentation state) in a new series of ``study``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    for key in ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "PatientName", "PatientID"):
        setattr(ds, key, study.get(key, ""))
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber, ds.Modality = generate_uid(), 99, 1, modality
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


@contextmanager
def fake_pacs(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A misbehaving HTTP server on 127.0.0.1 in a thread; its DICOMweb root URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.stopping = threading.Event()  # lets a handler that stalls on purpose end with the test
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


# -- a phantom in a real Orthanc -------------------------------------------------------------

@pytest.fixture(scope="module")
def exam(tmp_path_factory) -> dict:
    """Two phantom studies with accession numbers, plus in study 1 an SR series, a
    presentation state with no Modality, a derived secondary capture with Modality
    MG (as a heat map stored back into the study has), and a later JPEG 2000
    repeat of its RCC with no Modality (an image SOP class: it is a view)."""
    root = tmp_path_factory.mktemp("exam")
    write_phantom(root / "phantom", "vindr", 2, size=64, seed=3)
    studies: dict[str, dict] = {}
    for path in sorted((root / "phantom").rglob("*.dicom")):
        ds = pydicom.dcmread(path)
        entry = studies.setdefault(ds.StudyInstanceUID, {"files": {}, "date": ds.StudyDate})
        entry["accession"] = f"ACC-{ds.PatientID[-4:]}"
        ds.AccessionNumber = entry["accession"]
        ds.save_as(path)
        entry["files"][f"{ds.ImageLaterality}{ds.ViewPosition}"] = path
    first = sorted(studies, key=lambda uid: studies[uid]["date"])[0]
    rcc = pydicom.dcmread(studies[first]["files"]["RCC"])
    extra = root / "phantom" / "extra"
    extra.mkdir()
    repeat = pydicom.dcmread(studies[first]["files"]["RCC"])
    repeat.compress(JPEG2000Lossless)
    repeat.SOPInstanceUID = repeat.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    repeat.SeriesInstanceUID, repeat.Modality, repeat.ContentTime = generate_uid(), "", "130000"
    repeat.save_as(extra / "repeat-rcc.dcm")
    sr = write_instance(extra / "report.dcm", rcc, BASIC_TEXT_SR, "SR")
    pr = write_instance(extra / "state.dcm", rcc, GSPS, "")
    sc = write_instance(extra / "overlay.dcm", rcc, SECONDARY_CAPTURE, "MG", ImageType=["DERIVED", "SECONDARY"],
                        ImageLaterality="R", ViewPosition="CC")
    return {"root": root / "phantom", "studies": studies, "first": first, "repeat": extra / "repeat-rcc.dcm",
            "rcc_pixels": rcc.pixel_array, "sr": pydicom.dcmread(sr).SOPInstanceUID,
            "pr": pydicom.dcmread(pr).SOPInstanceUID, "sc": pydicom.dcmread(sc).SOPInstanceUID}


@pytest.fixture(scope="module")
def pacs(exam, tmp_path_factory) -> Iterator[str]:
    """A real Orthanc holding the exam; after the module, no Orthanc is left."""
    if missing_orthanc():
        pytest.skip(f"no local PACS: {missing_orthanc()}")
    with local_pacs(free_port(), tmp_path_factory.mktemp("orthanc")) as server:
        report = push_folder(exam["root"], PacsClient(server.url))
        assert (len(report.stored), report.refused) == (12, [])
        assert sorted(p.suffix for p in report.skipped) == [".csv", ".csv", ".json"]
        yield server.url
    assert not alive(server.process.pid)
    assert port_free(server.port)


@needs_orthanc
def test_study_search_by_accession_and_date_keeps_identifiers_apart(pacs, exam):
    client = PacsClient(pacs)
    rows = client.find_studies()
    assert {r.study_uid for r in rows} == set(exam["studies"])
    assert [r.date for r in rows] == sorted((s["date"] for s in exam["studies"].values()), reverse=True)
    for row in rows:
        study = exam["studies"][row.study_uid]
        assert (row.accession, row.modalities) == (study["accession"], ("MG", "SR") if row.study_uid ==
                                                   exam["first"] else ("MG",))
        assert row.identifiers.name.startswith("PHANTOM^") and row.identifiers.patient_id.startswith("PHANTOM-")
        hidden, shown = row.to_dict(), row.to_dict(show_identifiers=True)
        assert not {"patient_name", "patient_id", "birth_date"} & set(hidden)
        assert not {row.identifiers.name, row.identifiers.patient_id} & {str(v) for v in hidden.values()}
        assert shown["patient_name"] == row.identifiers.name
    first = exam["studies"][exam["first"]]
    assert [r.study_uid for r in client.find_studies(accession=first["accession"])] == [exam["first"]]
    assert [r.study_uid for r in client.find_studies(date_from=first["date"], date_to=first["date"])] == [exam["first"]]
    iso = f"{first['date'][:4]}-{first['date'][4:6]}-{first['date'][6:]}"
    assert [r.study_uid for r in client.find_studies(date_to=iso)] == [exam["first"]]
    assert len(client.find_studies(date_from=iso)) == 2
    assert client.find_studies(accession="NO-SUCH") == []
    with pytest.raises(PacsError, match="date '2020-13' is not YYYY-MM-DD"):
        client.find_studies(date_from="2020-13")


@needs_orthanc
def test_study_opens_as_four_mammograms_ignoring_sr_and_presentation_state(pacs, exam):
    client = PacsClient(pacs)
    second = next(uid for uid in exam["studies"] if uid != exam["first"])
    opened = client.study_images(second)
    assert [im.view for im in opened.images] == FOUR and opened.ignored == ()
    for image in opened.images:
        on_disk = pydicom.dcmread(exam["studies"][second]["files"][image.view])
        assert (image.sop_uid, image.laterality, image.view_position) == (
            on_disk.SOPInstanceUID, on_disk.ImageLaterality, on_disk.ViewPosition)

    first = client.study_images(exam["first"])
    by_view = first.by_view()
    assert list(by_view) == FOUR and [len(v) for v in by_view.values()] == [2, 1, 1, 1]
    repeat = pydicom.dcmread(exam["repeat"], stop_before_pixels=True)
    assert by_view["RCC"][0].sop_uid == repeat.SOPInstanceUID  # 13:00 before 12:00
    assert len(first.ignored) == 3
    assert any("(SR): not a mammography image series" in line for line in first.ignored)
    assert any(exam["pr"] in line and GSPS in line for line in first.ignored)
    assert any(exam["sc"] in line and SECONDARY_CAPTURE in line for line in first.ignored)
    every = {im.sop_uid for im in first.images}
    assert not {exam["sr"], exam["pr"], exam["sc"]} & every


@needs_orthanc
def test_retrieval_keeps_the_stored_transfer_syntax_and_pixels(pacs, exam):
    client = PacsClient(pacs)
    images = client.study_images(exam["first"]).images
    datasets = client.retrieve_all(images)
    assert [ds.SOPInstanceUID for ds in datasets] == [im.sop_uid for im in images]
    newest_rcc = datasets[0]
    assert newest_rcc.file_meta.TransferSyntaxUID == JPEG2000Lossless  # not transcoded on the way
    assert np.array_equal(newest_rcc.pixel_array, exam["rcc_pixels"])
    for ds, image in zip(datasets[1:], images[1:]):
        on_disk = pydicom.dcmread(exam["studies"][exam["first"]]["files"][image.view])
        assert np.array_equal(ds.pixel_array, on_disk.pixel_array)


@needs_orthanc
def test_missing_study_and_unreachable_pacs_are_one_error_within_seconds(pacs):
    start = time.monotonic()
    with pytest.raises(PacsError) as err:
        PacsClient(pacs).study_images("1.2.3.4.999")
    assert str(err.value) == f"{pacs}: study 1.2.3.4.999 not found"
    assert time.monotonic() - start < 30

    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    start = time.monotonic()
    with pytest.raises(PacsError) as err:
        PacsClient(dead).find_studies()
    assert str(err.value) == f"{dead}: searching studies: cannot connect (Connection refused)"
    assert time.monotonic() - start < 30


# -- the local server itself -----------------------------------------------------------------

@needs_orthanc
def test_local_pacs_is_loopback_only_and_stops_even_after_an_error(tmp_path):
    port = free_port()
    with pytest.raises(RuntimeError, match="inside"):
        with local_pacs(port, tmp_path / "store") as server:
            pid = server.process.pid
            ports = listening_ports(pid)
            assert {p for _, p in ports} == {port}  # HTTP only: no DICOM port
            assert PacsClient(server.url).find_studies() == []
            address = own_address()
            if address:  # the same server seen from a non-loopback address refuses
                with pytest.raises(PacsError, match=r"HTTP 40[13]"):
                    PacsClient(server.url.replace("127.0.0.1", address)).find_studies()
            raise RuntimeError("inside")
    assert not alive(pid) and port_free(port)
    assert "Orthanc has stopped" in (tmp_path / "store" / "orthanc.log").read_text()


@needs_orthanc
def test_local_pacs_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PacsError, match=f"port {port} is already in use"):
            with local_pacs(port, tmp_path):
                pass


def test_missing_orthanc_is_one_line_naming_the_debian_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pacs_server, "ORTHANC_BINARY", tmp_path / "no-Orthanc")
    assert main(["pacs", "serve", "--port", str(free_port()), "--storage", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ")
    assert "no-Orthanc not found" in err and "apt-get install orthanc orthanc-dicomweb" in err


# -- the commands ----------------------------------------------------------------------------

def run_core(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@needs_orthanc
def test_push_command_counts_stored_refused_and_skipped(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    uids = {k: str(generate_uid()) for k in ("study", "series")}
    for name in ("a.dcm", "sub/b"):
        dicom_write(folder / name, StudyInstanceUID=uids["study"], SeriesInstanceUID=uids["series"])
    dicom_write(folder / "no-series.dcm", StudyInstanceUID=uids["study"])
    (folder / "notes.txt").write_text("not DICOM")
    with local_pacs(free_port(), tmp_path / "store") as server:
        done = run_core("pacs", "push", str(folder), "--url", server.url)
        assert done.returncode == 1, done.stderr
        assert done.stdout.strip() == f"{server.url}: stored 2, refused 1 (1 non-DICOM file(s) skipped)"
        assert done.stderr.strip() == (f"refused: {folder / 'no-series.dcm'}: lacks SeriesInstanceUID, "
                                       "so no PACS can file it")
        (folder / "no-series.dcm").unlink()
        monkeypatch.setenv(ENV_URL, server.url)
        assert main(["pacs", "push", str(folder)]) == 0
        assert "stored 2, refused 0" in capsys.readouterr().out
        assert len(PacsClient(server.url).study_images(uids["study"]).images) == 2
    assert main(["pacs", "push", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {server.url}: storing ") and "cannot connect" in err


@needs_orthanc
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "Orthanc killed"])
def test_serve_command_runs_until_stopped_and_leaves_nothing(tmp_path, how):
    port = free_port()
    url = f"http://127.0.0.1:{port}/dicom-web"
    proc = subprocess.Popen([sys.executable, "-m", "core", "pacs", "serve", "--port", str(port),
                             "--storage", str(tmp_path / "store")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()  # printed once the server answers
        assert first.strip() == f"local PACS (loopback only): {url}"
        assert PacsClient(url).find_studies() == []
        orthanc = children(proc.pid)
        assert len(orthanc) == 1 and alive(orthanc[0])
        start = time.monotonic()
        if how == "Orthanc killed":
            os.kill(orthanc[0], signal.SIGKILL)
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not alive(orthanc[0]) and port_free(port)
    assert stop_seconds < 15
    if how == "Orthanc killed":
        assert proc.returncode == 2
        assert err.strip() == (f"error: {url}: Orthanc stopped by itself (exit code -9); "
                               f"see {tmp_path / 'store' / 'orthanc.log'}")
    else:
        assert (proc.returncode, err) == (0, "")
        assert out.strip().endswith("local PACS stopped")


# -- failures against misbehaving servers ----------------------------------------------------

SECRETS = {ENV_USER: "radiologist-7f3a", ENV_PASSWORD: "pw-91c2-secret"}


class _Refuses(_Quiet):
    """Answers 401 and, as a careless server might, echoes the credentials it got."""

    seen: list[str] = []

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        _Refuses.seen.append(auth)
        decoded = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        self.send_response(401, f"Unauthorized {auth} {decoded}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_credentials_are_sent_but_never_shown(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    with fake_pacs(_Refuses) as url:
        _Refuses.seen.clear()
        with pytest.raises(PacsError) as err:
            PacsClient(url).find_studies()
        basic = base64.b64encode(f"{SECRETS[ENV_USER]}:{SECRETS[ENV_PASSWORD]}".encode()).decode()
        assert _Refuses.seen == [f"Basic {basic}"]
        message = str(err.value)
        assert message.startswith(f"{url}: searching studies: HTTP 401 Unauthorized")
        assert "refused the credentials" in message
        for secret in (*SECRETS.values(), basic):
            assert secret not in message and secret not in caplog.text

        monkeypatch.delenv(ENV_USER)
        monkeypatch.delenv(ENV_PASSWORD)
        monkeypatch.setenv(ENV_TOKEN, "tok-5e8d-secret")
        _Refuses.seen.clear()
        with pytest.raises(PacsError) as err:
            PacsClient(url).study_images("1.2.3")
        assert _Refuses.seen == ["Bearer tok-5e8d-secret"]
        assert "tok-5e8d-secret" not in str(err.value) and "tok-5e8d-secret" not in caplog.text

        monkeypatch.setenv(ENV_USER, SECRETS[ENV_USER])
        with pytest.raises(PacsError) as err:
            PacsClient(url)
        assert str(err.value) == f"set either {ENV_TOKEN} or {ENV_USER}/{ENV_PASSWORD}, not both"
    with pytest.raises(PacsError) as err:
        PacsClient("https://bob:hunter2@pacs.example.org/dicom-web")
    assert "hunter2" not in str(err.value) and str(err.value).startswith("https://pacs.example.org/dicom-web: ")


class _Silent(_Quiet):
    """Accepts the request and never answers."""

    def do_GET(self):
        self.server.stopping.wait(TIMEOUT[1] + 5)


class _BreaksOff(_Quiet):
    """Starts a multipart answer and hangs up half-way through it."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", 'multipart/related; type="application/dicom"; boundary=b')
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"--b\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 500)
        self.wfile.flush()
        self.close_connection = True


class _HangsUp(_Quiet):
    """Reads the request and closes the connection without a word."""

    def do_GET(self):
        self.close_connection = True


@pytest.mark.parametrize("handler, problem", [
    (_BreaksOff, "the answer broke off mid-way (ChunkedEncodingError)"),
    (_HangsUp, "the PACS closed the connection without answering"),
])
def test_a_retrieval_failing_mid_way_is_one_error(handler, problem):
    with fake_pacs(handler) as url:
        ref = ImageRef("1.2.3", "1.2.3.4", "1.2.3.4.5", MG_SOP, "R", "CC", "", 1, "")
        start = time.monotonic()
        with pytest.raises(PacsError) as err:
            PacsClient(url).retrieve_all([ref])
        assert str(err.value) == f"{url}: retrieving instance 1.2.3.4.5: {problem}"
        assert time.monotonic() - start < 30


class _Answers(_Quiet):
    """Answers every GET with one HTTP status and no body."""

    status = 404
    seen = 0

    def do_GET(self):
        type(self).seen += 1
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_http_errors_are_one_line_and_never_retried():
    with fake_pacs(_Answers) as url:
        _Answers.status = 404
        with pytest.raises(PacsError) as err:
            PacsClient(url).study_images("1.2.3.9")
        assert str(err.value) == f"{url}: study 1.2.3.9 not found"
        _Answers.status, _Answers.seen = 503, 0
        start = time.monotonic()
        with pytest.raises(PacsError) as err:
            PacsClient(url).find_studies()
        assert str(err.value) == f"{url}: searching studies: HTTP 503 Service Unavailable"
        assert _Answers.seen == 1 and time.monotonic() - start < 5  # dicomweb-client would retry for 30 s


def test_a_pacs_that_never_answers_is_reported_within_30_seconds():
    with fake_pacs(_Silent) as url:
        start = time.monotonic()
        with pytest.raises(PacsError) as err:
            PacsClient(url).find_studies()
        elapsed = time.monotonic() - start
    assert str(err.value) == f"{url}: searching studies: no answer within {TIMEOUT[1]:g} s"
    assert TIMEOUT[1] - 1 < elapsed < 30


def test_no_url_names_the_variable(monkeypatch):
    monkeypatch.delenv(ENV_URL, raising=False)
    with pytest.raises(PacsError, match=f"no DICOMweb URL: pass one or set {ENV_URL}"):
        PacsClient()


# -- ordering of repeated views, from tags alone ---------------------------------------------

def _ref(label: str, **tags) -> ImageRef:
    ds = pydicom.Dataset()
    ds.SOPInstanceUID, ds.SOPClassUID, ds.SeriesDescription = generate_uid(), MG_SOP, label
    for key, value in tags.items():
        setattr(ds, key, value)
    return image_ref(ds)


def _code(meaning: str) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeMeaning = meaning
    return item


def test_repeats_come_newest_first_by_acquisition_then_content_time_then_number():
    refs = [
        _ref("old", ImageLaterality="R", ViewPosition="CC", AcquisitionDateTime="20240101093000"),
        _ref("new", ImageLaterality="R", ViewPosition="CC", AcquisitionDateTime="20240101101500.25+0100"),
        _ref("content", ImageLaterality="R", ViewPosition="CC", ContentDate="20240101", ContentTime="1000"),
        _ref("n1", Laterality="L", ViewPosition="MLO", InstanceNumber=1),
        _ref("n3", Laterality="L", ViewPosition="MLO", InstanceNumber=3),
        _ref("coded", ImageLaterality="L", ViewCodeSequence=[_code("cranio-caudal")]),
        _ref("unknown", ImageLaterality="R"),
        _ref("spot", ImageLaterality="L", ViewPosition="XCCL"),
    ]
    ordered = hanging_order(refs)
    assert [(r.view, r.series_description) for r in ordered] == [
        ("RCC", "new"), ("RCC", "content"), ("RCC", "old"), ("LCC", "coded"),
        ("LMLO", "n3"), ("LMLO", "n1"), ("LXCCL", "spot"), ("", "unknown")]



@needs_orthanc
def test_pacs_benchmark_prints_its_figures_as_json():
    done = subprocess.run([sys.executable, "-m", "benchmarks.pacs", "--studies", "1", "--size", "64", "--j2k",
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert (data["files"], data["stored"], data["refused"], data["views"]) == (4, 4, 0, FOUR)
    assert data["transfer_syntax"] == JPEG2000Lossless.name and data["rows_columns"][0] == 64
    assert all(data[k] >= 0 for k in ("start_s", "push_s", "qido_s", "open_s", "retrieve_s", "decode_s", "stop_s"))


def test_half_set_credentials_name_the_missing_variable_not_the_value(monkeypatch):
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    monkeypatch.setenv(ENV_USER, SECRETS[ENV_USER])
    with pytest.raises(PacsError) as err:
        PacsClient("http://127.0.0.1:1/dicom-web")
    assert str(err.value) == f"{ENV_PASSWORD} is not set although {ENV_USER} is"


@needs_orthanc
def test_pacs_benchmark_times_open_to_four_predictions(tmp_path):
    """``--review``: a one-study folder pushed, opened as case review opens it, predicted
    with Grad-CAM by a demo-like run; each round's figures add up."""
    write_phantom(tmp_path / "phantom", "vindr", 1, size=64, seed=2)
    [folder] = {p.parent for p in (tmp_path / "phantom").rglob("*.dicom")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.pacs", "--review", str(folder), "--repeats", "1",
                           "--img-size", "32", "--json"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert (data["stored"], data["refused"], data["views"], data["tags_added"]) == (4, 0, FOUR, [])
    [r] = data["rounds"]
    assert r["open_to_hung_s"] > 0 and r["predict_cam_s"] > 0
    assert abs(r["open_to_hung_s"] + r["predict_cam_s"] - r["open_to_predictions_s"]) <= 0.02


def _gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


@needs_orthanc
def test_demo_pacs_holds_the_phantoms_dicoms_and_never_outlives_the_app(tmp_path):
    """The app's demo PACS: filled with a phantom's DICOMs (its CSV / JSON left out);
    it stops when the app's process ends however it ends, and Orthanc stops when
    ``serve`` is killed outright."""
    from urllib.parse import urlsplit

    from core.pacs.demo import fill, start_demo_pacs

    write_phantom(tmp_path / "phantom", "vindr", 1, size=64, seed=1)
    app = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    servers = []
    try:
        pacs = start_demo_pacs(tmp_path / "store", app.pid)
        servers.append(pacs)
        report = fill(pacs.url, (tmp_path / "phantom").rglob("*"))
        assert (len(report.stored), report.refused, report.skipped) == (4, [], [])
        assert len(PacsClient(pacs.url).find_studies()) == 1
        [orthanc] = children(pacs.process.pid)
        os.killpg(app.pid, signal.SIGKILL)  # the app killed outright
        app.wait()
        assert pacs.process.wait(15) == 0
        assert _gone(orthanc) and port_free(urlsplit(pacs.url).port)

        again = start_demo_pacs(tmp_path / "store", os.getpid())  # the same storage: studies kept
        servers.append(again)
        assert len(PacsClient(again.url).find_studies()) == 1
        [orthanc] = children(again.process.pid)
        os.killpg(again.process.pid, signal.SIGKILL)  # serve killed outright: Orthanc follows
        again.process.wait()
        assert _gone(orthanc) and port_free(urlsplit(again.url).port)
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
        for server in servers:
            server.stop()


@needs_orthanc
def test_case_reviews_demo_button_fills_a_local_pacs_with_the_runs_test_studies(tmp_path, monkeypatch):
    """Case review's PACS source on a synthetic run: the button starts the local PACS,
    stores the run's test-split DICOMs, fills in the URL and lists those studies."""
    from streamlit.testing.v1 import AppTest
    from test_app import PAGES, write_run

    from core.datasets import load_dataset

    ck, data = tmp_path / "checkpoints", tmp_path / "data"
    monkeypatch.setenv("MAMMOROUTE_CHECKPOINTS", str(ck))
    monkeypatch.setenv("MAMMOROUTE_DATA", str(data))
    monkeypatch.delenv(ENV_URL, raising=False)
    write_phantom(data / "phantom-vindr", "vindr", 8, size=64, seed=1)
    test = load_dataset(data / "phantom-vindr").query("split == 'test'")
    write_run(ck, data / "phantom-vindr", (b"", "0" * 64), "demo-run")  # no model is loaded here
    at = AppTest.from_file(str(PAGES / "case_review.py"), default_timeout=120)
    at.session_state["run_name"], at.session_state["case_source"] = "demo-run", "pacs"
    at.run()
    [button] = [b for b in at.button if b.label == "Start a local PACS with the phantom's test studies"]
    button.click().run()
    try:
        assert not at.exception and not at.error, [e.value for e in at.error]
        url = at.text_input(key="pacs_url").value
        assert url.startswith("http://127.0.0.1:") and url.endswith("/dicom-web")
        captions = " ".join(c.value for c in at.caption)
        assert f"{len(test)} test images of run demo-run stored" in captions
        assert "SYNTHETIC PHANTOM" in captions
        assert len(at.table[0].value) == test["study_id"].nunique() == len(PacsClient(url).find_studies())
    finally:
        from ui.pacs import _demo_servers

        server = _demo_servers().pop("demo")
        [orthanc] = children(server.process.pid)
        server.stop()
    assert _gone(orthanc)


@needs_orthanc
def test_a_study_whose_tags_name_no_view_opens_with_its_images_placed_by_their_pixels(tmp_path):
    """Images without ViewPosition (as some research exports) are opened with the study
    and placed by laterality tag and pixels, as an upload would be."""
    from core.pixels.spec import PreprocessParams
    from core.review.pacs_study import open_study

    write_phantom(tmp_path / "phantom", "vindr", 1, size=128, seed=2)
    truth = {}
    for path in (tmp_path / "phantom").rglob("*.dicom"):
        ds = pydicom.dcmread(path)
        truth[ds.SOPInstanceUID] = f"{ds.ImageLaterality}{ds.ViewPosition}"
        del ds.ViewPosition
        ds.save_as(path)
    with local_pacs(free_port(), tmp_path / "store") as server:
        client = PacsClient(server.url)
        push_folder(tmp_path / "phantom", client)
        study = open_study(client, client.find_studies()[0].study_uid, PreprocessParams(64))
    assert set(study.picked.values()) == {None} and sorted(study.unplaced) == sorted(truth)
    views = study.views()
    assert {v.key: v.view for v in views} == truth
    assert {v.view_source for v in views} == {"image"}
