"""The metrics table people read: ``Class Images Instances P R mAP50 mAP50-95``.

The layout of the official ``val_dual.py`` (and of ultralytics): one ``all`` row, then one row
per class present in the ground truth. mAP50 and mAP50-95 are COCO's (pycocotools, as
:func:`yolov9lite.evaluation.coco_eval.coco_metrics` computes them). P and R are, as in the
official ``ap_per_class``, the precision and recall of each class at the one confidence
threshold that maximises the mean F1 over the classes (F1 curve smoothed by a box filter of 10 %
of its length, as the official code does), at IoU 0.5.

Where the official code matches its own way (each detection to the unmatched ground truth of
highest IoU), here the matches are COCOeval's (highest score first, crowd boxes ignored), read
from its accumulated arrays: for each class the precision envelope and the detection score at
each of the 101 recall thresholds. Recall at a confidence ``c`` is then the largest threshold
reached by detections scoring at least ``c`` (so R is a multiple of 0.01), and P the envelope's
precision there: numbers within a recall step of the official ones.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = ["TABLE_COLUMNS", "all_row", "format_metrics_table", "per_class_rows",
           "precision_recall_at_best_f1", "write_metrics_files", "write_per_class_csv"]

TABLE_COLUMNS = ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
CONF_GRID = np.linspace(0, 1, 1000)  # official ap_per_class: px = np.linspace(0, 1, 1000)


def _smooth(y: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Box filter over ``fraction`` of the length, edges padded (official ``smooth``)."""
    nf = round(len(y) * fraction * 2) // 2 + 1  # odd number of elements
    pad = np.ones(nf // 2)
    padded = np.concatenate((pad * y[0], y, pad * y[-1]))
    return np.convolve(padded, np.ones(nf) / nf, mode="valid")


def precision_recall_at_best_f1(coco_eval: dict, cat_ids: list, rec_thrs) -> dict:
    """Per-class P and R (``{category_id: value}``, classes with ground truth only) at the
    confidence of maximal mean F1, and that confidence, from COCOeval's ``eval`` dict (its
    ``precision`` and ``scores`` arrays, (T, R, K, A, M); IoU 0.5, all areas, 100 detections)."""
    prec = np.asarray(coco_eval["precision"])[0, :, :, 0, -1]  # (R, K)
    scores = np.asarray(coco_eval["scores"])[0, :, :, 0, -1]
    rec_thrs = np.asarray(rec_thrs, dtype=float)
    present = (prec > -1).any(0)  # -1: no ground truth for the class
    if not present.any():
        return {"per_class_P": {}, "per_class_R": {}, "conf_best_f1": 0.0}
    prec, scores = prec[:, present], scores[:, present]
    # reached[c, r, k]: recall threshold r is reached by detections with score >= CONF_GRID[c]
    reached = (scores[None] >= CONF_GRID[:, None, None]) & (prec[None] > 0)
    n_r = reached.shape[1]
    last = n_r - 1 - reached[:, ::-1, :].argmax(1)  # (C, K): highest recall reached
    any_reached = reached.any(1)
    k_idx = np.arange(prec.shape[1])[None, :]
    r = np.where(any_reached, rec_thrs[last], 0.0)
    # no recall reached at c: P = 0 (the official interpolation gives 1 above a class's highest
    # score and 0 below it when nothing matches; the arrays used here cannot tell the two apart)
    p = np.where(any_reached, prec[last, k_idx], 0.0)
    f1 = 2 * p * r / (p + r + 1e-16)
    best = int(_smooth(f1.mean(1)).argmax())
    ids = [c for c, keep in zip(cat_ids, present) if keep]
    return {"per_class_P": {c: float(v) for c, v in zip(ids, p[best])},
            "per_class_R": {c: float(v) for c, v in zip(ids, r[best])},
            "conf_best_f1": float(CONF_GRID[best])}


def per_class_rows(metrics: dict, gt_dict: dict, cat_ids: list, names: list[str]) -> list[dict]:
    """One row per class present in the ground truth: images, instances, P, R, mAP50, mAP50-95.

    Classes without any ground-truth box are left out (pycocotools reports -1 for them, which
    reads like a result; the commands name them in one line instead)."""
    images, instances = {c: set() for c in cat_ids}, dict.fromkeys(cat_ids, 0)
    for a in gt_dict.get("annotations", []):
        if a["category_id"] in instances and not a.get("iscrowd", 0):
            instances[a["category_id"]] += 1
            images[a["category_id"]].add(a["image_id"])
    rows = []
    for c, name in zip(cat_ids, names):
        if instances[c] == 0:
            continue
        rows.append({"class": str(name), "images": len(images[c]), "instances": instances[c],
                     "P": round(metrics.get("per_class_P", {}).get(c, 0.0), 4),
                     "R": round(metrics.get("per_class_R", {}).get(c, 0.0), 4),
                     "AP50": round(metrics["per_class_AP50"].get(c, 0.0), 4),
                     "AP": round(metrics["per_class_AP"].get(c, 0.0), 4)})
    return rows


def all_row(metrics: dict, rows: list[dict], n_images: int) -> dict:
    """The ``all`` row: every image, every instance, P and R averaged over the classes present
    (official ``mp, mr``), COCO mAP50 and mAP50-95."""
    mean = (lambda key: float(np.mean([r[key] for r in rows]))) if rows else (lambda key: 0.0)
    return {"class": "all", "images": n_images, "instances": sum(r["instances"] for r in rows),
            "P": round(mean("P"), 4), "R": round(mean("R"), 4),
            "AP50": round(float(metrics["AP50"]), 4), "AP": round(float(metrics["AP"]), 4)}


def format_metrics_table(rows: list[dict], total: dict, per_class: bool = True) -> str:
    """The table as text: header, the ``all`` row, and (``per_class``) one row per class."""
    shown = [total] + (rows if per_class else [])
    width = max([len(r["class"]) for r in shown] + [len(TABLE_COLUMNS[0])]) + 2
    head = f"{TABLE_COLUMNS[0]:>{width}}" + "".join(f"{c:>11}" for c in TABLE_COLUMNS[1:])
    lines = [head]
    for r in shown:
        lines.append(f"{r['class']:>{width}}{r['images']:>11}{r['instances']:>11}"
                     + "".join(f"{r[k]:>11.3f}" for k in ("P", "R", "AP50", "AP")))
    return "\n".join(lines)


def write_metrics_files(save_dir, table: dict, metrics: dict) -> None:
    """``metrics.json`` (the ``all`` row, the per-class rows, the COCO numbers given in
    ``metrics`` as ``metrics/<name>``) and ``per_class.csv`` of a final validation."""
    save_dir = Path(save_dir)
    coco = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("metrics/")}
    summary = {**coco, "all": table["all"], "per_class": table["classes"],
               "conf_best_f1": table["conf_best_f1"]}
    (save_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
    write_per_class_csv(table["classes"], save_dir / "per_class.csv")


def write_per_class_csv(rows: list[dict], path) -> None:
    """The per-class rows as ``per_class.csv`` (class, images, instances, P, R, AP50, AP)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "images", "instances", "P", "R", "AP50",
                                               "AP"])
        writer.writeheader()
        writer.writerows(rows)
