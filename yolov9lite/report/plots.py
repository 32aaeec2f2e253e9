"""The diagnostic plots of a training or validation run: PR and F1-confidence curves, confusion
matrix, label statistics, training-batch mosaics, and TensorBoard images of them.

The reported AP always comes from pycocotools (:mod:`yolov9lite.evaluation.coco_eval`); these plots are for
looking at a model, so they use one simple, documented matching:

* a detection is a true positive when it overlaps an unmatched ground-truth box *of its class*
  with IoU >= 0.5, greedily in descending score order per image and class (COCO's rule at
  IoU 0.5); crowd boxes (``iscrowd=1``) are left out of both the ground truth and the matching;
* the confusion matrix matches boxes of *any* class (IoU >= 0.45, detections above conf 0.25, the
  settings of the official ``val.py``'s ``ConfusionMatrix``) and adds a "background" row and
  column for unmatched detections and missed objects.

Everything takes COCO-format data (the ground-truth dict and the detection records of
:func:`yolov9lite.evaluation.coco_eval.detections_to_coco_json`), so training, ``yolov9lite val`` and a
notebook produce the same figures from the same files. Figures are built with
``matplotlib.figure.Figure`` (no pyplot state; works without a display).

Entry point for a run folder: :func:`save_run_plots`.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from ..data.draw import draw_batch
from .viz import plot_history

PR_IOU = 0.5
CM_CONF, CM_IOU = 0.25, 0.45
RECALL_GRID = np.linspace(0, 1, 101)  # COCO's 101 recall points
CONF_GRID = np.linspace(0, 1, 1001)


# --------------------------------------------------------------------------- matching
def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of COCO ``[x, y, w, h]`` boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = (np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0])).clip(0)
    ih = (np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1])).clip(0)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def _by_image(gt: dict, dets: list[dict]):
    """{image_id: (gt boxes, gt cats, det boxes, det cats, det scores)} without crowd boxes."""
    out = {im["id"]: ([], [], [], [], []) for im in gt.get("images", [])}
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0) and a["image_id"] in out:
            out[a["image_id"]][0].append(a["bbox"])
            out[a["image_id"]][1].append(a["category_id"])
    for d in dets:
        if d["image_id"] in out:
            out[d["image_id"]][2].append(d["bbox"])
            out[d["image_id"]][3].append(d["category_id"])
            out[d["image_id"]][4].append(d["score"])
    return {k: tuple(np.asarray(v, np.float64) for v in val) for k, val in out.items()}


def match_detections(gt: dict, dets: list[dict], iou: float = PR_IOU):
    """Per detection: score, category, true positive at ``iou``; plus ground truths per category.

    Returns ``(scores, categories, tp, n_gt)`` with ``n_gt`` a ``{category_id: count}`` dict."""
    scores, cats, tps = [], [], []
    n_gt: dict[int, int] = defaultdict(int)
    for gb, gc, db, dc, ds in _by_image(gt, dets).values():
        for c in gc.astype(int):
            n_gt[int(c)] += 1
        for c in np.unique(dc):
            d_idx = np.nonzero(dc == c)[0]
            d_idx = d_idx[np.argsort(-ds[d_idx], kind="stable")]
            g_idx = np.nonzero(gc == c)[0]
            taken = np.zeros(len(g_idx), bool)
            ious = box_iou_xywh(db[d_idx], gb[g_idx]) if len(g_idx) else np.zeros((len(d_idx), 0))
            for row, d in enumerate(d_idx):
                candidates = np.where(taken, -1.0, ious[row]) if len(g_idx) else ious[row]
                best = int(candidates.argmax()) if candidates.size else -1
                hit = best >= 0 and candidates[best] >= iou
                if hit:
                    taken[best] = True
                scores.append(ds[d])
                cats.append(int(c))
                tps.append(hit)
    return np.asarray(scores), np.asarray(cats, int), np.asarray(tps, bool), dict(n_gt)


def curves(gt: dict, dets: list[dict], cat_ids: list[int], iou: float = PR_IOU) -> dict:
    """Precision-recall and precision/recall/F1-versus-confidence curves, per class.

    Returns ``recall`` (101 points), ``precision`` (K, 101; interpolated, COCO style),
    ``conf`` (1001 points), ``p_conf``/``r_conf``/``f1_conf`` (K, 1001), ``ap50`` (K,; the area
    under each interpolated PR curve, for the legend only), ``n_gt`` (K,). Classes without
    ground truth get NaN rows."""
    scores, cats, tps, n_gt = match_detections(gt, dets, iou)
    k = len(cat_ids)
    prec = np.full((k, len(RECALL_GRID)), np.nan)
    p_conf, r_conf = (np.full((k, len(CONF_GRID)), np.nan) for _ in range(2))
    counts = np.array([n_gt.get(c, 0) for c in cat_ids])
    for i, c in enumerate(cat_ids):
        if counts[i] == 0:
            continue
        sel = cats == c
        order = np.argsort(-scores[sel], kind="stable")
        s, tp = scores[sel][order], tps[sel][order]
        if len(s) == 0:  # never detected: zero precision at every recall, zero recall
            prec[i], p_conf[i], r_conf[i] = 0.0, 1.0, 0.0
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
        recall = ctp / counts[i]
        precision = ctp / np.maximum(ctp + cfp, 1)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at >= recall
        idx = np.searchsorted(recall, RECALL_GRID, side="left")
        prec[i] = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0)
        # at confidence t: the detections with score >= t (scores are sorted descending)
        n_above = np.searchsorted(-s, -CONF_GRID, side="right")
        tp_above = np.concatenate([[0], ctp])[n_above]
        p_conf[i] = np.where(n_above > 0, tp_above / np.maximum(n_above, 1), 1.0)
        r_conf[i] = tp_above / counts[i]
    f1 = 2 * p_conf * r_conf / np.maximum(p_conf + r_conf, 1e-12)
    ap50 = np.array([row.mean() if np.isfinite(row).all() else np.nan for row in prec])
    return {"recall": RECALL_GRID, "precision": prec, "conf": CONF_GRID, "p_conf": p_conf,
            "r_conf": r_conf, "f1_conf": f1, "ap50": ap50, "n_gt": counts}


def confusion_matrix(gt: dict, dets: list[dict], cat_ids: list[int], conf: float = CM_CONF,
                     iou: float = CM_IOU) -> np.ndarray:
    """(K + 1, K + 1) counts, rows = predicted class, columns = true class; the last row and
    column are background (a missed object, a detection of nothing)."""
    index = {c: i for i, c in enumerate(cat_ids)}
    k = len(cat_ids)
    m = np.zeros((k + 1, k + 1), np.int64)
    for gb, gc, db, dc, ds in _by_image(gt, dets).values():
        keep = ds > conf
        db, dc = db[keep], dc[keep]
        g_cls = np.array([index.get(int(c), k) for c in gc], int)
        d_cls = np.array([index.get(int(c), k) for c in dc], int)
        matched_g, matched_d = set(), set()
        if len(gb) and len(db):
            ious = box_iou_xywh(gb, db)
            pairs = np.argwhere(ious >= iou)
            pairs = pairs[np.argsort(-ious[pairs[:, 0], pairs[:, 1]], kind="stable")]
            for g, d in pairs:  # best overlaps first, one partner each
                if g in matched_g or d in matched_d:
                    continue
                matched_g.add(g)
                matched_d.add(d)
                m[d_cls[d], g_cls[g]] += 1
        for g in set(range(len(gb))) - matched_g:
            m[k, g_cls[g]] += 1
        for d in set(range(len(db))) - matched_d:
            m[d_cls[d], k] += 1
    return m


# --------------------------------------------------------------------------- figures
def _figure(width: float = 6.4, height: float = 4.4):
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str | Path | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        png = Path(path).suffix.lower() == ".png"  # no version string: same bytes on rerun
        fig.savefig(path, dpi=150, **({"metadata": {"Software": None}} if png else {}))
    return fig


def _top_classes(values: np.ndarray, limit: int) -> list[int]:
    """Up to ``limit`` classes with data, the most frequent first (long legends are unreadable)."""
    valid = [i for i in range(len(values)) if np.isfinite(values[i]) and values[i] > 0]
    return sorted(valid, key=lambda i: -values[i])[:limit]


def plot_pr_curve(c: dict, names: list[str], path=None, max_classes: int = 10):
    """Precision-recall at IoU 0.5: the mean over classes (thick) and the most frequent classes."""
    fig = _figure()
    ax = fig.subplots()
    for i in _top_classes(c["n_gt"].astype(float), max_classes):
        ax.plot(c["recall"], c["precision"][i], lw=1, alpha=0.7,
                label=f"{names[i]} {c['ap50'][i]:.3f}")
    if np.isfinite(c["precision"]).any():
        mean = np.nanmean(c["precision"], axis=0)
        ax.plot(c["recall"], mean, lw=3, color="#1f77b4",
                label=f"all classes {np.nanmean(c['ap50']):.3f} AP50 (this matching)")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="precision-recall curve (IoU 0.5)")
    ax.legend(loc="lower left", fontsize=7)
    return _save(fig, path)


def plot_conf_curve(c: dict, names: list[str], key: str = "f1_conf", path=None,
                    max_classes: int = 10):
    """F1 (or precision, recall) against the confidence threshold; the mean curve's best point
    is the threshold to use for deployment."""
    label = {"f1_conf": "F1", "p_conf": "precision", "r_conf": "recall"}[key]
    fig = _figure()
    ax = fig.subplots()
    values = c[key]
    for i in _top_classes(c["n_gt"].astype(float), max_classes):
        ax.plot(c["conf"], values[i], lw=1, alpha=0.7, label=names[i])
    if np.isfinite(values).any():
        mean = np.nanmean(values, axis=0)
        best = int(np.nanargmax(mean))
        ax.plot(c["conf"], mean, lw=3, color="#1f77b4",
                label=f"all classes {mean[best]:.2f} at {c['conf'][best]:.3f}")
    ax.set(xlabel="confidence", ylabel=label, xlim=(0, 1), ylim=(0, 1.01),
           title=f"{label}-confidence curve")
    ax.legend(loc="lower left" if key != "r_conf" else "upper right", fontsize=7)
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], path=None, normalize: bool = True,
                          max_classes: int = 30):
    """Columns (true classes) normalised to 1 by default. Over ``max_classes`` classes, the
    classes that never occur (neither as truth nor as prediction) are left out and the title
    says how many are shown: every class present is always drawn (plus background)."""
    k = len(names)
    keep = list(range(k))
    if k > max_classes:
        used = matrix[:k, :k].sum(0) + matrix[:k, :k].sum(1) + matrix[k, :k] + matrix[:k, k]
        keep = np.flatnonzero(used > 0).tolist() or keep
    rows = keep + [k]
    m = matrix[np.ix_(rows, rows)].astype(float)
    if normalize:
        m = m / np.maximum(m.sum(0, keepdims=True), 1)
    labels = [names[i] for i in keep] + ["background"]
    size = max(4.5, 2.5 + 0.28 * len(labels))
    fig = _figure(size + 1.2, size)
    ax = fig.subplots()
    image = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    tick = 7 if len(labels) <= 40 else 5
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=tick)
    ax.set_yticks(range(len(labels)), labels, fontsize=tick)
    shown = "" if len(keep) == k else f", the {len(keep)} of {k} classes present"
    ax.set(xlabel="true", ylabel="predicted",
           title=f"confusion matrix (conf > {CM_CONF}, IoU >= {CM_IOU}{shown})")
    ax.title.set_fontsize(9)
    ax.grid(False)
    if len(labels) <= 15:
        for (r, col), v in np.ndenumerate(m):
            if v:
                ax.text(col, r, f"{v:.2f}" if normalize else f"{int(v)}", ha="center",
                        va="center", fontsize=6, color="white" if v > 0.5 * m.max() else "black")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_labels(classes: np.ndarray, boxes: np.ndarray, names: list[str], path=None):
    """Label statistics: instances per class, box centres, box widths and heights.

    ``classes`` (N,) class indices; ``boxes`` (N, 4) normalised ``cx, cy, w, h``."""
    classes = np.asarray(classes, int).reshape(-1)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    fig = _figure(12, 3.6)
    ax_hist, ax_xy, ax_wh = fig.subplots(1, 3)
    counts = np.bincount(classes, minlength=len(names))[:len(names)]
    ax_hist.bar(range(len(names)), counts, color="#1f77b4")
    if len(names) <= 100:
        ax_hist.set_xticks(range(len(names)), names, rotation=90,
                           fontsize=7 if len(names) <= 30 else 4)
    present = int((counts > 0).sum())
    ax_hist.set(ylabel="instances",
                title=f"{len(classes)} boxes, {present} of {len(names)} classes present")
    bins = 50
    if len(boxes):
        ax_xy.hist2d(boxes[:, 0], boxes[:, 1], bins=bins, range=[[0, 1], [0, 1]], cmap="Blues")
        ax_wh.hist2d(boxes[:, 2], boxes[:, 3], bins=bins, range=[[0, 1], [0, 1]], cmap="Blues")
    ax_xy.set(xlabel="x (centre)", ylabel="y (centre)", title="box positions", xlim=(0, 1),
              ylim=(1, 0))
    ax_wh.set(xlabel="width", ylabel="height", title="box sizes (fraction of the image)",
              xlim=(0, 1), ylim=(0, 1))
    for ax in (ax_xy, ax_wh):
        ax.grid(False)
        ax.set_aspect("equal")
    return _save(fig, path)


def labels_from_coco(gt: dict, cat_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(classes, normalised cx cy w h) of the ground truth, for :func:`plot_labels`."""
    index = {c: i for i, c in enumerate(cat_ids)}
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt.get("images", [])}
    cls, boxes = [], []
    for a in gt.get("annotations", []):
        if a["category_id"] not in index or a["image_id"] not in sizes:
            continue
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        cls.append(index[a["category_id"]])
        boxes.append(((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h))
    return np.asarray(cls, int), np.asarray(boxes, float).reshape(-1, 4)


def save_batch_mosaics(loader, names: list[str], save_dir: str | Path, n: int = 3,
                       prefix: str = "train_batch") -> list[Path]:
    """The first ``n`` batches of a loader, with their boxes, as ``train_batch0.jpg`` ... (what the
    augmentation really produced)."""
    paths = []
    for k, (images, targets, _metas) in enumerate(loader):
        if k >= n:
            break
        fig = draw_batch(images, targets, names, max_images=16)
        path = Path(save_dir) / f"{prefix}{k}.jpg"
        fig.savefig(path, dpi=100)
        _close(fig)
        paths.append(path)
    return paths


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)  # draw_batch uses pyplot; Figure objects made here need no closing


