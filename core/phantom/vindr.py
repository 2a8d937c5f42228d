"""The VinDr-Mammo layout: ``images/<study>/<image>.dicom`` plus the
breast-level and finding annotation CSVs, with a per-study train/test split.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from core.phantom.dicom_file import dicom_uid, pick_encodings, write_dicom
from core.phantom.files import write_csv
from core.phantom.plan import BreastPlan, plan_breasts, split_studies, study_densities, view_lesions
from core.phantom.pool import run_tasks
from core.phantom.profiles import Profile
from core.phantom.render import render_task

_BREAST_COLS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                "breast_birads", "breast_density"]
# PatientOrientation (row, column directions) per view, in the hanging convention
_ORIENTATION = {"LCC": ["A", "R"], "RCC": ["P", "L"], "LMLO": ["A", "FR"], "RMLO": ["P", "FL"]}


def _fmt(v: float) -> str:
    """A box coordinate as VinDr's CSVs write it: two decimals."""
    return f"{v:.2f}"


def _hexid(*parts: Any) -> str:
    """VinDr-style 32-hex identifiers, deterministic in the seed."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


def write_vindr(root: Path, profile: Profile, studies: int, size: int, seed: int,
                difficulty: float, workers: int | None) -> tuple[list[dict], int]:
    """Write the VinDr layout under ``root``; return the summary records and
    the number of files written."""
    rng = np.random.default_rng([seed, 1])
    plans = plan_breasts(profile, studies, rng)
    densities = study_densities(rng, profile, plans, studies)
    keys = [_strat_key(plans[2 * i], plans[2 * i + 1]) for i in range(studies)]
    splits = split_studies(keys, profile.test_fraction, rng)
    encodings = pick_encodings(rng, 4 * studies)
    tasks, rows = [], []
    for i in range(studies):
        study_id = _hexid(seed, "study", i)
        for j, lat in enumerate("RL"):
            plan = plans[2 * i + j]
            for position in ("CC", "MLO"):
                k = len(tasks)
                view = lat + position
                image_id = _hexid(seed, "image", i, view)
                meta = {"sop_uid": dicom_uid(seed, i, view, "sop"), "study_uid": dicom_uid(seed, i, "study"),
                        "series_uid": dicom_uid(seed, i, view, "series"),
                        "date": f"2020{1 + i % 12:02d}{1 + i % 28:02d}",
                        "patient_name": f"PHANTOM^{i + 1:04d}", "patient_id": f"PHANTOM-{seed}-{i + 1:04d}",
                        "age": 40 + (i * 7) % 35, "laterality": lat, "position": position,
                        "series_number": k % 4 + 1, "orientation": _ORIENTATION[view]}
                tasks.append({"seed": [seed, 2, i, j, int(position == "MLO")], "view": view,
                              "density": densities[i], "lesions": view_lesions(plan, position, rng),
                              "size": size, "difficulty": difficulty, "aspect": profile.aspect,
                              "encoding": encodings[k], "meta": meta,
                              "path": str(root / "images" / study_id / f"{image_id}.dicom")})
                rows.append({"study_id": study_id, "series_id": _hexid(seed, "series", i, view),
                             "image_id": image_id, "laterality": lat, "view_position": position,
                             "plan": plan, "density": densities[i], "split": splits[i], "view": view})
    results = run_tasks(_vindr_worker, tasks, workers)
    breast_rows, finding_rows, records = [], [], []
    for k, (row, res) in enumerate(zip(rows, results)):
        plan: BreastPlan = row["plan"]
        base = [row["study_id"], row["series_id"], row["image_id"], row["laterality"], row["view_position"],
                res["height"], res["width"], f"BI-RADS {plan.birads}", f"DENSITY {row['density']}"]
        split = "training" if row["split"] == "train" else "test"
        breast_rows.append(base + [split])
        annotated = row["view_position"] in plan.roi_views
        findings = res["drawn"] if annotated else []
        for f_i, item in enumerate(findings):
            cats = [item["category"]]
            if plan.extra_category and f_i == 0:
                cats = ["Nipple Retraction"] + cats
            fb = "" if (k + f_i) % 7 == 3 else f"BI-RADS {_finding_birads(plan, item)}"
            finding_rows.append(base + [repr(cats), fb] + [_fmt(v) for v in item["box"]] + [split])
        if not findings:
            finding_rows.append(base + ["['No Finding']", "", "", "", "", "", split])
        records.append({"image_path": f"images/{row['study_id']}/{row['image_id']}.dicom",
                        "patient_id": row["study_id"], "study_id": row["study_id"],
                        "laterality": row["laterality"], "view": row["view_position"], "view_name": row["view"],
                        "label": plan.label, "roi": bool(findings), "split": row["split"],
                        "photometric": "MONOCHROME1" if tasks[k]["encoding"].mono1 else "MONOCHROME2"})
    write_csv(root / "breast-level_annotations.csv", _BREAST_COLS + ["split"], breast_rows)
    write_csv(root / "finding_annotations.csv",
              _BREAST_COLS + ["finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split"],
              finding_rows)
    return records, len(tasks) + 2


def _finding_birads(plan: BreastPlan, item: dict[str, Any]) -> str:
    """A finding's own category: the breast's for malignant ones; benign
    masses are usually 3 (probably benign), benign calcifications 2."""
    if plan.label == "malignant":
        return plan.birads
    return "3" if item["kind"].endswith("mass") else "2"


def _strat_key(a: BreastPlan, b: BreastPlan) -> tuple[int, int, int]:
    labels = (a.label, b.label)
    return (labels.count("malignant"), labels.count("benign"), len(a.roi_views) + len(b.roi_views))


def _vindr_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Render and write one VinDr DICOM; runs in a pool, seeded by its task."""
    rng, dm, _, drawn = render_task(task, subtracted=False)
    path = Path(task["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(path, dm, task["encoding"], task["meta"], rng)
    return {"height": dm.shape[0], "width": dm.shape[1], "drawn": drawn}
