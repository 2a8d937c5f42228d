"""What a file is, from its first bytes: DICOM or a picture, and a name for anything else."""
from __future__ import annotations

from pathlib import Path

from core.errors import ImageReadError

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def read_head(path: Path) -> bytes:
    """The first bytes of the file; refuses missing, unreadable and empty files."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a folder, not an image file", path) from None
    except OSError as err:
        raise ImageReadError(f"cannot be read ({err.strerror or err})", path) from None
    if not head:
        raise ImageReadError("empty file (0 bytes)", path)
    return head


def looks_like_dicom(head: bytes, path: Path) -> bool:
    """DICM marker, a DICOM file name, or a preamble-less dataset's first group."""
    if head[128:132] == b"DICM":
        return True
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) >= 8


def content_hint(head: bytes) -> str:
    """Name obvious non-DICOM contents, so the error says what the file really is."""
    for magic, name in ((b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"),
                        (b"\xff\xd8\xff", "a JPEG image"), (b"PK\x03\x04", "a ZIP archive")):
        if head.startswith(magic):
            return name
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:128]):
        return "a text file"
    return "unrecognised bytes"
