"""The study's results as a Structured Report: a TID 1500 Measurement Report.

Why TID 1500 and not the Mammography CAD SR (TID 4000): the CAD templates
(TID 4000–4023: single-image findings, composite features, detection and
analysis summaries, with their own rules on what may nest where) are not in
highdicom, and building them item by item is error-prone in ways a
validator does not catch; a wrongly nested CAD SR misleads a workstation
that trusts it.  TID 1500 is built by highdicom from typed parts and every
viewer that reads measurement reports reads it.

Layout (one Comprehensive 3D SR, a new series each call):

* observer: a device (MammoRoute, model name = run, serial = run identity);
  the document is complete, preliminary and unverified (machine output);
* per view, a measurement group (TID 1501) referencing its source image,
  finding site breast + laterality, algorithm identification (MammoRoute,
  version, and as parameters the run, its identity, "research software, not
  for diagnosis" and the SHA-256 of every serving model),
  and: ``Probability of cancer`` (DCM 111047) and ``Threshold Value``
  (DCM 122411) per grid, told apart by their measurement method (a local
  code per grid); the call per grid (SCT Malignant / Benign, or a local
  "no call"); the ROI source; the routed cell and any fallback as text;
* per breast, a group with finding site breast + laterality referencing the
  breast's views: the call per grid, and the deciding view per grid as text
  (its view name) and UID reference (its SOP Instance UID).

Concepts without a standard code use the local scheme :data:`SCHEME`
(a ``99`` private designator, declared in Coding Scheme Identification).
"""
from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes

from core.dicomout.common import (
    GRIDS,
    MANUFACTURER,
    ROI_SOURCES,
    SERIES_NUMBERS,
    BreastOutcome,
    Call,
    GridOutcome,
    StudyResult,
    ViewOutcome,
    check_sources,
    laterality_code,
    new_series,
    run_parameters,
    series_description,
)

SCHEME = "99MMRT"
SCHEME_NAME = "MammoRoute local codes"


def local(value: str, meaning: str) -> hd.sr.CodedConcept:
    """A concept of the local scheme :data:`SCHEME`."""
    return hd.sr.CodedConcept(value, SCHEME, meaning)


def _std(code: object) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)  # type: ignore[attr-defined]


GRID_METHOD = {grid: local(f"GRID-{grid.upper()}", title) for grid, title in GRIDS.items()}
CALL_NAME = {grid: local(f"CALL-{grid.upper()}", f"Call of the {title}")
             for grid, title in GRIDS.items()}
CALL_VALUE: dict[str | None, hd.sr.CodedConcept] = {
    "malignant": _std(codes.SCT.Malignant), "benign": _std(codes.SCT.Benign),
    None: local("NO-CALL", "No call"),
}
ROI_SOURCE_NAME = local("ROI-SOURCE", "ROI source")
ROI_SOURCE_VALUE = {key: local(f"ROI-{key.upper()}", meaning) for key, meaning in ROI_SOURCES.items()}
CELL_NAME = local("ROUTED-CELL", "Routed cell")
FALLBACK_NAME = local("FALLBACK", "Fallback")
DECIDING_VIEW = {grid: local(f"DECIDING-{grid.upper()}", f"Deciding view of the {title}")
                 for grid, title in GRIDS.items()}
DECIDING_UID = {grid: local(f"DECIDING-UID-{grid.upper()}",
                            f"Deciding view SOP Instance UID, {title}")
                for grid, title in GRIDS.items()}
PROBABILITY = _std(codes.DCM.ProbabilityOfCancer)
THRESHOLD = _std(codes.DCM.ThresholdValue)
NO_UNITS = _std(codes.UCUM.NoUnits)


def call_of(value: hd.sr.CodedConcept) -> Call | None:
    """The call a coded value stands for (the inverse of :data:`CALL_VALUE`)."""
    for call, code in CALL_VALUE.items():
        if code == value:
            return call  # type: ignore[return-value]
    raise ValueError(f"{value} is not a call")


