"""``yolov9lite predict``: detect objects in images, folders, globs, videos and webcams
(:mod:`yolov9lite.inference.predictor`)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..inference.predictor import (
    Detector,
    RunWriter,
    _video,
    check_output_folder,
    claim_output_folder,
)
from ..inference.sources import (
    _to_rgb_array,
    is_video,
    is_webcam,
    iter_video,
    list_sources,
    open_webcam,
)
from ..utils.paths import increment_path, refuse_inside
from ..utils.runtime import select_device
from .args import add_device, add_img, add_nms, add_project, add_weights, make_parser, run_cli


@run_cli("yolov9lite predict")
def main(argv: list[str] | None = None) -> int:
    """``yolov9lite predict --weights W --source S``: annotated images or videos, detections.json,
    optionally YOLO label files and crops, in a new folder runs/predict/exp, exp2, ...

    S: an image, a folder (searched recursively), a glob in quotes ('imgs/*.jpg'), a video file,
    or a webcam index (0)."""
    ap = make_parser("yolov9lite predict", main.__doc__)
    add_weights(ap, help="checkpoint: ours (best: the output of `yolov9lite deploy`) or an "
                         "official .pt")
    ap.add_argument("--source", required=True,
                    help="image, folder, glob ('dir/*.jpg'), video file or webcam index")
    add_img(ap, 640)
    add_nms(ap, conf=0.25, iou=0.45, max_det=1000)
    ap.add_argument("--classes", type=int, nargs="+", default=None, metavar="C",
                    help="keep only these class indices (e.g. --classes 0 2)")
    ap.add_argument("--agnostic-nms", action="store_true", help="NMS across classes")
    ap.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    add_device(ap)
    add_project(ap, "runs/predict")
    ap.add_argument("--out", default=None,
                    help="write into exactly this folder instead of project/name (older flag); "
                         "it must be new or empty unless --exist-ok")
    ap.add_argument("--save-txt", action="store_true",
                    help="YOLO label files (class cx cy w h, normalised) in labels/")
    ap.add_argument("--save-crop", action="store_true", help="each box as an image in crops/<class>/")
    ap.add_argument("--nosave", action="store_true", help="no annotated images or videos")
    ap.add_argument("--line-width", type=int, default=None,
                    help="box line width in pixels (default: from the image size)")
    ap.add_argument("--hide-labels", action="store_true", help="boxes only, no labels")
    ap.add_argument("--hide-conf", action="store_true", help="labels without scores")
    args = ap.parse_args(argv)

    webcam = is_webcam(args.source)
    files = [] if webcam else list_sources(args.source)
    source_root = Path(args.source).resolve() if Path(args.source).is_dir() else None
    sources = [Path(args.source)] if source_root else files
    if args.out is not None:
        refuse_inside(args.out, sources, "--out")
        check_output_folder(Path(args.out), args.exist_ok)  # before the weights are loaded
    else:
        refuse_inside(increment_path(args.project, args.name, args.exist_ok, mkdir=False), sources)
    frames = open_webcam(int(args.source)) if webcam else None
    device = select_device(args.device)
    if args.half and device.type != "cuda":
        print("note: --half applies on CUDA only; running in float32")
    detector = Detector(args.weights, args.img, args.conf, args.iou, args.max_det, device,
                        args.classes, args.agnostic_nms, args.half)
    if args.out is not None:  # claimed once the weights loaded: a failed start leaves nothing
        save_dir = claim_output_folder(Path(args.out), args.exist_ok)
    else:
        save_dir = increment_path(args.project, args.name, args.exist_ok)
    writer = RunWriter(save_dir, args, source_root)
    skipped = []
    try:
        if webcam:
            print(f"webcam {args.source}: {_video(detector, frames, args.source, writer, Path('webcam'))}")
        for path in files:  # one at a time: a folder may hold more images than fit in memory
            try:
                if is_video(path):
                    stem = writer.relative(path).with_suffix("")
                    print(f"{path}: {_video(detector, iter_video(path), path, writer, stem)}")
                    continue
                rgb, _ = _to_rgb_array(path)
            except OSError as err:  # one bad file does not end the run
                print(f"warning: {err}; skipped", file=sys.stderr)
                skipped.append(str(path))
                continue
            (result,) = detector([rgb], [str(path)])
            target = writer.image(result, path)
            print(f"{path}: {len(result)} objects" + ("" if args.nosave else f" -> {target}"))
    finally:
        json_path = writer.finish()  # also after Ctrl-C: what was done stays readable
    extra = f"; {len(skipped)} unreadable files skipped" if skipped else ""
    print(f"{len(writer.records)} images/frames; detections in {json_path}{extra}")
    return 0


__all__ = ["main"]
