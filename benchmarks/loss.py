"""Is the loss a bottleneck? Times one DetectionLoss call next to one model forward + backward.

    python benchmarks/loss.py                       # batch 16, 640x640, 20 objects/image, yolov9-s
    python benchmarks/loss.py --batch 2 --imgsz 320 # a quick run

Reported (median of ``--repeat`` runs after one warm-up, except the model step, run ``--model-repeat``
times): the loss forward alone; the loss forward + backward to the predictions; and one training
step of the model (forward, loss, backward), of which the loss is a part.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from yolov9lite import DetectionLoss, build_model


def random_targets(batch: int, objects: int, nc: int, gen: torch.Generator) -> torch.Tensor:
    """``objects`` random boxes per image, rows [image, class, cx, cy, w, h] normalised."""
    n = batch * objects
    wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.01
    cxy = torch.rand(n, 2, generator=gen) * (1 - wh) + wh / 2
    img = torch.arange(batch).repeat_interleave(objects).float()[:, None]
    cls = torch.randint(0, nc, (n, 1), generator=gen).float()
    return torch.cat((img, cls, cxy, wh), 1)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def detach_preds(preds):
    if isinstance(preds[0], (list, tuple)):
        return [detach_preds(p) for p in preds]
    return [p.detach().requires_grad_() for p in preds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov9-s")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--objects", type=int, default=20, help="objects per image")
    ap.add_argument("--repeat", type=int, default=5, help="loss timing repeats")
    ap.add_argument("--model-repeat", type=int, default=1, help="model step repeats")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    model = build_model(args.model).train()
    loss_fn = DetectionLoss(model)
    images = torch.rand(args.batch, 3, args.imgsz, args.imgsz, generator=gen)
    targets = random_targets(args.batch, args.objects, model.nc, gen)
    print(f"{args.model}, batch {args.batch}, {args.imgsz}x{args.imgsz}, {len(targets)} targets, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")

    with torch.no_grad():
        preds = detach_preds(model(images))

    def loss_only():
        with torch.no_grad():
            loss_fn(preds, targets)

    def loss_fwd_bwd():
        loss, _ = loss_fn(preds, targets)
        loss.backward()

    def model_step():
        model.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model(images), targets)
        loss.backward()

    loss_fwd_bwd()  # warm-up
    t_loss = timed(loss_only, args.repeat)
    t_loss_bwd = timed(loss_fwd_bwd, args.repeat)
    t_step = timed(model_step, args.model_repeat)
    print(f"loss forward            {t_loss * 1e3:9.1f} ms")
    print(f"loss forward + backward {t_loss_bwd * 1e3:9.1f} ms")
    print(f"model step (fwd + loss + bwd) {t_step * 1e3:9.1f} ms  "
          f"-> loss fwd+bwd is {100 * t_loss_bwd / t_step:.1f}% of a training step")


if __name__ == "__main__":
    main()
