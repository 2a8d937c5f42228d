"""Reading mammography studies from a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).

Everything a caller needs to list studies, open one and fetch its images, with
the hospital's rules built in: patient identifiers come apart from the rest
of a study row so a page can hide them; only mammograms for presentation are
hung (SR, presentation states, our own derived objects are not views); repeated
views come newest first; credentials come from the environment and never
appear in an error or a log; and every failure is one :class:`PacsError`
naming the URL and the problem, within the request timeouts.
"""
from __future__ import annotations

import base64
import datetime as dt
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from core.errors import PacsError

if TYPE_CHECKING:  # pydicom and dicomweb-client load with the first client
    from dicomweb_client import DICOMwebClient
    from pydicom import Dataset

ENV_URL = "MAMMOROUTE_DICOMWEB_URL"
ENV_USER = "MAMMOROUTE_DICOMWEB_USER"
ENV_PASSWORD = "MAMMOROUTE_DICOMWEB_PASSWORD"
ENV_TOKEN = "MAMMOROUTE_DICOMWEB_TOKEN"
# (connect, read) seconds per request: a dead PACS is reported well within 30 s
TIMEOUT: tuple[float, float] = (5.0, 20.0)

# Mammograms meant to be read. "For processing" images are the detector's raw
# data, shown by no viewer; secondary captures (e.g. heat maps stored back into
# the study) and multi-frame tomosynthesis are not views of the four-view study.
VIEW_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.2": "Digital Mammography X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image",
}
# View Code Sequence meanings seen in exams whose ViewPosition is empty
_VIEW_CODE_WORDS = (("medio-lateral oblique", "MLO"), ("cranio-caudal", "CC"),
                    ("medio-lateral", "ML"), ("latero-medial", "LM"))
_VIEW_ORDER = ("RCC", "LCC", "RMLO", "LMLO")
_STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription",
                 "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
                 "PatientName", "PatientID", "PatientBirthDate")


@dataclass(frozen=True)
class PatientIdentifiers:
    """What identifies the patient, kept apart so a page shows it only on request."""

    name: str
    patient_id: str
    birth_date: str


@dataclass(frozen=True)
class StudyRow:
    """One study of a QIDO-RS search; ``identifiers`` is the only part naming the patient."""

    study_uid: str
    date: str  # YYYYMMDD or ""
    time: str
    accession: str
    description: str
    modalities: tuple[str, ...]
    series: int | None
    instances: int | None
    identifiers: PatientIdentifiers

    def to_dict(self, show_identifiers: bool = False) -> dict[str, Any]:
        """The row for a table; patient name, ID and birth date only when asked for."""
        row = {"study_uid": self.study_uid, "date": self.date, "time": self.time,
               "accession": self.accession, "description": self.description,
               "modalities": " ".join(self.modalities), "series": self.series, "instances": self.instances}
        if show_identifiers:
            row.update(patient_name=self.identifiers.name, patient_id=self.identifiers.patient_id,
                       birth_date=self.identifiers.birth_date)
        return row


