"""COCO-style evaluation: detections JSON, pycocotools metrics and :func:`evaluate`.

This is the second half of the evaluation protocol of the official ``val.py`` / ``val_dual.py``
(the COCO JSON output and pycocotools); :mod:`yolov9lite.evaluation.postprocess` is the first half (NMS,
undoing the letterbox). The pinned settings are the official ``val.py`` ones: conf 0.001, IoU 0.7, at most 300
detections per image, of which COCOeval's default ``maxDets=[1, 10, 100]`` counts the best 100.

Numbers always come from pycocotools (or from faster-coco-eval, which gives identical numbers
about 3-5x faster); we compute no AP of our own, because in-repo AP implementations are a known
source of mismatches with the COCO numbers.

The ``yolov9lite val`` command that drives :func:`evaluate` on a checkpoint is in
:mod:`yolov9lite.cli.val`.

Areas. COCO's small/medium/large split uses each ground-truth annotation's ``area`` field. In the
official COCO JSON that is the *segmentation mask* area, not the box area. For datasets given as
YOLO text labels the ground truth is built on the fly by ``yolov9lite.data.dataset_to_coco``: the
polygon area when the labels carry segments, else the box area ``w * h``, both in original-image
pixels. :func:`coco_metrics` fills in the same ``w * h`` for any ground-truth annotation that lacks
an ``area`` (and ``iscrowd = 0`` where it is missing). Detections always get ``w * h``
(pycocotools ``loadRes``); their area only decides which unmatched detections are ignored in an
area range.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import build_dataloader, dataset_to_coco, load_data_config
from ..utils.runtime import select_device
from ..weights.checkpoint import load_model
from .postprocess import non_max_suppression, scale_boxes
from .table import all_row, per_class_rows, precision_recall_at_best_f1

# Contiguous COCO class index (0..79, the order of coco.yaml) -> official COCO category id (1..90).
# The 10 ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 were defined in the COCO paper but have no
# annotations, so the 80 used classes are 1..90 with those gaps (official `utils/general.py`,
# `coco80_to_coco91_class`).
_UNUSED_COCO_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO80_TO_91: list[int] = [i for i in range(1, 91) if i not in _UNUSED_COCO_IDS]
COCO91_TO_80: dict[int, int] = {cid: i for i, cid in enumerate(COCO80_TO_91)}

# Keys of the 12 COCO summary numbers, in the order of COCOeval.stats.
METRIC_KEYS = ("AP", "AP50", "AP75", "APS", "APM", "APL",
               "AR1", "AR10", "AR100", "ARS", "ARM", "ARL")

# (AP or AR, IoU range, area, maxDets) of each summary line, in the order of METRIC_KEYS.
_SUMMARY_LINES = (
    ("Precision", "0.50:0.95", "all", 100), ("Precision", "0.50", "all", 100),
    ("Precision", "0.75", "all", 100), ("Precision", "0.50:0.95", "small", 100),
    ("Precision", "0.50:0.95", "medium", 100), ("Precision", "0.50:0.95", "large", 100),
    ("Recall", "0.50:0.95", "all", 1), ("Recall", "0.50:0.95", "all", 10),
    ("Recall", "0.50:0.95", "all", 100), ("Recall", "0.50:0.95", "small", 100),
    ("Recall", "0.50:0.95", "medium", 100), ("Recall", "0.50:0.95", "large", 100),
)

BACKENDS = ("pycocotools", "faster_coco_eval")


# --------------------------------------------------------------------------- detections -> JSON
def detections_to_coco_json(
    detections: list[torch.Tensor],
    image_ids: list,
    category_ids: list[int] | None = None,
) -> list[dict]:
    """Detections in original-image xyxy -> COCO results records (as the official ``val.py`` writes them).

    Args:
        detections: one ``(n, 6)`` tensor per image, ``x1, y1, x2, y2, score, class`` in
            *original* image pixels (i.e. after :func:`~yolov9lite.evaluation.postprocess.scale_boxes`).
        image_ids: the COCO ``image_id`` of each image (int, or str for non-numeric file stems).
        category_ids: maps the contiguous class index to the dataset's category id; defaults to
            :data:`COCO80_TO_91` (the COCO 80 -> 91 mapping).

    Returns a list of ``{"image_id", "category_id", "bbox": [x_left, y_top, w, h], "score"}``,
    with the box rounded to 3 decimals and the score to 5, as the official JSON.

    The rounding is vectorised with ``np.round`` on float64 and gives the same numbers as the
    official per-value Python ``round``: the inputs are float32, so ``x * 10**3`` and ``x * 10**5``
    are exact in float64 (24 + 10 and 24 + 17 significant bits < 53) and both round half to even.
    """
    if len(detections) != len(image_ids):
        raise ValueError(f"{len(detections)} detection tensors but {len(image_ids)} image ids")
    cat_map = np.asarray(COCO80_TO_91 if category_ids is None else category_ids)
    counts = [len(d) for d in detections]
    if sum(counts) == 0:
        return []
    det = torch.cat([d.detach().float().cpu() for d in detections]).numpy().astype(np.float64)
    xywh = np.concatenate((det[:, :2], det[:, 2:4] - det[:, :2]), 1)  # top-left corner + size
    boxes = np.round(xywh, 3).tolist()
    scores = np.round(det[:, 4], 5).tolist()
    cls = det[:, 5].astype(np.int64)
    if cls.min() < 0 or cls.max() >= len(cat_map):
        raise ValueError(f"class index {cls.max()} has no category id ({len(cat_map)} mapped)")
    cats = cat_map[cls].tolist()
    img = [i for i, n in zip(image_ids, counts) for _ in range(n)]
    img = [int(i) if isinstance(i, (np.integer, torch.Tensor)) else i for i in img]
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(img, cats, boxes, scores)]


# --------------------------------------------------------------------------- metrics
def _zero_metrics(cat_ids) -> dict:
    out = {k: 0.0 for k in METRIC_KEYS}
    out["per_class_AP"] = {c: 0.0 for c in cat_ids}
    out["per_class_AP50"] = {c: 0.0 for c in cat_ids}
    out.update(per_class_P={}, per_class_R={}, conf_best_f1=0.0)
    return out


def load_gt_dict(gt) -> dict:
    """Ground truth as a dict: from a path, a dict, or a pycocotools-style COCO object."""
    if isinstance(gt, (str, Path)):
        with open(gt) as f:
            return json.load(f)
    if isinstance(gt, dict):
        return gt
    if hasattr(gt, "dataset"):
        return gt.dataset
    raise TypeError(f"ground truth must be a JSON path, a dict or a COCO object, got {type(gt)}")


def _complete_annotations(anns: list[dict]) -> list[dict]:
    """Copies of the GT annotations with ``area = w * h`` and ``iscrowd = 0`` where missing
    (COCOeval needs both; see the module docstring on areas), and an ``id`` for each."""
    out = []
    for k, a in enumerate(anns):  # once per GT annotation; no box maths here
        a = dict(a)
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
        a.setdefault("id", k + 1)
        out.append(a)
    return out


def coco_metrics(
    gt,
    dets,
    backend: str = "pycocotools",
    img_ids: list | None = None,
) -> dict:
    """The 12 COCO bbox numbers and per-class AP via pycocotools (as the official ``val.py``).

    Args:
        gt: ground-truth COCO JSON path, dict, or COCO object.
        dets: detection records (list of dicts, as :func:`detections_to_coco_json` makes) or a
            path to such a JSON file.
        backend: ``"pycocotools"`` (the reference) or ``"faster_coco_eval"`` (same numbers, faster).
        img_ids: evaluate only these image ids (the official code passes the evaluated images, so
            a partial run is not penalised for images it never saw); default: all GT images.

    Returns a dict with ``AP, AP50, AP75, APS, APM, APL, AR1, AR10, AR100, ARS, ARM, ARL``
    (``COCOeval.stats``; -1 where a number is undefined, e.g. ``APS`` when there are no small
    objects, as pycocotools prints it), ``per_class_AP`` and ``per_class_AP50``
    (``{category_id: AP}`` at maxDets 100, all areas; -1 for a category without ground truth).
    With no ground-truth box at all it warns and returns zeros instead of pycocotools' -1s.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    gt_dict = load_gt_dict(gt)
    cat_ids = sorted(c["id"] for c in gt_dict.get("categories", []))
    images = gt_dict.get("images", [])
    if img_ids is not None:
        wanted = set(img_ids)
        images = [im for im in images if im["id"] in wanted]
    kept_ids = {im["id"] for im in images}
    anns = [a for a in gt_dict.get("annotations", []) if a["image_id"] in kept_ids]
    if not anns:
        warnings.warn("coco_metrics: the ground truth has no annotations for the evaluated images; "
                      "returning zeros", RuntimeWarning, stacklevel=2)
        return _zero_metrics(cat_ids)
    if isinstance(dets, (str, Path)):
        with open(dets) as f:
            dets = json.load(f)
    gt_dict = {**gt_dict, "images": images, "annotations": _complete_annotations(anns)}
    unknown = {d["image_id"] for d in dets} - kept_ids
    if unknown:
        # pycocotools would assert "Results do not correspond to current coco set" (A8, item 21)
        raise ValueError(f"{len(unknown)} detection image ids are not among the evaluated ground "
                         f"truth images, e.g. {sorted(unknown, key=str)[:5]}")
    if backend == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        except ImportError:  # optional (the `train` extra): same numbers, only slower
            warnings.warn("faster-coco-eval is not installed; using pycocotools "
                          "(pip install faster-coco-eval for faster evaluation)", stacklevel=2)
            backend = "pycocotools"
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # both libraries print progress lines
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes([dict(d) for d in dets])  # loadRes edits records in place
        else:  # pycocotools' loadRes cannot take an empty list; an empty result set can be built
            coco_dt = COCO()
            coco_dt.dataset = {"images": images, "annotations": [],
                               "categories": gt_dict.get("categories", [])}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = _sorted_ids(kept_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = {k: float(v) for k, v in zip(METRIC_KEYS, ev.stats[:12])}
    out.update(_per_class_ap(ev.eval["precision"], list(ev.params.catIds)))
    out.update(precision_recall_at_best_f1(ev.eval, list(ev.params.catIds), ev.params.recThrs))
    return out


def _sorted_ids(ids) -> list:
    """Image ids in COCOeval's default order (sorted). The order matters only for breaking ties
    between equal scores in different images; ints sort numerically, mixed types as strings."""
    try:
        return sorted(ids)
    except TypeError:
        return sorted(ids, key=str)


def _per_class_ap(precision: np.ndarray, cat_ids: list[int]) -> dict:
    """Per-category AP from COCOeval's precision array (T iou, R recall, K cat, A area, M maxDets),
    averaged exactly as ``COCOeval.summarize`` does: over the entries that are not -1."""
    p = np.asarray(precision)[:, :, :, 0, -1]  # all areas, maxDets 100 -> (T, R, K)

    def mean_valid(x: np.ndarray) -> np.ndarray:  # x: (..., K) -> (K,), -1 where nothing valid
        x = x.reshape(-1, x.shape[-1])
        valid = x > -1
        n = valid.sum(0)
        return np.where(n > 0, np.where(valid, x, 0).sum(0) / np.maximum(n, 1), -1.0)

    ap = mean_valid(p)
    ap50 = mean_valid(p[0])  # iouThrs[0] == 0.5
    return {"per_class_AP": {c: float(v) for c, v in zip(cat_ids, ap)},
            "per_class_AP50": {c: float(v) for c, v in zip(cat_ids, ap50)}}


def format_coco_summary(metrics: dict) -> str:
    """The standard 12-line COCO summary, in pycocotools' own layout."""
    lines = []
    for key, (kind, iou, area, max_dets) in zip(METRIC_KEYS, _SUMMARY_LINES):
        short = "(AP)" if kind == "Precision" else "(AR)"
        title = f"Average {kind}"
        lines.append(f" {title:<18} {short} @[ IoU={iou:<9} | area={area:>6s} | "
                     f"maxDets={max_dets:>3d} ] = {metrics[key]:0.3f}")
    return "\n".join(lines)


def print_coco_summary(metrics: dict) -> None:
    print(format_coco_summary(metrics))


# --------------------------------------------------------------------------- evaluate
def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def category_ids_for(cfg: dict, gt_dict: dict) -> list[int]:
    """Contiguous class index -> dataset category id (official ``coco80_to_coco91_class`` for COCO).

    Prefers the data config's ``category_ids``; else the ground truth's sorted category ids when
    there is one per class; else the identity."""
    if cfg.get("category_ids") is not None:
        return list(cfg["category_ids"])
    gt_cats = sorted(c["id"] for c in gt_dict.get("categories", []))
    nc = int(cfg.get("nc", len(gt_cats)))
    return gt_cats if len(gt_cats) == nc else list(range(nc))


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    data,
    imgsz: int = 640,
    batch_size: int = 32,
    conf_thres: float = 0.001,
    iou_thres: float = 0.7,
    max_det: int = 300,
    half: bool = False,
    device=None,
    save_json: str | Path | None = None,
    backend: str = "pycocotools",
    workers: int = 2,
    dataloader=None,
    gt=None,
    verbose: bool = False,
    keep_records: bool = False,
) -> dict:
    """Run ``model`` over a validation set and score it with COCO metrics (official ``val.py`` protocol).

    Args:
        model: a built detector; in eval mode it returns ``(B, 4 + nc, A)`` (a tuple/list output
            is accepted and its first element used). It is put in eval mode for the run and its
            training mode is restored afterwards (FP16 runs under autocast, weights untouched), so a training loop can
            call this mid-training.
        data: data config name/path or an already loaded config dict
            (``yolov9lite.data.load_data_config``).
        imgsz, batch_size, workers: loader settings (rectangular batches, no augmentation).
        conf_thres, iou_thres, max_det: NMS settings; the defaults are the official ones.
        half: FP16 inference (official default on CUDA); ignored on CPU.
        device: defaults to the model's device.
        save_json: if given, also write the detections JSON there (the file that is submitted to
            the COCO evaluation server for test-dev).
        backend: ``"pycocotools"`` or ``"faster_coco_eval"`` (see :func:`coco_metrics`).
        dataloader, gt: optional overrides of the validation loader (an iterable of
            ``(images uint8 (B,3,H,W), targets, metas)``) and of the ground truth (COCO JSON path
            or dict); e.g. a trainer passes its own val loader.
        verbose: print the 12-line summary.
        keep_records: also return what the pass saw, for plots without a second pass
            (:func:`yolov9lite.report.plots.save_run_plots`): ``records`` (the detections as COCO
            results records), ``cat_ids`` (category id of each class index), ``gt_dict``.

    Returns the dict of :func:`coco_metrics` plus the rows of the metrics table
    (:mod:`yolov9lite.evaluation.table`: ``classes``, one dict per class present, and ``all``),
    ``per_class`` (``{class name: AP}``),
    ``per_class_AP50_by_name``, ``n_images``, ``n_detections`` and ``speed``
    (ms per image for pre-processing, inference, and NMS + box scaling).
    """
    cfg, dataloader, gt_dict = _eval_inputs(data, dataloader, gt, imgsz, batch_size, workers)
    cat_ids = category_ids_for(cfg, gt_dict)
    device = select_device(device) if device is not None else _model_device(model)
    half = half and device.type == "cuda"  # FP16 convolutions are slow or missing on CPU
    records, image_ids, seconds = _detect_all(model, dataloader, device, half, cat_ids,
                                              (conf_thres, iou_thres, max_det))
    if save_json is not None:
        Path(save_json).parent.mkdir(parents=True, exist_ok=True)
        with open(save_json, "w") as f:
            json.dump(records, f)
    if not image_ids:
        warnings.warn("evaluate: the validation loader yielded no images", RuntimeWarning,
                      stacklevel=2)
    metrics = coco_metrics(gt_dict, records, backend=backend, img_ids=image_ids)
    names = _class_names(cfg, cat_ids)
    _add_names_and_speed(metrics, names, cat_ids, len(image_ids), len(records), seconds)
    seen = set(image_ids)  # the table counts the evaluated images' boxes
    evaluated = {"annotations": [a for a in gt_dict.get("annotations", [])
                                 if a["image_id"] in seen]}
    metrics["classes"] = per_class_rows(metrics, evaluated, cat_ids, names)
    metrics["all"] = all_row(metrics, metrics["classes"], len(image_ids))
    if verbose:
        print_coco_summary(metrics)
    if keep_records:
        metrics.update(records=records, cat_ids=cat_ids, gt_dict=gt_dict)
    return metrics


