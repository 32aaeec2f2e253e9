"""Read COCO-JSON and YOLO-layout datasets into one list of `ImageRecord`s, with checks and a cache.

The internal representation follows the YOLO label files (the official pipeline converts
COCO to them): per image its path, an integer image id, the displayed (EXIF-corrected)
`(h, w)`, class indices (n,), boxes (n, 4) as normalised `cx cy w h`, and optional polygon
segments as normalised `(k, 2)` arrays (copy-paste needs them, spec §4).

Every problem with a file is *skipped* (the image is dropped) or *repaired* (the image is
kept, the bad part fixed or dropped), logged as one warning naming the file, counted in a
`ScanReport`, and summarised in one line at the end. Nothing is left for the training loop to
trip over. The scan result is pickled next to the labels and reused while the stat()s of all
files (sizes and modification times) and the scan settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

LOGGER = logging.getLogger("yolov9lite.data")
CACHE_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_IMAGE_SIDE = 4  # smaller images cannot hold a box the filters would keep
WARNINGS_PER_KIND = 20  # after this many, one line says how many more were hidden

# what happens to the image for each kind of problem
SKIP_KINDS = {"corrupt image", "missing image", "image too small", "duplicate file",
              "duplicate image id"}
REPAIR_KINDS = {"truncated JPEG", "converted image mode", "EXIF rotation", "missing label file",
                "empty label file", "bad label line", "coordinates outside [0, 1]",
                "class id out of range", "zero-area box", "duplicate labels", "size mismatch"}


@dataclass
class ImageRecord:
    """One image and its objects, in the common representation (see module docstring)."""

    path: str
    image_id: int
    shape: tuple[int, int]  # (h, w) as displayed, i.e. after EXIF orientation
    cls: np.ndarray  # (n,) int64 contiguous class index
    boxes: np.ndarray  # (n, 4) float32 normalised cx, cy, w, h
    segments: list[np.ndarray] = field(default_factory=list)  # [] or n arrays (k, 2) normalised

    @property
    def has_segments(self) -> bool:
        return len(self.segments) == len(self.cls) > 0


@dataclass
class ScanReport:
    """Counted problems of one scan; `issues` holds (kind, file, action) for every one."""

    name: str
    issues: list[tuple[str, str, str]] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    backgrounds: int = 0

    def add(self, kind: str, file: str | Path, action: str) -> None:
        self.issues.append((kind, str(file), action))

    @property
    def skipped(self) -> int:
        return len({f for k, f, _ in self.issues if k in SKIP_KINDS})

    @property
    def repaired(self) -> int:
        skipped = {f for k, f, _ in self.issues if k in SKIP_KINDS}
        return len({f for k, f, _ in self.issues if k in REPAIR_KINDS and f not in skipped})

    def counts(self) -> Counter:
        return Counter(k for k, _, _ in self.issues)

    def summary(self) -> str:
        detail = ", ".join(f"{k}: {n}" for k, n in sorted(self.counts().items()))
        return (f"{self.name}: {self.images} images, {self.boxes} boxes, {self.skipped} skipped, "
                f"{self.repaired} repaired, {self.backgrounds} backgrounds"
                + (f" ({detail})" if detail else ""))

    def log(self, from_cache: bool = False) -> None:
        """One warning per problem (capped per kind), then the summary line."""
        shown = Counter()
        for kind, file, action in self.issues:
            shown[kind] += 1
            if shown[kind] <= WARNINGS_PER_KIND:
                LOGGER.warning("%s: %s: %s", kind, file, action)
        for kind, n in shown.items():
            if n > WARNINGS_PER_KIND:
                LOGGER.warning("%s: %d more files not listed", kind, n - WARNINGS_PER_KIND)
        LOGGER.info(self.summary() + (" [label cache]" if from_cache else ""))


# ---------------------------------------------------------------------------------------------
# image checks


def inspect_image(path: Path) -> tuple[tuple[int, int] | None, list[tuple[str, str]]]:
    """Open the header of an image; returns ((h, w) displayed or None if unusable, problems).

    Problems are (kind, action). Only headers are read (PIL `verify`) plus the last two bytes of
    JPEGs, so scanning COCO stays cheap; a JPEG without its end marker is truncated, and the
    loader then decodes what is there (missing rows come out grey).
    """
    problems = []
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            w, h = im.size
            mode, fmt = im.mode, im.format
            orientation = im.getexif().get(0x0112, 1)
    except Exception as e:  # noqa: BLE001 - any decoder error means the same thing here
        return None, [("corrupt image", f"skipped ({type(e).__name__}: {e})")]
    if min(w, h) < MIN_IMAGE_SIDE:
        return None, [("image too small", f"skipped ({w}x{h} px)")]
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            if f.read() != b"\xff\xd9":
                problems.append(("truncated JPEG", "kept; the missing part decodes as grey"))
    if mode != "RGB":
        problems.append(("converted image mode", f"{mode} converted to 8-bit RGB on load"))
    if orientation in (5, 6, 7, 8):  # 90-degree turns swap the displayed width and height
        w, h = h, w
    if orientation not in (1, None) and orientation in range(2, 9):
        problems.append(("EXIF rotation", f"orientation {orientation} applied on load"))
    return (h, w), problems


def image_id_from_stem(stem: str) -> int:
    """COCO-style numeric file names give their number; other names a stable 48-bit hash."""
    if stem.isdigit():
        return int(stem)
    return int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=6).digest(), "big")


def file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_duplicate_files(paths: list[str]) -> dict[str, str]:
    """{duplicate path: first path with identical bytes}. Only files sharing a size are hashed."""
    by_size = defaultdict(list)
    for p in paths:
        by_size[os.path.getsize(p)].append(p)
    dup = {}
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        first_by_digest = {}
        for p in same_size:
            first = first_by_digest.setdefault(file_digest(p), p)
            if first != p:
                dup[p] = first
    return dup


# ---------------------------------------------------------------------------------------------
# label checks, vectorised over the objects of one image


def clean_labels(cls: np.ndarray, boxes: np.ndarray, segments: list[np.ndarray], nc: int,
                 file: str, report: ScanReport) -> tuple[np.ndarray, np.ndarray, list]:
    """Drop/repair bad objects: class ids outside [0, nc), coordinates outside [0, 1] (clipped),
    zero-area boxes, exact duplicate rows. `boxes` are normalised cx cy w h."""
    keep = (cls >= 0) & (cls < nc) & (cls == np.round(cls))
    if not keep.all():
        bad = sorted(set(cls[~keep].tolist()))
        report.add("class id out of range", file, f"dropped {int((~keep).sum())} boxes with "
                   f"class {bad} (nc={nc})")
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    outside = ((xyxy < -1e-6) | (xyxy > 1 + 1e-6)).any(1) & keep
    if segments:
        outside |= np.array([((s < -1e-6) | (s > 1 + 1e-6)).any() for s in segments]) & keep
    if outside.any():
        report.add("coordinates outside [0, 1]", file, f"clipped {int(outside.sum())} boxes")
        xyxy = xyxy.clip(0, 1)
        segments = [s.clip(0, 1) for s in segments]
    wh = xyxy[:, 2:] - xyxy[:, :2]
    zero = (wh <= 0).any(1) & keep
    if zero.any():
        report.add("zero-area box", file, f"dropped {int(zero.sum())} boxes")
    keep &= ~zero
    boxes = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, wh], 1)
    rows = np.concatenate([cls[:, None], boxes], 1)
    _, first = np.unique(rows, axis=0, return_index=True)
    unique = np.zeros(len(rows), bool)
    unique[first] = True
    dup = keep & ~unique
    if dup.any():
        report.add("duplicate labels", file, f"dropped {int(dup.sum())} repeated rows")
    keep &= unique
    segments = [s for s, k in zip(segments, keep) if k] if segments else []
    return cls[keep].astype(np.int64), boxes[keep].astype(np.float32), segments


def parse_yolo_label_file(path: Path, file: str, report: ScanReport):
    """Lines `class cx cy w h` or `class x1 y1 x2 y2 ...` (a polygon, at least 3 points).

    Returns (cls, boxes, segments, n_lines); segments are kept only when every line is a
    polygon; n_lines counts non-blank lines (0 means an empty label file)."""
    cls, boxes, polys = [], [], []
    bad_lines = 0
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        try:
            values = np.array(parts, dtype=np.float64)
        except ValueError:
            bad_lines += 1
            continue
        if len(values) == 5:
            cls.append(values[0])
            boxes.append(values[1:])
            polys.append(None)
        elif len(values) >= 7 and len(values) % 2 == 1:
            poly = values[1:].reshape(-1, 2).astype(np.float32)
            lo, hi = poly.clip(0, 1).min(0), poly.clip(0, 1).max(0)
            cls.append(values[0])
            boxes.append(np.concatenate([(lo + hi) / 2, hi - lo]))
            polys.append(poly)
        else:
            bad_lines += 1
    if bad_lines:
        report.add("bad label line", file, f"ignored {bad_lines} unparsable lines")
    if not cls:
        return np.zeros(0), np.zeros((0, 4)), [], len(lines)
    segments = polys if all(p is not None for p in polys) else []
    return np.array(cls), np.array(boxes, dtype=np.float64), segments, len(lines)


# ---------------------------------------------------------------------------------------------
# sources


def list_images(source) -> list[Path]:
    """Images of a folder (recursive), of a .txt list file (one path per line), or of a list."""
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in list_images(s)]
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.suffix == ".txt" and source.is_file():
        lines = [ln.strip() for ln in source.read_text().splitlines() if ln.strip()]
        return [(source.parent / ln).resolve() if not Path(ln).is_absolute() else Path(ln)
                for ln in lines]
    raise FileNotFoundError(f"image source not found: {source}")


def yolo_label_path(image: Path) -> Path:
    """`.../images/x/name.jpg` -> `.../labels/x/name.txt` (last `images` folder replaced)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def stat_fingerprint(paths: list[Path], extra: str) -> str:
    """Hash of sizes and mtimes of all files (missing ones included) plus the scan settings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{CACHE_VERSION}|{extra}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}|-\n".encode())
    return h.hexdigest()


def read_cache(cache_path: Path, fingerprint: str):
    try:
        with open(cache_path, "rb") as f:
            cached = pickle.load(f)
        if cached.get("version") == CACHE_VERSION and cached.get("fingerprint") == fingerprint:
            return cached["records"], cached["report"]
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError):
        pass
    return None


def write_cache(cache_path: Path, fingerprint: str, records, report) -> Path | None:
    """Write next to the labels; fall back to ~/.cache/yolov9lite when that is read-only."""
    payload = {"version": CACHE_VERSION, "fingerprint": fingerprint,
               "records": records, "report": report}
    for target in (cache_path, fallback_cache_path(cache_path)):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".tmp")
            with open(tmp, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, target)  # atomic, so a crashed run never leaves half a cache
            return target
        except OSError:
            continue
    return None


def fallback_cache_path(cache_path: Path) -> Path:
    key = hashlib.blake2b(str(cache_path.resolve()).encode(), digest_size=8).hexdigest()
    return Path.home() / ".cache" / "yolov9lite" / f"{key}.cache"


def inspect_all(paths: list[Path], workers: int = 8):
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(inspect_image, paths))


def check_images(paths: list[Path], report: ScanReport) -> dict[Path, tuple[int, int]]:
    """Inspect headers, drop corrupt and duplicate files; returns {path: (h, w)} of usable ones."""
    existing = []
    for p in paths:
        if p.is_file():
            existing.append(p)
        else:
            report.add("missing image", p, "skipped (file not found)")
    seen, unique = set(), []
    for p in existing:
        key = os.path.realpath(p)
        if key in seen:
            report.add("duplicate file", p, "skipped (listed twice)")
        else:
            seen.add(key)
            unique.append(p)
    dup = find_duplicate_files([str(p) for p in unique])
    shapes = {}
    for p, (shape, problems) in zip(unique, inspect_all(unique)):
        if str(p) in dup:
            report.add("duplicate file", p, f"skipped (same bytes as {dup[str(p)]})")
            continue
        for kind, action in problems:
            report.add(kind, p, action)
        if shape is not None:
            shapes[p] = shape
    return shapes


def scan_yolo(source, nc: int, name: str = "dataset", use_cache: bool = True):
    """Scan a YOLO-layout split (folder or .txt list of images, labels/ beside images/)."""
    images = list_images(source)
    label_files = [yolo_label_path(p) for p in images]
    first = Path(source[0] if isinstance(source, (list, tuple)) else source)
    cache_path = (yolo_label_path(first / "x").parent if first.is_dir()
                  else first.with_suffix("")).with_suffix(".cache")
    fingerprint = stat_fingerprint(images + label_files, f"yolo|nc={nc}")
    if use_cache and (cached := read_cache(cache_path, fingerprint)) is not None:
        return cached[0], cached[1], True
    report = ScanReport(name)
    shapes = check_images(images, report)
    records, ids = [], {}
    for img, lab in zip(images, label_files):
        if img not in shapes:
            continue
        image_id = image_id_from_stem(img.stem)
        if image_id in ids:
            report.add("duplicate image id", img, f"skipped (id {image_id} already used by "
                       f"{ids[image_id]})")
            continue
        ids[image_id] = img
        if not lab.is_file():
            report.add("missing label file", img, f"kept as background (no {lab})")
            cls, boxes, segs = np.zeros(0), np.zeros((0, 4)), []
        else:
            cls, boxes, segs, n_lines = parse_yolo_label_file(lab, str(img), report)
            if n_lines == 0:
                report.add("empty label file", img, f"kept as background ({lab} is empty)")
        cls, boxes, segs = clean_labels(cls, boxes, segs, nc, str(img), report)
        records.append(ImageRecord(str(img), image_id, shapes[img], cls, boxes, segs))
    finish_report(records, report)
    if use_cache:
        write_cache(cache_path, fingerprint, records, report)
    return records, report, False


def scan_coco(json_path, image_dir, category_ids: list[int] | None = None,
              name: str = "dataset", use_cache: bool = True):
    """Scan a COCO instances JSON + image folder. Crowd annotations (iscrowd=1) are left out,
    as the official COCO->YOLO conversion does; RLE masks give no polygon."""
    json_path, image_dir = Path(json_path), Path(image_dir)
    with open(json_path) as f:
        coco = json.load(f)
    cat_ids = category_ids or sorted(c["id"] for c in coco.get("categories", []))
    cat_index = {cid: i for i, cid in enumerate(cat_ids)}
    entries = coco.get("images", [])
    paths = [image_dir / e["file_name"] for e in entries]
    fingerprint = stat_fingerprint([json_path] + paths, f"coco|{image_dir}|{cat_ids}")
    cache_path = json_path.with_suffix(".cache")
    if use_cache and (cached := read_cache(cache_path, fingerprint)) is not None:
        return cached[0], cached[1], True
    report = ScanReport(name)
    anns_by_image = defaultdict(list)
    for a in coco.get("annotations", []):
        if not a.get("iscrowd", 0):
            anns_by_image[a["image_id"]].append(a)
    shapes = check_images(paths, report)
    records, seen_ids = [], set()
    for entry, path in zip(entries, paths):
        if path not in shapes:
            continue
        if entry["id"] in seen_ids:
            report.add("duplicate image id", path, f"skipped (id {entry['id']} listed twice)")
            continue
        seen_ids.add(entry["id"])
        h, w = shapes[path]
        if (entry.get("height"), entry.get("width")) not in ((h, w), (None, None)):
            report.add("size mismatch", path, f"JSON says {entry.get('width')}x"
                       f"{entry.get('height')}, file is {w}x{h}; labels scaled by the JSON size")
        jh, jw = entry.get("height") or h, entry.get("width") or w
        anns = anns_by_image.get(entry["id"], [])
        cls = np.array([cat_index.get(a["category_id"], -1) for a in anns], np.float64)
        xywh = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2] + xywh[:, 2:] / 2, xywh[:, 2:]], 1) / [jw, jh, jw, jh]
        segs = [polygon_from_coco(a.get("segmentation"), jw, jh) for a in anns]
        segs = segs if anns and all(s is not None for s in segs) else []
        cls, boxes, segs = clean_labels(cls, boxes, segs, len(cat_ids), str(path), report)
        records.append(ImageRecord(str(path), int(entry["id"]), (h, w), cls, boxes, segs))
    finish_report(records, report)
    if use_cache:
        write_cache(cache_path, fingerprint, records, report)
    return records, report, False


def polygon_from_coco(segmentation, width: float, height: float) -> np.ndarray | None:
    """COCO polygon list -> one normalised (k, 2) array. Several parts are joined end to end
    (good enough for copy-paste masks and for tight boxes); RLE or empty gives None."""
    if not isinstance(segmentation, list) or not segmentation:
        return None
    parts = [np.asarray(p, np.float32).reshape(-1, 2) for p in segmentation if len(p) >= 6]
    if not parts:
        return None
    return np.concatenate(parts) / np.array([width, height], np.float32)


def finish_report(records: list[ImageRecord], report: ScanReport) -> None:
    report.images = len(records)
    report.boxes = int(sum(len(r.cls) for r in records))
    report.backgrounds = sum(1 for r in records if len(r.cls) == 0)


def load_records(source: dict, nc: int, name: str, use_cache: bool = True):
    """Scan one split described by `source` ({'images': ..., 'json': ... or None}), log problems
    and a summary, and fail clearly if nothing usable is left."""
    if source.get("json"):
        records, report, from_cache = scan_coco(source["json"], source["images"],
                                                source.get("category_ids"), name, use_cache)
    else:
        records, report, from_cache = scan_yolo(source["images"], nc, name, use_cache)
    report.name = name  # a cached report may come from a scan under another name
    report.log(from_cache)
    if not records:
        where = source.get("json") or source["images"]
        raise ValueError(f"{name}: no usable images in {where} ({report.summary()})")
    return records, report
