"""The ROIs that routed each view, as DICOM Segmentation (BINARY).

A view routed "with ROI" was routed by a drawn box, a mask file, the
dataset's annotation or an accepted proposal of the ROI finder; storing that
ROI lets a reader see exactly which region sent the view to the "with ROI"
model.  Only the ROI's presence routes, so the segment is labelled as the
routing ROI, not as a lesion outline a model drew.

highdicom requires a Segmentation's source images to share one series and
one size, and each mammography view is its own series, so the result is one
Segmentation instance per view with an ROI (one segment each, referencing
that view's image), all in one new series.  No view with an ROI: no object.
"""
from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes

from core.dicomout.common import (
    MANUFACTURER,
    ROI_SOURCES,
    SERIES_NUMBERS,
    StudyResult,
    ViewOutcome,
    check_sources,
    image_comments,
    new_series,
    seg_algorithm,
    series_description,
)

CONTENT_LABEL = "ROUTING_ROI"


def _segment(view: ViewOutcome, result: StudyResult) -> hd.seg.SegmentDescription:
    """One segment: the view's routing ROI.  A finder's proposal that a person accepted is
    SEMIAUTOMATIC (with the algorithm named); a drawn box, a mask file or the dataset's
    annotation is MANUAL."""
    proposed = view.roi_source == "proposed"
    return hd.seg.SegmentDescription(
        segment_number=1, segment_label=f"ROI {view.view} ({view.roi_source})"[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type="SEMIAUTOMATIC" if proposed else "MANUAL",
        algorithm_identification=seg_algorithm(result.run) if proposed else None,
        tracking_id=f"ROI {view.view}", tracking_uid=hd.UID(),
        anatomic_regions=[codes.SCT.Breast])


def make_segs(result: StudyResult, sources: Sequence[Dataset]) -> list[hd.seg.Segmentation]:
    """One Segmentation per view whose ROI mask has pixels, all in one new series; [] if none."""
    by_uid = check_sources(result, sources)
    series = new_series()
    out = []
    for view in result.views:
        if view.roi_mask is None or not view.roi_mask.any():
            continue
        src = by_uid[view.sop_instance_uid]
        seg = hd.seg.Segmentation(
            source_images=[src], pixel_array=view.roi_mask.astype(bool),
            segmentation_type="BINARY", segment_descriptions=[_segment(view, result)],
            series_instance_uid=series, series_number=SERIES_NUMBERS["seg"],
            sop_instance_uid=hd.UID(), instance_number=len(out) + 1,
            manufacturer=MANUFACTURER, manufacturer_model_name=result.run.name[:64],
            software_versions=result.run.version, device_serial_number=result.run.identity[:64],
            content_label=CONTENT_LABEL,
            content_description=f"ROI that routed {view.view}: {ROI_SOURCES[view.roi_source]}"[:64])
        seg.SeriesDescription = series_description("routing ROIs (SEG)", result)
        seg.ImageComments = image_comments(result)
        # the General Image module needs it for a 2D image: the source's, or empty (unknown)
        seg.PatientOrientation = src.get("PatientOrientation") or ""
        out.append(seg)
    return out
