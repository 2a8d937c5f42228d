"""The CDD-CESM layout: low-energy and subtracted JPEGs, the radiologists'
sheet (xlsx) and the VIA hand-drawn segmentations (csv).

Quirks of the real files are reproduced on purpose (stray spaces in names,
``4$2``-style BIRADS text, circles for ellipses), since the adapter must read
them.  The files carry no split: the adapter makes one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import MammoError
from core.phantom.files import write_csv, write_xlsx
from core.phantom.plan import BreastPlan, plan_breasts, study_densities, view_lesions
from core.phantom.pool import run_tasks
from core.phantom.profiles import SYNTHETIC_NAME, Profile
from core.phantom.render import render_task

CDD_DM_DIR = "Low energy images of CDD-CESM"
CDD_CM_DIR = "Subtracted images of CDD-CESM"
CDD_SHEET = "Radiology-manual-annotations.xlsx"
CDD_SEGMENTATIONS = "Radiology_hand_drawn_segmentations_v2.csv"


_CDD_COLUMNS = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS",
                "Findings", "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
_VIA_COLUMNS = ["#filename", "file_size", "file_attributes", "region_count", "region_id",
                "region_shape_attributes", "region_attributes"]


def _cdd_birads(plan: BreastPlan, k: int) -> str:
    """BIRADS text; a few breasts list a second finding's category after "$"."""
    if plan.label != "normal" and k % 9 == 4:
        return f"{plan.birads}$2"
    return plan.birads


def _cdd_findings(plan: BreastPlan) -> tuple[str, str]:
    if not plan.lesions:
        return ("No findings", "") if plan.label == "normal" else ("Benign features", "scattered")
    kinds = {lesion.kind for lesion in plan.lesions}
    words, tags = [], []
    if "malignant_mass" in kinds:
        words.append("irregular spiculated mass")
        tags += ["irregular", "spiculated"]
    if "calcifications" in kinds:
        words.append("pleomorphic microcalcifications")
        tags += ["clustered", "pleomorphic"]
    if "benign_mass" in kinds:
        words.append("oval circumscribed mass")
        tags += ["oval", "circumscribed"]
    if "benign_calcifications" in kinds:
        words.append("coarse calcifications")
        tags += ["coarse"]
    return ", ".join(words), ", ".join(tags)


def _via_shape(item: dict[str, Any], k: int) -> dict[str, Any]:
    s = item["shape"]
    r2 = lambda v: int(round(v))  # noqa: E731 - VIA stores whole pixels
    if s["type"] == "polygon":
        return {"name": "polygon", "all_points_x": [r2(v) for v in s["x"]], "all_points_y": [r2(v) for v in s["y"]]}
    if s["type"] == "ellipse" and k % 3:
        return {"name": "ellipse", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "rx": round(s["rx"], 1),
                "ry": round(s["ry"], 1), "theta": 0}
    if s["type"] == "ellipse":
        return {"name": "circle", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "r": round(max(s["rx"], s["ry"]), 1)}
    return {"name": "circle", "cx": r2(s["cx"]), "cy": r2(s["cy"]), "r": round(s["r"], 1)}


def write_cdd(root: Path, profile: Profile, studies: int, size: int, seed: int,
              difficulty: float, workers: int | None) -> tuple[list[dict], int]:
    """Write the CDD-CESM layout under ``root``; return the summary records
    (one per low-energy image) and the number of files written."""
    rng = np.random.default_rng([seed, 3])
    plans = plan_breasts(profile, studies, rng)
    densities = study_densities(rng, profile, plans, studies)
    tasks, rows = [], []
    for i in range(studies):
        pid = i + 1
        for j, lat in enumerate("LR"):
            plan = plans[2 * i + j]
            for position in ("CC", "MLO"):
                view = lat + position
                stem_dm, stem_cm = f"P{pid}_{lat}_DM_{position}", f"P{pid}_{lat}_CM_{position}"
                tasks.append({"seed": [seed, 4, i, j, int(position == "MLO")], "view": view,
                              "density": densities[i], "lesions": view_lesions(plan, position, rng),
                              "size": size, "difficulty": difficulty, "aspect": profile.aspect,
                              "dm": str(root / CDD_DM_DIR / f"{stem_dm}.jpg"),
                              "cm": str(root / CDD_CM_DIR / f"{stem_cm}.jpg")})
                rows.append({"pid": pid, "lat": lat, "position": position, "view": view, "plan": plan,
                             "density": densities[i], "stems": (stem_dm, stem_cm), "age": 35 + (i * 11) % 40})
    results = run_tasks(_cdd_worker, tasks, workers)
    sheet, via, records = [], [], []
    for k, (row, res) in enumerate(zip(rows, results)):
        plan: BreastPlan = row["plan"]
        annotated = row["position"] in plan.roi_views
        findings, tags = _cdd_findings(plan)
        pathology = plan.label.capitalize()
        for t_i, (typ, stem, key) in enumerate((("DM", row["stems"][0], "dm"), ("CESM", row["stems"][1], "cm"))):
            name = stem + (" " if (k + t_i) % 23 == 5 else "")
            sheet.append([name, row["pid"], row["lat"], typ, row["age"], row["density"], _cdd_birads(plan, k),
                          findings, row["position"], tags, SYNTHETIC_NAME, pathology])
            if annotated:
                fname = f"{stem} .jpg" if (k + t_i) % 17 == 3 else f"{stem}.jpg"
                drawn = res["drawn"]
                for r_i, item in enumerate(drawn):
                    via.append([fname, res["sizes"][key], "{}", len(drawn), r_i,
                                json.dumps(_via_shape(item, k + r_i), separators=(",", ":")), "{}"])
        records.append({"image_path": f"{CDD_DM_DIR}/{row['stems'][0]}.jpg", "patient_id": str(row["pid"]),
                        "study_id": str(row["pid"]), "laterality": row["lat"], "view": row["position"],
                        "view_name": row["view"], "label": plan.label, "roi": annotated, "split": ""})
    write_xlsx(root / CDD_SHEET, "all", _CDD_COLUMNS, sheet)
    write_csv(root / CDD_SEGMENTATIONS, _VIA_COLUMNS, via)
    return records, 2 * len(tasks) + 2


def _jpeg_bytes(img: np.ndarray, marker: str, quality: int) -> bytes:
    """8-bit grey JPEG with the laterality marker burned in, as scanners do."""
    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    h, w = u8.shape
    scale = h / 900
    left = marker.startswith("R")  # marker on the side away from the chest wall
    (tw, th), _ = cv2.getTextSize(marker, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
    x = int(0.03 * w) if left else int(w - tw - 0.03 * w)
    cv2.putText(u8, marker, (x, int(0.03 * h + th)), cv2.FONT_HERSHEY_SIMPLEX, scale, 235,
                max(1, int(2 * scale)), cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MammoError("JPEG encoding failed")
    return buf.tobytes()


def _cdd_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Render one CDD-CESM view and write its low-energy and subtracted JPEGs."""
    _, dm, cm, drawn = render_task(task, subtracted=True)
    sizes = {}
    for key, img in (("dm", dm), ("cm", cm)):
        data = _jpeg_bytes(img, task["view"], 92)
        Path(task[key]).parent.mkdir(parents=True, exist_ok=True)
        Path(task[key]).write_bytes(data)
        sizes[key] = len(data)
    return {"height": dm.shape[0], "width": dm.shape[1], "drawn": drawn, "sizes": sizes}
