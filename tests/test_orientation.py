"""One orientation for the model: every input's chest wall on one side, decided once.

A mirrored copy of a view must reach the model as the same pixels (and so get
the same probabilities); masks, Grad-CAM maps and the ROI finder's boxes go
through the same flip; the hanging uses the same decision and says when the
tags and the pixels disagree.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from core.errors import CheckpointError, ImageReadError
from core.pixels.crop import map_to_full, mask_to_input
from core.pixels.preprocess import prepare_input
from core.pixels.spec import PreprocessParams
from helpers import dicom_write

SIZE = 64
LESION = (22, 70)  # (x, y) of the lesion in the 96 × 128 view below (chest wall on the left)


def breast(seed: int = 0) -> np.ndarray:
    """A 128 × 96 uint8 view: a textured half-ellipse breast on the left edge, a bright
    lesion, air elsewhere; lopsided top to bottom like a real outline."""
    rng = np.random.default_rng(seed)
    img = np.zeros((128, 96), np.uint8)
    cv2.ellipse(img, (0, 60), (70, 56), 0, -90, 90, 1, -1)
    tissue = cv2.GaussianBlur(rng.normal(120, 40, img.shape).astype(np.float32), (0, 0), 2)
    img = np.where(img > 0, np.clip(tissue, 40, 220), 0).astype(np.uint8)
    cv2.circle(img, LESION, 6, 250, -1)
    return img


def lesion_mask(shape=(128, 96)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, LESION, 6, 1, -1)
    return mask


# --------------------------------------------------------------------------- the decision

def test_patient_orientation_row_direction_decides_the_chest_wall_side():
    from core.pixels.orientation import chest_wall, tagged_chest_wall_on_left

    assert tagged_chest_wall_on_left("A\\R") is True  # rows run towards the nipple
    assert tagged_chest_wall_on_left(("P", "FL")) is False
    assert tagged_chest_wall_on_left(None) is None and tagged_chest_wall_on_left(("F", "L")) is None
    img = breast()
    assert (chest_wall(img).on_left, chest_wall(img).source) == (True, "image")
    assert chest_wall(img[:, ::-1]).on_left is False
    agreed = chest_wall(img, ("A", "R"))
    assert (agreed.on_left, agreed.source, agreed.warning) == (True, "tags", None)
    contradicted = chest_wall(img, ("P", "L"))
    assert (contradicted.on_left, contradicted.source) == (False, "tags")
    assert "PatientOrientation" in contradicted.warning and "mirrored" in contradicted.warning


# --------------------------------------------------------------------------- the model input

def test_a_mirrored_view_gives_the_model_the_same_input():
    params = PreprocessParams(SIZE)
    img = breast()
    original, box = prepare_input(img, params)
    mirrored, mbox = prepare_input(np.ascontiguousarray(img[:, ::-1]), params)
    diff = np.abs(original.astype(int) - mirrored.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8, (diff.mean(), diff.max())
    # the chest wall of both inputs is on the left: the bright tissue fills the left edge
    assert original[:, :3].mean() > 2 * original[:, -3:].mean()
    assert mirrored[:, :3].mean() > 2 * mirrored[:, -3:].mean()
    assert not box.mirrored and mbox.mirrored


def test_keeping_each_files_orientation_is_a_spec_choice():
    params = PreprocessParams(SIZE, chest_wall="as-is")
    img = breast()
    original, _ = prepare_input(img, params)
    mirrored, mbox = prepare_input(np.ascontiguousarray(img[:, ::-1]), params)
    assert not mbox.mirrored and np.abs(original.astype(int) - mirrored.astype(int)).mean() > 10


def test_masks_maps_and_finder_boxes_go_through_the_same_flip():
    from core.roifinder.geometry import component_boxes, input_to_full

    params = PreprocessParams(SIZE, clahe_clip=0.0)
    img = np.ascontiguousarray(breast()[:, ::-1])  # a right-facing copy: flipped for the model
    mask = np.ascontiguousarray(lesion_mask()[:, ::-1])
    x, y = img.shape[1] - 1 - LESION[0], LESION[1]
    inp, box = prepare_input(img, params)
    assert box.mirrored
    small = mask_to_input(mask, box, SIZE)
    ys, xs = np.nonzero(small)
    assert inp[ys, xs].mean() > 200, "the mask lands on the bright lesion of the input"
    back = map_to_full(small.astype(np.float32), box, img.shape)
    ys, xs = np.nonzero(back > 0.5)
    assert abs(xs.mean() - x) < 3 and abs(ys.mean() - y) < 3
    (found,), _ = component_boxes(small.astype(np.float32), 0.5)
    x0, y0, x1, y1 = input_to_full([found], box, SIZE, img.shape)[0]
    assert x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2, (x0, x1, x)


# --------------------------------------------------------------------------- end to end

def _probabilities(run, files) -> list[float]:
    from core.predict import Predictor, ViewInput

    predictor = Predictor(run)
    out = []
    for path in files:
        (result,) = predictor.predict_study([ViewInput(path=path, view="LCC")], propose=False)
        assert result.error is None, result.error
        out.append(result.p_malignant_baseline)
    return out


@pytest.mark.usefixtures("one_thread")
def test_a_mirrored_copy_gets_the_same_probabilities_through_the_predictor(tmp_path):
    from test_predict import make_run

    run = make_run(tmp_path / "run", modes=("baseline",), marked=False, spec=PreprocessParams(SIZE))
    img = breast()
    cv2.imwrite(str(tmp_path / "view.png"), img)
    cv2.imwrite(str(tmp_path / "mirrored.png"), np.ascontiguousarray(img[:, ::-1]))
    p, p_mirrored = _probabilities(run, [tmp_path / "view.png", tmp_path / "mirrored.png"])
    assert abs(p - p_mirrored) <= 1e-3, (p, p_mirrored)
    # the same model does tell the two apart when they are served as they come
    as_is = make_run(tmp_path / "as-is", modes=("baseline",), marked=False,
                     spec=PreprocessParams(SIZE, chest_wall="as-is"))
    q, q_mirrored = _probabilities(as_is, [tmp_path / "view.png", tmp_path / "mirrored.png"])
    assert abs(q - q_mirrored) > 1e-3, (q, q_mirrored)


# --------------------------------------------------------------------------- files and runs

def test_for_processing_images_are_refused_naming_the_tag(tmp_path):
    from core.pixels.read import read_image

    path = dicom_write(tmp_path / "raw.dcm", PresentationIntentType="FOR PROCESSING")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "PresentationIntentType" in message
    assert "FOR PROCESSING" in message and "\n" not in message
    ok = dicom_write(tmp_path / "shown.dcm", PresentationIntentType="FOR PRESENTATION",
                     PatientOrientation=["A", "R"])
    assert read_image(ok).tags["patient_orientation"] == ("A", "R")


def test_the_spec_records_the_chest_wall_side_and_older_runs_are_refused(tmp_path):
    from core.pixels.spec import PREPROCESS_VERSION

    block = PreprocessParams(SIZE).to_json()
    assert block["chest_wall"] == "left" and block["version"] == PREPROCESS_VERSION
    assert PreprocessParams.from_json(json.loads(json.dumps(block))) == PreprocessParams(SIZE)
    old = {k: v for k, v in block.items() if k != "chest_wall"} | {"version": 4}
    with pytest.raises(CheckpointError, match="made under preprocessing version 4.*retrain it"):
        PreprocessParams.from_json(old, tmp_path / "run.json")
    with pytest.raises(ValueError, match="chest_wall"):
        PreprocessParams(SIZE, chest_wall="right-ish")


# --------------------------------------------------------------------------- the hanging

def test_hanging_uses_the_models_decision_and_says_when_tags_and_pixels_disagree(tmp_path):
    from core.review.case import read_upload
    from core.review.overlay import hang
    from core.review.study import to_inputs

    stored = breast().astype(np.uint16) * 16
    spec = PreprocessParams(SIZE)
    agree = dicom_write(tmp_path / "a.dcm", stored, PatientOrientation=["A", "R"])
    clash = dicom_write(tmp_path / "b.dcm", stored, PatientOrientation=["P", "L"])
    good = read_upload("a.dcm", agree.read_bytes(), spec)
    bad = read_upload("b.dcm", clash.read_bytes(), spec)
    assert good.chest_on_left is True and not any("mirrored" in w for w in good.warnings)
    assert bad.chest_on_left is False and any("PatientOrientation" in w for w in bad.warnings)
    bad.view = "LCC"
    (sent,) = to_inputs([bad])
    assert sent.tags["patient_orientation"] == ("P", "L")
    # an LCC hangs with its chest wall on the frame's left edge: the tag says it is on the
    # image's right, so the image is mirrored for the screen
    grey = bad.display
    as_tagged = hang(grey, "LCC", 64, chest_on_left=bad.chest_on_left)
    as_seen = hang(grey, "LCC", 64, chest_on_left=True)
    assert not np.array_equal(as_tagged, as_seen)
    assert np.array_equal(hang(grey, "LCC", 64), as_seen), "by the pixels when no decision is given"