def save_validation_plots(save_dir: str | Path, gt: dict, dets: list[dict], cat_ids: list[int],
                          names: list[str]) -> list[Path]:
    """PR curve, F1/P/R-confidence curves and the confusion matrix (raw and normalised)."""
    save_dir = Path(save_dir)
    c = curves(gt, dets, cat_ids)
    m = confusion_matrix(gt, dets, cat_ids)
    out = [save_dir / "PR_curve.png", save_dir / "F1_curve.png", save_dir / "P_curve.png",
           save_dir / "R_curve.png", save_dir / "confusion_matrix.png",
           save_dir / "confusion_matrix_normalized.png"]
    plot_pr_curve(c, names, out[0])
    plot_conf_curve(c, names, "f1_conf", out[1])
    plot_conf_curve(c, names, "p_conf", out[2])
    plot_conf_curve(c, names, "r_conf", out[3])
    plot_confusion_matrix(m, names, out[4], normalize=False)
    plot_confusion_matrix(m, names, out[5], normalize=True)
    return out


def save_run_plots(save_dir: str | Path, names: list[str], *, gt: dict | None = None,
                   dets: list[dict] | None = None, cat_ids: list[int] | None = None,
                   train_gt: dict | None = None, train_loader=None, history=None,
                   tb_writer=None, step: int = 0) -> list[Path]:
    """Every plot a run folder should hold, from whatever the caller has; returns the files.

    Args:
        save_dir: the run folder (``runs/train/exp``, ``runs/val/exp``).
        names: class names (index order).
        gt, dets, cat_ids: validation ground truth (COCO dict), detection records (COCO results
            format) and the category id of each class index -> PR/F1/P/R curves, confusion matrix.
            The labels plot (``labels.jpg``) is drawn from ``train_gt`` if given, else from ``gt``.
        train_loader: a training loader -> ``train_batch0..2.jpg`` mosaics with their boxes.
        history: the per-epoch records (``results.csv`` rows) -> ``results.png``.
        tb_writer: a ``torch.utils.tensorboard.SummaryWriter``: the PNG/JPG files are also logged
            as TensorBoard images at ``step``.

    A trainer calls it once at the end, e.g.
    ``save_run_plots(run_dir, names, gt=val_gt, dets=records, cat_ids=ids, train_loader=loader,
    history=history, tb_writer=writer, step=epochs)``.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = list(cat_ids) if cat_ids is not None else list(range(len(names)))
    written: list[Path] = []
    label_source = train_gt if train_gt is not None else gt
    if label_source is not None:
        cls, boxes = labels_from_coco(label_source, cat_ids)
        plot_labels(cls, boxes, names, save_dir / "labels.jpg")
        written.append(save_dir / "labels.jpg")
    if gt is not None and dets is not None:
        written += save_validation_plots(save_dir, gt, dets, cat_ids, names)
    if train_loader is not None:
        written += save_batch_mosaics(train_loader, names, save_dir)
    if history:
        plot_history(history, save_dir / "results.png")
        written.append(save_dir / "results.png")
    if tb_writer is not None:
        log_images(tb_writer, written, step)
    return written


def log_images(writer, paths, step: int = 0) -> None:
    """Add image files to TensorBoard (tag = file stem)."""
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            writer.add_image(Path(path).stem, bgr[..., ::-1].copy(), step, dataformats="HWC")


__all__ = ["box_iou_xywh", "confusion_matrix", "curves", "labels_from_coco", "log_images",
           "match_detections", "plot_conf_curve", "plot_confusion_matrix", "plot_labels",
           "plot_pr_curve", "save_batch_mosaics", "save_run_plots", "save_validation_plots"]
