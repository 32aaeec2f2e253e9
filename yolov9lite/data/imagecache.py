"""The image cache: every image of a split decoded and resized once, then read back by all loader
workers from one memory-mapped file (the official ``train_dual.py --cache``, made exact and
shared).

Why: a mosaic sample decodes 4 JPEGs (8 when MixUp fires) and resizes each to `imgsz`; that is a
third of a sample's CPU time on 640-px images (``benchmarks/loader.py`` prints the ratio), and
it repeats for every image in every epoch. The cache stores exactly what
:func:`load_resized` returns (same function, so batches are bit-identical with and without it,
``tests/test_data_imagecache.py``), and a worker then copies an image out of the page cache
instead of decoding it. A COCO-sized split at 640 needs about 0.9 MB per image (~105 GB for
train2017): :func:`open_image_cache` checks the free space first and refuses with one line.

Layout, in ``$YOLOV9LITE_CACHE_DIR`` (else ``$XDG_CACHE_HOME/yolov9lite``, else
``~/.cache/yolov9lite``), sub-folder ``images/``; never next to the user's data:

- ``<split>-<key>.yolov9lite-images.npz``: the index (JSON header, per-image offset, height,
  width), read with ``allow_pickle=False`` and checked member by member, like the label cache;
- ``<split>-<key>-<token>.u8``: the pixels, raw BGR uint8, image after image.

``key`` names the split's file list, `imgsz` and the resize mode (training: bilinear, big JPEGs
decoded at 1/2, 1/4, 1/8; evaluation: INTER_AREA when shrinking). The header holds a
fingerprint of every image's size and mtime, the OpenCV version (a resize may change between
versions) and the format version; anything different rebuilds. The index is written last and
renamed into place, so it is the one atomic commit: a crash never leaves an index that points at
half a pixel file, and a reader that mapped the previous pixel file keeps it until it closes. A
lock file makes concurrent builders (DDP ranks, two runs) build once.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .cache import cache_dir, check_members, json_bytes, stat_fingerprint
from .dataset import load_resized
from .records import LOGGER, CacheError, ImageRecord

IMAGE_CACHE_FORMAT = "yolov9lite-image-cache"
IMAGE_CACHE_VERSION = 2  # 2: resized sizes truncated as the official loader does
INDEX_SUFFIX = ".yolov9lite-images.npz"
INDEX_ARRAYS = {"header": (np.uint8, ()), "offsets": (np.int64, ()), "shapes": (np.int64, (2,))}
FREE_SPACE_MARGIN = 1.05  # build only when the estimate plus 5 % fits on the disk


class ImageCacheError(ValueError):
    """The image cache cannot be built (no space, read-only folder); the message says what to do."""


def _resized_shape(shape: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """(h, w) after `resize_longest`, from the scanned shape (for the size estimate only)."""
    h, w = shape
    gain = imgsz / max(h, w)
    return max(1, int(h * gain)), max(1, int(w * gain))


class ImageCache:
    """Read side: ``cache.get(i)`` is image i as :func:`load_resized` returned it, or None when
    that image failed to decode while the cache was built (the caller then decodes it itself,
    and its usual error handling applies).

    The pixel file is mapped when the cache is opened, so forked loader workers share the one
    mapping, and a later rebuild by another run (which unlinks this file) cannot pull it away
    from under them. A pickled cache (spawned workers) carries only its paths and maps again."""

    def __init__(self, index_path: Path, pixels_path: Path, offsets: np.ndarray,
                 shapes: np.ndarray):
        self.index_path, self.pixels_path = index_path, pixels_path
        self.offsets, self.shapes = offsets, shapes
        self._pixels = self._map()

    def _map(self) -> np.ndarray:
        if os.path.getsize(self.pixels_path) == 0:  # every image failed; mmap refuses 0 bytes
            return np.zeros(0, np.uint8)
        return np.memmap(self.pixels_path, np.uint8, mode="r").view(np.ndarray)  # keeps the map

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        return int((self.shapes[:, 0] * self.shapes[:, 1]).sum() * 3)

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}

    def get(self, i: int) -> np.ndarray | None:
        h, w = (int(v) for v in self.shapes[i])
        if h == 0 or w == 0:  # failed to decode at build time
            return None
        if self._pixels is None:
            self._pixels = self._map()
        start = int(self.offsets[i])
        # a read-only view, no copy: every augmentation writes into new arrays (mosaic copies
        # the tiles into its canvas), and a write into the cache would raise, not corrupt it
        return self._pixels[start:start + h * w * 3].reshape(h, w, 3)


def cache_stem(name: str, records: list[ImageRecord], imgsz: int, training: bool) -> Path:
    """``<cache_dir>/images/<name>-<key>``: key = this file list, size and resize mode."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{imgsz}|{'train' if training else 'eval'}\n".encode())
    for r in records:
        h.update(f"{os.path.abspath(r.path)}\n".encode())
    safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "split"
    return cache_dir() / "images" / f"{safe_name}-{h.hexdigest()}"


