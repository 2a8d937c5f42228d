"""The PACS side of the hospital: a local Orthanc for the demo and the tests,
a DICOMweb client to list, open and retrieve mammography studies, and a push
of DICOM files into a PACS."""
from core.pacs.client import (
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_URL,
    ENV_USER,
    ImageRef,
    PacsClient,
    PatientIdentifiers,
    StudyImages,
    StudyRow,
)
from core.pacs.push import PushReport, push_folder
from core.pacs.server import LocalPacs, local_pacs, missing_orthanc

__all__ = [
    "ENV_PASSWORD", "ENV_TOKEN", "ENV_URL", "ENV_USER", "ImageRef", "LocalPacs", "PacsClient",
    "PatientIdentifiers", "PushReport", "StudyImages", "StudyRow", "local_pacs", "missing_orthanc",
    "push_folder",
]
