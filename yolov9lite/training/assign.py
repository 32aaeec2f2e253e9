"""Task-aligned label assignment (TOOD, Feng et al. 2021, arXiv:2108.07755, Section 3.2), as YOLOv9
uses it (official ``utils/tal/assigner.py``, ``TaskAlignedAssigner``).

For every image, ground truth ``g`` and anchor ``a`` (a cell centre of any pyramid level):

1. **candidates**: ``a`` is a candidate of ``g`` only if its centre lies strictly inside the box,
   ``min(l, t, r, b) > 1e-9``.
2. **alignment metric** (TOOD Eq. 1): ``t = s^alpha * u^beta``, with ``s`` the predicted probability
   of g's class at ``a``, ``u`` the CIoU of g with the box predicted at ``a`` (clamped at 0),
   ``alpha = 0.5``, ``beta = 6``.
3. **positives**: the ``topk = 10`` candidates of ``g`` with the largest ``t``.
4. **one box per anchor**: an anchor that is a positive of several ground truths goes to the ground
   truth with the largest ``u``. Official-code detail reproduced on purpose: this arg-max runs over
   *all* ground truths of the image (not only those that chose the anchor), and ties pick the first.
5. **soft targets** (TOOD Eq. 10 with YOLOv9's normalisation): the class target of a positive is
   ``t / max_a(t of g) * max_a(u of g)`` (maxima over g's positives), 0 for every other class and
   for every negative anchor.

Everything runs on padded ``(B, M, A)`` tensors (``M`` = the most boxes in any image of the batch):
there is no Python loop over images or boxes, no host sync and no data-dependent shape. Padding
boxes are switched off with ``gt_mask``. The assigner sees detached predictions (``no_grad``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..utils.boxes import box_ciou


class Assignment(NamedTuple):
    """Per-anchor targets. ``A`` = anchors, ``C`` = classes."""
    labels: torch.Tensor  # (B, A) long: class of the assigned box (meaningless where not fg)
    boxes: torch.Tensor  # (B, A, 4) xyxy of the assigned box, same units as the inputs
    scores: torch.Tensor  # (B, A, C) soft class targets; all zero on negatives
    fg: torch.Tensor  # (B, A) bool: positive anchors
    gt_index: torch.Tensor  # (B, A) long: index of the assigned box in the padded (B, M) layout


def candidates_inside(anchor_points: torch.Tensor, gt_boxes: torch.Tensor, eps: float = 1e-9):
    """(B, M, A) bool: anchor centre strictly inside the box (all of l, t, r, b > eps).

    anchor_points (A, 2) and gt_boxes (B, M, 4) xyxy must share units (the loss uses pixels).
    """
    lt = anchor_points - gt_boxes[:, :, None, :2]  # (B, M, A, 2): l, t
    rb = gt_boxes[:, :, None, 2:] - anchor_points  # (B, M, A, 2): r, b
    return torch.cat((lt, rb), -1).amin(-1) > eps


def alignment_metric(pd_scores, pd_boxes, gt_labels, gt_boxes, alpha: float, beta: float):
    """TOOD Eq. 1: ``t = s^alpha * u^beta`` for every (box, anchor) pair.

    pd_scores (B, A, C) probabilities, pd_boxes (B, A, 4) xyxy, gt_labels (B, M) long,
    gt_boxes (B, M, 4) xyxy. Returns ``t`` and ``u`` = CIoU clamped at 0, both (B, M, A).
    """
    num_anchors = pd_scores.shape[1]
    # s[b, g, a] = pd_scores[b, a, gt_labels[b, g]]
    index = gt_labels[:, :, None].expand(-1, -1, num_anchors)
    s = pd_scores.transpose(1, 2).gather(1, index)
    u = box_ciou(gt_boxes[:, :, None], pd_boxes[:, None]).clamp(0)
    return s.pow(alpha) * u.pow(beta), u


def topk_mask(metric: torch.Tensor, topk: int) -> torch.Tensor:
    """(B, M, A) bool: the ``topk`` largest entries of each (b, g) row."""
    k = min(topk, metric.shape[-1])
    index = metric.topk(k, dim=-1).indices
    return torch.zeros_like(metric, dtype=torch.bool).scatter_(-1, index, True)


def one_box_per_anchor(mask_pos: torch.Tensor, overlaps: torch.Tensor):
    """Resolve anchors claimed by several boxes: keep the box with the largest CIoU.

    Returns the resolved mask (B, M, A) bool, the box index per anchor (B, A) (0 for negatives, as
    in the official code) and the positive mask (B, A) bool.
    """
    num_boxes = mask_pos.shape[1]
    multi = mask_pos.sum(1, keepdim=True) > 1  # (B, 1, A)
    best = overlaps.argmax(1, keepdim=True)  # (B, 1, A): over *all* boxes, first on ties
    is_best = torch.arange(num_boxes, device=mask_pos.device)[:, None] == best  # (B, M, A)
    mask_pos = torch.where(multi, is_best, mask_pos)
    gt_index = mask_pos.to(torch.uint8).argmax(1)  # the single True, or 0 where none
    return mask_pos, gt_index, mask_pos.any(1)


def gather_targets(gt_labels, gt_boxes, gt_index, fg, num_classes: int):
    """Per-anchor label (B, A), box (B, A, 4) and hard one-hot class target (B, A, C)."""
    labels = gt_labels.gather(1, gt_index)
    boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))
    one_hot = F.one_hot(labels, num_classes) * fg[..., None]
    return labels, boxes, one_hot


@torch.no_grad()
def assign(pd_scores: torch.Tensor, pd_boxes: torch.Tensor, anchor_points: torch.Tensor,
           gt_labels: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor,
           topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> Assignment:
    """Task-aligned assignment of padded ground truths to anchors (see the module docstring).

    Args:
        pd_scores: (B, A, C) predicted class probabilities (after the sigmoid).
        pd_boxes: (B, A, 4) predicted xyxy boxes.
        anchor_points: (A, 2) anchor centres, same units as the boxes.
        gt_labels: (B, M) long class ids (any valid id on padding rows).
        gt_boxes: (B, M, 4) xyxy boxes (zeros on padding rows).
        gt_mask: (B, M) bool, True for real boxes.
    """
    b, a, c = pd_scores.shape
    if gt_boxes.shape[1] == 0:  # no box anywhere in the batch: everything is background
        return Assignment(torch.full((b, a), c, dtype=torch.long, device=pd_scores.device),
                          pd_boxes.new_zeros(b, a, 4), pd_scores.new_zeros(b, a, c),
                          torch.zeros(b, a, dtype=torch.bool, device=pd_scores.device),
                          torch.zeros(b, a, dtype=torch.long, device=pd_scores.device))
    metric, overlaps = alignment_metric(pd_scores, pd_boxes, gt_labels, gt_boxes, alpha, beta)
    inside = candidates_inside(anchor_points, gt_boxes, eps)
    # positives: top-k of the metric among the candidates of each real box
    mask_pos = topk_mask(metric * inside, topk) & inside & gt_mask[..., None]
    mask_pos, gt_index, fg = one_box_per_anchor(mask_pos, overlaps)
    labels, boxes, one_hot = gather_targets(gt_labels, gt_boxes, gt_index, fg, c)
    # soft targets: t / max t * max u, per box, over its positives
    metric = metric * mask_pos
    max_metric = metric.amax(-1, keepdim=True)  # (B, M, 1)
    max_overlap = (overlaps * mask_pos).amax(-1, keepdim=True)  # (B, M, 1)
    norm = (metric * max_overlap / (max_metric + eps)).amax(1)  # (B, A): one box per anchor left
    return Assignment(labels, boxes, one_hot * norm[..., None], fg, gt_index)


class TaskAlignedAssigner:
    """:func:`assign` with its hyper-parameters bound (official defaults for YOLOv9)."""

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9):
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    def __call__(self, pd_scores, pd_boxes, anchor_points, gt_labels, gt_boxes, gt_mask):
        return assign(pd_scores, pd_boxes, anchor_points, gt_labels, gt_boxes, gt_mask,
                      self.topk, self.alpha, self.beta, self.eps)

    def __repr__(self) -> str:
        return f"TaskAlignedAssigner(topk={self.topk}, alpha={self.alpha}, beta={self.beta})"
