"""Training on the CPU runs with one torch thread fewer than the CPUs it may use (at least 1,
never more than already set), restored afterwards; ``OMP_NUM_THREADS`` is the user's choice.

Why (benchmarks/first_hour.md): with torch's default of one thread per CPU, a yolov9-t step at
160 px on a busy 2-core machine took ~100 s instead of ~3 s with one thread.
"""
from __future__ import annotations

import torch

import yolov9lite.training.trainer as T
import yolov9lite.utils.runtime as R
from yolov9lite.data import make_synthetic


def _threads_inside(device: str) -> int:
    with R.cpu_training_threads(torch.device(device)) as n:
        assert n == torch.get_num_threads()
        return n


def test_cpu_threads_rule(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        torch.set_num_threads(2)
        for cpus, expected in ((8, 2), (3, 2), (2, 1), (1, 1)):  # never raised above 2
            monkeypatch.setattr(R, "available_cpus", lambda cpus=cpus: cpus)
            assert _threads_inside("cpu") == expected, cpus
            assert torch.get_num_threads() == 2  # restored
        assert _threads_inside("cuda") == 2  # a GPU run leaves the CPU threads alone
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert _threads_inside("cpu") == 2  # the user's setting wins
    finally:
        torch.set_num_threads(before)


def test_train_on_cpu_uses_the_rule(tmp_path, monkeypatch):
    data = make_synthetic(tmp_path / "data", num_train=4, num_val=2, imgsz=64, seed=0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(R, "available_cpus", lambda: 2)
    before, seen = torch.get_num_threads(), []
    try:
        torch.set_num_threads(2)
        T.train(model="gelan-nano", data=str(data), epochs=1, batch_size=4, nominal_batch=4,
                max_batches=1, imgsz=64, workers=0, warmup_epochs=0, device="cpu",
                tensorboard=False, plots=False, verbose=False, project=tmp_path, name="t",
                callbacks={"on_epoch_end": lambda h: seen.append(torch.get_num_threads())})
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
