"""CPU convergence: gelan-nano learns the synthetic shapes from scratch in about 1.5-2.5 minutes.

Setup: 128 train / 32 val synthetic images (160 px), batch 16 with ``nominal_batch=16`` (one
SGD step per batch: with 8 batches per epoch the official nominal 64 would give only 2 steps an
epoch), 24 epochs with mosaic closed for the last 10, everything else the official recipe
(lr0 0.01 linear to lrf 0.01, 100-batch warm-up, EMA, clipping). One intra-op thread plus one
loader worker, so the two cores of a CI machine each do one job (with torch's default two
threads on a busy 2-core machine, OpenMP threads spinning against other processes made the run
~10x slower).

Calibration, observed on the project's 2-core CPU machine (torch 2.14.1, shared with other
jobs), by running exactly this test's configuration:

* 24 epochs (this test): EMA mAP50 0.251, mAP50:95 0.129 at the end; train loss (box + cls +
  dfl) 14.06 -> 8.25; 84 s for the run (30-75 img/s depending on the machine's load);
* the same with 30 epochs: mAP50 0.317, mAP50:95 0.172, loss 14.06 -> 6.14, 150 s.

The threshold, mAP50 >= 0.15, is 60% of the observed 0.251: room for other CPUs' float
rounding and thread counts, while a broken loop (wrong LR groups, no EMA, bad targets) stays
near 0.00-0.01 as at epochs 5-10 of the calibration run.
"""
from __future__ import annotations

import pytest

import yolov9lite.training.trainer as T
from yolov9lite.data import make_synthetic

MAP50_THRESHOLD = 0.15  # observed 0.251 (see the module docstring)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_gelan_nano_learns_synthetic_shapes_on_cpu(tmp_path):
    data = make_synthetic(tmp_path / "data", num_train=128, num_val=32, imgsz=160, seed=0)
    history = T.train(model="gelan-nano", data=str(data), epochs=24, batch_size=16,
                      nominal_batch=16, imgsz=160, device="cpu", workers=1, close_mosaic=10,
                      val_interval=12, seed=0, project=tmp_path, name="converge",
                      tensorboard=False, plots=True, verbose=False)

    first, last = history[0], history[-1]
    # the loss curves go down: every part, and the total by more than a third
    for part in ("train/box", "train/cls", "train/dfl"):
        assert last[part] < first[part], part
    assert last["train/loss"] < 0.67 * first["train/loss"]
    # detection quality of the EMA model (pycocotools-equivalent COCO mAP)
    assert last["metrics/AP50"] >= MAP50_THRESHOLD, (
        f"mAP50 {last['metrics/AP50']:.3f} < {MAP50_THRESHOLD} (calibrated at 0.251)")
    assert last["metrics/AP50"] > history[11]["metrics/AP50"]  # better than at mid-run
    assert (history.save_dir / "results.png").is_file()
