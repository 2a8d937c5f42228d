"""Grad-CAM overlays as Secondary Capture images, marked derived and pointing at their source.

A heat map is a picture made from a mammogram, not a mammogram: it is
stored as ImageType DERIVED\\SECONDARY with a Source Image Sequence naming
the image it was computed on (purpose: source image for image processing
operation), so a viewer never hangs it as an acquisition and a reader can
find what it was drawn over.  One instance per view with an overlay, all in
one new series.

An overlay at full mammogram size is large uncompressed (2776 × 2082 RGB is
about 17 MB), so ``lossy=True`` stores it as JPEG baseline (about 30× smaller
on a phantom overlay), marked as lossy-compressed; the default stays
uncompressed so the stored pixels are exactly the overlay shown.
"""
from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from core.dicomout.common import (
    GRIDS,
    MANUFACTURER,
    SERIES_NUMBERS,
    StudyResult,
    ViewOutcome,
    check_sources,
    image_comments,
    new_series,
    series_description,
)


def _source_item(src: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = src.SOPClassUID
    item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    purpose = Dataset()
    code = codes.DCM.SourceImageForImageProcessingOperation
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = (
        code.value, code.scheme_designator, code.meaning)
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item


def _orientation(src: Dataset) -> tuple[str, str] | None:
    """The source's row/column directions, first letter only: highdicom accepts single
    letters, while an MLO carries compound values (``A\\FR``) that DICOM allows; the
    exact value (or an empty one) is set on the object after it is built."""
    value = src.get("PatientOrientation")
    return (str(value[0])[:1], str(value[1])[:1]) if value is not None and len(value) == 2 \
        else None


def _sc(view: ViewOutcome, src: Dataset, series: str, number: int,
        result: StudyResult, lossy: bool) -> hd.sc.SCImage:
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=src, pixel_array=view.cam_overlay,
        photometric_interpretation="YBR_FULL_422" if lossy else "RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=series,
        series_number=SERIES_NUMBERS["sc"], sop_instance_uid=hd.UID(), instance_number=number,
        manufacturer=MANUFACTURER, patient_orientation=_orientation(src) or ("A", "R"),
        laterality=src.get("ImageLaterality") or view.view[0],
        transfer_syntax_uid=JPEGBaseline8Bit if lossy else ExplicitVRLittleEndian)
    if lossy:  # a reader must know these pixels are not the overlay's exact values
        sc.LossyImageCompression = "01"
        sc.LossyImageCompressionMethod = "ISO_10918_1"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    # the source's exact value; a source without one gives an empty (unknown) value, never
    # the placeholder highdicom needed to build the object
    sc.PatientOrientation = src.get("PatientOrientation") or ""
    sc.SourceImageSequence = [_source_item(src)]
    sc.DerivationDescription = (f"Grad-CAM of the {GRIDS[view.cam_grid]} over {view.view}, "
                                f"run {result.run.name}")[:1024]
    sc.BurnedInAnnotation = "NO"
    sc.SeriesDescription = series_description("Grad-CAM (SC)", result)
    sc.ImageComments = image_comments(result)
    return sc


def make_scs(result: StudyResult, sources: Sequence[Dataset], lossy: bool = False
             ) -> list[hd.sc.SCImage]:
    """One Secondary Capture per view with a Grad-CAM overlay, in one new series;
    ``lossy`` stores JPEG baseline instead of exact pixels."""
    by_uid = check_sources(result, sources)
    series = new_series()
    with_cam = [v for v in result.views if v.cam_overlay is not None]
    return [_sc(v, by_uid[v.sop_instance_uid], series, i + 1, result, lossy)
            for i, v in enumerate(with_cam)]
