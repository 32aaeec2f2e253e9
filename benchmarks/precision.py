"""How far are bf16 and fp16 gradients from float32 at full size? One training batch, three
precisions, the same weights, images and boxes.

For each low precision (bf16 autocast without a scaler, as ``amp=auto`` picks on a GPU; fp16
autocast with a gradient scaler, as the official ``train_dual.py`` runs) against a float32
reference (TF32 off): the cosine between the whole flattened gradients, the relative norm of
their difference, the worst per-tensor cosine, and both losses. BatchNorm is in train mode, as
in training (at toy sizes train-mode BN makes bf16 gradients point elsewhere, see
``tests/test_accel.py``; this measures whether that survives 640 px / batch 64).

    python benchmarks/precision.py --json runs/gpu_round/precision.json      # yolov9-s, 640, b64
    python benchmarks/precision.py --smoke                                   # CPU, seconds
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import targets_for

from yolov9lite import build_model
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.utils.accel import autocast


def loss_and_grads(model0, x, targets, amp_dtype):
    """Loss and per-parameter float32 gradients of one batch (fp16: scaled, then unscaled)."""
    model = copy.deepcopy(model0).train()
    scaler = torch.amp.GradScaler(x.device.type, enabled=amp_dtype == torch.float16)
    with autocast(x.device, amp_dtype):
        loss, _ = DetectionLoss(model)(model(x), targets)
    scaler.scale(loss).backward()
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    grads = [p.grad.detach().float() / scale for p in model.parameters() if p.grad is not None]
    del model
    return float(loss.detach()), grads


def compare(ref, other) -> dict:
    a = torch.cat([g.flatten() for g in ref])
    b = torch.cat([g.flatten() for g in other])
    per_tensor = [torch.nn.functional.cosine_similarity(u.flatten(), v.flatten(), dim=0)
                  for u, v in zip(ref, other) if u.norm() > 0]
    return {"cosine": float(torch.nn.functional.cosine_similarity(a, b, dim=0)),
            "rel_diff": float((a - b).norm() / a.norm()),
            "worst_tensor_cosine": float(min(per_tensor)),
            "finite": bool(torch.isfinite(b).all())}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="yolov9-s")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--img", type=int, default=640)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="yolov9-nano, 64 px, batch 2, CPU")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.model, args.batch, args.img = "yolov9-nano", 2, 64
        args.device = "cpu" if args.device == "auto" else args.device
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    if device.type == "cuda":  # a true float32 reference
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = build_model(args.model, 80).to(device)
    requested = args.batch  # the row keeps this batch in its key; notes say what ran
    while True:  # the float32 reference at batch 64 needs the most memory: halve it if it must
        x = torch.rand(args.batch, 3, args.img, args.img,
                       generator=torch.Generator().manual_seed(0))
        x, targets = x.to(device), targets_for(args.batch)
        try:
            loss_ref, ref = loss_and_grads(model, x, targets, None)
            break
        except torch.OutOfMemoryError:
            if args.batch == 1:
                raise
            del x
            torch.cuda.empty_cache()
            args.batch //= 2
            print(f"out of memory in float32: batch {args.batch}", flush=True)
    rows = []
    for name, dtype in (("bf16 vs fp32", torch.bfloat16), ("fp16+scaler vs fp32", torch.float16)):
        row = {"section": "precision", "model": args.model, "batch": requested, "variant": name}
        try:
            loss, grads = loss_and_grads(model, x, targets, dtype)
        except (RuntimeError, ValueError) as err:  # e.g. fp16 autocast unsupported on this CPU
            row["notes"] = f"failed: {type(err).__name__}: {str(err)[:80]}"
            rows.append(row)
            continue
        c = compare(ref, grads)
        row.update(c, loss=loss, loss_fp32=loss_ref, notes=(
            f"gradient cosine {c['cosine']:.5f}, rel. diff {c['rel_diff']:.3g}, worst tensor "
            f"cosine {c['worst_tensor_cosine']:.3f}; loss {loss:.4g} vs {loss_ref:.4g} (fp32)"
            f", {args.img} px, batch {args.batch}, train-mode BN"))
        rows.append(row)
        print(f"{name}: {row['notes']}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
