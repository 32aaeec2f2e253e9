"""``yolov9lite export``: the deployed model as ONNX, TorchScript or a torch.export program
(:mod:`yolov9lite.inference.export`)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..inference.export import FORMATS, MAX_STRIDE, check_export, check_output_name, export
from ..utils.errors import InputError
from ..utils.paths import increment_path, refuse_overwrite
from ..utils.runtime import select_device
from ..weights.checkpoint import load_model
from .args import add_batch, add_device, add_img, add_project, add_weights, make_parser, run_cli


@run_cli("yolov9lite export")
def main(argv: list[str] | None = None) -> int:
    """``yolov9lite export --weights W --format onnx``: the deployed model as ONNX, TorchScript
    or a torch.export program (.pt2). Output: (B, 4 + nc, anchors) before NMS."""
    ap = make_parser("yolov9lite export", main.__doc__)
    add_weights(ap)
    ap.add_argument("--format", "--include", dest="format", choices=list(FORMATS), default="onnx",
                    help="file format")
    add_img(ap, 640, help="input size (square, rounded up to a multiple of 32)")
    add_batch(ap, 1, help="batch size of the exported input")
    ap.add_argument("--dynamic", action="store_true", help="dynamic batch axis")
    ap.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    add_device(ap)
    ap.add_argument("--out", default=None,
                    help="output file, ending in the format's suffix; an existing one only "
                         "with --exist-ok (default: project/name/<weights name><suffix>)")
    add_project(ap, "runs/export")
    ap.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                    help="run the exported file once and compare it with PyTorch")
    args = ap.parse_args(argv)

    weights = Path(args.weights)
    if not weights.is_file():
        raise InputError(f"--weights {weights}: no such file")
    imgsz = math.ceil(args.img / MAX_STRIDE) * MAX_STRIDE
    device = select_device(args.device)
    if args.out is None:
        folder = increment_path(args.project, args.name, args.exist_ok, mkdir=False)
        out = folder / f"{weights.stem}{FORMATS[args.format]}"
    else:
        out = refuse_overwrite(args.out, [weights])
    check_output_name(out, args.format, args.exist_ok)  # before anything is loaded or written
    model = load_model(weights, deploy=True).to(device)
    if args.out is None:
        out = increment_path(args.project, args.name, args.exist_ok) / out.name
    errors = []

    def check(tmp: Path) -> None:
        errors.append(check_export(model, tmp, imgsz, batch=2 if args.dynamic else args.batch))

    path = export(model, args.format, imgsz, args.batch, args.dynamic, out, device, args.opset,
                  exist_ok=args.exist_ok, check=check if args.check else None)
    size_mb = path.stat().st_size / 2**20
    print(f"{weights}: {getattr(model, 'name', 'model')} (nc={getattr(model, 'nc', '?')}) -> "
          f"{path} ({args.format}, {size_mb:.1f} MB, input {args.batch if not args.dynamic else 'B'}"
          f"x3x{imgsz}x{imgsz})")
    if errors:
        print(f"check: max relative difference to PyTorch {errors[0]:.1e}")
    return 0


__all__ = ["main"]