@dataclass(frozen=True)
class ImageRef:
    """One mammogram of a study, described by its tags, not yet retrieved."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    laterality: str  # "R", "L" or ""
    view_position: str  # "CC", "MLO", other positions, or ""
    acquired: str  # sortable YYYYMMDDHHMMSSffffff, "" when the tags say nothing
    instance_number: int | None
    series_description: str

    @property
    def view(self) -> str:
        """``"RCC"``, ``"LMLO"``, ...; ``""`` when laterality or position is unknown."""
        return f"{self.laterality}{self.view_position}" if self.laterality and self.view_position else ""


@dataclass(frozen=True)
class StudyImages:
    """A study's mammograms in hanging order, each view's repeats newest first,
    and what was left out and why (one line per series or instance)."""

    study_uid: str
    images: tuple[ImageRef, ...]
    ignored: tuple[str, ...] = field(default=())

    def by_view(self) -> dict[str, list[ImageRef]]:
        """View → its images, newest first; images of unknown view under ``""``."""
        return by_view(self.images)


def by_view(images: Sequence[ImageRef]) -> dict[str, list[ImageRef]]:
    """View → its images in their given order (newest first after :func:`hanging_order`);
    images of unknown view under ``""``."""
    out: dict[str, list[ImageRef]] = {}
    for image in images:
        out.setdefault(image.view, []).append(image)
    return out


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _timestamp(date: str, time: str) -> str:
    """``YYYYMMDD`` + ``HHMMSS.ffffff`` → 20 sortable digits; "" without a date."""
    date = re.sub(r"\D", "", date)[:8]
    if len(date) != 8:
        return ""
    hms, _, frac = time.partition(".")
    hms = re.sub(r"\D", "", hms)[:6].ljust(6, "0")
    frac = re.sub(r"\D", "", frac)[:6].ljust(6, "0")
    return date + hms + frac


def acquisition_key(ds: Dataset) -> str:
    """When an image was made, as sortable digits: AcquisitionDateTime, else
    ContentDate + ContentTime, else AcquisitionDate + AcquisitionTime, so repeats
    of a view can be ordered newest first whatever the modality filled in."""
    adt = re.split(r"[+-]", _text(ds, "AcquisitionDateTime"))[0]
    for stamp in (_timestamp(adt[:8], adt[8:]),
                  _timestamp(_text(ds, "ContentDate"), _text(ds, "ContentTime")),
                  _timestamp(_text(ds, "AcquisitionDate"), _text(ds, "AcquisitionTime"))):
        if stamp:
            return stamp
    return ""


def _view_position(ds: Dataset) -> str:
    position = _text(ds, "ViewPosition").upper()
    if position:
        return position
    for item in ds.get("ViewCodeSequence", []) or []:
        meaning = str(item.get("CodeMeaning", "")).lower()
        for words, code in _VIEW_CODE_WORDS:
            if words in meaning:
                return code
    return ""


def image_ref(ds: Dataset) -> ImageRef:
    """An instance's metadata → :class:`ImageRef` (laterality from ImageLaterality,
    else the series' Laterality)."""
    laterality = (_text(ds, "ImageLaterality") or _text(ds, "Laterality")).upper()
    return ImageRef(
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID"), sop_class=_text(ds, "SOPClassUID"),
        laterality=laterality if laterality in ("R", "L") else "", view_position=_view_position(ds),
        acquired=acquisition_key(ds), instance_number=_int(ds, "InstanceNumber"),
        series_description=_text(ds, "SeriesDescription"))


def hanging_order(images: Sequence[ImageRef]) -> list[ImageRef]:
    """RCC, LCC, RMLO, LMLO, then other views by name, unknown last; within a
    view newest first (acquisition time, then instance number), so the first of
    each view is the one a radiologist would read."""
    newest = sorted(images, key=lambda im: (im.acquired, im.instance_number or 0), reverse=True)

    def rank(im: ImageRef) -> tuple[int, str]:
        if im.view in _VIEW_ORDER:
            return _VIEW_ORDER.index(im.view), ""
        return (len(_VIEW_ORDER), im.view) if im.view else (len(_VIEW_ORDER) + 1, "")

    return sorted(newest, key=rank)


