"""Read COCO-JSON and YOLO-layout datasets into one list of `ImageRecord`s: `load_records`.

This module scans the YOLO layout (images/ with labels/ beside it, one `class cx cy w h` or
polygon line per object) and lists images of folders and .txt lists. The other parts of a scan
each have their own module:

- `records.py`: `ImageRecord` (the common representation) and `ScanReport` (problems counted:
  every bad file is skipped or repaired with one warning, and one summary line at the end);
- `checks.py`: image checks (corrupt, truncated, too small, copies) and label cleaning;
- `coco_json.py`: the COCO JSON scan (`scan_coco`);
- `cache.py`: the label cache (`.yolov9lite-cache.npz`, data only, never a pickle).

Problems with a whole file the scan cannot do without (a COCO JSON that does not parse, an image
list that cannot be read) raise `DataConfigError` naming the file. The names of those modules
stay importable from here.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np

from .cache import (
    CACHE_ARRAYS,
    CACHE_FORMAT,
    CACHE_SUFFIX,
    CACHE_VERSION,
    cache_dir,
    cache_path_for,
    check_members,
    decode_cache,
    encode_cache,
    fallback_cache_path,
    json_bytes,
    load_cache_file,
    read_cache,
    read_header,
    stat_fingerprint,
    write_cache,
)
from .checks import (
    MIN_IMAGE_SIDE,
    check_images,
    clean_labels,
    count_copies,
    first_occurrences,
    inspect_all,
    inspect_image,
    quick_digest,
)
from .coco_json import (
    coco_entry_problem,
    coco_objects,
    is_number,
    polygon_from_coco,
    read_coco_json,
    scan_coco,
    short,
)
from .config import DataConfigError
from .records import (
    LOGGER,
    REPAIR_KINDS,
    SAMPLE_BYTES,
    SKIP_KINDS,
    WARNINGS_PER_KIND,
    CacheError,
    ImageRecord,
    ScanReport,
    finish_report,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ---------------------------------------------------------------------------------------------
# image ids


def name_hash(name: str) -> int:
    """A stable 48-bit id for a name (exact in float64 and in JSON)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=6).digest(), "big")


def image_id_from_stem(stem: str) -> int:
    """COCO-style numeric file names give their number; other names a stable 48-bit hash."""
    return int(stem) if stem.isdigit() else name_hash(stem)


def yolo_image_ids(images: list[Path]) -> list[int]:
    """Image ids of a YOLO-layout split: from the file name (`image_id_from_stem`) when that
    name is unique in the split, so COCO-style names keep their COCO ids; images that share a
    file name (same name in two subfolders, or a.jpg next to a.png) get a hash of their path
    relative to the split's common folder instead, so none of them is lost."""
    stems = Counter(p.stem for p in images)
    absolute = [os.path.abspath(p) for p in images]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute]) if images else ""
    return [image_id_from_stem(p.stem) if stems[p.stem] == 1
            else name_hash(Path(os.path.relpath(a, root)).as_posix())
            for p, a in zip(images, absolute)]


# ---------------------------------------------------------------------------------------------
# YOLO label files


