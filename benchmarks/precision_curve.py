"""Does bf16 train like fp16? Paired loss curves, with seed noise as the yardstick.

The official runs used fp16 autocast with a gradient scaler; ``amp=auto`` picks bf16 without one
on GPUs that have it. This trains the same model three times on the same data:

- ``fp16`` seed 0: the official precision (the reference);
- ``bf16`` seed 0: the same initial weights and the same batches (the seed fixes both), so
  the only difference from the reference is the precision;
- ``fp16`` seed 1: the control: another initialisation and data order at the official
  precision. Its distance from the reference is the run-to-run noise.

For each run: the training loss per epoch and the final validation AP50 / AP (EMA weights).
The distance of a run from the reference is the mean over the last ``--tail`` epochs of
``|loss - loss_ref| / loss_ref``. Rule: bf16 "reproduces fp16 within seed noise" when its
distance is at most the control's, otherwise it "differs by more than seed noise". One pair
and one control are a single observation, not an interval: the rule says which side of the
noise the difference falls on in this run, nothing more.

    python benchmarks/precision_curve.py --data path/to/subset.yaml     # GPU: yolov9-s, 40 epochs
    python benchmarks/precision_curve.py --smoke                        # CPU, seconds: bf16 vs off

fp16 needs CUDA. ``--smoke`` (CPU) compares ``off`` (float32) as the reference with ``bf16``,
only to check that the script runs. Without ``--data`` a synthetic set is written under
``--out`` (real images are what the issue asks for; pass a subset of COCO when you have one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run(args, amp: str, seed: int, data: str) -> dict:
    import yolov9lite

    t0 = time.perf_counter()
    history = yolov9lite.train(
        model=args.model, data=data, epochs=args.epochs, batch_size=args.batch,
        imgsz=args.img, workers=args.workers, device=args.device, amp=amp, seed=seed,
        val_interval=0, project=str(args.out), name=f"{amp}-seed{seed}",
        plots=False, tensorboard=False, verbose=False, **args.extra)
    return {"amp": amp, "seed": seed, "loss": [r["train/loss"] for r in history],
            "AP50": history[-1].get("metrics/AP50"), "AP": history[-1].get("metrics/AP"),
            "wall_s": time.perf_counter() - t0}


def distance(other: dict, ref: dict, tail: int) -> float:
    """Mean relative loss difference from the reference over the last `tail` epochs."""
    pairs = list(zip(other["loss"], ref["loss"]))[-tail:]
    return sum(abs(a - b) / abs(b) for a, b in pairs) / len(pairs)


def verdict(low: float, control: float) -> str:
    return ("reproduces the reference within seed noise" if low <= control
            else "differs from the reference by more than seed noise")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="dataset YAML (default: a synthetic set)")
    ap.add_argument("--model", default="yolov9-s")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--img", type=int, default=640)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tail", type=int, default=10, help="epochs the distance averages over")
    ap.add_argument("--out", default="runs/precision_curve")
    ap.add_argument("--json", default=None, help="also write the runs and verdict here")
    ap.add_argument("--smoke", action="store_true", help="CPU, seconds: gelan-nano, 64 px, "
                    "2 epochs, float32 as the reference (fp16 needs CUDA)")
    args = ap.parse_args(argv)
    args.out = Path(args.out)
    args.extra = {}
    if args.smoke:
        args.model, args.epochs, args.batch, args.img, args.workers = "gelan-nano", 2, 4, 64, 0
        args.device, args.tail = "cpu", 2
        args.extra = {"max_batches": 2, "warmup_epochs": 0}
    if args.tail < 1 or args.epochs < 1:
        ap.error("--epochs and --tail must be at least 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    reference = "off" if args.smoke else "fp16"
    data = args.data
    if data is None:
        from yolov9lite.data import make_synthetic
        n = 32 if args.smoke else 256
        data = str(make_synthetic(args.out / "data", num_train=n, num_val=n // 4,
                                  imgsz=max(args.img, 64), seed=0))
    elif not Path(data).is_file():
        print(f"precision_curve.py: --data {data}: no such file", file=sys.stderr)
        raise SystemExit(2)
    runs = [run(args, reference, 0, data), run(args, "bf16", 0, data),
            run(args, reference, 1, data)]
    ref, low, control = runs
    d_low, d_control = distance(low, ref, args.tail), distance(control, ref, args.tail)
    result = {"reference": reference, "runs": runs, "tail": args.tail,
              "distance_bf16": d_low, "distance_control": d_control,
              "verdict": f"bf16 {verdict(d_low, d_control)} ({reference} seed 0)",
              "argv": sys.argv[1:] if argv is None else argv}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"\n{args.model}, {args.epochs} epochs, batch {args.batch}, {args.img} px; training loss "
          "per epoch (last 5):")
    for r in runs:
        last = " ".join(f"{v:.4f}" for v in r["loss"][-5:])
        ap50 = f"AP50 {r['AP50']:.4f} AP {r['AP']:.4f}" if r["AP50"] is not None else ""
        print(f"  {r['amp']:<4} seed {r['seed']}: {last}  {ap50}  ({r['wall_s']:.0f} s)")
    print(f"mean |loss - {reference} seed 0| / loss over the last {args.tail} epochs: "
          f"bf16 {d_low:.4f}, {reference} seed 1 (seed noise) {d_control:.4f}")
    print(result["verdict"])
    return result


if __name__ == "__main__":
    main()
