"""`build_dataloader`: config + split -> torch DataLoader of `(images, targets, metas)` batches.

Workers run the augmentation in parallel (the loader is CPU-bound: mosaic decodes 4 JPEGs per
sample). Augmenting and shuffled loaders draw their order and every sample's augmentation
seed from `EpochSampler` (sampling.py): a batch is a function of (seed, epoch, index),
whichever worker builds it, so workers can persist across epochs and a resume is exact with
any worker count. Building a loader with workers switches OpenCV to single-threaded mode in
the calling process (`cv2.setNumThreads(0)`, process-wide), so that N workers use N cores and
forked workers cannot inherit a broken OpenCV thread pool.

Close mosaic: `loader.dataset.set_mosaic(False)` writes a flag in shared memory that persistent
workers read on every item, so no rebuild is needed; only the batches already prefetched
(`prefetch_factor` x workers) still use mosaic.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..utils.runtime import available_cpus
from .config import load_data_config, split_source
from .dataset import DetectionDataset, collate
from .imagecache import open_image_cache
from .labels import load_records
from .sampling import EpochSampler


def default_workers() -> int:
    return min(2, available_cpus())


def capped_workers(workers: int, world_size: int = 1) -> int:
    """At most one loader process per CPU of this rank's share (the official ``create_dataloader``
    caps ``--workers`` by ``os.cpu_count() // world_size`` the same way): the default 4 on a
    2-core laptop would start 4 processes per loader, which PyTorch warns about and which only
    slows the run down. Never below 1 when processes were asked for (0 stays 0: the main process
    loads, another random stream); the batches are the same with any number of processes."""
    if workers <= 0:
        return workers
    return max(1, min(workers, available_cpus() // max(world_size, 1)))


def seed_worker(worker_id: int) -> None:
    """Per-worker RNG from the loader's seeded generator (torch gives each worker base+id)."""
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed % 2**63)


def build_dataset(data_cfg, split: str, imgsz: int = 640, augment: bool | None = None,
                  rect: bool | None = None, batch_size: int = 16, hyp=None, pad: float | None = None,
                  seed: int = 0, use_cache: bool = True,
                  cache_images: bool = False) -> DetectionDataset:
    """Scan a split (cached) and wrap it in a DetectionDataset. Defaults: training split
    augments with mosaic; other splits are validation-style (rect batches, pad 0.5).
    `cache_images`: decode and resize every image once into the shared image cache
    (imagecache.py); the batches stay bit-identical."""
    cfg = load_data_config(data_cfg)
    augment = (split == "train") if augment is None else augment
    rect = (not augment) if rect is None else rect
    pad = (0.0 if augment else 0.5) if pad is None else pad
    records, _ = load_records(split_source(cfg, split), cfg["nc"], f"{split}", use_cache)
    dataset = DetectionDataset(records, cfg["names"], imgsz=imgsz, augment=augment, hyp=hyp,
                               rect=rect, batch_size=batch_size, pad=pad, seed=seed, name=split)
    dataset.category_ids = cfg["category_ids"]  # for dataset_to_coco and evaluation
    if cache_images:
        dataset.image_cache = open_image_cache(dataset.records, imgsz, training=augment,
                                               name=split)
    return dataset


def build_dataloader(data_cfg, split: str, imgsz: int = 640, batch_size: int = 16,
                     workers: int | None = None, augment: bool | None = None,
                     rect: bool | None = None, shuffle: bool | None = None, seed: int = 0,
                     hyp=None, pad: float | None = None, pin_memory: bool | None = None,
                     persistent_workers: bool = True, drop_last: bool = False,
                     use_cache: bool = True, rank: int = 0, world_size: int = 1,
                     shard_seed: int | None = None,
                     cache_images: bool = False) -> torch.utils.data.DataLoader:
    """DataLoader yielding `(images, targets, metas)`:

    - images: uint8 (B, 3, H, W) RGB (convert to float / 255 on the device);
    - targets: float (N, 6) `[image_index, class, cx, cy, w, h]`, normalised to (H, W);
    - metas: list of dicts with `path`, `image_id`, `orig_shape`, `ratio_pad`.

    Training (`split="train"` by default): augment with the recipe, shuffle. Validation:
    `augment=False, rect=True, pad=0.5`, no shuffle (rect batches need the sorted order).

    Augmenting or shuffled loaders use `EpochSampler`: the order comes from
    `(shard_seed, epoch)` (`shard_seed` defaults to `seed`), each sample's augmentation from
    `(seed, epoch, index)`; call `loader.sampler.set_epoch(epoch)` before each epoch (without
    it the epoch counts up per iteration). Under DDP (`world_size > 1`) each rank reads its own
    shard (`rank`) of that one order; `seed` stays per rank.

    `cache_images=True` reads decoded, resized images from the image cache (built on first
    use, shared by all workers through one memory map; imagecache.py) instead of decoding them
    every time: the same batches for less CPU per sample.

    `workers` is capped at the CPUs available to each rank (:func:`capped_workers`).
    """
    dataset = build_dataset(data_cfg, split, imgsz, augment, rect, batch_size, hyp, pad, seed,
                            use_cache, cache_images)
    workers = default_workers() if workers is None else capped_workers(workers, world_size)
    shuffle = (dataset.augment and not dataset.rect) if shuffle is None else shuffle
    if shuffle and dataset.rect:
        raise ValueError("rect batches need the aspect-sorted order: use shuffle=False")
    if workers > 0:
        # OpenCV's thread pool does not survive fork(): a worker forked after the parent used
        # it can hang in its first cv2 call. Single-threaded OpenCV (as the official code sets
        # globally) is also right here: the workers are the parallelism.
        cv2.setNumThreads(0)
    sampler = None
    if dataset.augment or shuffle or world_size > 1:  # keys carry the seeds; a shard per rank
        shard_seed = seed if shard_seed is None else shard_seed
        sampler = EpochSampler(len(dataset), shuffle, seed, shard_seed, rank, world_size)
        shuffle = False  # the sampler does it
    generator = torch.Generator().manual_seed(seed)
    if workers == 0:  # main process: seed the dataset's own generator directly
        dataset.rng = np.random.default_rng(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=workers,
        collate_fn=collate, pin_memory=torch.cuda.is_available() if pin_memory is None
        else pin_memory, persistent_workers=persistent_workers and workers > 0,
        worker_init_fn=seed_worker if workers > 0 else None, generator=generator,
        drop_last=drop_last)