def _date_param(value: str | dt.date | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    digits = re.sub(r"\D", "", str(value))
    if len(digits) != 8:
        raise PacsError(f"date {value!r} is not YYYY-MM-DD or YYYYMMDD")
    return digits


def _credentials() -> tuple[requests.auth.AuthBase | None, dict[str, str]]:
    """HTTP basic auth or a bearer header from the environment; names the
    variable that is wrong, never its value."""
    user, password, token = (os.environ.get(k) or None for k in (ENV_USER, ENV_PASSWORD, ENV_TOKEN))
    if token and (user or password):
        raise PacsError(f"set either {ENV_TOKEN} or {ENV_USER}/{ENV_PASSWORD}, not both")
    if token:
        return None, {"Authorization": f"Bearer {token}"}
    if bool(user) != bool(password):
        raise PacsError(f"{ENV_USER if password else ENV_PASSWORD} is not set although "
                        f"{ENV_PASSWORD if password else ENV_USER} is")
    return (requests.auth.HTTPBasicAuth(user, password) if user else None), {}


def _secrets() -> list[str]:
    """Every form in which the credentials could travel back in an answer: as
    set, and as the base64 of an HTTP basic header."""
    user, password, token = (os.environ.get(k) or "" for k in (ENV_USER, ENV_PASSWORD, ENV_TOKEN))
    basic = base64.b64encode(f"{user}:{password}".encode()).decode() if user and password else ""
    return sorted((v for v in (basic, user, password, token) if v), key=len, reverse=True)


def _connection_problem(err: Exception) -> str:
    """A failed connection in the operating system's words ("Connection refused"),
    or a PACS that hung up on a request it had accepted."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return f"cannot connect ({found.group(1).strip().rstrip('.')})"
    if "RemoteDisconnected" in text or "aborted" in text:
        return "the PACS closed the connection without answering"
    return "cannot connect"


class PacsClient:
    """A DICOMweb PACS: search studies, list a study's mammograms, retrieve and store instances.

    ``url`` is the DICOMweb root (default ``$MAMMOROUTE_DICOMWEB_URL``); basic
    credentials come from ``$MAMMOROUTE_DICOMWEB_USER`` / ``_PASSWORD`` or a bearer
    token from ``$MAMMOROUTE_DICOMWEB_TOKEN``. No request is retried: a PACS that
    is down is said to be down within one connect plus one read timeout.
    """

    def __init__(self, url: str | None = None, timeout: tuple[float, float] = TIMEOUT):
        url = (url or os.environ.get(ENV_URL) or "").strip().rstrip("/")
        if not url:
            raise PacsError(f"no DICOMweb URL: pass one or set {ENV_URL}")
        parts = urlsplit(url)
        self.url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()  # never with credentials
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError("not an http(s) DICOMweb URL", self.url)
        if parts.username or parts.password:
            raise PacsError(f"credentials belong in {ENV_USER}/{ENV_PASSWORD}, not in the URL", self.url)
        self.timeout = timeout
        auth, headers = _credentials()
        session = requests.Session()
        session.auth = auth
        session.headers.update(headers)
        from dicomweb_client import DICOMwebClient

        self._web: DICOMwebClient = DICOMwebClient(url, session=session, timeout=timeout)
        self._web.set_http_retry_params(retry=False)

    # -- errors -------------------------------------------------------------------------------

    def _fail(self, problem: str) -> PacsError:
        for secret in _secrets():
            problem = problem.replace(secret, "***")
        return PacsError(problem, self.url)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn every way a request can fail into one PacsError saying what was being done."""
        from pydicom.errors import InvalidDicomError

        try:
            yield
        except requests.HTTPError as err:
            raise self._fail(f"{what}: {self._http_problem(err.response)}") from err
        except requests.ConnectTimeout as err:
            raise self._fail(f"{what}: no connection within {self.timeout[0]:g} s") from err
        except requests.ReadTimeout as err:
            raise self._fail(f"{what}: no answer within {self.timeout[1]:g} s") from err
        except requests.ConnectionError as err:
            raise self._fail(f"{what}: {_connection_problem(err)}") from err
        except requests.RequestException as err:
            raise self._fail(f"{what}: the answer broke off mid-way ({type(err).__name__})") from err
        except (ValueError, KeyError, InvalidDicomError) as err:
            raise self._fail(f"{what}: malformed answer ({type(err).__name__})") from err

    def _http_problem(self, response: requests.Response | None) -> str:
        if response is None:
            return "HTTP error"
        problem = f"HTTP {response.status_code} {response.reason or ''}".strip()
        if response.status_code in (401, 403):
            given = bool(_secrets())
            problem += (" (the PACS refused the credentials from the environment)" if given else
                        f" (set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN})")
        return problem

    # -- QIDO-RS ------------------------------------------------------------------------------

    def find_studies(self, date_from: str | dt.date | None = None, date_to: str | dt.date | None = None,
                     accession: str | None = None, limit: int = 200) -> list[StudyRow]:
        """Studies by date range (inclusive, either end open) and accession number
        (exact, or with ``*`` / ``?`` wildcards), newest first."""
        from pydicom import Dataset

        filters: dict[str, str] = {}
        start, end = _date_param(date_from), _date_param(date_to)
        if start or end:
            filters["StudyDate"] = start if start == end else f"{start}-{end}"
        if accession:
            filters["AccessionNumber"] = accession
        with self._calling("searching studies"):
            found = self._web.search_for_studies(search_filters=filters, fields=list(_STUDY_FIELDS),
                                                 limit=limit)
            rows = [self._study_row(Dataset.from_json(item)) for item in found]
        return sorted(rows, key=lambda r: (r.date, r.time), reverse=True)

    @staticmethod
    def _study_row(ds: Dataset) -> StudyRow:
        modalities = tuple(m for m in _text(ds, "ModalitiesInStudy").split("\\") if m)
        return StudyRow(
            study_uid=_text(ds, "StudyInstanceUID"), date=_text(ds, "StudyDate"), time=_text(ds, "StudyTime"),
            accession=_text(ds, "AccessionNumber"), description=_text(ds, "StudyDescription"),
            modalities=modalities, series=_int(ds, "NumberOfStudyRelatedSeries"),
            instances=_int(ds, "NumberOfStudyRelatedInstances"),
            identifiers=PatientIdentifiers(_text(ds, "PatientName"), _text(ds, "PatientID"),
                                           _text(ds, "PatientBirthDate")))

    def study_images(self, study_uid: str) -> StudyImages:
        """The study's mammograms for presentation, in hanging order.

        Series whose Modality is neither MG nor empty (SR, PR, KO, ...) are not
        opened; in the others each instance must be of a :data:`VIEW_SOP_CLASSES`
        class. Instance tags come from WADO-RS metadata, which carries every tag,
        unlike a QIDO-RS answer.
        """
        from pydicom import Dataset

        ignored: list[str] = []
        images: list[ImageRef] = []
        with self._calling(f"listing the series of study {study_uid}"):
            try:
                found = self._web.search_for_series(study_uid, fields=["Modality", "SeriesDescription"])
            except requests.HTTPError as err:  # some PACS answer an unknown study with 404, Orthanc with []
                if err.response is None or err.response.status_code != 404:
                    raise
                found = []
            series = [Dataset.from_json(item) for item in found]
        if not series:
            raise self._fail(f"study {study_uid} not found")
        for s in series:
            series_uid, modality = _text(s, "SeriesInstanceUID"), _text(s, "Modality").upper()
            if modality not in ("MG", ""):
                ignored.append(f"series {series_uid} ({modality}): not a mammography image series")
                continue
            with self._calling(f"reading the metadata of series {series_uid}"):
                metadata = [Dataset.from_json(item, bulk_data_uri_handler=lambda *_: b"")
                            for item in self._web.retrieve_series_metadata(study_uid, series_uid)]
            for ds in metadata:
                sop_class = _text(ds, "SOPClassUID")
                if sop_class in VIEW_SOP_CLASSES:
                    images.append(image_ref(ds))
                else:
                    ignored.append(f"instance {_text(ds, 'SOPInstanceUID')} (SOP class {sop_class or 'missing'}): "
                                   "not a mammogram for presentation")
        return StudyImages(study_uid, tuple(hanging_order(images)), tuple(ignored))

    # -- WADO-RS / STOW-RS --------------------------------------------------------------------

    def retrieve(self, image: ImageRef) -> Dataset:
        """One instance as a pydicom dataset, in the transfer syntax it is stored in
        (asking for ``*`` spares the PACS a transcode; pydicom with pylibjpeg
        decodes JPEG, JPEG-LS and JPEG 2000)."""
        with self._calling(f"retrieving instance {image.sop_uid}"):
            return self._web.retrieve_instance(image.study_uid, image.series_uid, image.sop_uid,
                                               media_types=(("application/dicom", "*"),))

    def retrieve_all(self, images: Sequence[ImageRef]) -> list[Dataset]:
        """Every instance or a PacsError: a study is never half-opened."""
        return [self.retrieve(image) for image in images]

    def store(self, ds: Dataset, what: str) -> str | None:
        """STOW-RS one instance: None once stored, else the PACS's reason for
        refusing it. A PACS that cannot be reached raises PacsError instead, as
        then no instance can be stored; ``what`` (e.g. the file) names the instance."""
        with self._calling(f"storing {what}"):
            try:
                answer = self._web.store_instances([ds])
            except requests.HTTPError as err:
                return self._refusal(err.response)
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            code = failed[0].get("FailureReason")
            return f"refused by the PACS (failure reason {code if code is not None else 'not given'})"
        return None

    def _refusal(self, response: requests.Response | None) -> str:
        problem = self._http_problem(response)
        for secret in _secrets():
            problem = problem.replace(secret, "***")
        return problem
