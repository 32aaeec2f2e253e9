"""`dataset_to_coco`: ground truth of any split as a COCO dict, for pycocotools evaluation.

For COCO-JSON datasets prefer the original JSON (`cfg["val_json"]`): it also holds crowd
regions and the annotators' areas. This function serves YOLO-layout sets, where no JSON
exists. Boxes are in original-image pixels ([x_left, y_top, w, h]); `area` is the polygon
area (shoelace formula, in pixels) when the object has a segment, else box w * h. Image ids
are those the loader puts in `metas` (the JSON's ids for COCO-JSON sets; for YOLO layouts the
numeric file stem, else a stable hash of the name, or of the relative path when several images
of the split share a file name: `labels.yolo_image_ids`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import load_data_config, split_source
from .dataset import DetectionDataset
from .labels import load_records


def polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def dataset_to_coco(dataset_or_cfg, split: str = "val") -> dict:
    """COCO dict {images, annotations, categories} of a DetectionDataset or a config's split."""
    if isinstance(dataset_or_cfg, DetectionDataset):
        records, names = dataset_or_cfg.records, dataset_or_cfg.names
        category_ids = getattr(dataset_or_cfg, "category_ids", list(range(len(names))))
    else:
        cfg = load_data_config(dataset_or_cfg)
        records, _ = load_records(split_source(cfg, split), cfg["nc"], split)
        names, category_ids = cfg["names"], cfg["category_ids"]
    images, annotations = [], []
    for rec in sorted(records, key=lambda r: r.image_id):
        h, w = rec.shape
        images.append({"id": rec.image_id, "width": w, "height": h,
                       "file_name": Path(rec.path).name})
        if len(rec.cls) == 0:
            continue
        scale = np.array([w, h, w, h], np.float64)
        xywh = rec.boxes.astype(np.float64) * scale
        xywh[:, :2] -= xywh[:, 2:] / 2  # centre -> top-left
        if rec.has_segments:
            areas = [polygon_area(s * scale[:2]) for s in rec.segments]
        else:
            areas = (xywh[:, 2] * xywh[:, 3]).tolist()
        for c, box, area in zip(rec.cls.tolist(), xywh.tolist(), areas):
            annotations.append({"id": len(annotations) + 1, "image_id": rec.image_id,
                                "category_id": int(category_ids[c]), "bbox": box,
                                "area": float(area), "iscrowd": 0})
    categories = [{"id": int(i), "name": n} for i, n in zip(category_ids, names)]
    return {"images": images, "annotations": annotations, "categories": categories}
