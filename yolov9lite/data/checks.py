"""The checks every scan applies: image files (`check_images`) and the objects of one image
(`clean_labels`), each problem counted in the `ScanReport` (see `records.py`).

Scan policy, as the official loader: byte-identical images under different names (or symlinks)
are all kept, since copying files is how users oversample; one summary warning counts them. Only
the same path listed twice is a duplicate.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .records import SAMPLE_BYTES, ScanReport

MIN_IMAGE_SIDE = 4  # smaller images cannot hold a box the filters would keep
# The one pixel bound of the scan, the loader and predict: ~100 Mpx (10000 x 10000, 300 MB as
# RGB). It is read from the header before anything is decoded, so a 200 KB file that declares
# 30000 x 30000 (a "decompression bomb") costs nothing. PIL's own check (Image.MAX_IMAGE_PIXELS)
# only warns below twice its 89 Mpx, and OpenCV's allows 1 Gpx, hence a bound of our own.
MAX_IMAGE_PIXELS = 100_000_000
MANY_BOXES = 1000  # objects in one image above which the scan warns (COCO's most is ~100)


class ImageTooLarge(OSError):
    """An image whose header declares more than `MAX_IMAGE_PIXELS` pixels."""


def header_size(path) -> tuple[int, int]:
    """(width, height) as the file's header declares them, nothing decoded (PIL's `Image.open`
    reads the header only). Raises `ImageTooLarge` above `MAX_IMAGE_PIXELS`, and what PIL
    raises for a file it cannot identify."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError as e:  # PIL refuses > 2 x its limit while opening
        found = re.search(r"\((\d+) pixels\)", str(e))  # PIL names the count, not the sides
        size = f"{int(found[1]) / 1e6:.0f} Mpx" if found else "its size"
        raise ImageTooLarge(f"{path}: the header declares {size}, more than "
                            f"{MAX_IMAGE_PIXELS // 10**6} Mpx, the largest image read; "
                            "downscale it") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(f"{path}: {w}x{h} px ({w * h / 1e6:.0f} Mpx) is more than "
                            f"{MAX_IMAGE_PIXELS // 10**6} Mpx, the largest image read; "
                            "downscale it")
    return w, h


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
        header_size(path)  # before verify(), which may decompress
    except ImageTooLarge as e:
        return None, [("image too large", f"skipped ({str(e).split(': ', 1)[1]})")]
    except Exception as e:  # noqa: BLE001 - any decoder error means the same thing here
        return None, [("corrupt image", f"skipped ({type(e).__name__}: {e})")]
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


def quick_digest(path: str, size: int) -> str:
    """Hash of the size and the first and last `SAMPLE_BYTES` (the whole file when small)."""
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            f.seek(-SAMPLE_BYTES, os.SEEK_END)
        h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def count_copies(paths: list[str], sizes: list[int]) -> tuple[int, str]:
    """(number of files whose bytes repeat an earlier one, one example). Only files that share
    a size are sampled, and only their first and last few KiB: COCO-scale scans stay cheap."""
    by_size = defaultdict(list)
    for p, s in zip(paths, sizes):
        by_size[s].append(p)
    copies, example = 0, ""
    for size, same_size in by_size.items():
        if len(same_size) < 2:
            continue
        first_by_digest = {}
        for p in same_size:
            try:
                first = first_by_digest.setdefault(quick_digest(p, size), p)
            except OSError:
                continue  # unreadable: inspect_image reports it
            if first != p:
                copies += 1
                example = example or f"{p} = {first}"
    return copies, example


def inspect_all(paths: list[Path], workers: int = 8, chunk: int = 64):
    """`inspect_image` of every path, in threads (file reads and PIL release the GIL), handed
    out in chunks so that scheduling costs little next to the work."""
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return [r for part in pool.map(lambda c: [inspect_image(p) for p in c], chunks)
                for r in part]


