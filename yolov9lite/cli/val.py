"""``yolov9lite val``: COCO evaluation of a checkpoint from the command line.

The command loads the weights, scans the dataset once (its loader also gives the ground truth),
runs :func:`yolov9lite.evaluation.coco_eval.evaluate` (protocol of the official ``val.py``), prints the
12-line COCO summary and a per-class table, and writes a run folder (``runs/val/exp``, ``exp2``,
...) with ``metrics.json``, ``per_class.csv`` and the plots of :mod:`yolov9lite.report.plots`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from ..data import build_dataloader, dataset_to_coco, load_data_config
from ..evaluation.coco_eval import (
    BACKENDS,
    METRIC_KEYS,
    category_ids_for,
    evaluate,
    format_coco_summary,
    load_gt_dict,
    load_weights,
)
from ..evaluation.table import format_metrics_table, write_per_class_csv
from ..report.plots import save_validation_plots
from ..utils.errors import InputError
from ..utils.paths import increment_path
from ..utils.runtime import select_device
from .args import (
    add_batch,
    add_device,
    add_img,
    add_nms,
    add_project,
    add_weights,
    make_parser,
    run_cli,
)


@run_cli("yolov9lite val")
def main(argv: list[str] | None = None) -> int:
    """``yolov9lite val --weights W [--data D]``: COCO evaluation of a checkpoint.

    Prints the 12-line COCO summary and the metrics table (Class Images Instances P R mAP50
    mAP50-95: the all row, then one row per class); writes runs/val/exp (exp2, ...) with
    metrics.json, per_class.csv, the PR/F1 curves and the confusion matrix."""
    ap = make_parser("yolov9lite val", main.__doc__)
    add_weights(ap, help="checkpoint to evaluate: ours or an official YOLOv9/GELAN .pt")
    ap.add_argument("--data", default="synthetic",
                    help="dataset: 'synthetic' (generated offline) or a dataset YAML")
    add_img(ap, 640)
    add_batch(ap, 32)
    add_nms(ap, conf=0.001, iou=0.7, max_det=300)
    add_device(ap)
    ap.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    ap.add_argument("--workers", type=int, default=2, help="data loader workers")
    ap.add_argument("--save-json", nargs="?", const=True, default=None, metavar="PATH",
                    help="keep the detections JSON (the file COCO's server takes): in the run "
                         "folder as predictions.json, or at PATH")
    ap.add_argument("--backend", choices=BACKENDS, default="pycocotools",
                    help="COCO evaluator (faster_coco_eval gives the same numbers, faster)")
    ap.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                    help="PR/F1 curves and confusion matrix in the run folder")
    add_project(ap, "runs/val")
    args = ap.parse_args(argv)
    if args.workers < 0:
        raise InputError(f"--workers {args.workers}: must be 0 or more")

    increment_path(args.project, args.name, args.exist_ok, mkdir=False)  # --name, before the scan
    device = select_device(args.device)
    if not Path(args.weights).is_file():
        raise InputError(f"--weights {args.weights}: no such file")
    model = load_weights(args.weights, device)
    cfg = load_data_config(args.data)
    if getattr(model, "nc", cfg["nc"]) != cfg["nc"]:
        raise InputError(f"--weights {args.weights} predicts {model.nc} classes but --data "
                       f"{args.data} has {cfg['nc']}; evaluate it on a dataset with the same classes")
    # one scan: the loader's dataset also gives the ground truth (no second pass over the labels)
    loader = build_dataloader(cfg, "val", args.img, args.batch, args.workers, augment=False,
                              rect=True)
    gt_dict = load_gt_dict(cfg["val_json"]) if cfg.get("val_json") else dataset_to_coco(
        loader.dataset)
    save_dir = increment_path(args.project, args.name, args.exist_ok)
    json_path = save_dir / "predictions.json" if args.save_json in (None, True) else Path(
        args.save_json)
    progress = tqdm(loader, desc="val", unit="batch", dynamic_ncols=True)
    metrics = evaluate(model, cfg, imgsz=args.img, batch_size=args.batch, conf_thres=args.conf,
                       iou_thres=args.iou, max_det=args.max_det, half=args.half, device=device,
                       save_json=json_path, backend=args.backend, dataloader=progress,
                       gt=gt_dict)
    progress.close()

    print(format_coco_summary(metrics))
    cat_ids = category_ids_for(cfg, gt_dict)
    names = list(cfg["names"])
    rows = metrics["classes"]
    print("\n" + format_metrics_table(rows, metrics["all"]))
    absent = [n for n, c in zip(names, cat_ids) if c not in {a["category_id"] for a in
                                                          gt_dict.get("annotations", [])}]
    if absent:
        print(f"({len(absent)} classes have no boxes in this data and no AP: "
              f"{', '.join(map(str, absent[:10]))}{' ...' if len(absent) > 10 else ''})")
    print(f"\n{metrics['n_images']} images, {metrics['n_detections']} detections; speed per image: "
          + ", ".join(f"{k[:-3]} {v:.1f} ms" for k, v in metrics["speed"].items()))

    summary = {k: metrics[k] for k in METRIC_KEYS}
    summary.update(all=metrics["all"], per_class=rows, conf_best_f1=metrics["conf_best_f1"],
                   n_images=metrics["n_images"],
                   n_detections=metrics["n_detections"], speed=metrics["speed"],
                   args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    (save_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
    write_per_class_csv(rows, save_dir / "per_class.csv")
    if args.plots:
        with open(json_path) as f:
            records = json.load(f)
        save_validation_plots(save_dir, gt_dict, records, cat_ids, names)
    if args.save_json is None:
        json_path.unlink(missing_ok=True)  # only needed for the plots
    elif json_path.parent != save_dir:
        print(f"detections written to {json_path}")
    print(f"results in {save_dir}")
    return 0


__all__ = ["main"]