def _eval_inputs(data, dataloader, gt, imgsz: int, batch_size: int, workers: int):
    """The data config (``{}`` when the caller passed both loader and ground truth without a
    config), the validation loader and the ground truth as a dict."""
    cfg = data if isinstance(data, dict) else None
    if dataloader is None or gt is None:
        cfg = cfg if cfg is not None else load_data_config(data)
        if dataloader is None:
            dataloader = build_dataloader(cfg, "val", imgsz, batch_size, workers,
                                          augment=False, rect=True)
        if gt is None:
            gt = cfg["val_json"] if cfg.get("val_json") else dataset_to_coco(cfg, "val")
    return cfg or {}, dataloader, load_gt_dict(gt)


def _class_names(cfg: dict, cat_ids: list[int]) -> list[str]:
    names = cfg.get("names") or [str(c) for c in cat_ids]
    if isinstance(names, dict):  # {index: name} as in YOLO yaml files
        names = [names[i] for i in sorted(names)]
    return names


def _detect_all(model, dataloader, device: torch.device, half: bool, cat_ids: list[int],
                nms: tuple[float, float, int]):
    """Detections of every image as COCO json records, the image ids, and the seconds spent
    in pre-processing, inference and NMS + box scaling."""
    conf_thres, iou_thres, max_det = nms
    was_training = model.training
    model.to(device).eval()
    # FP16 through autocast rather than model.half(): the caller's (float32) weights are never
    # rounded, which matters when a training loop evaluates its live model.
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=half)
    records, image_ids = [], []
    t_pre = t_inf = t_nms = 0.0
    try:
        for images, _targets, metas in dataloader:
            t0 = time.perf_counter()
            x = images.to(device, non_blocking=True)
            x = x.float() / 255  # uint8 0-255 -> 0-1
            t1 = time.perf_counter()
            with autocast:
                pred = model(x)
            if isinstance(pred, (list, tuple)):
                pred = pred[0]
            if pred.shape[1] - 4 != len(cat_ids):
                raise ValueError(f"the model predicts {pred.shape[1] - 4} classes but the dataset "
                                 f"has {len(cat_ids)}")
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # so that t_inf measures the forward pass
            t2 = time.perf_counter()
            dets = non_max_suppression(pred.float(), conf_thres, iou_thres, max_det)
            dets = [scale_boxes(d, m["ratio_pad"], m["orig_shape"]) for d, m in zip(dets, metas)]
            t3 = time.perf_counter()
            ids = [m["image_id"] for m in metas]
            records += detections_to_coco_json(dets, ids, cat_ids)
            image_ids += ids
            t_pre, t_inf, t_nms = t_pre + t1 - t0, t_inf + t2 - t1, t_nms + t3 - t2
    finally:
        model.train(was_training)
    return records, image_ids, (t_pre, t_inf, t_nms)


def _add_names_and_speed(metrics: dict, names: list[str], cat_ids: list[int], n_images: int,
                         n_detections: int, seconds: tuple[float, float, float]) -> None:
    by_cat = dict(zip(cat_ids, names))
    metrics["per_class"] = {by_cat.get(c, str(c)): v for c, v in metrics["per_class_AP"].items()}
    metrics["per_class_AP50_by_name"] = {
        by_cat.get(c, str(c)): v for c, v in metrics["per_class_AP50"].items()}
    n = max(n_images, 1)
    metrics["n_images"] = n_images
    metrics["n_detections"] = n_detections
    t_pre, t_inf, t_nms = seconds
    metrics["speed"] = {"preprocess_ms": 1e3 * t_pre / n, "inference_ms": 1e3 * t_inf / n,
                        "postprocess_ms": 1e3 * t_nms / n}


# --------------------------------------------------------------------------- loading
def load_weights(path: str | Path, device=None) -> torch.nn.Module:
    """Load a model from a checkpoint; the one place that depends on ``yolov9lite.weights.checkpoint``."""
    model = load_model(path)
    return model.to(device) if device is not None else model
