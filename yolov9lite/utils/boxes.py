"""Box helpers: format conversion, IoU, Complete-IoU (CIoU) and the box -> distance map.

All functions broadcast over leading dimensions and take boxes in the last dimension, so the
assigner can compare every ground truth with every prediction in one call
(``(B, M, 1, 4)`` against ``(B, 1, A, 4)`` gives ``(B, M, A)``).

CIoU is from Zheng et al. 2020, "Distance-IoU Loss: Faster and Better Learning for Bounding Box
Regression" (arXiv:1911.08287), Eqs. (9)-(11):

    CIoU = IoU - rho^2(b, b_gt) / c^2 - alpha * v
    v     = 4 / pi^2 * (atan(w_gt / h_gt) - atan(w / h))^2
    alpha = v / ((1 - IoU) + v)            (treated as a constant: no gradient flows through it)

where ``rho`` is the distance between the box centres and ``c`` the diagonal of the smallest box
enclosing both. The small ``eps`` terms are placed exactly where the official YOLOv9 code places
them (official ``utils/metrics.py``, ``bbox_iou``), so that our values match it to float
rounding: ``eps`` is added to both heights, to the union, to ``c^2`` and to alpha's denominator.
"""
from __future__ import annotations

import math

import torch

EPS = 1e-7  # the official IoU epsilon


def xywh2xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return torch.cat((xy - wh / 2, xy + wh / 2), -1)


def xyxy2xywh(boxes: torch.Tensor) -> torch.Tensor:
    """Corner-xyxy -> centre-xywh along the last dimension."""
    x1y1, x2y2 = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1)


def _sides(boxes: torch.Tensor):
    """Split xyxy boxes into four (...,) tensors."""
    return boxes.unbind(-1)


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Plain IoU of xyxy boxes, broadcast over leading dims; returns the broadcast shape minus the
    last dim. Heights get ``+eps`` like in :func:`box_ciou`, so ``box_iou`` is CIoU's IoU term."""
    iou, *_ = _iou_parts(box1, box2, eps)
    return iou


def _iou_parts(box1: torch.Tensor, box2: torch.Tensor, eps: float):
    b1x1, b1y1, b1x2, b1y2 = _sides(box1)
    b2x1, b2y1, b2x2, b2y2 = _sides(box2)
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    inter = ((torch.minimum(b1x2, b2x2) - torch.maximum(b1x1, b2x1)).clamp(0)
             * (torch.minimum(b1y2, b2y2) - torch.maximum(b1y1, b2y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    return inter / union, (w1, h1, w2, h2)


def box_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Complete IoU of xyxy boxes (symmetric in its arguments), in [-1.5, 1] roughly; 1 = identical.

    ``atan(w/h)`` is evaluated on each input before broadcasting, so the pairwise (B, M, A) call of
    the assigner costs one ``atan`` per box, not per pair.
    """
    b1x1, b1y1, b1x2, b1y2 = _sides(box1)
    b2x1, b2y1, b2x2, b2y2 = _sides(box2)
    iou, (w1, h1, w2, h2) = _iou_parts(box1, box2, eps)
    # c^2: squared diagonal of the smallest enclosing box
    cw = torch.maximum(b1x2, b2x2) - torch.minimum(b1x1, b2x1)
    ch = torch.maximum(b1y2, b2y2) - torch.minimum(b1y1, b2y1)
    c2 = cw ** 2 + ch ** 2 + eps
    # rho^2: squared distance of the centres ((x1 + x2) / 2 per box, hence the / 4)
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4
    # v: aspect-ratio consistency; alpha: its trade-off weight, a constant for the gradient
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def bbox2dist(anchor_points: torch.Tensor, boxes: torch.Tensor, max_dist: float) -> torch.Tensor:
    """xyxy boxes -> (l, t, r, b) distances from the anchor points, clamped to [0, max_dist].

    This is the DFL target; with ``reg_max = 16`` bins (values 0..15) the official clamp is
    ``15 - 0.01 = 14.99`` so that the right bin ``floor(t) + 1`` never exceeds 15.
    """
    x1y1, x2y2 = boxes[..., :2], boxes[..., 2:]
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp(0, max_dist)
