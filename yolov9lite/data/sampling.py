"""`EpochSampler`: the training order and every sample's augmentation as a function of
``(seed, epoch, index)`` alone.

The sampler yields keys ``(index, (seed, epoch, index))``; `DetectionDataset.__getitem__` seeds
that one sample's random generator from the second part. Nothing random then lives in a worker
process, so

* persistent workers (started once, reused every epoch) see each epoch's seeds: they travel
  with the indices, not with the worker;
* a batch does not depend on which worker built it, on how many workers there are, or on
  whether they were restarted: a run with 0, 2 or 16 workers, persistent or not, and a run
  resumed at epoch k all see the same images, bit for bit;
* under DDP every rank shuffles the same order from ``shard_seed`` and takes every
  ``world_size``-th index from ``rank`` (padded by wrapping, as ``DistributedSampler`` does),
  while its augmentation seed is its own.

Call ``set_epoch(epoch)`` before iterating (the trainer does, also after a resume). Without it
the epoch counts up by one per iteration, so plain ``for epoch ...: for batch in loader`` still
gets fresh augmentation every epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["EpochSampler"]


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled (or sequential) keys ``(index, (seed, epoch, index))`` for one rank's shard."""

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, shard_seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.n, self.shuffle = n, shuffle
        self.seed, self.shard_seed = seed % 2**64, shard_seed % 2**64  # SeedSequence: >= 0
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """This rank's indices for `epoch` (the same permutation on every rank)."""
        if self.shuffle:
            rng = np.random.default_rng([self.shard_seed, epoch])
            order = rng.permutation(self.n)
        else:
            order = np.arange(self.n)
        total = math.ceil(self.n / self.world_size) * self.world_size
        if total > self.n:  # equal shards on every rank: wrap around, as DistributedSampler does
            order = np.resize(order, total)
        return order[self.rank::self.world_size]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1  # the next plain iteration is a new epoch unless set_epoch says otherwise
        for i in self.order(epoch).tolist():
            yield i, (self.seed, epoch, i)

    def __len__(self) -> int:
        return math.ceil(self.n / self.world_size)
