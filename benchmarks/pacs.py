"""The local PACS end to end: start Orthanc, push a phantom, list, open, retrieve, stop.

Why: opening a study from the PACS sits on the path from "open study" to four
predictions, so its share has to be known; ``--j2k`` stores every image as
JPEG 2000 lossless, as many archives do, so retrieval and decoding are measured
in the encoding that costs most. Needs Debian's ``orthanc`` and
``orthanc-dicomweb``.

    python -m benchmarks.pacs --studies 20 --size 512 --json
    python -m benchmarks.pacs --studies 1 --size 2776 --j2k --json

``--review DIR`` times what a reviewer waits for instead: a folder of DICOMs (one
four-view study, e.g. a real exam) pushed to the local PACS, then case review's
"open study" (:func:`core.review.pacs_study.open_study`: list, retrieve, decode, hang)
and Predict with Grad-CAM on the four views, with a run made like the demo's
(``--arch resnet10t --img-size 128``, random weights: the time does not depend on
their values), the predictor loaded beforehand as the app keeps it loaded.

    python -m benchmarks.pacs --review ../shared/real-mammograms/rsna-10008 --json
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


def as_archived(folder: Path, out: Path) -> list[str]:
    """Copies of the folder's DICOMs with the tags every archive has and a research export
    may lack (SOP class, Modality MG, ViewPosition from a ``views.csv`` beside them, as the
    RSNA exam ships it); the pixel data and its transfer syntax are untouched. Returns the
    tags that were added."""
    import csv

    import pydicom

    mg = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image - For Presentation
    views = {}
    if (folder / "views.csv").exists():
        with open(folder / "views.csv", newline="") as f:
            views = {row["image_id"]: row["view"] for row in csv.DictReader(f)}
    added: set[str] = set()
    out.mkdir(parents=True)
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".dcm", ".dicom")):
        ds = pydicom.dcmread(path)
        for keyword, value in (("SOPClassUID", mg), ("Modality", "MG"), ("ViewPosition", views.get(path.stem))):
            if value and not str(ds.get(keyword, "") or "").strip():
                setattr(ds, keyword, value)
                added.add(keyword)
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.save_as(out / path.name)
    return sorted(added)


def review(folder: Path, arch: str, img_size: int, repeats: int) -> dict[str, Any]:
    """Open → hung → four predictions with Grad-CAM, ``repeats`` times (a fresh study
    each time: nothing decoded is reused)."""
    import torch

    from benchmarks.common import make_random_run
    from core.pacs import PacsClient, local_pacs, push_folder
    from core.predict import Predictor
    from core.review.pacs_study import open_study
    from core.review.study import StudyResults

    with temp_dir() as tmp:
        run = make_random_run(tmp / "run", arch, img_size)
        t0 = time.perf_counter()
        predictor = Predictor(run, device="cpu")
        load_s = time.perf_counter() - t0
        added = as_archived(folder, tmp / "exam")
        with local_pacs(_free_port(), tmp / "store") as pacs:
            client = PacsClient(pacs.url)
            report = push_folder(tmp / "exam", client)
            [row] = client.find_studies()
            rounds = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                study = open_study(client, row.study_uid, predictor.params)
                views = study.views()
                t_hung = time.perf_counter()
                results = StudyResults()
                results.predict(predictor, run, views, propose=True)
                t_done = time.perf_counter()
                done = results.current(run, views, True)
                errors = [r.error for r in done if r.error]
                if errors or len(done) != len(views) or any(r.cam_roi_aware is None for r in done):
                    raise RuntimeError(f"prediction failed: {errors[:1] or 'no Grad-CAM'}")
                rounds.append({"open_to_hung_s": rounded(t_hung - t0), "predict_cam_s": rounded(t_done - t_hung),
                               "open_to_predictions_s": rounded(t_done - t0)})
            ds = client.retrieve(study.images.images[0])
    return {
        "folder": str(folder), "tags_added": added, "stored": len(report.stored), "refused": len(report.refused),
        "views": [v.view for v in views], "rows_columns": [int(ds.Rows), int(ds.Columns)],
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID.name), "arch": arch, "img_size": img_size,
        "source_side": predictor.params.source_side, "torch_threads": torch.get_num_threads(),
        "predictor_load_s": rounded(load_s), "rounds": rounds,
        "open_to_predictions_s": [r["open_to_predictions_s"] for r in rounds], "note": NOTE_CPU,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="long side of the phantom's images in pixels")
    parser.add_argument("--j2k", action="store_true", help="store the images as JPEG 2000 lossless")
    parser.add_argument("--review", type=Path, metavar="DIR",
                        help="time open study → four predictions with Grad-CAM on this folder's study")
    parser.add_argument("--arch", default="resnet10t", help="--review: the run's architecture")
    parser.add_argument("--img-size", type=int, default=128, help="--review: the run's input size")
    parser.add_argument("--repeats", type=int, default=3, help="--review: how many times")
    args = parser.parse_args()
    if args.review:
        r = review(args.review, args.arch, args.img_size, args.repeats)
        emit(r, args.json, f"{len(r['views'])} views {r['rows_columns']} ({r['transfer_syntax']}): open → "
             f"four predictions with Grad-CAM {r['open_to_predictions_s']} s "
             f"(open → hung {[x['open_to_hung_s'] for x in r['rounds']]} s)")
        return
    r = measure(args.studies, args.size, args.j2k)
    emit(r, args.json,
         f"Orthanc up in {r['start_s']} s; push {r['stored']} files ({r['mb']} MB) {r['push_s']} s; "
         f"list {r['qido_s']} s; open {r['open_s']} s; retrieve {len(r['views'])} views {r['retrieve_s']} s "
         f"({r['transfer_syntax']}, {r['rows_columns']}); decode {r['decode_s']} s; stop {r['stop_s']} s")


if __name__ == "__main__":
    main()