def fingerprint_of(records: list[ImageRecord], imgsz: int, training: bool) -> str:
    settings = (f"image-cache v{IMAGE_CACHE_VERSION}|cv2 {cv2.__version__}|{imgsz}|"
                f"{'train' if training else 'eval'}")
    return stat_fingerprint([Path(r.path) for r in records], settings)


def read_index(index_path: Path, fingerprint: str, n: int) -> ImageCache | None:
    """The cache described by `index_path`, or None if it is missing, stale or not well formed
    (a malformed one is reported and rebuilt, never trusted)."""
    if not index_path.is_file():
        return None
    try:
        check_members(index_path, INDEX_ARRAYS)
        with np.load(index_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in INDEX_ARRAYS}
        header = json.loads(arrays["header"].tobytes().decode())
        if not isinstance(header, dict) or header.get("format") != IMAGE_CACHE_FORMAT:
            raise CacheError("not a yolov9lite image cache")
        if header.get("version") != IMAGE_CACHE_VERSION or header.get("fingerprint") != fingerprint:
            return None  # images changed (or another OpenCV): rebuild, nothing to warn about
        offsets, shapes = arrays["offsets"], arrays["shapes"]
        for key, (dtype, tail) in INDEX_ARRAYS.items():
            a = arrays[key]
            if a.dtype != dtype or a.shape[1:] != tail:
                raise CacheError(f"array '{key}' has dtype {a.dtype} and shape {a.shape}")
        sizes = shapes[:, 0] * shapes[:, 1] * 3
        ends = offsets + sizes
        pixels = index_path.parent / str(header.get("pixels", ""))
        if (len(offsets) != n or len(shapes) != n or (shapes < 0).any() or (offsets < 0).any()
                or pixels.parent != index_path.parent or not pixels.name.endswith(".u8")):
            raise CacheError("index arrays disagree with the split")
        if not pixels.is_file():
            return None  # removed by hand: rebuild
        if header.get("nbytes") != pixels.stat().st_size or (len(ends) and ends.max()
                                                             > header["nbytes"]):
            raise CacheError(f"pixel file {pixels.name} has the wrong size")
        return ImageCache(index_path, pixels, offsets, shapes)
    except Exception as err:  # noqa: BLE001 - whatever is wrong, the answer is to rebuild
        LOGGER.warning("image cache ignored: %s: %s; rebuilding it", index_path, err)
        return None


