"""VinDr-style DICOM files: pixels stored with the variety real archives show
(MONOCHROME1/2, 12-16 bits, rescale, padding, several windows, VOI LUTs).

The variety is the point: the DICOM reader has to cope with all of it, and a
phantom that wrote one tidy encoding would test none of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.phantom.profiles import SYNTHETIC_NAME

if TYPE_CHECKING:  # pydicom loads when a DICOM is written, not with the package
    from pydicom import Dataset


@dataclass(frozen=True)
class Encoding:
    """How one DICOM stores its pixels: the variety real archives show."""

    mono1: bool
    bits: int
    slope: float
    intercept: float
    padding: bool
    windows: int
    sigmoid: bool
    voi_lut: bool


def pick_encodings(rng: np.random.Generator, n: int) -> list[Encoding]:
    """Encodings for ``n`` images; every third is MONOCHROME1, so any few
    consecutive images cover both photometric interpretations."""
    out = []
    for k in range(n):
        mono1 = k % 3 == 2
        bits = int(rng.choice([12, 14, 16], p=[0.45, 0.35, 0.20]))
        rescale = rng.random() < 0.3
        slope, intercept = ((float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([0, -100, 50])))
                            if rescale else (1.0, 0.0))
        out.append(Encoding(mono1, bits, slope, intercept, rng.random() < 0.3,
                            int(rng.choice([1, 2, 3], p=[0.6, 0.15, 0.25])), rng.random() < 0.15,
                            rng.random() < 0.08))
    return out


def _stored_pixels(img: np.ndarray, enc: Encoding, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Display intensity 0..1 → stored uint16 and the tags that undo it.

    Windows are stated in modality units (after Rescale), and for MONOCHROME1
    the stored values run the other way, as in real files.
    """
    maxv = (1 << enc.bits) - 1
    lo, hi = maxv * rng.uniform(0.03, 0.12), maxv * rng.uniform(0.80, 0.97)
    disp = lo + img * (hi - lo)
    stored = maxv - disp if enc.mono1 else disp
    stored = np.clip(np.round(stored), 0, maxv).astype(np.uint16)
    tags: dict[str, Any] = {}
    air = img <= 0
    if enc.padding:
        pad = maxv if enc.mono1 else 0
        stored[air] = pad
        tags["PixelPaddingValue"] = pad
    breast_lo, breast_hi = lo + 0.15 * (hi - lo), hi
    if enc.mono1:
        breast_lo, breast_hi = maxv - breast_hi, maxv - breast_lo
    mod_lo, mod_hi = breast_lo * enc.slope + enc.intercept, breast_hi * enc.slope + enc.intercept
    centre, width = (mod_lo + mod_hi) / 2, abs(mod_hi - mod_lo)
    harder = centre + (-0.1 if enc.mono1 else 0.1) * width  # toward the dense end of the range
    windows = [(centre, width, "NORMAL"), (harder, width * 0.7, "HARDER"), (centre, width * 1.4, "SOFTER")]
    centres, widths, names = (list(col) for col in zip(*windows[:enc.windows]))
    tags["WindowCenter"] = [round(c, 1) for c in centres] if len(centres) > 1 else round(centre, 1)
    tags["WindowWidth"] = [round(x, 1) for x in widths] if len(widths) > 1 else round(width, 1)
    tags["WindowCenterWidthExplanation"] = names if len(names) > 1 else names[0]
    if enc.sigmoid:
        tags["VOILUTFunction"] = "SIGMOID"
    if enc.slope != 1.0 or enc.intercept != 0.0 or enc.bits == 16:
        tags["RescaleSlope"], tags["RescaleIntercept"], tags["RescaleType"] = enc.slope, enc.intercept, "US"
    return stored, tags


def _voi_lut_item(centre: float, width: float) -> Dataset:
    """A VOI LUT Sequence item equivalent to the NORMAL window (12-bit output),
    indexed by modality values as the standard says."""
    from pydicom import Dataset

    first = int(max(0, centre - width / 2))
    n = int(min(65535, max(2, width)))
    x = np.arange(n) + first
    y = np.clip((x - (centre - width / 2)) / width, 0, 1) * 4095
    item = Dataset()
    item.LUTDescriptor = [n, first, 12]
    item.LUTExplanation = "SYNTHETIC LINEAR"
    item.LUTData = np.round(y).astype(np.uint16).tobytes()
    item["LUTData"].VR = "OW"
    return item


def dicom_uid(*parts: Any) -> str:
    """A valid DICOM UID derived from ``parts``, so the same seed gives the same UIDs."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["mammoroute-phantom", *map(str, parts)]))


def write_dicom(path: Path, img: np.ndarray, enc: Encoding, meta: dict[str, Any],
                rng: np.random.Generator) -> None:
    """Write ``img`` (display intensity 0..1) as a For-Presentation mammogram,
    labelled synthetic in every name a viewer shows."""
    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
    stored, tags = _stored_pixels(img, enc, rng)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = meta["sop_uid"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "MAMMOROUTE_PH"
    ds = Dataset()
    ds.file_meta = fm
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta["sop_uid"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = meta["date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = ds.InstitutionName = SYNTHETIC_NAME
    ds.ManufacturerModelName = "phantom"
    ds.StudyDescription = "SYNTHETIC PHANTOM MAMMOGRAM"
    ds.SeriesDescription = f"{meta['laterality']} {meta['position']} (synthetic)"
    ds.PatientName = meta["patient_name"]
    ds.PatientID = meta["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.PatientAge = f"{meta['age']:03d}Y"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = meta["study_uid"], meta["series_uid"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", meta["series_number"], 1
    ds.PatientOrientation = meta["orientation"]
    ds.ImageLaterality = ds.Laterality = meta["laterality"]
    ds.ViewPosition = meta["position"]
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if enc.mono1 else "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, enc.bits, enc.bits - 1, 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if enc.mono1 else -1
    for key, value in tags.items():
        setattr(ds, key, value)
    centre = tags["WindowCenter"][0] if isinstance(tags["WindowCenter"], list) else tags["WindowCenter"]
    width = tags["WindowWidth"][0] if isinstance(tags["WindowWidth"], list) else tags["WindowWidth"]
    if enc.voi_lut and "RescaleSlope" not in tags and 2 <= width <= 65535 and centre - width / 2 >= 0:
        ds.VOILUTSequence = [_voi_lut_item(centre, width)]
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(path, enforce_file_format=True)
