"""View and laterality from the pixels (core.pixels.viewfind) and where they enter view resolution.

The phantom draws each view in the hanging orientation the real sources use
(chest wall on the left = left breast; MLO with its pectoral muscle), so its
views, stripped of every tag, are ground truth for the reader.  The real RSNA
files in ``../shared/real-mammograms`` carry ``ImageLaterality`` only: they
are the case the reader exists for.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.phantom.render import render_view
from core.pixels.read import render_uint8
from core.pixels.viewfind import ViewGuess, find_view
from core.pixels.views import combine_view
from helpers import dicom_write

VIEWS4 = ("RCC", "LCC", "RMLO", "LMLO")
REAL = Path(__file__).resolve().parents[2] / "shared" / "real-mammograms" / "rsna-10008"


def phantom_u8(view: str, seed: int, density: str = "B", size: int = 256) -> np.ndarray:
    """A tagless phantom view as the 8-bit rendering the app starts from."""
    img, _ = render_view(np.random.default_rng(seed), view, density, size=size)
    return np.rint(img * 255).astype(np.uint8)


def with_label_off_centre(u8: np.ndarray, view: str, rng: np.random.Generator) -> np.ndarray:
    """The view on a still larger detector, shifted down, with a second, larger label
    in the air (the phantom already draws an off-centre breast and a small label)."""
    h, w = u8.shape
    big_h, big_w = int(h * rng.uniform(1.15, 1.4)), int(w * rng.uniform(1.05, 1.3))
    canvas = np.zeros((big_h, big_w), np.uint8)
    top = int(rng.integers(h // 10, big_h - h + 1))
    left = 0 if view[0] == "L" else big_w - w
    canvas[top:top + h, left:left + w] = u8
    x = int(big_w * 0.6) if view[0] == "L" else 4
    cv2.putText(canvas, f"{view[0]} {view[1:]}", (x, top // 2 + 6),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
    return canvas


# --------------------------------------------------------------------------- the reader

def test_phantom_views_without_tags():
    """24 views (4 views x 4 densities, 2 seeds for B/C): all lateralities, >= 90 % of views."""
    cases = [(v, d, 100 + i) for i, (v, d) in enumerate(
        [(v, d) for d in "ABCD" for v in VIEWS4] + [(v, d) for d in "BC" for v in VIEWS4])]
    guesses = [(view, find_view(phantom_u8(view, seed, density))) for view, density, seed in cases]
    assert len(guesses) == 24
    assert all(g.laterality == view[0] for view, g in guesses)
    right = sum(g.view == view for view, g in guesses)
    wrong = sum(g.position is not None and g.position != view[1:] for view, g in guesses)
    assert right >= 0.9 * len(guesses) and wrong == 0, [(v, g.view) for v, g in guesses]


def test_labels_and_an_off_centre_breast_do_not_mislead():
    """A bright text label in the air is a separate, smaller component: ignored."""
    rng = np.random.default_rng(3)
    views = [VIEWS4[i % 4] for i in range(16)]
    guesses = [find_view(with_label_off_centre(phantom_u8(v, 200 + i), v, rng))
               for i, v in enumerate(views)]
    assert [g.laterality for g in guesses] == [v[0] for v in views]
    assert sum(g.view == v for g, v in zip(guesses, views)) >= 15


def test_reads_the_same_at_any_rendering_size():
    for size in (128, 512):
        assert find_view(phantom_u8("RMLO", 7, size=size)).view == "RMLO"
        assert find_view(phantom_u8("LCC", 8, size=size)).view == "LCC"
    floats = phantom_u8("LMLO", 9).astype(np.float32) / 255  # [0, 1] floats as read_image gives
    assert find_view(floats).view == "LMLO"


def test_no_breast_or_no_chest_wall_gives_no_answer():
    assert find_view(np.zeros((120, 100), np.uint8)) == ViewGuess(None, None)
    noise = (np.random.default_rng(0).random((96, 80)) * 200 + 20).astype(np.uint8)
    guess = find_view(noise)  # tissue everywhere: both edges touched, no side to read
    assert guess.laterality is None and guess.position is None
    mirrored = find_view(phantom_u8("LMLO", 11)[:, ::-1])
    assert mirrored.laterality == "R" and mirrored.laterality_confidence > 0.5


def test_refuses_what_is_not_an_image():
    with pytest.raises(ValueError, match="2-D"):
        find_view(np.zeros((4, 4, 4), np.uint8))


# --------------------------------------------------------------------------- view resolution

def test_tags_then_name_then_pixels():
    lcc = phantom_u8("LCC", 21)
    assert combine_view(None, None, "1234.dcm", pixels=lcc) == ("LCC", "image")
    assert combine_view("L", None, "1234.dcm", pixels=lcc) == ("LCC", "image")
    assert combine_view("L", "CC", "1234.dcm", pixels=lcc) == ("LCC", "dicom")
    assert combine_view(None, None, "scan_L_CC.png", pixels=lcc) == ("LCC", "filename")
    assert combine_view("L", None, "1234.dcm") == (None, None)  # no pixels: position unknown


def test_pixels_contradicting_tags_or_name_warn_and_lose():
    lcc = phantom_u8("LCC", 22)
    warnings: list[str] = []
    assert combine_view("R", None, "1234.dcm", warnings=warnings, pixels=lcc) == ("RCC", "image")
    assert warnings == ["the DICOM tags give laterality R but the image suggests L; "
                        "using the tags (R)"]
    warnings = []
    assert combine_view(None, None, "x_L_MLO.png", warnings=warnings, pixels=lcc) == \
        ("LMLO", "filename")
    assert warnings == ["the file name says view position MLO but the image suggests CC; "
                        "using the file name (MLO)"]


def test_a_users_view_wins_over_the_pixels_with_a_warning():
    warnings: list[str] = []
    assert combine_view(None, None, "1234.png", "RMLO", "user", warnings,
                        pixels=phantom_u8("LCC", 23)) == ("RMLO", "user")
    assert "view set to RMLO although the image suggests laterality L" in warnings
    assert "view set to RMLO although the image suggests view position CC" in warnings


def test_dicom_with_only_image_laterality_routes(tmp_path):
    """ImageLaterality without ViewPosition (as the RSNA files): laterality from the tag,
    CC / MLO from the pixels, through the same path the CLI and case review use."""
    from test_predict import make_run

    from core.predict import Predictor, ViewInput

    stored = (phantom_u8("RMLO", 31).astype(np.uint16) * 16)
    path = dicom_write(tmp_path / "1234567.dcm", stored, ImageLaterality="R",
                       BitsStored=12, HighBit=11)
    img = render_uint8(path, 768)
    assert img.tags["laterality"] == "R" and img.tags["view_position"] is None
    run = make_run(tmp_path / "run", modes=("baseline",))
    (result,) = Predictor(run, "cpu").predict_study([ViewInput(path=path)])
    assert result.error is None and result.view == "RMLO" and result.view_source == "image"
    assert result.cell_baseline == "all-RMLO" and result.warnings == []
    # the tag disagrees with the chest wall: the tag wins, and the user is told
    lying = dicom_write(tmp_path / "7654321.dcm", stored, ImageLaterality="L",
                        BitsStored=12, HighBit=11)
    (result,) = Predictor(run, "cpu").predict_study([ViewInput(path=lying)])
    assert result.view == "LMLO" and result.cell_baseline == "all-LMLO"
    assert any("laterality L but the image suggests R" in w for w in result.warnings)


# --------------------------------------------------------------------------- real files

@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-mammograms is absent (real RSNA "
                    "files are kept out of the repository)")
def test_real_rsna_views_are_found():
    """The four views of RSNA patient 10008 (ViewPosition absent, numeric names)."""
    with open(REAL / "views.csv", newline="") as f:
        truth = {r["image_id"]: r["laterality"] + r["view"] for r in csv.DictReader(f)}
    assert sorted(truth.values()) == sorted(VIEWS4)
    for image_id, view in truth.items():
        img = render_uint8(REAL / f"{image_id}.dcm", 768)
        assert img.tags["view_position"] is None
        assert find_view(img.pixels).view == view, image_id
        warnings: list[str] = []
        assert combine_view(img.tags["laterality"], None, f"{image_id}.dcm", warnings=warnings,
                            pixels=img.pixels) == (view, "image")
        assert warnings == []


def test_case_review_upload_shows_the_image_as_source(tmp_path):
    """An upload with ImageLaterality only: the view is found, its source reads "the image"."""
    from core.pixels.preprocess import PreprocessParams
    from core.review.case import SOURCE_TEXT, read_upload
    from core.review.study import view_problems

    stored = phantom_u8("LCC", 41).astype(np.uint16) * 16
    path = dicom_write(tmp_path / "u.dcm", stored, ImageLaterality="L", BitsStored=12, HighBit=11)
    view = read_upload("98765.dcm", path.read_bytes(), PreprocessParams(64))
    assert (view.view, view.view_source) == ("LCC", "image") and view.warnings == []
    assert SOURCE_TEXT[view.view_source] == "the image" and view_problems([view]) == []


def test_benchmark_scores_right_unsure_and_wrong(capsys):
    from benchmarks.viewfind import main

    result = main(["--phantom-views", "8", "--size", "256", "--json"])
    (scored,) = result.values()
    assert scored["n"] == 8 and scored["laterality_wrong"] == 0 and scored["position_wrong"] == 0
    assert scored["view_right"] == 8 and scored["view_accuracy"] == 1.0
    assert '"view_right": 8' in capsys.readouterr().out
