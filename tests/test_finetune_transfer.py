"""Fine-tuning transfers what a model learned: ``train(weights=...)`` from a model trained on one
class set beats the same run from scratch on another class set.

Design (attempt 4, fixed before its first run; attempts 0-3 below):

* set A = synthetic shapes ``disc, square, triangle, star`` (4 classes, 256 train images);
  set B = ``hexagon, cross`` (2 classes, none of A's shapes: 128 train / 48 held-out images),
  written by ``make_synthetic(classes=...)`` with their own seeds, at 64 px;
* pre-training: gelan-nano from scratch on A, 3 epochs x 16 batches of 16 (once per module);
* on B, for each of the seeds 0, 1, 2, two runs that differ only in the starting weights:
  ``weights=<A's last.pt>`` (the head's class layers start afresh: 4 -> 2 classes) and from
  scratch; both 3 epochs of 8 batches of 16, same seed (same batches, augmentation and fresh
  initialisation), ``lr0`` 0.001 and no warm-up for both (the README's advice for fine-tuning
  on a small set; at the recipe's 0.01 a fine-tuning run could blow up, attempt 2), the
  official recipe otherwise;
* the pre-training runs on one torch thread, as the runs on B (the module fixture is set up
  before the test's ``one_thread``);
* metric: the held-out loss (box + cls + dfl, the training loss with its gains) of the saved
  (EMA) model over B's 48 validation images, BatchNorm in eval mode. AP50 is printed, not
  judged: after a few steps both runs are often near 0 on a CPU at this size;
* rule (paired, one verdict per seed, no pooling): in EVERY seed the fine-tuned loss is at
  most 0.8 x the scratch loss. The margin 0.8 is the one of an earlier design (below), kept
  as it was. A broken transfer (nothing copied, or copied under the wrong names) gives a
  ratio near 1.

Attempts (every run of this test, as measured on the project's 2-core CPU machine while other
jobs shared it, load average 6-14):

* attempt 0 (an earlier design, not this file: another class split, a pre-training then 6
  fine-tuning epochs): held-out AP50 0.108 / 0.111 / 0.008 fine-tuned vs 0.000 from scratch
  (seeds 0-2), but 0.000 for both at test size (12 steps), and the same loss rule (<= 0.8)
  failed at seed 2 (ratio 0.85); nothing was shipped rather than loosen the rule;
* attempt 1: the same rule; pre-training 10 epochs x 8 batches (128 images of A), fine-tuning
  3 epochs x 4 batches (64 images of B). No verdict: the module's pre-training alone ran past
  pytest's 600 s timeout under that load (a probe of the same configuration, run before the
  rule was written, had taken 86 s for the pre-training and 26-30 s per run, and gave ratio
  0.56 at seed 0). Attempt 2 cuts the work (96 steps instead of 152, 16 checkpoint writes
  instead of 29) and keeps the rule.
* attempt 2 (this file): passed. Held-out loss fine-tuned vs scratch, ratio: seed 0 9.207 vs
  15.590, 0.591; seed 1 9.009 vs 15.548, 0.579; seed 2 9.414 vs 15.606, 0.603 (AP50 0.011 /
  0.014 / 0.031 vs 0.010 / 0.010 / 0.010). 944 s wall, 247 s CPU (user + sys) for the module
  under load average 12-14. Then it FAILED on a rerun after training on the CPU started to use
  one thread fewer than the CPUs (1 instead of 2 here), most likely because that changed the
  float rounding of the pre-training only (it ran outside ``one_thread``; the scratch runs
  gave the same numbers to the last digit printed): seed 0 9.225 vs 15.590, 0.592; seed 1
  10.082 vs 15.548, 0.648; seed 2 15.569 vs 15.606, 0.998 (train loss 11.3, like the other
  seeds: the fine-tuning at lr0 0.01 without warm-up went astray at the end; reproducible bit
  for bit from that pre-trained model). A rule that flips with the last bits of the
  pre-training is a failing test: attempt 3 changes the design (lr0, one thread), not the rule.
* attempt 3: lr0 0.001 for both runs, 1 epoch of 8 batches, pre-training on one thread. FAILED
  the rule in every seed, and stably (the same numbers with the pre-training set to 2 threads,
  which the CPU-thread rule of training lowered to 1 again, so that was no real check):
  seed 0 13.003 vs 15.616, 0.833; seed 1 12.720 vs 15.614, 0.815; seed 2 13.001 vs 15.625,
  0.832 (AP50 0.010 everywhere). 156 s wall, 60 s CPU at load average ~5. At lr0 0.001, 8
  steps are too few to fit the fresh class layers. Attempt 4 adds steps (3 epochs), keeps the
  rule.
* attempt 4 (this file): passed, and passed again with the pre-training on 2 threads
  (``OMP_NUM_THREADS=2``, another pre-trained model from other rounding), the two runs side by
  side on the shared machine. Held-out loss fine-tuned vs scratch, ratio:
  one thread:  seed 0 8.802 vs 15.603, 0.564; seed 1 9.450 vs 15.593, 0.606; seed 2 9.523 vs
  15.632, 0.609 (AP50 0.030 / 0.031 / 0.035 vs 0.010);
  two threads: seed 0 9.379, 0.601; seed 1 9.697, 0.622; seed 2 10.253, 0.656 (AP50 0.020 /
  0.021 / 0.013 vs 0.010).
  259 s wall, 101 s CPU (user + sys) for the module at load average ~5-8: over what CI can
  afford per test, hence ``slow``; the pre-training is about a quarter of it.
"""
from __future__ import annotations

