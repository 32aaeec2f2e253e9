"""Inference latency and throughput of a (deployed) model on the current device.

What is timed: the model's forward pass on a ready float input already on the device (no image
decoding, no letterbox, no NMS), the number most papers call "latency". On CUDA the forward is
replayed from a captured graph (:class:`yolov9lite.utils.accel.CudaGraphRunner`) when ``cuda_graph`` is
set, and every timed call ends with a synchronisation so that queued kernels are counted. The
median over ``iters`` timed calls is reported (robust to a busy machine); ``p90`` shows the tail.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch
from torch import nn

from ..utils.accel import CudaGraphRunner


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device, warmup: int = 3, iters: int = 10) -> list[float]:
    """Seconds of each of ``iters`` calls of ``fn()`` after ``warmup`` untimed ones, with a device
    synchronisation before and after every timed call so that queued GPU work is counted (the
    method ``benchmarks/bench_gpu.py`` uses for ours and the official model alike)."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


@torch.inference_mode()
def measure_latency(model: nn.Module, imgsz: int = 640, batch: int = 1, device=None,
                    warmup: int = 3, iters: int = 10, dtype: torch.dtype = torch.float32,
                    cuda_graph: bool = True) -> dict:
    """Time ``model`` on a (batch, 3, imgsz, imgsz) input; returns a dict with ``batch``,
    ``imgsz``, ``device``, ``ms_per_batch`` (median), ``p90_ms``, ``ms_per_image`` and
    ``images_per_s`` (= batch / median). The model is put in eval mode and moved to ``device``
    (default: where its parameters are)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device=device, dtype=dtype).eval()
    x = torch.rand(batch, 3, imgsz, imgsz, device=device, dtype=dtype)
    run = model
    if cuda_graph and device.type == "cuda":
        run = CudaGraphRunner(model, x, warmup=warmup)
    times = time_calls(lambda: run(x), device, warmup, iters)
    med = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, int(0.9 * len(times)))]
    return {"batch": batch, "imgsz": imgsz, "device": str(device), "ms_per_batch": 1e3 * med,
            "p90_ms": 1e3 * p90, "ms_per_image": 1e3 * med / batch, "images_per_s": batch / med,
            "cuda_graph": run is not model}


def device_name(device=None) -> str:
    """A readable name of the device the numbers were taken on (GPU model or CPU + threads)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {torch.get_num_threads()} thread(s))"
