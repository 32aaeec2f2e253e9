"""A small synthetic detection dataset in COCO format, generated in seconds, offline.

Why: CI, notebooks and offline laptops cannot download COCO, but every part of the pipeline
(COCO JSON, polygons for copy-paste, mAP with pycocotools, small/medium/large buckets) should
still be exercised on data where learning is visible within minutes on a CPU.

What is in an image:
- a cluttered background: a two-colour gradient, pixel noise, and distractor strokes (lines,
  ellipse outlines, scribbles) in colours that overlap the object colours, so colour alone is
  not enough;
- 1 to `max_objects` objects from `SYNTHETIC_NAMES`. Classes differ in *shape* (polygon),
  *colour* (a jittered base colour, but two pairs of classes share one) and *texture* (solid,
  stripes, checker, dots), each rotated and stretched at random;
- sizes drawn log-uniformly so the COCO buckets all occur (area < 32^2 small, < 96^2 medium,
  above that large, in pixels of the written image);
- occlusion: objects are painted in order over each other; the label of each object is its
  *visible* part (polygon from the visible mask, box around it, `area` = visible pixels);
  objects less than 30% visible get no label, the way COCO annotators skip hidden ones.

Everything is drawn from `np.random.default_rng([seed, split, index])`, so a seed always
writes the same bytes, and images can be generated independently of each other.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import yaml

GENERATOR_VERSION = 1
SYNTHETIC_NAMES = ["disc", "square", "triangle", "star", "hexagon", "cross"]
# base BGR colours: disc/cross share red-orange and square/hexagon share blue on purpose
CLASS_COLOURS = [(40, 40, 220), (200, 90, 30), (40, 170, 40), (30, 210, 230), (200, 90, 30),
                 (30, 60, 230)]
CLASS_TEXTURES = ["solid", "stripes", "solid", "checker", "dots", "stripes"]
MIN_VISIBLE_FRACTION = 0.3
SPLIT_CODES = {"train": 1, "val": 2}


def unit_polygon(name: str) -> np.ndarray:
    """Outline of a class shape inside the unit circle, (k, 2)."""
    def ring(k, r=1.0, phase=0.0):
        t = np.arange(k) * 2 * np.pi / k + phase
        return np.stack([np.cos(t), np.sin(t)], 1) * np.asarray(r)[..., None]
    if name == "disc":
        return ring(40)
    if name == "square":
        return ring(4, phase=np.pi / 4)
    if name == "triangle":
        return ring(3, phase=-np.pi / 2)
    if name == "star":
        return ring(10, r=np.tile([1.0, 0.42], 5), phase=-np.pi / 2)
    if name == "hexagon":
        return ring(6)
    if name == "cross":
        a, b = 0.3, 0.95
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                         [-a, a], [-b, a], [-b, -a], [-a, -a]])
    raise ValueError(name)


UNIT_POLYGONS = [unit_polygon(n) for n in SYNTHETIC_NAMES]


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient + noise + distractor strokes."""
    c0, c1 = rng.uniform(30, 220, (2, 3))
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.float32(np.cos(direction)) * np.linspace(0, 1, w, dtype=np.float32)[None, :]
            + np.float32(np.sin(direction)) * np.linspace(0, 1, h, dtype=np.float32)[:, None])
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    ramp += rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(0.02, 0.06))
    image = c0.astype(np.float32) + (c1 - c0).astype(np.float32) * ramp[..., None]
    image = image.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        thickness = int(rng.integers(1, 4))
        if kind == 0:
            p0, p1 = rng.integers(0, [w, h], (2, 2))
            cv2.line(image, tuple(map(int, p0)), tuple(map(int, p1)), colour, thickness)
        elif kind == 1:
            centre = tuple(int(v) for v in rng.integers(0, [w, h]))
            axes = tuple(int(v) for v in rng.integers(4, max(6, min(h, w) // 4), 2))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, thickness)
        else:
            points = np.cumsum(rng.normal(0, min(h, w) / 12, (6, 2)), 0) + rng.uniform(0, [w, h])
            cv2.polylines(image, [points.astype(np.int32)], False, colour, thickness)
    return image


def texture(kind: str, h: int, w: int, colour: np.ndarray, rng: np.random.Generator):
    """An h x w patch in the class colour with its texture."""
    patch = np.empty((h, w, 3), np.float32)
    patch[:] = colour
    dark = colour * rng.uniform(0.35, 0.6)
    yy, xx = np.mgrid[:h, :w]
    period = int(rng.integers(4, 9))
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        mask = ((xx * np.cos(angle) + yy * np.sin(angle)) // period) % 2 == 1
        patch[mask] = dark
    elif kind == "checker":
        patch[((xx // period) + (yy // period)) % 2 == 1] = dark
    elif kind == "dots":
        patch[((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2)
              < (period / 3.2) ** 2] = dark
    patch += rng.normal(0, 6, (h, w, 1))
    return patch.clip(0, 255).astype(np.uint8)


def object_polygon(cls: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Class outline with random size (log-uniform), rotation, stretch and position; (k, 2)."""
    side = math.exp(rng.uniform(math.log(10), math.log(0.85 * min(h, w))))  # ~ box side, px
    stretch = math.exp(rng.uniform(-0.25, 0.25))
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    poly = UNIT_POLYGONS[cls] * [stretch, 1 / stretch] @ rot.T * (side / 2)
    centre = rng.uniform([0, 0], [w, h])  # may hang off the edge: truncated objects exist
    return poly + centre


def render_image(h: int, w: int, max_objects: int, rng: np.random.Generator,
                 classes: tuple[int, ...] | None = None):
    """One image and its visible-object annotations [(cls, polygons, bbox_xywh, area)].
    ``classes``: the indices into `SYNTHETIC_NAMES` to draw objects from (default: all six)."""
    image = background(h, w, rng)
    owner = np.zeros((h, w), np.int16)  # which object is visible at each pixel (0 = none)
    objects = []
    for k in range(1, int(rng.integers(1, max_objects + 1)) + 1):
        cls = (int(rng.integers(len(SYNTHETIC_NAMES))) if classes is None
               else classes[int(rng.integers(len(classes)))])
        poly = object_polygon(cls, h, w, rng)
        x0, y0 = np.floor(poly.min(0)).astype(int).clip(0, [w - 1, h - 1])
        x1, y1 = np.ceil(poly.max(0)).astype(int).clip(1, [w, h])
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 1, cv2.LINE_8)
        full_area = int(mask.sum())
        if full_area < 16:
            continue
        colour = np.clip(np.array(CLASS_COLOURS[cls]) + rng.normal(0, 22, 3), 0, 255)
        patch = texture(CLASS_TEXTURES[cls], y1 - y0, x1 - x0, colour, rng)
        region = mask.astype(bool)
        image[y0:y1, x0:x1][region] = patch[region]
        owner[y0:y1, x0:x1][region] = k
        objects.append((k, cls, full_area))
    annotations = []
    for k, cls, full_area in objects:
        visible = (owner == k).astype(np.uint8)
        area = int(visible.sum())
        if area < MIN_VISIBLE_FRACTION * full_area or area < 12:
            continue
        contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polygons = [c.reshape(-1, 2) for c in contours if len(c) >= 3]
        if not polygons:
            continue
        x, y, bw, bh = cv2.boundingRect(np.concatenate(polygons))
        annotations.append((cls, polygons, [x, y, bw, bh], area))
    return image, annotations


def generate_split(root: Path, split: str, count: int, first_id: int, imgsz: int,
                   max_objects: int, seed: int, classes: tuple[int, ...] | None = None) -> dict:
    """Write the images of one split and return its COCO dict (category ids 1..k in the order
    of ``classes``, the indices of the drawn shapes; default all six)."""
    drawn = tuple(range(len(SYNTHETIC_NAMES))) if classes is None else classes
    image_dir = root / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
        short = int(round(imgsz * rng.uniform(0.6, 1.0) / 2) * 2)
        h, w = (short, imgsz) if rng.random() < 0.7 else (imgsz, short)
        image, objects = render_image(h, w, max_objects, rng, classes)
        image_id = first_id + i
        file_name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(image_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for cls, polygons, bbox, area in objects:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": drawn.index(cls) + 1,
                "bbox": [float(v) for v in bbox], "area": float(area), "iscrowd": 0,
                "segmentation": [p.astype(float).ravel().tolist() for p in polygons]})
    categories = [{"id": i + 1, "name": SYNTHETIC_NAMES[c], "supercategory": "shape"}
                  for i, c in enumerate(drawn)]
    return {"info": {"description": f"yolov9lite synthetic shapes, {split}, seed {seed}"},
            "images": images, "annotations": annotations, "categories": categories}


def make_synthetic(root="runs/data/synthetic", num_train: int = 384, num_val: int = 96,
                   imgsz: int = 320, seed: int = 0, max_objects: int = 8,
                   force: bool = False, classes=None) -> Path:
    """Write the synthetic COCO-format dataset under `root`; returns the path of its data.yaml.

    Layout: `images/{train,val}/*.jpg`, `annotations/instances_{train,val}.json` (category ids
    1..6, `bbox` [x, y, w, h] and `area` in pixels, polygon `segmentation`), `data.yaml`.
    `imgsz` is the longest image side; the other side is 60-100% of it. If the folder already
    holds a set made with the same parameters it is reused (pass force=True to rewrite).
    Defaults: 384 + 96 images at 320 px, about 2 s on one core.
    `classes`: the shapes to draw, a subset of `SYNTHETIC_NAMES` by name (e.g. two disjoint
    class sets for a fine-tuning experiment); they become classes 0..k-1 (category ids 1..k) in
    the order given. Default: all six, and the same bytes as before the option existed.
    """
    root = Path(root)
    drawn = None if classes is None else _class_indices(classes)
    params = {"version": GENERATOR_VERSION, "num_train": num_train, "num_val": num_val,
              "imgsz": imgsz, "seed": seed, "max_objects": max_objects}
    if drawn is not None:  # absent by default: sets written before the option are still reused
        params["classes"] = [SYNTHETIC_NAMES[c] for c in drawn]
    manifest = root / "synthetic.json"
    yaml_path = root / "data.yaml"
    claim_folder(root)
    if not force and is_complete(root, manifest, params):
        return yaml_path
    for split, count, first_id in (("train", num_train, 1), ("val", num_val, num_train + 1)):
        split_dir = root / "images" / split
        if split_dir.is_dir():  # a stale set with other parameters: start clean
            for old in split_dir.glob("*.jpg"):
                old.unlink()
        coco = generate_split(root, split, count, first_id, imgsz, max_objects, seed, drawn)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        with open(root / "annotations" / f"instances_{split}.json", "w") as f:
            json.dump(coco, f)
    names = SYNTHETIC_NAMES if drawn is None else [SYNTHETIC_NAMES[c] for c in drawn]
    config = {"path": ".", "train": "images/train", "val": "images/val",
              "train_json": "annotations/instances_train.json",
              "val_json": "annotations/instances_val.json",
              "names": dict(enumerate(names)),
              "category_ids": list(range(1, len(names) + 1))}
    with open(yaml_path, "w") as f:
        f.write("# yolov9lite synthetic shapes dataset (written by make_synthetic)\n")
        yaml.safe_dump(config, f, sort_keys=False)
    manifest.write_text(json.dumps(params, sort_keys=True))  # written last: marks completion
    return yaml_path


def _class_indices(classes) -> tuple[int, ...]:
    """Shape names -> indices into `SYNTHETIC_NAMES`; unknown, repeated or no names are refused."""
    if isinstance(classes, str):
        classes = [classes]
    names = list(classes)
    unknown = [n for n in names if n not in SYNTHETIC_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"classes={names!r}: give distinct shape names from "
                         f"{', '.join(SYNTHETIC_NAMES)}")
    return tuple(SYNTHETIC_NAMES.index(n) for n in names)


SYNTHETIC_MARK = ".yolov9lite-synthetic"  # written first: this folder is ours to rewrite


def is_regular_file(path: Path) -> bool:
    """A regular file itself, not a symlink to one (a planted link must not vouch for a folder)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def claim_folder(root: Path) -> None:
    """`make_synthetic` writes and deletes only in a folder that is new, empty, or marked as
    a synthetic set (our mark, or the manifest of a set written before the mark existed), each
    a regular file. Anything else (a user's dataset behind `$YOLOV9LITE_SYNTHETIC`) is refused."""
    if root.exists() or root.is_symlink():
        ours = is_regular_file(root / SYNTHETIC_MARK) or is_regular_file(root / "synthetic.json")
        if not root.is_dir() or (any(root.iterdir()) and not ours):
            raise ValueError(f"{root} exists and is not a synthetic dataset folder (no "
                             f"{SYNTHETIC_MARK}); the synthetic set is only written into a new "
                             "or empty folder: set YOLOV9LITE_SYNTHETIC to another folder")
    root.mkdir(parents=True, exist_ok=True)
    if not is_regular_file(root / SYNTHETIC_MARK):
        fd = os.open(root / SYNTHETIC_MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write("synthetic dataset written by yolov9lite; rewritten by make_synthetic\n")


def is_complete(root: Path, manifest: Path, params: dict) -> bool:
    try:
        if json.loads(manifest.read_text()) != params:
            return False
    except (OSError, ValueError):
        return False
    counts = {"train": params["num_train"], "val": params["num_val"]}
    return (root / "data.yaml").is_file() and all(
        (root / "annotations" / f"instances_{s}.json").is_file()
        and len(list((root / "images" / s).glob("*.jpg"))) == n for s, n in counts.items())