import pytest
import torch

import yolov9lite.training.trainer as T
from yolov9lite.data import build_dataloader, make_synthetic
from yolov9lite.training.loss import DetectionLoss

pytestmark = pytest.mark.usefixtures("one_thread")

SET_A = ["disc", "square", "triangle", "star"]
SET_B = ["hexagon", "cross"]
SEEDS = (0, 1, 2)
MAX_RATIO = 0.8  # fine-tuned / scratch held-out loss, every seed (fixed before the first run)
IMGSZ = 64
PRETRAIN_THREADS = 1  # a check of robustness reran attempt 4 with 2 (and OMP_NUM_THREADS=2)
COMMON = {"model": "gelan-nano", "batch_size": 16, "nominal_batch": 16, "imgsz": IMGSZ,
          "device": "cpu", "workers": 0, "warmup_epochs": 0, "close_mosaic": 0,
          "val_interval": 0, "tensorboard": False, "plots": False, "verbose": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    a = make_synthetic(root / "A", num_train=256, num_val=8, imgsz=IMGSZ, seed=10, classes=SET_A)
    b = make_synthetic(root / "B", num_train=128, num_val=48, imgsz=IMGSZ, seed=20, classes=SET_B)
    return root, a, b


@pytest.fixture(scope="module")
def pretrained(data):
    """gelan-nano trained on set A (its last.pt)."""
    root, a, _ = data
    threads = torch.get_num_threads()
    torch.set_num_threads(PRETRAIN_THREADS)
    try:
        return T.train(data=str(a), epochs=3, seed=0, project=root / "runs", name="A",
                       **COMMON).last
    finally:
        torch.set_num_threads(threads)


def held_out_loss(model, data_yaml) -> float:
    """Mean training loss (box + cls + dfl) of ``model`` over the validation images, in eval
    mode except the head's own flag, so that it returns the raw maps the loss consumes."""
    loader = build_dataloader(str(data_yaml), "val", imgsz=IMGSZ, batch_size=16, workers=0)
    model = model.float().eval()
    model.head.training = True  # the flag only: BatchNorm layers below stay in eval mode
    loss_fn, total, images = DetectionLoss(model), 0.0, 0
    try:
        with torch.no_grad():
            for batch, targets, _ in loader:
                _, items = loss_fn(model(batch.float() / 255), targets)
                total += items.sum().item() * len(batch)
                images += len(batch)
    finally:
        model.head.training = False
    return total / images


@pytest.mark.slow
def test_finetuning_beats_scratch_on_another_class_set(data, pretrained):
    root, _, b = data
    rows = []
    for seed in SEEDS:
        losses, ap50 = {}, {}
        for start, extra in (("finetuned", {"weights": str(pretrained)}), ("scratch", {})):
            history = T.train(data=str(b), epochs=3, seed=seed, lr0=0.001,
                              project=root / "runs", name=f"{start}{seed}", **COMMON, **extra)
            losses[start] = held_out_loss(history.ema, b)
            ap50[start] = history[-1]["metrics/AP50"]
        rows.append((seed, losses["finetuned"], losses["scratch"],
                     losses["finetuned"] / losses["scratch"], ap50["finetuned"], ap50["scratch"]))
    table = "\n".join(f"seed {s}: held-out loss {f:.3f} fine-tuned vs {c:.3f} scratch, ratio "
                      f"{r:.3f}; AP50 {fa:.3f} vs {ca:.3f}" for s, f, c, r, fa, ca in rows)
    print(table)
    assert all(ratio <= MAX_RATIO for _, _, _, ratio, _, _ in rows), table