@contextmanager
def _build_lock(stem: Path):
    """An exclusive lock on ``<stem>.lock`` (POSIX); elsewhere no lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent builders each build, the last rename wins
        yield
        return
    with open(stem.with_name(stem.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


def _check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed * FREE_SPACE_MARGIN > free:
        raise ImageCacheError(
            f"image cache for {what}: needs about {_size(needed)}, {folder} has "
            f"{_size(free)} free; point YOLOV9LITE_CACHE_DIR at a larger disk or train "
            "without --cache-images")


def build_image_cache(stem: Path, records: list[ImageRecord], imgsz: int, training: bool,
                      fingerprint: str, name: str = "split",
                      threads: int | None = None) -> ImageCache:
    """Decode and resize every image (threads: OpenCV releases the GIL), write the pixels in
    order, then the index; returns the new cache. Images that fail to decode are recorded as
    empty (0 x 0) and decoded again, with the loader's own error handling, when used."""
    token = secrets.token_hex(4)
    pixels = stem.with_name(f"{stem.name}-{token}.u8")
    index = stem.with_name(stem.name + INDEX_SUFFIX)
    # new files (mkstemp: O_EXCL), so a symlink planted at a temporary name is never followed
    fd, tmp_pixels = tempfile.mkstemp(prefix=f".{pixels.name}.", suffix=".tmp", dir=stem.parent)
    os.close(fd)
    fd, tmp_index = tempfile.mkstemp(prefix=f".{index.name}.", suffix=".tmp", dir=stem.parent)
    os.close(fd)
    tmp_pixels, tmp_index = Path(tmp_pixels), Path(tmp_index)
    offsets = np.zeros(len(records), np.int64)
    shapes = np.zeros((len(records), 2), np.int64)
    threads = threads or min(16, os.cpu_count() or 1)

    def decode(record):
        try:
            return load_resized(record, imgsz, training)
        except Exception:  # noqa: BLE001 - the loader reports it when the image is used
            return None

    start, offset, failed = time.perf_counter(), 0, 0
    try:
        with open(tmp_pixels, "wb") as f, ThreadPoolExecutor(threads) as pool:
            # a progress bar on a terminal only (COCO: ~118k images, a minute on 16 cores)
            done = tqdm(pool.map(decode, records), total=len(records), unit="img",
                        desc=f"{name}: image cache", disable=None, leave=False)
            for i, image in enumerate(done):
                if image is None or image.ndim != 3 or image.shape[2] != 3:
                    failed += 1
                    continue
                offsets[i], shapes[i] = offset, image.shape[:2]
                f.write(np.ascontiguousarray(image).data)
                offset += image.nbytes
        os.replace(tmp_pixels, pixels)
        header = {"format": IMAGE_CACHE_FORMAT, "version": IMAGE_CACHE_VERSION,
                  "fingerprint": fingerprint, "pixels": pixels.name, "nbytes": offset,
                  "imgsz": imgsz, "mode": "train" if training else "eval"}
        with open(tmp_index, "wb") as f:
            np.savez(f, header=json_bytes(header), offsets=offsets, shapes=shapes)
        os.replace(tmp_index, index)  # the commit
    except BaseException:
        for p in (tmp_pixels, tmp_index):
            p.unlink(missing_ok=True)
        raise
    for old in stem.parent.glob(f"{stem.name}-*.u8"):  # earlier builds (open maps keep theirs)
        if old != pixels:
            try:
                old.unlink(missing_ok=True)
            except OSError:  # still mapped where that is not allowed (Windows): next time
                pass
    LOGGER.info("%s: image cache built: %d images, %s in %.1f s (%s)%s", name,
                len(records) - failed, _size(offset), time.perf_counter() - start, pixels.parent,
                f"; {failed} could not be decoded" if failed else "")
    return ImageCache(index, pixels, offsets, shapes)


def open_image_cache(records: list[ImageRecord], imgsz: int, training: bool,
                     name: str = "split") -> ImageCache:
    """The split's image cache, built first if missing or stale. Raises ImageCacheError when
    the cache folder cannot hold it."""
    stem = cache_stem(name, records, imgsz, training)
    fingerprint = fingerprint_of(records, imgsz, training)
    index = stem.with_name(stem.name + INDEX_SUFFIX)
    cache = read_index(index, fingerprint, len(records))
    if cache is not None:
        return cache
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageCacheError(f"image cache for {name}: cannot create {stem.parent} ({err}); "
                              "set YOLOV9LITE_CACHE_DIR to a writable folder") from err
    with _build_lock(stem):
        cache = read_index(index, fingerprint, len(records))  # another process built it
        if cache is not None:
            return cache
        needed = sum(h * w * 3 for h, w in (_resized_shape(r.shape, imgsz) for r in records))
        _check_space(stem.parent, needed, name)
        LOGGER.info("%s: building the image cache (%d images, about %s) in %s", name,
                    len(records), _size(needed), stem.parent)
        return build_image_cache(stem, records, imgsz, training, fingerprint, name)
