"""The local PACS end to end: start Orthanc, push a phantom, list, open, retrieve, stop.

Why: opening a study from the PACS sits on the path from "open study" to four
predictions, so its share has to be known; ``--j2k`` stores every image as
JPEG 2000 lossless, as many archives do, so retrieval and decoding are measured
in the encoding that costs most. Needs Debian's ``orthanc`` and
``orthanc-dicomweb``.

    python -m benchmarks.pacs --studies 20 --size 512 --json
    python -m benchmarks.pacs --studies 1 --size 2776 --j2k --json
"""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from benchmarks.common import NOTE_CPU, base_parser, emit, rounded, temp_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_j2k(folder: Path) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    for path in folder.rglob("*.dicom"):
        ds = pydicom.dcmread(path)
        ds.compress(JPEG2000Lossless)
        ds.save_as(path)


def measure(studies: int, size: int, j2k: bool) -> dict[str, Any]:
    from core.pacs import PacsClient, local_pacs, push_folder
    from core.phantom import write_phantom

    with temp_dir() as tmp:
        write_phantom(tmp / "phantom", "vindr", studies, size=size, seed=0)
        if j2k:
            _to_j2k(tmp / "phantom")
        files = list((tmp / "phantom").rglob("*.dicom"))
        mb = sum(p.stat().st_size for p in files) / 2**20
        t0 = time.perf_counter()
        with local_pacs(_free_port(), tmp / "store") as pacs:
            t_start = time.perf_counter()
            client = PacsClient(pacs.url)
            report = push_folder(tmp / "phantom", client)
            t_push = time.perf_counter()
            rows = client.find_studies()
            t_qido = time.perf_counter()
            opened = client.study_images(rows[0].study_uid)
            t_open = time.perf_counter()
            datasets = client.retrieve_all(opened.images)
            t_retrieve = time.perf_counter()
            shapes = [ds.pixel_array.shape for ds in datasets]
            t_decode = time.perf_counter()
        t_stop = time.perf_counter()
    return {
        "studies": studies, "size": size, "files": len(files), "stored": len(report.stored),
        "refused": len(report.refused), "mb": rounded(mb, 1),
        "transfer_syntax": str(datasets[0].file_meta.TransferSyntaxUID.name),
        "views": [im.view for im in opened.images], "rows_columns": list(shapes[0]),
        "start_s": rounded(t_start - t0), "push_s": rounded(t_push - t_start),
        "qido_s": rounded(t_qido - t_push, 3), "open_s": rounded(t_open - t_qido, 3),
        "retrieve_s": rounded(t_retrieve - t_open, 3), "decode_s": rounded(t_decode - t_retrieve, 3),
        "stop_s": rounded(t_stop - t_decode), "note": NOTE_CPU,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="long side of the phantom's images in pixels")
    parser.add_argument("--j2k", action="store_true", help="store the images as JPEG 2000 lossless")
    args = parser.parse_args()
    r = measure(args.studies, args.size, args.j2k)
    emit(r, args.json,
         f"Orthanc up in {r['start_s']} s; push {r['stored']} files ({r['mb']} MB) {r['push_s']} s; "
         f"list {r['qido_s']} s; open {r['open_s']} s; retrieve {len(r['views'])} views {r['retrieve_s']} s "
         f"({r['transfer_syntax']}, {r['rows_columns']}); decode {r['decode_s']} s; stop {r['stop_s']} s")


if __name__ == "__main__":
    main()
