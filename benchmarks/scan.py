"""Time the dataset scan (`yolov9lite.data.labels.scan_yolo`) at COCO-like file counts.

Writes N tiny distinct JPEGs with one label each (a share of them byte-identical copies under
other names, as users oversample) into a YOLO-layout folder, then times the scan's phases and
the whole scan without cache, with writing the cache, and from the cache. Figures are printed
as seconds per 10k images, so a 20k run extrapolates to COCO train2017 (118k images).

Tiny files all share a handful of sizes, so the copy detection samples (here: reads whole)
almost every file: a worst case for it. On COCO, sizes are nearly unique and only files that
share a size have their first and last 4 KiB read.

    python benchmarks/scan.py --n 20000
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from yolov9lite.data import labels as L


def write_dataset(root: Path, n: int, copy_share: float, seed: int = 0) -> Path:
    images, labels = root / "images" / "train", root / "labels" / "train"
    if images.is_dir() and len(os.listdir(images)) == n:
        return images  # reuse: writing is not what is measured
    shutil.rmtree(root, ignore_errors=True)
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_copies = int(n * copy_share)
    for k in range(n - n_copies):
        pixels = rng.integers(0, 256, (16, 16, 3), np.uint8)
        cv2.imwrite(str(images / f"{k:012d}.jpg"), pixels)
    originals = sorted(images.iterdir())
    for k in range(n_copies):
        shutil.copyfile(originals[k % len(originals)], images / f"copy{k:06d}.jpg")
    for p in images.iterdir():
        (labels / f"{p.stem}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    return images


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="images to write and scan")
    parser.add_argument("--copy-share", type=float, default=0.1,
                        help="share of byte-identical copies under other names")
    parser.add_argument("--root", default="runs/bench/scan", help="where the files are written")
    args = parser.parse_args()
    logging.getLogger("yolov9lite.data").setLevel(logging.ERROR)

    root = Path(args.root)
    images, seconds = timed(write_dataset, root, args.n, args.copy_share)
    print(f"dataset: {args.n} images in {images} (written or reused in {seconds:.1f} s)")
    os.environ["YOLOV9LITE_CACHE_DIR"] = str(root / "fallback-cache")
    for cache in root.rglob(f"*{L.CACHE_SUFFIX}"):
        cache.unlink()

    paths, t_list = timed(L.list_images, str(images))
    label_files = [L.yolo_label_path(p) for p in paths]
    _, t_stat = timed(L.stat_fingerprint, paths + label_files, "bench")
    sizes = [os.path.getsize(p) for p in paths]
    (copies, _), t_copies = timed(L.count_copies, [str(p) for p in paths], sizes)
    _, t_inspect = timed(L.inspect_all, paths)
    report = L.ScanReport("bench")
    _, t_labels = timed(lambda: [L.parse_yolo_label_file(p, str(p), report)
                                 for p in label_files])
    (_, _, _), t_nocache = timed(L.scan_yolo, str(images), 1, "bench", False)
    (_, _, hit), t_write = timed(L.scan_yolo, str(images), 1, "bench", True)
    assert not hit
    (records, rep, hit), t_read = timed(L.scan_yolo, str(images), 1, "bench", True)
    assert hit and len(records) == args.n and rep.copies == copies

    per10k = 1e4 / args.n
    rows = [("list images (os.walk)", t_list), ("stat fingerprint (images + labels)", t_stat),
            (f"copy detection ({copies} copies found)", t_copies),
            ("image headers (PIL, 8 threads)", t_inspect), ("parse label files", t_labels),
            ("full scan, no cache", t_nocache), ("full scan + write cache", t_write),
            ("scan from cache", t_read)]
    print(f"| phase | seconds ({args.n} images) | s per 10k images | "
          "extrapolated to 118k |")
    print("|---|---:|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {t * per10k:.2f} | {t * per10k * 11.8:.1f} |")


if __name__ == "__main__":
    main()
