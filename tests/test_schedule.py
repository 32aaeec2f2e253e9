"""The schedule of yolov9lite/training/optim.py against the official loop of ``train_dual.py``.

The official code does not compute the schedule in one place: the warm-up (``ni <= nw``) sets
lr and momentum per batch with ``np.interp`` towards ``initial_lr * lf(epoch)``; otherwise the
lr is whatever a ``LambdaLR`` scheduler last set, and that scheduler is created before the loop
(which sets ``lf(0)``), gets ``last_epoch = start_epoch - 1`` and is stepped at the *end* of every
epoch. :func:`official_settings` runs exactly that with a real ``torch.optim.SGD`` and
``LambdaLR``; our pure :func:`yolov9lite.training.optim.schedule` must give the same numbers for every
batch of the first 300 and at every epoch boundary, for the linear and the cosine decay.
This transcription runs without the official code; test_official_oracle.py repeats the check
with the official objects (``smart_optimizer``, ``one_cycle``) over every batch of a 500-epoch
run and its resumptions.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from yolov9lite.training.optim import schedule, warmup_iters

HYP = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "warmup_momentum": 0.8,
       "warmup_bias_lr": 0.1}
NBS, BATCH = 64, 16  # nominal batch, batch size


def official_lf(cos_lr: bool, epochs: int, lrf: float):
    if cos_lr:  # utils/general.py one_cycle(1, lrf, epochs)
        return lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf


def official_settings(epochs: int, nb: int, cos_lr: bool):
    """Yield ``(ni, epoch, [lr per group], momentum, accumulate)`` for every batch, following
    the official loop step by step (optimizer, scheduler, warm-up block)."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    optimizer = torch.optim.SGD([{"params": [p]} for p in params], lr=HYP["lr0"],
                                momentum=HYP["momentum"], nesterov=True)
    lf = official_lf(cos_lr, epochs, HYP["lrf"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    nw = max(round(3.0 * nb), 100)
    start_epoch = 0
    scheduler.last_epoch = start_epoch - 1
    accumulate = max(round(NBS / BATCH), 1)
    for epoch in range(start_epoch, epochs):
        for i in range(nb):
            ni = i + nb * epoch
            if ni <= nw:
                xi = [0, nw]
                accumulate = max(1, np.interp(ni, xi, [1, NBS / BATCH]).round())
                for j, x in enumerate(optimizer.param_groups):
                    x["lr"] = np.interp(ni, xi, [HYP["warmup_bias_lr"] if j == 0 else 0.0,
                                                 x["initial_lr"] * lf(epoch)])
                    x["momentum"] = np.interp(ni, xi, [HYP["warmup_momentum"], HYP["momentum"]])
            groups = optimizer.param_groups
            yield ni, epoch, [g["lr"] for g in groups], groups[0]["momentum"], int(accumulate)
        optimizer.step()  # no gradients: a no-op, keeps the scheduler's order check quiet
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler.step()


@pytest.mark.parametrize("cos_lr", [False, True])
@pytest.mark.parametrize("nb", [7, 37, 150])  # warm-up ends mid-epoch, or within epoch 0
def test_schedule_matches_official_loop(cos_lr, nb):
    epochs = 50
    nw = warmup_iters(nb, 3.0)
    checked = 0
    for ni, epoch, lrs, momentum, accumulate in official_settings(epochs, nb, cos_lr):
        boundary = ni % nb in (0, nb - 1)
        if ni >= 300 and not boundary:
            continue
        ours = schedule(ni, epoch, epochs=epochs, nw=nw, batches_per_epoch=nb, batch_size=BATCH,
                        cos_lr=cos_lr, nominal_batch=NBS, **HYP)
        where = f"ni {ni}, epoch {epoch}"
        assert ours["lr"] == pytest.approx(lrs, rel=1e-12, abs=1e-15), where
        assert ours["momentum"] == pytest.approx(momentum, rel=1e-12), where
        assert ours["accumulate"] == accumulate, where
        checked += 1
    assert checked >= 300


def test_final_epoch_lr_is_one_epoch_behind():
    """After warm-up, epoch e runs at lf(e - 1): the last epoch of a 500-epoch run at
    lr0 * lf(498), not lf(499) (which would be 14 % lower)."""
    epochs, nb = 500, 100
    last = schedule(epochs * nb - 1, epochs - 1, epochs=epochs, nw=300, batches_per_epoch=nb,
                    batch_size=BATCH, **HYP)
    lf = official_lf(False, epochs, HYP["lrf"])
    assert last["lr"][0] == pytest.approx(HYP["lr0"] * lf(epochs - 2))
    assert lf(epochs - 1) / lf(epochs - 2) == pytest.approx(0.86, abs=0.01)
