"""``yolov9lite convert`` (an official ``.pt`` into our format) and ``yolov9lite deploy`` (the
inference model: auxiliary branch removed, layers fused); the checkpoint code is in
:mod:`yolov9lite.weights.checkpoint`."""
from __future__ import annotations

from pathlib import Path

from ..nn.deployment import deploy as deploy_model
from ..utils.errors import InputError
from ..utils.paths import increment_path, refuse_overwrite
from ..weights.checkpoint import load_model, save_checkpoint
from ..weights.official import load_official
from .args import add_project, add_weights, make_parser, run_cli


@run_cli("yolov9lite convert")
def convert_main(argv: list[str] | None = None) -> int:
    """``yolov9lite convert official.pt ours.pt [--deploy]`` (or ``--weights official.pt --out
    ours.pt``): an official checkpoint in our format, read without executing anything from it."""
    ap = make_parser("yolov9lite convert", convert_main.__doc__)
    ap.add_argument("source", nargs="?", default=None, help="official YOLOv9/GELAN .pt file")
    ap.add_argument("dest", nargs="?", default=None, help="output file (yolov9lite format)")
    add_weights(ap, required=False, help="official .pt file (same as the first positional)")
    ap.add_argument("--out", default=None, help="output file (same as the second positional; "
                    "default: project/name/<source name>.pt)")
    ap.add_argument("--deploy", action="store_true",
                    help="also remove the auxiliary branch and fuse layers (inference only)")
    add_project(ap, "runs/convert")
    args = ap.parse_args(argv)
    source = _one_of(ap, args.source, args.weights, "the source file (SOURCE or --weights)")
    if not Path(source).is_file():
        raise InputError(f"{source}: no such file")
    dest = _output_path(ap, args, args.dest, source, "dest" if args.dest else "--out")
    model = load_official(source)
    if args.deploy:
        names, model = model.names, deploy_model(model)
        model.names = names
    # unfused official weights are fp16 values: storing fp16 keeps them exactly, at half size
    save_checkpoint(dest, model, half=not args.deploy, source=str(source))
    print(f"{source}: {model.name} (nc={model.nc}) -> {dest}"
          + (" (deployed)" if args.deploy else ""))
    return 0


def _one_of(ap, positional, named, what: str):
    if positional and named and positional != named:
        ap.error(f"{what} given twice ({positional} and {named}); give it once")
    if not (positional or named):
        ap.error(f"{what} is required")
    return positional or named


def _output_path(ap, args, positional_out, source, flag: str) -> Path:
    """The output file: given (never one of the inputs, never a folder), or a new run folder's."""
    out = _one_of(ap, positional_out, args.out, "the output file") if (
        positional_out or args.out) else None
    if out is None:
        return increment_path(args.project, args.name, args.exist_ok) / f"{Path(source).stem}.pt"
    return refuse_overwrite(out, [source], flag)


@run_cli("yolov9lite deploy")
def deploy_main(argv: list[str] | None = None) -> int:
    """``yolov9lite deploy --weights in.pt [--out out.pt]``: the inference model that predict uses
    (auxiliary branch removed, RepConvN merged, BatchNorm folded), in our format."""
    ap = make_parser("yolov9lite deploy", deploy_main.__doc__)
    add_weights(ap, help="our checkpoint or an official .pt")
    ap.add_argument("--out", default=None,
                    help="output file (default: project/name/<weights name>.pt)")
    add_project(ap, "runs/deploy")
    args = ap.parse_args(argv)
    if not Path(args.weights).is_file():
        raise InputError(f"--weights {args.weights}: no such file")
    out = _output_path(ap, args, None, args.weights, "--out")
    model = load_model(args.weights, deploy=True)
    save_checkpoint(out, model, source=str(args.weights))
    print(f"{args.weights}: {model.name} (nc={model.nc}) deployed -> {out}")
    return 0


__all__ = ["convert_main", "deploy_main"]
