"""Images/s of one training step of yolov9lite: forward, loss, backward, optimizer (+ EMA).

The step is the one of :func:`yolov9lite.training.engine.train_one_epoch` (same input conversion,
autocast, gradient scaler, clipping at 10, SGD with the three parameter groups, EMA update),
fed with random images and random boxes so that the data loader is *not* measured (time it with
``benchmarks/loader.py``).

On CUDA it also prints the model-FLOPs utilisation (``users-and-performance.md`` B1/B7):

    MFU = img/s x 3 x forward GFLOPs (training graph, at this image size) / peak

with the forward GFLOPs of :func:`yolov9lite.profile` (2 x MACs of convolutions; for YOLOv9
models the training graph, auxiliary branch included) and ``3 x`` for forward + backward.
The default peak is 800 TFLOP/s, the dense bf16 figure used for the project's H100 in
users-and-performance.md (an H100 SXM's datasheet says 989 TFLOP/s, a PCIe card 756): set
``--peak-tflops`` for your GPU and precision.

Examples::

    python benchmarks/train_step.py --model gelan-nano --batch 8 --img 160 --device cpu
    python benchmarks/train_step.py --model yolov9-c --batch 32 --img 640 --device cuda --amp bf16 --channels-last
"""
from __future__ import annotations

import argparse
import time

import torch

from yolov9lite import build_model, profile
from yolov9lite.training.engine import State, optimizer_step, to_model_input
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.training.optim import ModelEMA, build_optimizer, scaled_weight_decay
from yolov9lite.utils.runtime import resolve_amp, select_device


def random_batch(batch: int, img: int, nc: int, boxes_per_image: int = 8, seed: int = 0):
    """uint8 images and (N, 6) normalised targets ``[image, class, cx, cy, w, h]``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, img, img), dtype=torch.uint8, generator=g)
    n = batch * boxes_per_image
    wh = 0.05 + 0.4 * torch.rand(n, 2, generator=g)
    centre = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=g)
    targets = torch.cat([torch.arange(batch).repeat_interleave(boxes_per_image)[:, None].float(),
                         torch.randint(0, nc, (n, 1), generator=g).float(), centre, wh], 1)
    return images, targets


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", default="gelan-nano")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img", type=int, default=160)
    ap.add_argument("--nc", type=int, default=80, help="number of classes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, autotune)")
    ap.add_argument("--peak-tflops", type=float, default=800.0,
                    help="peak of the device in this precision, for the MFU")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = resolve_amp(args.amp, device)
    model = build_model(args.model, args.nc).to(device).train()
    gflops = profile(model, args.img)["gflops"]  # forward, training graph (aux included)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, 0.01, 0.937, scaled_weight_decay(5e-4, args.batch))
    net = torch.compile(model) if args.compile else model
    s = State(model=model, net=net, optimizer=optimizer, ema=ModelEMA(model),
              scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16))
    loss_fn = DetectionLoss(model)
    images, targets = random_batch(args.batch, args.img, args.nc)
    if device.type == "cuda":
        images = images.pin_memory()

    def step():
        x = to_model_input(images, device, args.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            loss, _ = loss_fn(net(x), targets.to(device, non_blocking=True))
        s.scaler.scale(loss).backward()
        optimizer_step(s)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / args.steps
    ips = args.batch / dt
    result = {"model": args.model, "batch": args.batch, "img": args.img, "device": str(device),
              "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
              "channels_last": args.channels_last, "compile": args.compile,
              "ms_per_step": 1e3 * dt, "images_per_s": ips, "fwd_gflops_per_image": gflops}
    line = (f"{args.model} batch {args.batch} img {args.img} on {device} "
            f"({result['amp']}{', channels_last' if args.channels_last else ''}"
            f"{', compiled' if args.compile else ''}"
            f"{f', {torch.get_num_threads()} threads' if device.type == 'cpu' else ''}): "
            f"{1e3 * dt:.1f} ms/step, {ips:.1f} img/s; forward {gflops:.2f} GFLOPs/img")
    if device.type == "cuda":
        achieved = ips * 3 * gflops * 1e9
        result["tflops"] = achieved / 1e12
        result["mfu"] = achieved / (args.peak_tflops * 1e12)
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        line += (f"; {achieved / 1e12:.1f} TFLOP/s = MFU {100 * result['mfu']:.1f}% of "
                 f"{args.peak_tflops:g} TFLOP/s; peak memory {result['peak_mem_gib']:.1f} GiB")
    print(line)
    return result


if __name__ == "__main__":
    main()
