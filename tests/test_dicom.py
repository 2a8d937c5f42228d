"""core.pixels.read / dicom / voi / picture: windowing maths, photometric handling, every file kind, every bad input."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

from core.errors import ImageReadError
from core.pixels import dicom, picture, voi
from core.pixels.limits import MAX_PIXELS
from core.pixels.read import read_image
from helpers import RAMP, dicom_real, dicom_write

# --------------------------------------------------------------------------- VOI maths

def test_linear_window_matches_ps3_3_formula(tmp_path):
    # c=512, w=256: 0 at x <= 384, 1 above 639, and exactly (x-384)/255 between.
    im = read_image(dicom_write(tmp_path / "a.dcm", WindowCenter=512, WindowWidth=256))
    x = RAMP.astype(np.float64)
    expected = np.clip((x - 384) / 255.0, 0, 1)
    np.testing.assert_allclose(im.pixels, expected, atol=1e-6)
    assert im.tags["window"] == (512.0, 256.0, "LINEAR")
    assert im.pixels.dtype == np.float32 and im.source_shape == (32, 32)


def test_linear_exact_window(tmp_path):
    im = read_image(dicom_write(tmp_path / "a.dcm", WindowCenter=512, WindowWidth=256,
                                VOILUTFunction="LINEAR_EXACT"))
    flat = im.pixels.ravel()
    assert flat[384] == 0.0 and flat[640] == 1.0
    assert flat[448] == pytest.approx(0.25) and flat[512] == pytest.approx(0.5)
    assert im.tags["window"][2] == "LINEAR_EXACT"


def test_sigmoid_window(tmp_path):
    im = read_image(dicom_write(tmp_path / "a.dcm", WindowCenter=512, WindowWidth=256,
                                VOILUTFunction="SIGMOID"))
    flat = im.pixels.ravel()
    assert flat[512] == pytest.approx(0.5)
    assert flat[576] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-6)  # -4*64/256 = -1
    assert flat[448] == pytest.approx(1 / (1 + np.exp(1.0)), abs=1e-6)


def test_first_window_of_several_and_rescale(tmp_path):
    # modality: 2*x - 100, so stored 306 -> 512 (the window centre).
    im = read_image(dicom_write(tmp_path / "a.dcm", WindowCenter=[512, 100], WindowWidth=[256, 10],
                                RescaleSlope=2, RescaleIntercept=-100, RescaleType="US"))
    values = 2.0 * RAMP - 100
    np.testing.assert_allclose(im.pixels, np.clip((values - 384) / 255.0, 0, 1), atol=1e-6)
    assert im.tags["window"][:2] == (512.0, 256.0)


@pytest.mark.parametrize("encoding", ["US", "OW"])
def test_voi_lut_sequence_wins_over_window(tmp_path, encoding):
    lut = [255 - i for i in range(256)]  # descending 8-bit LUT starting at stored value 400
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 400, 8])
    data = lut if encoding == "US" else np.asarray(lut, "<u2").tobytes()
    item.add_new(0x00283006, encoding, data)
    path = dicom_write(tmp_path / "lut.dcm", VOILUTSequence=Sequence([item]),
                       WindowCenter=512, WindowWidth=256)
    flat = read_image(path).pixels.ravel()
    assert flat[0] == 1.0 and flat[399] == 1.0  # below first mapped value: first entry
    assert flat[400 + 55] == pytest.approx(200 / 255)
    assert flat[1000] == 0.0  # above the table: last entry
    assert read_image(path).tags["window"] == (None, None, "voi_lut")


def test_percentile_window_when_file_has_none(tmp_path):
    im = read_image(dicom_write(tmp_path / "a.dcm"))
    lo, hi = np.percentile(RAMP, voi.PERCENTILES)
    center, width, kind = im.tags["window"]
    assert kind == "percentile"
    assert center == pytest.approx((lo + hi) / 2) and width == pytest.approx(hi - lo)
    assert im.pixels.min() == 0.0 and im.pixels.max() == 1.0


def test_padding_value_excluded_from_window_and_dark(tmp_path):
    arr = RAMP.copy() + 1000  # 1000..2023
    arr[:, :8] = 0  # a padding band left of the breast
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        path = dicom_write(tmp_path / f"{photometric}.dcm", arr, PixelPaddingValue=0,
                           PhotometricInterpretation=photometric)
        im = read_image(path)
        lo, hi = np.percentile(arr[:, 8:], voi.PERCENTILES)
        assert im.tags["window"][1] == pytest.approx(hi - lo)  # padding did not widen it
        assert (im.pixels[:, :8] == 0).all(), photometric  # padding is background, dark
        assert im.pixels[:, 8:].max() == 1.0


def test_padding_range_limit(tmp_path):
    arr = RAMP.copy()
    path = dicom_write(tmp_path / "a.dcm", arr, PixelPaddingValue=0, PixelPaddingRangeLimit=99,
                       WindowCenter=512, WindowWidth=1024)
    flat = read_image(path).pixels.ravel()
    assert (flat[:100] == 0).all() and flat[100] > 0


def test_monochrome1_is_inverted_after_windowing(tmp_path):
    kw = dict(WindowCenter=512, WindowWidth=256)
    m2 = read_image(dicom_write(tmp_path / "m2.dcm", **kw)).pixels
    m1 = read_image(dicom_write(tmp_path / "m1.dcm", PhotometricInterpretation="MONOCHROME1", **kw))
    np.testing.assert_allclose(m1.pixels, 1.0 - m2, atol=1e-6)
    assert m1.tags["photometric"] == "MONOCHROME1"


# --------------------------------------------------------------------------- real files

@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm"])
def test_lossless_transfer_syntaxes_decode_identically(name):
    reference = read_image(get_testdata_file("MR_small.dcm"))
    im = read_image(get_testdata_file(name))
    np.testing.assert_array_equal(im.pixels, reference.pixels)
    assert im.tags["bits_stored"] == 16 and im.tags["window"] == (600.0, 1600.0, "LINEAR")


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "CT_small.dcm",
                                  "vlut_04.dcm"])
def test_other_encodings_give_unit_range(name):
    im = read_image(get_testdata_file(name))
    assert im.pixels.ndim == 2 and im.pixels.dtype == np.float32
    assert 0.0 <= im.pixels.min() < im.pixels.max() <= 1.0


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", "examples_palette.dcm"])
def test_colour_dicom_becomes_grey(name):
    im = read_image(get_testdata_file(name))
    assert im.pixels.ndim == 2 and im.pixels.max() > im.pixels.min()


def test_ybr_jpeg_and_rgb_versions_agree():
    rgb = read_image(get_testdata_file("SC_rgb.dcm")).pixels
    ybr = read_image(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")).pixels
    assert np.abs(rgb - ybr).mean() < 0.05  # lossy JPEG of the same picture


@pytest.mark.parametrize("name", ["RG1_J2KR.dcm", "RG3_J2KR.dcm"])
def test_real_monochrome1_radiograph_matches_pydicom_and_is_inverted(name):
    im = read_image(dicom_real(name))
    # *_UNCR is the uncompressed original of the reversible (lossless) J2K file.
    ds = pydicom.dcmread(dicom_real(name.replace("J2KR", "UNCR")))
    assert ds.PhotometricInterpretation == "MONOCHROME1" and im.source_shape == ds.pixel_array.shape
    # pydicom's own LINEAR windowing, rescaled to [0, 1], then inverted by hand.
    windowed = pydicom.pixels.apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    manual = 1.0 - windowed / (2 ** ds.BitsStored - 1)
    np.testing.assert_allclose(im.pixels, manual, atol=2e-3)


def test_real_radiograph_tags():
    im = read_image(dicom_real("RG3_UNCR.dcm"))
    assert im.tags["laterality"] == "R" and im.tags["bits_stored"] == 10
    assert im.tags["photometric"] == "MONOCHROME1" and im.tags["window"] == (550.0, 1024.0, "LINEAR")
    assert im.tags["view_position"] is None  # ViewPosition "AP"


# --------------------------------------------------------------------------- header-only tags

def _view_tags(path):
    tags = read_image(path).tags
    return tags["laterality"], tags["view_position"]


def test_view_tags_prefer_image_laterality(tmp_path):
    path = dicom_write(tmp_path / "a.dcm", ImageLaterality="L", Laterality="R", ViewPosition="MLO")
    assert _view_tags(path) == ("L", "MLO")


def test_view_tags_fallbacks(tmp_path):
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399162004", "SCT", "cranio-caudal"
    path = dicom_write(tmp_path / "a.dcm", Laterality="R", ViewCodeSequence=Sequence([code]))
    assert _view_tags(path) == ("R", "CC")
    assert _view_tags(dicom_write(tmp_path / "b.dcm", ViewPosition="LL")) == (None, None)


def test_picture_has_no_view_tags(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), (RAMP // 4).astype(np.uint8))
    assert _view_tags(path) == (None, None)


def test_dicom_without_preamble_is_read_by_name(tmp_path):
    path = dicom_write(tmp_path / "nopre.dcm", preamble=False, WindowCenter=512, WindowWidth=256)
    assert path.read_bytes()[128:132] != b"DICM"
    assert read_image(path).tags["window"][2] == "LINEAR"


# --------------------------------------------------------------------------- image files

def test_png_8bit_scaled_by_255(tmp_path):
    path = tmp_path / "a.png"
    img = (RAMP // 4).astype(np.uint8)
    cv2.imwrite(str(path), img)
    im = read_image(path)
    np.testing.assert_allclose(im.pixels, img / 255.0, atol=1e-7)
    assert im.tags["window"] == (None, None, "dtype") and im.tags["format"] == "image"


def test_png_16bit_using_12_bits_gets_percentile_window(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), (RAMP * 4).astype(np.uint16))  # 0..4092 of 65535
    im = read_image(path)
    assert im.tags["window"][2] == "percentile" and im.tags["bits_stored"] == 16
    assert im.pixels.min() == 0.0 and im.pixels.max() == 1.0


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pgm", ".tif"])
def test_picture_formats_and_colour(tmp_path, suffix):
    grey = (RAMP // 4).astype(np.uint8)
    colour = np.dstack([grey, grey, grey]) if suffix != ".pgm" else grey
    path = tmp_path / f"a{suffix}"
    assert cv2.imwrite(str(path), colour)
    im = read_image(path)
    assert im.pixels.shape == (32, 32)
    assert np.abs(im.pixels - grey / 255.0).max() < 0.05


def test_rgba_png_to_grey(tmp_path):
    grey = (RAMP // 4).astype(np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    np.testing.assert_allclose(read_image(path).pixels, grey / 255.0, atol=1 / 255)


def test_16bit_tiff(tmp_path):
    path = tmp_path / "a.tif"
    cv2.imwrite(str(path), (RAMP * 60).astype(np.uint16))
    im = read_image(path)
    assert im.tags["bits_stored"] == 16 and im.pixels.max() == 1.0


# --------------------------------------------------------------------------- bad input

def _png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR (valid CRC) claims ``width`` x ``height``."""
    ok, data = cv2.imencode(".png", np.zeros((16, 16), np.uint8))
    raw = bytearray(data.tobytes())
    ihdr = bytearray(raw[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected words in the message)."""
    mr = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    files: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, words: str) -> None:
        (tmp / name).write_bytes(data)
        files[name] = (tmp / name, words)

    put("empty.dcm", b"", "empty file")
    put("empty.png", b"", "empty file")
    put("truncated.dcm", mr[: len(mr) // 2], "truncated")
    put("notes.dcm", b"Patient notes, not an image\n" * 10, "text file")
    put("report.dcm", b"%PDF-1.4\n" + b"\x00" * 400, "PDF")
    put("garbage.png", b"\x01\x02\x03 not a png at all" * 20, "not an image")
    files["missing.dcm"] = (tmp / "missing.dcm", "not found")
    (tmp / "folder.dcm").mkdir()
    files["folder.dcm"] = (tmp / "folder.dcm", "folder")
    rtplan = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    put("rtplan.dcm", rtplan, "no pixel data")
    put("multiframe.dcm", Path(get_testdata_file("emri_small.dcm")).read_bytes(), "multi-frame")
    mpeg = dicom_write(tmp / "mpeg2.dcm", transfer_syntax="1.2.840.10008.1.2.4.100",
                       pixel_bytes=encapsulate([b"\0" * 64]))
    files["mpeg2.dcm"] = (mpeg, "no decoder for transfer syntax")
    files["tiny.dcm"] = (dicom_write(tmp / "tiny.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4)),
                         "too small")
    # Header claims 20000 x 20000 but carries 64 bytes: refused before any decoding.
    files["bomb.dcm"] = (dicom_write(tmp / "bomb.dcm", np.zeros((4, 4), np.uint16), Rows=20000,
                                     Columns=20000, pixel_bytes=b"\0" * 64), "megapixel limit")
    files["bomb.png"] = (_png_with_header_size(tmp / "bomb.png", 20000, 20000), "megapixel limit")
    files["bomb90.png"] = (_png_with_header_size(tmp / "bomb90.png", 10000, 9000), "megapixel limit")
    files["constant.dcm"] = (dicom_write(tmp / "constant.dcm", np.full((32, 32), 7, np.uint16)),
                             "constant image")
    cv2.imwrite(str(tmp / "constant.png"), np.full((32, 32), 9, np.uint8))
    files["constant.png"] = (tmp / "constant.png", "constant image")
    cv2.imwrite(str(tmp / "pixel.png"), np.zeros((1, 1), np.uint8))
    files["pixel.png"] = (tmp / "pixel.png", "too small")
    nan = np.full((32, 32), np.nan, np.float32)
    cv2.imwrite(str(tmp / "nan.tif"), nan)
    files["nan.tif"] = (tmp / "nan.tif", "not a number")
    return files


BAD_NAMES = ["empty.dcm", "empty.png", "truncated.dcm", "notes.dcm", "report.dcm", "garbage.png",
             "missing.dcm", "folder.dcm", "rtplan.dcm", "multiframe.dcm", "mpeg2.dcm", "tiny.dcm",
             "bomb.dcm", "bomb.png", "bomb90.png", "constant.dcm", "constant.png", "pixel.png", "nan.tif"]


@pytest.fixture(scope="module")
def dicom_bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_gives_clear_error_naming_the_file(dicom_bad_files, name):
    path, words = dicom_bad_files[name]
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert words.lower() in message.lower(), message
    assert "\n" not in message


def test_bomb_refused_before_decoding(dicom_bad_files, monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already refuses")

    monkeypatch.setattr(dicom, "_decode", no_decode)
    monkeypatch.setattr(picture.cv2, "imdecode", no_decode)
    for name in ("bomb.dcm", "bomb.png", "bomb90.png"):
        with pytest.raises(ImageReadError, match="megapixel"):
            read_image(dicom_bad_files[name][0])
    assert MAX_PIXELS >= 40_000_000  # any real FFDM detector fits


def test_damaged_bytes_never_escape_as_foreign_exceptions(tmp_path):
    rng = np.random.default_rng(7)
    sources = [Path(get_testdata_file(n)).read_bytes()
               for n in ("MR_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm")]
    for i in range(90):
        data = bytearray(sources[i % 3])
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for at in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
                data[int(at)] = int(rng.integers(0, 256))
        path = tmp_path / f"damaged{i}.dcm"
        path.write_bytes(bytes(data))
        try:
            read_image(path)
        except ImageReadError as err:
            assert str(path) in str(err)


# --------------------------------------------------------------------------- OpenCV's decompression bombs

def _radiance_header(path: Path, rows: int, cols: int) -> Path:
    """A Radiance HDR header (OpenCV reads it, Pillow does not) claiming rows × cols, no data."""
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {rows} +X {cols}\n".encode()
                     + bytes(64))
    return path


def test_picture_whose_header_gives_no_size_is_refused_before_decoding(tmp_path, monkeypatch):
    """OpenCV decodes up to a gigapixel before anyone can ask the size: never hand it a
    picture whose header the size check cannot read."""
    from core.datasets.roi import read_mask
    from core.errors import MaskError
    from core.pixels.read import render_uint8

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a picture whose size was never checked")

    monkeypatch.setattr(picture.cv2, "imdecode", no_decode)
    bomb = _radiance_header(tmp_path / "scan.png", 20_000, 20_000)  # 400 MP as a ".png"
    for reader in (read_image, lambda p: render_uint8(p, 64)):
        with pytest.raises(ImageReadError, match="not an image whose size its header gives") as info:
            reader(bomb)
        assert str(info.value).startswith(f"{bomb}: ") and "\n" not in str(info.value)
    with pytest.raises(MaskError, match="not an image whose size its header gives"):
        read_mask(bomb)


def test_opencv_decode_limit_is_capped_when_core_is_imported(tmp_path):
    """Importing core lowers OpenCV's own limit to MAX_PIXELS before cv2 loads, so even a
    file the header check misread cannot make OpenCV allocate more."""
    bomb = _radiance_header(tmp_path / "scan.hdr", 9_000, 9_000)  # 81 MP: over MAX_PIXELS
    code = ("import core, cv2, numpy as np\n"
            f"data = np.fromfile({str(bomb)!r}, np.uint8)\n"
            "try:\n    cv2.imdecode(data, cv2.IMREAD_UNCHANGED)\n    print('decoded')\n"
            "except cv2.error as err:\n    print('refused' if 'CV_IO_MAX_IMAGE_PIXELS' in str(err) "
            "else 'other')\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.stdout.strip() == "refused", out.stdout + out.stderr
    assert 9_000 * 9_000 > MAX_PIXELS
