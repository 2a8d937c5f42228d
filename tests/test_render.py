"""core.pixels.read.render_uint8: the 8-bit rendering training and review both start from.

At full size it must equal the float path rounded to 8 bits, bit for bit, for
every kind of file (the lookup table folds the same float32 steps); reduced,
it must stay within RENDER_TOLERANCE of reducing the exact rendering, keep
padding black and average signed values as signed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.errors import ImageReadError
from core.pixels import voi
from core.pixels.image import to_uint8
from core.pixels.read import RENDER_TOLERANCE, read_image, render_uint8
from helpers import RAMP, dicom_real, dicom_write


def _texture(mean: float, amplitude: float, noise: float, dtype) -> np.ndarray:
    """Smooth structure a few blocks wide plus pixel noise, like tissue at 96 × 80."""
    yy, xx = np.mgrid[0:96, 0:80]
    rng = np.random.default_rng(0)
    img = mean + amplitude * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, noise, xx.shape)
    return np.rint(img).astype(dtype)


GRADIENT = _texture(2200, 1700, 40, np.uint16)  # 500..3900: windows below clip parts of it


def _voi_lut_item() -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 400, 8])
    item.add_new(0x00283006, "US", [255 - i for i in range(256)])
    return item


def _signed() -> np.ndarray:
    return (GRADIENT.astype(np.int32) - 2500).astype(np.int16)  # negative and positive values


def _padded(value: int) -> np.ndarray:
    arr = GRADIENT.copy()
    arr[:, :13] = value  # a padding band not aligned with any block size
    return arr


SYNTHETIC = {  # name → (stored array, attributes)
    "linear": (GRADIENT, dict(WindowCenter=2000, WindowWidth=1500)),
    "linear_exact": (GRADIENT, dict(WindowCenter=2000, WindowWidth=1500,
                                    VOILUTFunction="LINEAR_EXACT")),
    "sigmoid": (GRADIENT, dict(WindowCenter=2000, WindowWidth=1500, VOILUTFunction="SIGMOID")),
    "rescale": (GRADIENT, dict(WindowCenter=[3000, 1], WindowWidth=[2500, 1], RescaleSlope=2,
                               RescaleIntercept=-1000, RescaleType="US")),
    "voi_lut_seq": (RAMP, dict(VOILUTSequence=Sequence([_voi_lut_item()]))),
    "percentile": (GRADIENT, {}),
    "mono1": (GRADIENT, dict(PhotometricInterpretation="MONOCHROME1", WindowCenter=2000,
                             WindowWidth=3000)),
    "signed": (_signed(), dict(WindowCenter=0, WindowWidth=3000)),
    "signed_percentile": (_signed(), {}),
    "eight_bit": (_texture(128, 120, 3, np.uint8), dict(WindowCenter=128, WindowWidth=200)),
    "signed_eight_bit": (_texture(0, 110, 3, np.int8), dict(WindowCenter=0, WindowWidth=200)),
    "padding_mono2": (_padded(0), dict(PixelPaddingValue=0)),
    "padding_mono1_white_if_unzeroed": (_padded(0), dict(PixelPaddingValue=0,
                                                         PhotometricInterpretation="MONOCHROME1")),
    "padding_range": (_padded(50), dict(PixelPaddingValue=0, PixelPaddingRangeLimit=99,
                                        WindowCenter=2000, WindowWidth=4000)),
}


@pytest.fixture(params=sorted(SYNTHETIC))
def synthetic(request, tmp_path) -> Path:
    arr, attrs = SYNTHETIC[request.param]
    return dicom_write(tmp_path / f"{request.param}.dcm", arr, **attrs)


def _exact(path) -> np.ndarray:
    return to_uint8(read_image(path).pixels)


def _reduce(img: np.ndarray, k: int) -> np.ndarray:
    """k × k block means of the exact 8-bit image (one rounding)."""
    h, w = img.shape[0] // k, img.shape[1] // k
    return cv2.resize(img[: h * k, : w * k], (w, h), interpolation=cv2.INTER_AREA)


def test_full_size_is_bit_identical_to_the_float_path(synthetic):
    rendered = render_uint8(synthetic)
    assert rendered.pixels.dtype == np.uint8
    np.testing.assert_array_equal(rendered.pixels, _exact(synthetic))
    assert rendered.tags["window"] == read_image(synthetic).tags["window"]


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                                  "CT_small.dcm", "SC_rgb.dcm", "mlut_18.dcm", "vlut_04.dcm",
                                  "MR_small_padded.dcm", "examples_palette.dcm"])
def test_full_size_identical_on_pydicom_files(name):
    path = get_testdata_file(name)
    np.testing.assert_array_equal(render_uint8(path).pixels, _exact(path))


@pytest.mark.parametrize("name", ["RG1_J2KR.dcm", "RG3_UNCR.dcm"])
def test_real_radiographs_identical_and_within_tolerance_reduced(name):
    path = dicom_real(name)
    exact = _exact(path)
    np.testing.assert_array_equal(render_uint8(path).pixels, exact)
    reduced = render_uint8(path, min(exact.shape) // 4).pixels
    assert reduced.shape == _reduce(exact, 4).shape
    assert np.abs(reduced.astype(int) - _reduce(exact, 4)).mean() <= RENDER_TOLERANCE


def test_reduced_keeps_source_shape(synthetic):
    exact = _exact(synthetic)
    rendered = render_uint8(synthetic, 16)
    assert rendered.pixels.dtype == np.uint8 and min(rendered.pixels.shape) >= 16
    assert rendered.source_shape == exact.shape  # masks keep referring to the full image


@pytest.mark.parametrize("min_side,shape", [(80, (96, 80)), (41, (96, 80)), (40, (48, 40)),
                                            (21, (48, 40)), (20, (24, 20)), (10, (12, 10)),
                                            (9, (12, 10)), (1, (1, 1))])
def test_factor_is_the_largest_power_of_two_keeping_min_side(tmp_path, min_side, shape):
    path = dicom_write(tmp_path / "a.dcm", GRADIENT, WindowCenter=2200, WindowWidth=4000)
    assert render_uint8(path, min_side).pixels.shape == shape


@pytest.mark.parametrize("attrs", [
    dict(WindowCenter=2200, WindowWidth=4000),
    dict(WindowCenter=2200, WindowWidth=4000, PhotometricInterpretation="MONOCHROME1"),
    dict(WindowCenter=2200, WindowWidth=4000, RescaleSlope=0.5, RescaleIntercept=1100,
         RescaleType="US", VOILUTFunction="LINEAR_EXACT"),
])
@pytest.mark.parametrize("k", [2, 4])
def test_unclipped_linear_window_differs_by_rounding_only(tmp_path, attrs, k):
    # Averaging commutes with a linear map: where no pixel of a block is clipped,
    # averaging before the table can only change the rounding.
    path = dicom_write(tmp_path / "a.dcm", GRADIENT, **attrs)
    exact = _exact(path)
    reduced = render_uint8(path, min(exact.shape) // k).pixels
    assert np.abs(reduced.astype(int) - _reduce(exact, k)).max() <= 1


@pytest.fixture(scope="module")
def phantom_dicoms(tmp_path_factory) -> list[Path]:
    from core.phantom import write_phantom

    root = tmp_path_factory.mktemp("phantom")
    write_phantom(root, "vindr", studies=2, size=512, seed=4)
    return sorted(root.rglob("*.dicom"))


@pytest.mark.parametrize("k", [2, 4])
def test_reduced_within_tolerance_on_phantom_mammograms(phantom_dicoms, k):
    # The phantom varies photometry, bit depth, windows, VOI LUTs and padding per file.
    assert len(phantom_dicoms) >= 8
    for path in phantom_dicoms:
        exact = _exact(path)
        np.testing.assert_array_equal(render_uint8(path).pixels, exact)
        reduced = render_uint8(path, min(exact.shape) // k).pixels
        assert np.abs(reduced.astype(int) - _reduce(exact, k)).mean() <= RENDER_TOLERANCE, path.name


def test_padding_stays_black_when_its_value_would_render_white(tmp_path):
    # MONOCHROME1 with padding 0: un-zeroed, 0 would invert to white; averaging it with
    # tissue first would smear white into the image, so the table must come first here.
    arr, attrs = SYNTHETIC["padding_mono1_white_if_unzeroed"]
    path = dicom_write(tmp_path / "p.dcm", arr, **attrs)
    reduced = render_uint8(path, 20).pixels  # factor 4: columns 0..11 are pure padding
    assert (reduced[:, :3] == 0).all()
    assert reduced[:, 4:].min() > 0


def test_signed_values_are_averaged_as_signed(tmp_path):
    arr = np.full((64, 64), -1, np.int16)
    arr[:, 1::2] = 1  # every 2x2 block averages to 0 (the window centre) if signed
    path = dicom_write(tmp_path / "s.dcm", arr, WindowCenter=0.5, WindowWidth=11,
                       VOILUTFunction="LINEAR_EXACT")
    reduced = render_uint8(path, 32).pixels
    assert reduced.shape == (32, 32)
    # (0 - 0.5) / 11 + 0.5 → 0.4545 → 116; as unsigned bits the average would be ~32767
    assert (reduced == 116).all()


def test_signed_eight_bit_is_reduced_as_signed_eight_bit(tmp_path):
    import pydicom

    arr, attrs = SYNTHETIC["signed_eight_bit"]
    path = dicom_write(tmp_path / "s8.dcm", arr, **attrs)
    ds = pydicom.dcmread(path)
    assert (ds.BitsAllocated, ds.PixelRepresentation) == (8, 1)
    reduced = render_uint8(path, 20).pixels  # 96 × 80 → factor 4
    assert reduced.shape == (24, 20) and reduced.dtype == np.uint8
    assert np.abs(reduced.astype(int) - _reduce(_exact(path), 4)).mean() <= RENDER_TOLERANCE
    flat = np.full((64, 64), -1, np.int8)
    flat[:, 1::2] = 1  # every block averages to 0 if signed, to ~128 as unsigned bits
    path = dicom_write(tmp_path / "s8flat.dcm", flat, WindowCenter=0.5, WindowWidth=11,
                       VOILUTFunction="LINEAR_EXACT")
    assert (render_uint8(path, 32).pixels == 116).all()


def test_picture_files(tmp_path):
    png8 = tmp_path / "a.png"
    cv2.imwrite(str(png8), _texture(128, 120, 3, np.uint8))
    png16 = tmp_path / "b.png"
    cv2.imwrite(str(png16), GRADIENT)
    for path in (png8, png16):
        exact = _exact(path)
        np.testing.assert_array_equal(render_uint8(path).pixels, exact)
        np.testing.assert_array_equal(render_uint8(path, 40).pixels, _reduce(exact, 2))


def test_min_side_larger_than_the_image_keeps_full_size(synthetic):
    assert render_uint8(synthetic, 10_000).pixels.shape == _exact(synthetic).shape


def test_bad_input_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="min_side"):
        render_uint8(get_testdata_file("MR_small.dcm"), -1)
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    with pytest.raises(ImageReadError) as err:
        render_uint8(bad, 16)
    assert str(bad) in str(err.value)


def test_tolerance_is_a_stated_small_number():
    assert 0 < RENDER_TOLERANCE <= 2.0  # mean grey levels of 255: a fraction of one step of noise
    assert voi.PERCENTILE_SAMPLES >= 100_000
