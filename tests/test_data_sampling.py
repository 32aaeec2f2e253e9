"""EpochSampler: a training batch is a function of (seed, epoch, index) alone -- the same with
0 or 2 workers, persistent or restarted, and for a loader built fresh at epoch k (a resume)."""

import numpy as np
import pytest
import torch

from yolov9lite.data import EpochSampler, build_dataloader, make_synthetic
from yolov9lite.training.trainsetup import set_loader_epoch


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=12, num_val=4, imgsz=96,
                          seed=3)


def epochs_of(loader, epochs):
    """[(images, targets)] per batch, epoch by epoch, set_epoch before each (as the trainer)."""
    out = []
    for epoch in epochs:
        set_loader_epoch(loader, epoch)
        out.append([(images.clone(), targets.clone()) for images, targets, _ in loader])
    return out


def loader(data_yaml, workers, persistent, seed=5):
    return build_dataloader(data_yaml, "train", imgsz=64, batch_size=4, workers=workers,
                            seed=seed, shard_seed=7, persistent_workers=persistent)


def assert_same(a, b):
    assert len(a) == len(b)
    for batches_a, batches_b in zip(a, b):
        assert len(batches_a) == len(batches_b) == 3
        for (ia, ta), (ib, tb) in zip(batches_a, batches_b):
            assert torch.equal(ia, ib) and torch.equal(ta, tb)


def test_batches_do_not_depend_on_workers_persistence_or_resume(data_yaml):
    reference = epochs_of(loader(data_yaml, 0, False), [0, 1, 2])
    persistent = epochs_of(loader(data_yaml, 2, True), [0, 1, 2])
    restarted = epochs_of(loader(data_yaml, 2, False), [0, 1, 2])
    resumed = epochs_of(loader(data_yaml, 1, True), [2])  # a loader built at epoch 2
    assert_same(reference, persistent)
    assert_same(reference, restarted)
    assert_same(reference[2:], resumed)
    # and the epochs really differ (order and augmentation), as does another seed
    assert not torch.equal(reference[0][0][0], reference[1][0][0])
    other = epochs_of(loader(data_yaml, 0, False, seed=6), [0])
    assert not torch.equal(reference[0][0][0], other[0][0][0])


def test_without_set_epoch_each_iteration_is_a_new_epoch(data_yaml):
    plain = loader(data_yaml, 0, False)
    first, second = ([b[0] for b in plain] for _ in range(2))
    assert not torch.equal(first[0], second[0])
    assert plain.sampler.epoch == 2


def test_ddp_shards_partition_one_order():
    n, world = 10, 3
    shards = [EpochSampler(n, True, seed=rank, shard_seed=4, rank=rank, world_size=world)
              for rank in range(world)]
    for s in shards:
        s.set_epoch(3)
    orders = [s.order(3) for s in shards]
    assert all(len(o) == len(s) == 4 for o, s in zip(orders, shards))
    merged = np.stack(orders, 1).ravel()  # interleave back: the one permutation, wrapped
    full = np.random.default_rng([4, 3]).permutation(n)
    assert merged.tolist() == np.resize(full, 12).tolist()
    keys = [list(s) for s in shards]
    assert keys[0][0] == (int(orders[0][0]), (0, 3, int(orders[0][0])))  # own seed per rank
    assert keys[1][0][1][0] == 1
    with pytest.raises(ValueError, match="rank 3"):
        EpochSampler(n, rank=3, world_size=3)


def test_workers_are_capped_at_the_available_cpus(data_yaml, monkeypatch):
    """As the official create_dataloader: no more loader processes than CPUs per rank (the
    training default of 4 on a 2-core machine started 4 per loader, with PyTorch's warning);
    0 stays 0 and a request is never capped below 1."""
    import yolov9lite.data.loader as L

    monkeypatch.setattr(L, "available_cpus", lambda: 2)  # the name the loader reads

    def built(workers, world=1):
        return build_dataloader(data_yaml, "train", imgsz=64, batch_size=4, workers=workers,
                                world_size=world, persistent_workers=False).num_workers

    assert [built(4), built(2), built(1), built(0)] == [2, 2, 1, 0]
    assert [built(4, world=2), built(4, world=4)] == [1, 1]
    assert L.capped_workers(8) == 2