def _grid_items(outcome: GridOutcome, grid: str
                ) -> tuple[list[hd.sr.Measurement], hd.sr.QualitativeEvaluation]:
    """A grid's probability and threshold (method = the grid) and its call.  The group,
    not each number, carries the algorithm identification, so the hashes appear once."""
    measurements = [hd.sr.Measurement(name=name, value=float(value), unit=NO_UNITS,
                                      method=GRID_METHOD[grid])
                    for name, value in ((PROBABILITY, outcome.probability),
                                        (THRESHOLD, outcome.threshold)) if value is not None]
    return measurements, hd.sr.QualitativeEvaluation(CALL_NAME[grid], CALL_VALUE[outcome.call])


def _finding_site(side: str) -> hd.sr.FindingSite:
    return hd.sr.FindingSite(anatomic_location=_std(codes.SCT.Breast),
                             laterality=laterality_code(side))


def _source(ds: Dataset) -> hd.sr.SourceImageForMeasurementGroup:
    return hd.sr.SourceImageForMeasurementGroup(str(ds.SOPClassUID), str(ds.SOPInstanceUID))


def _append(group: hd.sr.MeasurementsAndQualitativeEvaluations,
            items: Sequence[hd.sr.ContentItem]) -> None:
    """Add content items to a group's container (text and UID references that the typed
    TID 1501 parts have no slot for; Comprehensive 3D SR allows them under CONTAINS)."""
    for item in items:
        group[0].ContentSequence.append(item)


def _contains_text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value,
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _view_group(view: ViewOutcome, src: Dataset, algorithm: hd.sr.AlgorithmIdentification
                ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements, evaluations = [], []
    for grid in GRIDS:
        m, e = _grid_items(getattr(view, grid), grid)
        measurements += m
        evaluations.append(e)
    evaluations.append(hd.sr.QualitativeEvaluation(ROI_SOURCE_NAME,
                                                   ROI_SOURCE_VALUE[view.roi_source]))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"view {view.view}"),
        finding_sites=[_finding_site(view.view[0])], algorithm_id=algorithm,
        measurements=measurements, qualitative_evaluations=evaluations,
        source_images=[_source(src)])
    items = [_contains_text(CELL_NAME, view.cell)]
    if view.fallback:
        items.append(_contains_text(FALLBACK_NAME, view.fallback))
    _append(group, items)
    return group


def _breast_group(breast: BreastOutcome, views: dict[str, ViewOutcome], by_uid: dict[str, Dataset],
                  algorithm: hd.sr.AlgorithmIdentification
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    own = [v for v in views.values() if v.view[0] == breast.laterality]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"breast {breast.laterality}"),
        finding_sites=[_finding_site(breast.laterality)], algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(CALL_NAME[g],
                                                             CALL_VALUE[getattr(breast, g).call])
                                 for g in GRIDS],
        source_images=[_source(by_uid[v.sop_instance_uid]) for v in own] or None)
    items: list[hd.sr.ContentItem] = []
    for grid in GRIDS:
        uid = getattr(breast, grid).deciding_view
        if uid is None:
            continue
        items += [_contains_text(DECIDING_VIEW[grid], views[uid].view),
                  hd.sr.UIDRefContentItem(name=DECIDING_UID[grid], value=uid,
                                          relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
    _append(group, items)
    return group


def make_sr(result: StudyResult, sources: Sequence[Dataset]) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 report of ``result`` over ``sources``, in a new series of their study."""
    by_uid = check_sources(result, sources)
    run = result.run
    algorithm = hd.sr.AlgorithmIdentification(
        name=MANUFACTURER, version=run.version,
        parameters=[f"{k}={v}" for k, v in run_parameters(run).items()])
    observer = hd.sr.ObserverContext(
        observer_type=_std(codes.DCM.Device),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=f"{MANUFACTURER} {run.version}", manufacturer_name=MANUFACTURER,
            model_name=run.name[:64], serial_number=run.identity[:64]))
    views = {v.sop_instance_uid: v for v in result.views}
    groups = [_view_group(v, by_uid[v.sop_instance_uid], algorithm) for v in result.views]
    groups += [_breast_group(b, views, by_uid, algorithm) for b in result.breasts]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_std(codes.SCT.Mammography), imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(by_uid.values()), content=report[0], series_instance_uid=new_series(),
        series_number=SERIES_NUMBERS["sr"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True,
        is_final=False, is_verified=False)  # machine output nobody has verified: preliminary
    sr.SeriesDescription = series_description("results (SR)", result)
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: routing texts say "≥" and "–"
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