def check_images(paths: list[Path], report: ScanReport) -> dict[int, tuple[int, int]]:
    """Inspect headers of the listed images; returns {index in `paths`: (h, w)} of usable ones.

    Missing and corrupt files are skipped, and so is a path listed a second time. Files with
    the same bytes under other names (copies, symlinks) are kept and only counted.
    """
    listed, sizes = {}, {}
    for i, p in enumerate(paths):
        key = os.path.abspath(p)  # not realpath: a symlink under another name is another entry
        if key in listed:
            report.add("duplicate file", p, f"skipped (listed twice; first as entry {listed[key]})")
            continue
        listed[key] = i
        try:
            st = os.stat(p)
        except OSError:
            report.add("missing image", p, "skipped (file not found)")
            continue
        if not os.path.isfile(p):
            report.add("missing image", p, "skipped (not a file)")
            continue
        sizes[i] = st.st_size
    usable = list(sizes)
    report.copies, report.copy_example = count_copies([str(paths[i]) for i in usable],
                                                      [sizes[i] for i in usable])
    shapes = {}
    for i, (shape, problems) in zip(usable, inspect_all([paths[i] for i in usable])):
        for kind, action in problems:
            report.add(kind, paths[i], action)
        if shape is not None:
            shapes[i] = shape
    return shapes


# ---------------------------------------------------------------------------------------------
# label checks, vectorised over the objects of one image


def clean_labels(cls: np.ndarray, boxes: np.ndarray, segments: list[np.ndarray], nc: int,
                 file: str, report: ScanReport) -> tuple[np.ndarray, np.ndarray, list]:
    """Drop/repair bad objects: non-finite values, class ids outside [0, nc), coordinates
    outside [0, 1] (clipped), zero-area boxes, exact duplicate rows. `boxes` are normalised
    cx cy w h. The parsers already drop non-finite rows with line numbers; the check here
    guarantees no NaN reaches training whatever the source."""
    finite = np.isfinite(cls) & np.isfinite(boxes).all(1)
    if segments:
        finite &= np.array([np.isfinite(s).all() for s in segments])
    if not finite.all():
        report.add("non-finite label values", file, f"dropped {int((~finite).sum())} boxes with "
                   "NaN or inf values")
        cls, boxes = np.where(finite, cls, -1), np.where(finite[:, None], boxes, 0.0)
        segments = [s if ok else np.zeros((1, 2), np.float32) for s, ok in zip(segments, finite)]
    whole = cls == np.round(cls)
    if not (whole | ~finite).all():  # 1.5 is not a class id at all, whatever nc is
        bad = sorted(set(cls[~whole & finite].tolist()))
        report.add("non-integer class id", file, f"dropped {int((~whole & finite).sum())} "
                   f"boxes with class {short_list(bad)} (class ids are whole numbers 0..{nc - 1})")
    keep = (cls >= 0) & (cls < nc) & whole
    if not (keep | ~finite | ~whole).all():
        out_of_range = ~keep & finite & whole
        bad = sorted(set(cls[out_of_range].tolist()))
        report.add("class id out of range", file, f"dropped {int(out_of_range.sum())} boxes "
                   f"with class {short_list(bad)} (nc={nc})")
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
    unique = first_occurrences(np.concatenate([cls[:, None], boxes], 1))
    dup = keep & ~unique
    if dup.any():
        report.add("duplicate labels", file, f"dropped {int(dup.sum())} repeated rows")
    keep &= unique
    segments = [s for s, k in zip(segments, keep) if k] if segments else []
    if keep.sum() > MANY_BOXES:
        report.add("many boxes", file, f"kept {int(keep.sum())} boxes; more than "
                   f"{MANY_BOXES:,} in one image makes the assigner slow and memory-hungry "
                   "(COCO has at most ~100); check the label file")
    return cls[keep].astype(np.int64), boxes[keep].astype(np.float32), segments


def short_list(values: list, limit: int = 5) -> str:
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def first_occurrences(rows: np.ndarray) -> np.ndarray:
    """Mask of rows not equal to an earlier row (a dict of tuples: for the few objects of one
    image this is many times faster than `np.unique(axis=0)`)."""
    first = {}
    for i, row in enumerate(map(tuple, rows.tolist())):
        first.setdefault(row, i)
    unique = np.zeros(len(rows), bool)
    unique[list(first.values())] = True
    return unique
