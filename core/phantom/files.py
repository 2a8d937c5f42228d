"""Table files written byte for byte the same for the same input.

Determinism is a promise of the phantom (same arguments, same bytes), and the
spreadsheet writer would otherwise stamp the time of saving.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_FIXED_ISO = "2020-01-01T00:00:00Z"


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    """UTF-8, ``\\n`` line ends on every platform, so the bytes do not depend on the OS."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_xlsx(path: Path, sheet: str, header: list[str], rows: list[list[Any]]) -> None:
    """Write a one-sheet workbook with fixed timestamps, so that equal inputs
    give equal bytes (openpyxl stamps the time of saving otherwise)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + _FIXED_ISO.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, _FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)