def read_label_text(path: Path, file: str, report: ScanReport) -> str | None:
    """Text of a label file. A UTF-8 byte-order mark is removed (it would otherwise spoil the
    first line) and UTF-16 with a byte-order mark is decoded, each with a warning; anything
    else that is not UTF-8 makes the file unreadable (None: the image is skipped)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        report.add("unreadable label file", file, f"skipped ({path}: {e.strerror or e})")
        return None
    try:
        if data.startswith(codecs.BOM_UTF8):
            report.add("label file encoding", file, f"{path}: UTF-8 byte-order mark removed")
            return data[len(codecs.BOM_UTF8):].decode("utf-8")
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            report.add("label file encoding", file, f"{path}: decoded as UTF-16; save it as "
                       "UTF-8")
            return data.decode("utf-16")
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        report.add("unreadable label file", file, f"skipped ({path} is not UTF-8 text: "
                   f"byte {e.start}; save it as UTF-8)")
        return None


def parse_yolo_label_file(path: Path, file: str, report: ScanReport):
    """Lines `class cx cy w h` or `class x1 y1 x2 y2 ...` (a polygon, at least 3 points).

    Returns (cls, boxes, segments, n_lines), or None when the file cannot be read as text;
    segments are kept only when every line is a polygon; n_lines counts non-blank lines (0 means
    an empty label file). Unparsable lines and lines with NaN/inf are dropped and named."""
    text = read_label_text(path, file, report)
    if text is None:
        return None
    cls, boxes, polys = [], [], []
    bad, non_finite = [], []
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    for number, line in lines:
        try:
            values = np.array(line.split(), dtype=np.float64)
        except ValueError:
            bad.append(number)
            continue
        if not np.isfinite(values).all():
            non_finite.append(number)
        elif len(values) == 5:
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
            bad.append(number)
    if bad:
        report.add("bad label line", file, f"{path}: ignored {len(bad)} unparsable lines "
                   f"(line {line_list(bad)})")
    if non_finite:
        report.add("non-finite label values", file, f"{path}: ignored {len(non_finite)} lines "
                   f"with NaN or inf (line {line_list(non_finite)})")
    if not cls:
        return np.zeros(0), np.zeros((0, 4)), [], len(lines)
    segments = polys if all(p is not None for p in polys) else []
    return np.array(cls), np.array(boxes, dtype=np.float64), segments, len(lines)


def line_list(numbers: list[int], limit: int = 5) -> str:
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (", ..." if len(numbers) > limit else "")


# ---------------------------------------------------------------------------------------------
# sources


def list_images(source) -> list[Path]:
    """Images of a folder (recursive), of a .txt list file (one path per line), or of a list.
    List entries are made absolute without resolving symlinks (a link is its own entry)."""
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in list_images(s)]
    source = Path(source)
    if source.is_dir():
        everything = [(folder, name) for folder, _, names in os.walk(source) for name in names]
        found = [os.path.join(folder, name) for folder, name in everything
                 if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
        if len(found) < len(everything):  # counted, not silently left out (.gif, FIFOs, ...)
            other = Counter(os.path.splitext(name)[1].lower() or "(no suffix)"
                            for _, name in everything
                            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES)
            LOGGER.warning("%s: %d files are not images and are not read (%s; images are %s)",
                           source, sum(other.values()),
                           ", ".join(f"{k}: {n}" for k, n in other.most_common(5)),
                           ", ".join(s[1:] for s in IMAGE_SUFFIXES))
        return [Path(p) for p in sorted(found, key=lambda p: p.split(os.sep))]  # = Path order
    if source.suffix == ".txt" and source.is_file():
        try:
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise DataConfigError(f"{source}: cannot read the image list ({e}); it must be "
                                  "UTF-8 text, one image path per line") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return [Path(os.path.abspath(source.parent / ln)) for ln in lines]
    raise DataConfigError(f"image source not found: {source}")


def yolo_label_path(image: Path) -> Path:
    """`.../images/x/name.jpg` -> `.../labels/x/name.txt` (last `images` folder replaced)."""
    path = os.sep + str(image)  # string work: this runs once per image of COCO-size sets
    folder = f"{os.sep}images{os.sep}"
    i = path.rfind(folder, 0, path.rfind(os.sep) + 1)
    if i >= 0:
        path = path[:i] + f"{os.sep}labels{os.sep}" + path[i + len(folder):]
    return Path(os.path.splitext(path[1:])[0] + ".txt")


# ---------------------------------------------------------------------------------------------
# scans


def scan_yolo(source, nc: int, name: str = "dataset", use_cache: bool = True):
    """Scan a YOLO-layout split (folder or .txt list of images, labels/ beside images/)."""
    images = list_images(source)
    label_files = [yolo_label_path(p) for p in images]
    first = Path(source[0] if isinstance(source, (list, tuple)) else source)
    cache_path = cache_path_for(yolo_label_path(first / "x").parent if first.is_dir()
                                else first.with_suffix(""))
    fingerprint = stat_fingerprint(images + label_files, f"yolo|nc={nc}")
    if use_cache and (cached := read_cache(cache_path, fingerprint, images)) is not None:
        return cached[0], cached[1], True
    report = ScanReport(name)
    shapes = check_images(images, report)
    image_ids = yolo_image_ids(images)
    records, ids = [], {}
    for i, (img, lab) in enumerate(zip(images, label_files)):
        if i not in shapes:
            continue
        image_id = image_ids[i]
        if image_id in ids:  # only on a 48-bit hash collision with another name
            report.add("duplicate image id", img, f"skipped (id {image_id} already used by "
                       f"{ids[image_id]})")
            continue
        if not lab.is_file():
            report.add("missing label file", img, f"kept as background (no {lab})")
            cls, boxes, segs = np.zeros(0), np.zeros((0, 4)), []
        else:
            parsed = parse_yolo_label_file(lab, str(img), report)
            if parsed is None:
                continue
            cls, boxes, segs, n_lines = parsed
            if n_lines == 0:
                report.add("empty label file", img, f"kept as background ({lab} is empty)")
        ids[image_id] = img
        cls, boxes, segs = clean_labels(cls, boxes, segs, nc, str(img), report)
        records.append(ImageRecord(str(img), image_id, shapes[i], cls, boxes, segs))
    finish_report(records, report)
    if use_cache:
        write_cache(cache_path, fingerprint, records, report)
    return records, report, False


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
        raise DataConfigError(f"{name}: no usable images in {where} ({report.summary()})")
    return records, report


# what this module defines, and the names of the scan's other modules it re-exports
__all__ = ["CACHE_ARRAYS", "CACHE_FORMAT", "CACHE_SUFFIX", "CACHE_VERSION", "IMAGE_SUFFIXES",
           "LOGGER", "MIN_IMAGE_SIDE", "REPAIR_KINDS", "SAMPLE_BYTES", "SKIP_KINDS",
           "WARNINGS_PER_KIND", "CacheError", "ImageRecord", "ScanReport", "cache_dir",
           "cache_path_for", "check_images", "check_members", "clean_labels",
           "coco_entry_problem", "coco_objects", "count_copies", "decode_cache", "encode_cache",
           "fallback_cache_path", "finish_report", "first_occurrences", "image_id_from_stem",
           "inspect_all", "inspect_image", "is_number", "json_bytes", "line_list", "list_images",
           "load_cache_file", "load_records", "name_hash", "parse_yolo_label_file",
           "polygon_from_coco", "quick_digest", "read_cache", "read_coco_json", "read_header",
           "read_label_text", "scan_coco", "scan_yolo", "short", "stat_fingerprint",
           "write_cache", "yolo_image_ids", "yolo_label_path"]
