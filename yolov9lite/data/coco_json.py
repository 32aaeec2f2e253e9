"""Scan a COCO instances JSON + image folder into `ImageRecord`s (`scan_coco`).

Every field of the JSON is checked before use; a problem names the JSON and the image entry or
annotation id, and drops that entry or annotation (see `records.py` for how problems are counted).
A file that is not a COCO JSON at all raises `DataConfigError` naming it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .cache import cache_path_for, read_cache, stat_fingerprint, write_cache
from .checks import check_images, clean_labels
from .config import DataConfigError, read_json_file
from .records import ImageRecord, ScanReport, finish_report

# ---------------------------------------------------------------------------------------------
# COCO JSON entries: every field is checked before use, problems name the JSON and the id


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def coco_entry_problem(entry) -> str | None:
    """Why an `images` entry cannot be used, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        return "has no 'file_name'"
    if type(entry.get("id")) is not int:
        return f"has no integer 'id' (got {short(entry.get('id'))})"
    return None


def coco_objects(anns: list[dict], cat_index: dict, where: str, file: str, report: ScanReport,
                 width: float, height: float):
    """Annotations of one image -> (cls, boxes cx cy w h normalised, segments); annotations
    with a malformed `bbox` or an unknown `category_id` are dropped with a warning."""
    cls, boxes, segs = [], [], []
    for a in anns:
        name = f"{where} annotation id {short(a.get('id'))}"
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_number, bbox))):
            report.add("bad annotation", file, f"{name}: bbox {short(bbox)} is not 4 finite "
                       "numbers [x, y, w, h]; annotation dropped")
            continue
        category = a.get("category_id")
        if type(category) is not int or category not in cat_index:
            report.add("unknown category", file, f"{name}: category_id {short(category)} is not "
                       f"one of the dataset's {len(cat_index)} category ids; annotation dropped")
            continue
        x, y, w, h = bbox
        cls.append(cat_index[category])
        boxes.append([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
        segs.append(polygon_from_coco(a.get("segmentation"), width, height))
    segs = segs if cls and all(s is not None for s in segs) else []
    return np.array(cls, np.float64), np.array(boxes, np.float64).reshape(-1, 4), segs


def short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def polygon_from_coco(segmentation, width: float, height: float) -> np.ndarray | None:
    """COCO polygon list -> one normalised (k, 2) array. Several parts are joined end to end
    (good enough for copy-paste masks and for tight boxes); RLE, empty or malformed gives None
    (the object then simply has no polygon)."""
    if not isinstance(segmentation, list) or not segmentation:
        return None
    try:
        parts = [np.asarray(p, np.float32).reshape(-1, 2) for p in segmentation
                 if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
    except (TypeError, ValueError):
        return None
    if not parts or not all(np.isfinite(p).all() for p in parts):
        return None
    return np.concatenate(parts) / np.array([width, height], np.float32)


# ---------------------------------------------------------------------------------------------
# the scan


def read_coco_json(json_path: Path) -> tuple[dict, list, list]:
    """(categories dict, images, annotations) of a COCO JSON; a file that is not one raises
    `DataConfigError` naming it."""
    coco = read_json_file(json_path)
    if not isinstance(coco, dict):
        raise DataConfigError(f"{json_path}: expected a COCO object with 'images', "
                              "'annotations' and 'categories'")
    parts = [coco.get(k, []) for k in ("images", "annotations", "categories")]
    for key, part in zip(("images", "annotations", "categories"), parts):
        if not isinstance(part, list):
            raise DataConfigError(f"{json_path}: '{key}' must be a list, got "
                                  f"{type(part).__name__}")
    return coco, parts[0], parts[1]


def scan_coco(json_path, image_dir, category_ids: list[int] | None = None,
              name: str = "dataset", use_cache: bool = True):
    """Scan a COCO instances JSON + image folder. Crowd annotations (iscrowd=1) are left out,
    as the official COCO->YOLO conversion does; RLE masks give no polygon."""
    json_path, image_dir = Path(json_path), Path(image_dir)
    coco, entries, annotations = read_coco_json(json_path)
    if category_ids is None:
        category_ids = sorted(c["id"] for c in coco.get("categories", [])
                              if isinstance(c, dict) and type(c.get("id")) is int)
    cat_index = {cid: i for i, cid in enumerate(category_ids)}
    report = ScanReport(name)
    usable_entries, paths = [], []
    for k, entry in enumerate(entries):
        problem = coco_entry_problem(entry)
        if problem:
            report.add("bad image entry", f"{json_path} images[{k}]", f"skipped ({problem})")
            continue
        usable_entries.append(entry)
        paths.append(image_dir / entry["file_name"])
    fingerprint = stat_fingerprint([json_path] + paths, f"coco|{image_dir}|{category_ids}")
    cache_path = cache_path_for(json_path.with_suffix(""))
    if use_cache and (cached := read_cache(cache_path, fingerprint, paths)) is not None:
        return cached[0], cached[1], True
    anns_by_image = defaultdict(list)
    for k, a in enumerate(annotations):
        if not isinstance(a, dict) or type(a.get("image_id")) is not int:
            report.add("bad annotation", f"{json_path} annotations[{k}]",
                       "dropped (not an object with an integer 'image_id')")
        elif not a.get("iscrowd", 0):
            anns_by_image[a["image_id"]].append(a)
    shapes = check_images(paths, report)
    records, seen_ids = [], set()
    for i, (entry, path) in enumerate(zip(usable_entries, paths)):
        if i not in shapes:
            continue
        if entry["id"] in seen_ids:
            report.add("duplicate image id", path, f"skipped (id {entry['id']} listed twice in "
                       f"{json_path.name})")
            continue
        seen_ids.add(entry["id"])
        h, w = shapes[i]
        json_hw = (entry.get("height"), entry.get("width"))
        valid = all(is_number(v) and v > 0 for v in json_hw)
        if json_hw not in ((h, w), (None, None)):
            report.add("size mismatch", path, f"{json_path.name} says {short(json_hw[1])}x"
                       f"{short(json_hw[0])}, file is {w}x{h}; labels scaled by the "
                       + ("JSON size" if valid else "file size (the JSON size is invalid)"))
        jh, jw = json_hw if valid else (h, w)
        cls, boxes, segs = coco_objects(anns_by_image.get(entry["id"], []), cat_index,
                                        json_path.name, str(path), report, jw, jh)
        cls, boxes, segs = clean_labels(cls, boxes, segs, len(category_ids), str(path), report)
        records.append(ImageRecord(str(path), int(entry["id"]), (h, w), cls, boxes, segs))
    finish_report(records, report)
    if use_cache:
        write_cache(cache_path, fingerprint, records, report)
    return records, report, False
