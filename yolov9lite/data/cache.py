"""The label cache: a scan's result stored as `<split>.yolov9lite-cache.npz`, validated field by
field when read back.

The file is an uncompressed .npz of plain numbers and a JSON header, read with
`allow_pickle=False`, so a cache file can never run code; it is reused while the stat()s of all
files and the scan settings are unchanged (`stat_fingerprint`). The official code's
`labels/<split>.cache` (a pickle inside .npy) is neither read nor written. A read-only dataset
gets its cache in `$YOLOV9LITE_CACHE_DIR`, else `$XDG_CACHE_HOME/yolov9lite`, else
`~/.cache/yolov9lite`, and it is read back from there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .checks import MAX_IMAGE_PIXELS
from .records import LOGGER, CacheError, ImageRecord, ScanReport

CACHE_FORMAT = "yolov9lite-label-cache"
CACHE_VERSION = 2  # 1 was a pickle (`<split>.cache`); it is never read
CACHE_SUFFIX = ".yolov9lite-cache.npz"
CACHE_ARRAYS = {  # name -> (dtype, trailing shape)
    "header": (np.uint8, ()), "meta": (np.uint8, ()), "image_ids": (np.int64, ()),
    "shapes": (np.int64, (2,)), "n_objects": (np.int64, ()), "has_segments": (np.bool_, ()),
    "cls": (np.int64, ()), "boxes": (np.float32, (4,)), "n_points": (np.int64, ()),
    "points": (np.float32, (2,)),
}


def stat_fingerprint(paths: list[Path], extra: str) -> str:
    """Hash of sizes, mtimes and ctimes of all files (missing ones included) plus the scan
    settings. The ctime is there because copies that keep the mtime (``cp -p``, ``rsync -t``,
    ``tar``) cannot set it: a same-size relabel with its old mtime still changes the ctime."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{CACHE_VERSION}|{extra}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|-\n".encode())
    return h.hexdigest()


def cache_path_for(base: Path) -> Path:
    """`labels/train` -> `labels/train.yolov9lite-cache.npz` (never the official `train.cache`)."""
    return base.with_name(base.name + CACHE_SUFFIX)


def cache_dir() -> Path:
    """Where caches of read-only datasets go: $YOLOV9LITE_CACHE_DIR, $XDG_CACHE_HOME/yolov9lite
    or ~/.cache/yolov9lite."""
    if os.environ.get("YOLOV9LITE_CACHE_DIR"):
        return Path(os.environ["YOLOV9LITE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "yolov9lite"


def fallback_cache_path(cache_path: Path) -> Path:
    key = hashlib.blake2b(str(cache_path.absolute()).encode(), digest_size=8).hexdigest()
    return cache_dir() / f"{cache_path.name.removesuffix(CACHE_SUFFIX)}-{key}{CACHE_SUFFIX}"


def json_bytes(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), np.uint8)


def encode_cache(fingerprint: str, records: list[ImageRecord], report: ScanReport) -> dict:
    n_objects = [len(r.cls) for r in records]
    segments = [s for r in records if r.has_segments for s in r.segments]
    n_points = []
    for r in records:
        n_points += [len(s) for s in r.segments] if r.has_segments else [0] * len(r.cls)
    return {
        "header": json_bytes({"format": CACHE_FORMAT, "version": CACHE_VERSION,
                              "fingerprint": fingerprint}),
        "meta": json_bytes({"paths": [r.path for r in records], "report": report.to_json()}),
        "image_ids": np.array([r.image_id for r in records], np.int64),
        "shapes": np.array([r.shape for r in records], np.int64).reshape(-1, 2),
        "n_objects": np.array(n_objects, np.int64),
        "has_segments": np.array([r.has_segments for r in records], np.bool_),
        "cls": np.concatenate([r.cls for r in records] + [np.zeros(0)]).astype(np.int64),
        "boxes": np.concatenate([r.boxes.reshape(-1, 4) for r in records]
                                + [np.zeros((0, 4))]).astype(np.float32),
        "n_points": np.array(n_points, np.int64),
        "points": np.concatenate(segments + [np.zeros((0, 2))]).astype(np.float32),
    }


def read_header(npz) -> dict:
    header = json.loads(npz["header"].tobytes().decode())
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise CacheError("not a yolov9lite label cache")
    return header


def check_counts(counts: np.ndarray, total: int, what: str) -> None:
    """Each count in [0, total] and their sum (in Python integers, which cannot wrap the way
    an int64 sum of crafted counts does) equal to `total`."""
    if len(counts) and (counts.min() < 0 or counts.max() > total):
        raise CacheError(f"a count of {what} is negative or larger than the cache holds")
    if sum(counts.tolist()) != total:
        raise CacheError(f"the counts of {what} disagree with the arrays")


def check_cached_paths(paths: list[str], listed) -> None:
    """The cache's images must be images the scan just listed, and regular files: a cache
    naming anything else (a FIFO, a device, a file outside the dataset) is not ours."""
    if listed is None:
        return
    listed = set(map(str, listed))
    for p in paths:
        if p not in listed:
            raise CacheError(f"it names {p}, which is not one of the dataset's images")
        if not os.path.isfile(p):
            raise CacheError(f"it names {p}, which is not a regular file")


def decode_cache(npz, listed=None) -> tuple[list[ImageRecord], ScanReport]:
    """Records and report from a loaded cache; every dtype, shape and count is checked, and
    its paths against `listed` (the images the scan just listed) when given."""
    arrays = {}
    for name, (dtype, tail) in CACHE_ARRAYS.items():
        a = npz[name]
        if a.dtype != dtype or a.shape[1:] != tail or a.ndim != 1 + len(tail):
            raise CacheError(f"array '{name}' has dtype {a.dtype} and shape {a.shape}")
        arrays[name] = a
    meta = json.loads(arrays["meta"].tobytes().decode())
    paths, report = meta["paths"], ScanReport.from_json(meta["report"])
    n = len(arrays["image_ids"])
    n_obj, n_pts, has_seg = arrays["n_objects"], arrays["n_points"], arrays["has_segments"]
    if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths) and len(paths) == n
            and len(arrays["shapes"]) == len(n_obj) == len(has_seg) == n):
        raise CacheError("per-image arrays disagree in length")
    m = len(arrays["cls"])
    if len(arrays["boxes"]) != m or len(n_pts) != m:
        raise CacheError("object counts disagree with the arrays")
    check_counts(n_obj, m, "objects")
    check_counts(n_pts, len(arrays["points"]), "polygon points")
    check_cached_paths(paths, listed)
    shapes = arrays["shapes"]
    if len(shapes) and (shapes.min() < 1 or (shapes.max(1).astype(object) * shapes.min(1)).max()
                        > MAX_IMAGE_PIXELS):
        raise CacheError("an image shape is empty or larger than the pixel bound")
    object_has_segment = np.repeat(has_seg, n_obj)
    if (n_pts[object_has_segment] < 1).any() or (n_pts[~object_has_segment] != 0).any():
        raise CacheError("polygon point counts disagree with the segment flags")
    obj_start = np.concatenate([[0], np.cumsum(n_obj)])
    pt_start = np.concatenate([[0], np.cumsum(n_pts)])
    records = []
    for i in range(n):
        lo, hi = obj_start[i], obj_start[i + 1]
        segments = ([arrays["points"][pt_start[j]:pt_start[j + 1]].copy() for j in range(lo, hi)]
                    if has_seg[i] else [])
        records.append(ImageRecord(paths[i], int(arrays["image_ids"][i]),
                                   tuple(int(v) for v in arrays["shapes"][i]),
                                   arrays["cls"][lo:hi].copy(), arrays["boxes"][lo:hi].copy(),
                                   segments))
    return records, report


