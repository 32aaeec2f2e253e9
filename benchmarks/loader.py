"""Training-loader throughput at 640, batch 16, full scratch-high augmentation, 1 and 2 workers.

    python -m benchmarks.loader                       # synthetic set written at 640 px
    python -m benchmarks.loader path/to/data.yaml     # a dataset YAML (its train split)
    python -m benchmarks.loader path/to/images/       # any image folder (YOLO layout)

Also measures the floor: JPEG decoding alone (cv2.imread, one process) over the same files.
A mosaic sample decodes 4 images, plus 4 more when MixUp fires (p=0.15), so the most a loader
could deliver on `w` cores if decoding were the only cost is  w * decode_rate / 4.6.
The ratio "loader / floor" says how much of the per-sample time goes into decoding.
Then the image cache (``cache_images=True``): the same per-sample CPU time and 2-worker loader
rate with decoded, resized images read from the shared memory map instead of decoded again.
Last, the epoch boundary: time from `iter(loader)` to the first batch of epochs 2 and 3, with
workers restarted every epoch and with persistent workers (`EpochSampler` carries the seeds,
so both give the same batches; the test is tests/test_data_sampling.py).
Timings are wall-clock for the loader and CPU time for the floor and the per-sample cost; on a
shared machine compare them with the printed load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2

from yolov9lite.data import HYP_SCRATCH_HIGH, build_dataloader, make_synthetic
from yolov9lite.data.labels import list_images


def data_config(target: str | None):
    if target is None:
        return str(make_synthetic("runs/data/synthetic640", num_train=256, num_val=16,
                                  imgsz=640, seed=0))
    path = Path(target)
    if path.is_dir():  # a bare image folder: a throwaway YAML around it
        yaml_path = Path(tempfile.mkdtemp()) / "data.yaml"
        yaml_path.write_text(f"path: {path.resolve()}\ntrain: .\nval: .\nnames: [object]\n")
        return str(yaml_path)
    return target


def loader_rate(cfg, workers: int, batches: int, warmup: int = 2,
                cache_images: bool = False) -> float:
    loader = build_dataloader(cfg, "train", imgsz=640, batch_size=16, workers=workers,
                              hyp=HYP_SCRATCH_HIGH, seed=0, cache_images=cache_images)

    def endless():  # a small set may hold fewer batches than we time
        while True:
            yield from loader

    it = endless()
    for _ in range(warmup):  # worker start-up and first prefetch are not throughput
        next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        images, _, _ = next(it)
        n += len(images)
    rate = n / (time.perf_counter() - start)
    it.close()  # ends the workers before the next setting starts its own
    return rate


def epoch_start_seconds(cfg, workers: int, persistent: bool, epochs: int = 3) -> float:
    """Mean seconds from `iter(loader)` to the first batch over epochs 2..`epochs`."""
    loader = build_dataloader(cfg, "train", imgsz=640, batch_size=16, workers=workers,
                              hyp=HYP_SCRATCH_HIGH, seed=0, persistent_workers=persistent)
    waits = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        for k, _ in enumerate(loader):
            if k == 0 and epoch > 0:  # epoch 1 starts the workers in both settings
                waits.append(time.perf_counter() - start)
    del loader  # ends persistent workers before the next setting
    return sum(waits) / len(waits)


def decode_rate(files: list[Path], seconds: float = 3.0) -> float:
    """Images decoded per CPU-second (CPU time, so other processes on the box matter less)."""
    cv2.setNumThreads(0)
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        cv2.imread(str(files[n % len(files)]), cv2.IMREAD_COLOR)
        n += 1
    return n / (time.process_time() - start)


def sample_cpu_ms(cfg, samples: int = 64, cache_images: bool = False) -> float:
    """CPU milliseconds per augmented 640 sample in this process (no workers, no IPC)."""
    from yolov9lite.data import build_dataset
    ds = build_dataset(cfg, "train", imgsz=640, hyp=HYP_SCRATCH_HIGH, cache_images=cache_images)
    for i in range(4):
        ds[i]
    start = time.process_time()
    for i in range(samples):
        ds[i % len(ds)]
    return (time.process_time() - start) / samples * 1000


def image_cache_rows(cfg, batches: int, rounds: int = 2) -> None:
    """Per-sample CPU time and 2-worker loader rate with and without the image cache
    (imagecache.py), alternating, the cache built first in a throwaway folder."""
    folder = tempfile.mkdtemp(prefix="yolov9lite-imagecache-")
    previous = os.environ.get("YOLOV9LITE_CACHE_DIR")
    os.environ["YOLOV9LITE_CACHE_DIR"] = folder
    try:
        start = time.perf_counter()
        sample_cpu_ms(cfg, samples=1, cache_images=True)  # builds it
        build_s = time.perf_counter() - start
        ms = {False: [], True: []}
        rate = {False: [], True: []}
        for _ in range(rounds):
            for cached in (False, True):
                ms[cached].append(sample_cpu_ms(cfg, cache_images=cached))
                rate[cached].append(loader_rate(cfg, 2, batches, cache_images=cached))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if previous is None:
            os.environ.pop("YOLOV9LITE_CACHE_DIR")
        else:
            os.environ["YOLOV9LITE_CACHE_DIR"] = previous
    best = {k: (min(ms[k]), max(rate[k])) for k in ms}  # best of the rounds: least disturbed
    print(f"image cache (built in {build_s:.1f} s): one augmented sample "
          f"{best[True][0]:.1f} CPU ms vs {best[False][0]:.1f} decoding "
          f"({best[False][0] / best[True][0]:.2f}x); loader workers=2: {best[True][1]:.1f} vs "
          f"{best[False][1]:.1f} img/s ({best[True][1] / best[False][1]:.2f}x); best of "
          f"{rounds} alternating rounds")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", help="dataset YAML or image folder (default synthetic)")
    parser.add_argument("--batches", type=int, default=16, help="timed batches per setting")
    args = parser.parse_args()
    logging.getLogger("yolov9lite.data").setLevel(logging.ERROR)
    cfg = data_config(args.data)
    from yolov9lite.data import load_data_config
    files = list_images(load_data_config(cfg)["train"])
    decodes_per_sample = 4 * (1 + HYP_SCRATCH_HIGH.mixup)
    dec = decode_rate(files)
    cpu_ms = sample_cpu_ms(cfg)
    decode_ms = decodes_per_sample * 1000 / dec
    print(f"data: {cfg} ({len(files)} train images), cores: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(f"JPEG decode only: {dec:.0f} images/s per core "
          f"(= {dec / decodes_per_sample:.1f} mosaic samples/s per core)")
    print(f"one augmented sample: {cpu_ms:.1f} CPU ms, of which decoding {decode_ms:.1f} ms "
          f"({decode_ms / cpu_ms:.0%}); {1000 / cpu_ms:.0f} img/s per free core")
    for workers in (1, 2):
        rate = loader_rate(cfg, workers, args.batches)
        floor = workers * dec / decodes_per_sample
        print(f"loader 640, batch 16, full augmentation, workers={workers}: {rate:6.1f} img/s  "
              f"= {rate / floor:.2f} x the decode-only bound ({floor:.1f} img/s)")
    image_cache_rows(cfg, args.batches)
    restarted, persistent = (epoch_start_seconds(cfg, 2, p) for p in (False, True))
    print(f"epoch start (iter -> first batch, epochs 2-3, workers=2): restarted workers "
          f"{restarted:.3f} s, persistent {persistent:.3f} s ({restarted / persistent:.1f}x)")


if __name__ == "__main__":
    main()
