"""A run that ends inside its warm-up is warned about (official warm-up: at least 100 batches,
``yolov9lite.training.optim.warmup_iters``), so a short CPU demo does not silently learn nothing."""
from __future__ import annotations

import pytest

from yolov9lite.training.optim import short_run_warning, warmup_iters


def test_the_warning_names_the_lengths_and_the_fix():
    nw = warmup_iters(4, 3.0)  # the 100-batch floor
    msg = short_run_warning(epochs=12, batches_per_epoch=4, warmup_batches=nw)
    assert "48 batches" in msg and "100 batches" in msg and "--warmup-epochs 0" in msg
    assert short_run_warning(epochs=30, batches_per_epoch=4, warmup_batches=nw) is None
    assert short_run_warning(epochs=1, batches_per_epoch=4, warmup_batches=0) is None  # no warm-up


def test_train_warns_when_the_run_is_shorter_than_its_warm_up(tmp_path):
    import yolov9lite.training.trainer as T
    from yolov9lite.data import make_synthetic

    data = make_synthetic(tmp_path / "d", num_train=4, num_val=2, imgsz=64, seed=0)
    with pytest.warns(RuntimeWarning, match="longer than its warm-up"):
        T.train(model="gelan-nano", data=str(data), epochs=1, batch_size=4, nominal_batch=4,
                imgsz=64, device="cpu", workers=0, project=tmp_path / "runs", name="short",
                tensorboard=False, plots=False, verbose=False)