def check_members(path: Path, members: dict = CACHE_ARRAYS) -> None:
    """The zip holds exactly our `members` (name -> dtype, trailing shape), uncompressed, each a plain-dtype .npy whose header
    declares exactly the bytes that follow it: nothing is allocated for a size the file
    does not have, and no object (pickle) array is ever reached."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if sorted(i.filename for i in infos) != sorted(f"{k}.npy" for k in members):
            raise CacheError("not a yolov9lite cache (unexpected contents)")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise CacheError(f"member {info.filename} is compressed")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header_fn = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                  else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header_fn(f)
                if dtype.hasobject:
                    raise CacheError(f"member {info.filename} holds Python objects")
                if f.tell() + math.prod(shape) * dtype.itemsize != info.file_size:
                    raise CacheError(f"member {info.filename} has the wrong size")


def load_cache_file(path: Path, fingerprint: str, listed=None):
    """(records, report), or None when the cache is ours but stale. Raises for anything that
    is not a well-formed cache of ours. The file is only ever parsed as numbers and JSON:
    `allow_pickle=False`, and the zip must hold exactly our uncompressed members (no zip bomb)."""
    check_members(path)
    with np.load(path, allow_pickle=False) as npz:
        header = read_header(npz)
        if header.get("version") != CACHE_VERSION or header.get("fingerprint") != fingerprint:
            return None  # an older version or changed files: rescan, nothing to warn about
        return decode_cache(npz, listed)


def read_cache(cache_path: Path, fingerprint: str, listed=None):
    """The cached scan from next to the labels or from the fallback cache folder, or None.
    A file there that is not a valid cache of ours is ignored with a warning, never run."""
    for path in (cache_path, fallback_cache_path(cache_path)):
        if not path.is_file():
            continue
        try:
            cached = load_cache_file(path, fingerprint, listed)
        except Exception as err:  # noqa: BLE001 - whatever is wrong, the answer is to rescan
            reason = str(err).strip()  # some errors (EOFError of a cut-off file) have no text
            reason = f"{type(err).__name__}: {reason}" if reason else (
                f"{type(err).__name__} (the file is cut off or its sizes disagree)")
            LOGGER.warning("label cache ignored: %s: %s; rescanning (cache files are read as "
                           "data only)", path, reason)
            continue
        if cached is not None:
            return cached
    return None


def write_cache(cache_path: Path, fingerprint: str, records, report) -> Path | None:
    """Write next to the labels; fall back to `cache_dir()` when that is read-only. Atomic
    (temporary file + rename), so a crashed run never leaves half a cache. The temporary file
    is a new one made by `mkstemp` (O_EXCL), so a symlink planted at a predictable name is
    never followed."""
    arrays = encode_cache(fingerprint, records, report)
    for target in (cache_path, fallback_cache_path(cache_path)):
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # np.savez stores members uncompressed
            os.replace(tmp, target)
            return target
        except OSError:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    LOGGER.warning("label cache not written (%s and %s are read-only); the next run rescans",
                   cache_path.parent, fallback_cache_path(cache_path).parent)
    return None
