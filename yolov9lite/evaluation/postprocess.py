"""Post-processing of raw detections: box formats, NMS and undoing the letterbox.

This is the first half of the evaluation protocol of the official ``val.py`` / ``val_dual.py``
(NMS and the JSON output). In eval mode every model returns one tensor ``(B, 4 + nc, A)``:
pixel centre-xywh boxes in the letterboxed input image, then sigmoid class scores (there is no
objectness, so a class score *is* the detection confidence). :func:`non_max_suppression` turns that
into at most ``max_det`` boxes per image and :func:`scale_boxes` maps them back onto the original
image.

Everything is vectorised over boxes; the only Python loop is over the images of a batch, because
each image keeps a different number of boxes.

For deployment on a GPU, :func:`nms_static` computes the same detections with fixed shapes and
no host sync (a padded ``(B, max_det, 6)`` tensor and a count per image), so that the model,
the box decoding and NMS can be captured together in one CUDA graph (:class:`EndToEnd`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torchvision
from torch import nn

from ..utils.boxes import xywh2xyxy

# Offset between classes for the class-offset NMS trick (official ``utils/general.py``,
# ``non_max_suppression``: boxes offset by class x 7680).
# It must exceed any box coordinate so boxes of different classes can never overlap; 7680 is the
# official value (a 7680-px wide image would be 12x the 640 evaluation size).
MAX_WH = 7680


def non_max_suppression(
    pred: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.7,
    max_det: int = 300,
    multi_label: bool = True,
    max_nms: int = 30000,
    agnostic: bool = False,
) -> list[torch.Tensor]:
    """Per-class NMS of a batch of raw predictions (official ``utils/general.py``, ``non_max_suppression``).

    Args:
        pred: ``(B, 4 + nc, A)`` head output: centre-xywh pixel boxes, then class scores.
        conf_thres: a (box, class) pair is a candidate when its score is *strictly* above this.
        iou_thres: boxes of the same class overlapping more than this are suppressed.
        max_det: at most this many boxes are kept per image (the highest scoring).
        multi_label: every class above ``conf_thres`` becomes its own candidate box (the evaluation
            setting: it costs little and gains recall, because COCO matches per class). When
            False, only the best class of each anchor is used (``detect.py``-style).
        max_nms: only the ``max_nms`` highest scoring candidates enter NMS (bounds its O(n^2) cost
            when a barely-trained model puts every score above 0.001).
        agnostic: suppress across classes too.

    Returns:
        One ``(n, 6)`` tensor per image: ``x1, y1, x2, y2, score, class``, sorted by score
        (descending), ``n <= max_det``, same dtype/device as ``pred``.

    Why the class-offset trick rather than ``torchvision.ops.batched_nms``: the official code
    shifts every box by ``class * 7680`` so that boxes of different classes can never overlap and
    runs a single ``torchvision.ops.nms``. ``batched_nms`` does the same thing with a data-dependent
    offset (or, on CPU with many boxes, a Python loop over classes). The two agree except when an
    IoU lies within float32 rounding of ``iou_thres``: adding a large offset to coordinates costs
    precision (up to 1/16 px at offset 79 * 7680 in float32). We reproduce the official offset so
    that our detections, and hence the reported AP, match the reference implementation's.
    The official code's wall-clock time limit is deliberately left out: it makes results depend
    on machine speed.
    """
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"conf_thres={conf_thres} and iou_thres={iou_thres} must be in [0, 1]")
    if pred.dim() != 3 or pred.shape[1] < 5:
        raise ValueError(f"expected pred of shape (B, 4 + nc, A), got {tuple(pred.shape)}")

    pred = pred.transpose(1, 2)  # (B, A, 4 + nc): one row per anchor
    keep_anchor = pred[..., 4:].amax(-1) > conf_thres  # cheap pre-filter on the best class score
    out = []
    for x, keep in zip(pred, keep_anchor):  # loop over images only
        x = x[keep]
        boxes, scores = xywh2xyxy(x[:, :4]), x[:, 4:]
        if multi_label:
            # one candidate per (anchor, class) pair above the threshold
            anchor_idx, cls = (scores > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((boxes[anchor_idx], scores[anchor_idx, cls, None],
                             cls[:, None].to(x.dtype)), 1)
        else:
            best, cls = scores.max(1, keepdim=True)
            det = torch.cat((boxes, best, cls.to(x.dtype)), 1)[best.view(-1) > conf_thres]
        if det.shape[0] > max_nms:  # keep the max_nms best candidates
            det = det[det[:, 4].argsort(descending=True)[:max_nms]]
        offset = det[:, 5:6] * (0 if agnostic else MAX_WH)
        kept = torchvision.ops.nms(det[:, :4] + offset, det[:, 4], iou_thres)  # sorted by score
        out.append(det[kept[:max_det]])
    return out


def scale_boxes(
    boxes: torch.Tensor,
    ratio_pad=None,
    orig_shape: tuple[int, int] | None = None,
    img_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Map xyxy boxes from the letterboxed image back onto the original image, then clip.

    As the official ``scale_boxes``: minus the pad, divided by the resize gain, clipped to the image.

    Args:
        boxes: ``(n, >=4)`` with xyxy in the first four columns (extra columns are kept as they are).
        ratio_pad: ``((gain_h, gain_w), (pad_w, pad_h))`` as the data loader records it, so that
            ``x_orig = (x - pad_w) / gain_w`` and ``y_orig = (y - pad_h) / gain_h``. When None it is
            computed from ``img_shape`` like a centred letterbox with one gain for both axes.
        orig_shape: ``(h0, w0)`` of the original image; boxes are clipped to it.
        img_shape: ``(h, w)`` of the letterboxed image; only needed when ``ratio_pad`` is None.

    Returns a new tensor; ``boxes`` is not modified.

    Note: the official code divides both axes by ``gain_h``. Resizing rounds each side to whole
    pixels, so ``gain_w`` and ``gain_h`` can differ slightly; dividing each axis by its own gain is
    the exact inverse of the resize (the difference is below one original pixel).
    """
    if orig_shape is None:
        raise ValueError("scale_boxes needs orig_shape=(h0, w0)")
    h0, w0 = orig_shape
    if ratio_pad is None:
        if img_shape is None:
            raise ValueError("scale_boxes needs ratio_pad or img_shape")
        gain = min(img_shape[0] / h0, img_shape[1] / w0)
        pad = ((img_shape[1] - w0 * gain) / 2, (img_shape[0] - h0 * gain) / 2)
        ratio_pad = ((gain, gain), pad)
    (gain_h, gain_w), (pad_w, pad_h) = ratio_pad
    gain_h, gain_w, pad_w, pad_h = (float(v) for v in (gain_h, gain_w, pad_w, pad_h))  # 0-d tensors ok
    # per-column constants for x1, y1, x2, y2
    pad = boxes.new_tensor([pad_w, pad_h, pad_w, pad_h])
    gain = boxes.new_tensor([gain_w, gain_h, gain_w, gain_h])
    upper = boxes.new_tensor([w0, h0, w0, h0])
    out = boxes.clone()
    out[:, :4] = ((boxes[:, :4] - pad) / gain).clamp(min=0).minimum(upper)
    return out


# --------------------------------------------------------------------------- on the GPU, no syncs
class StaticDetections(NamedTuple):
    """Output of :func:`nms_static`: fixed shapes, nothing read back to the host."""

    boxes: torch.Tensor  # (B, max_det, 6): x1, y1, x2, y2, score, class; zero rows after count
    count: torch.Tensor  # (B,) long: detections kept per image
    exact: torch.Tensor  # (B,) bool: the candidate budget and the rounds sufficed (see below)

    def as_list(self) -> list[torch.Tensor]:
        """The ``non_max_suppression`` layout, one ``(n, 6)`` tensor per image (one host sync)."""
        return [b[:n] for b, n in zip(self.boxes, self.count.tolist())]


def _pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """(B, K, 4) xyxy -> (B, K, K) IoU, with the arithmetic of ``torchvision.ops.nms``'s kernel
    (intersection clamped at 0, ``inter / (area_i + area_j - inter)``) so that every comparison
    with the threshold comes out as it does there."""
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    lt = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, :, None] + area[:, None, :] - inter)


def nms_static(pred: torch.Tensor, conf_thres: float = 0.25, iou_thres: float = 0.45,
               max_det: int = 300, multi_label: bool = False, agnostic: bool = False,
               max_candidates: int = 1024, rounds: int = 32) -> StaticDetections:
    """:func:`non_max_suppression` with fixed shapes and no host sync, for a GPU (and for
    capture in a CUDA graph together with the model).

    The same candidates (every (box, class) pair, or each box's best class, strictly above
    ``conf_thres``), the same class-offset boxes and the same greedy rule (a box is dropped when
    a higher-scoring kept box of its class overlaps it by more than ``iou_thres``); only the
    bookkeeping differs: the ``max_candidates`` highest-scoring pairs are taken with ``topk``
    (below-threshold ones stay in, switched off), and the greedy pass is computed as a fixed
    point on the candidates' IoU matrix, ``keep = valid & ~any_j(keep_j & overlaps_ji)`` for
    higher-scoring ``j``, which after ``r`` rounds is exact for the ``r`` best candidates and
    usually for all of them after a few (suppression chains are short).

    ``exact`` says, per image, that both budgets sufficed: fewer than ``max_candidates`` pairs
    were above the threshold and the fixed point was reached. Then the result equals
    :func:`non_max_suppression`'s (same boxes, scores and order; ``tests/test_postprocess.py``),
    up to the order of exactly equal scores. The defaults suit deployment thresholds; evaluation
    at ``conf_thres = 0.001`` needs the list version.
    """
    if pred.dim() != 3 or pred.shape[1] < 5:
        raise ValueError(f"expected pred of shape (B, 4 + nc, A), got {tuple(pred.shape)}")
    b, no, a = pred.shape
    nc = no - 4
    p = pred.transpose(1, 2)  # (B, A, 4 + nc)
    boxes, scores = xywh2xyxy(p[..., :4]), p[..., 4:]
    if multi_label:
        k = min(max_candidates, a * nc)
        top, pair = scores.reshape(b, a * nc).topk(k, dim=1)  # pair = anchor * nc + class
        anchor, cls = pair // nc, pair % nc
        more = (scores.reshape(b, a * nc) > conf_thres).sum(1) > k
    else:
        best, best_cls = scores.max(-1)
        k = min(max_candidates, a)
        top, anchor = best.topk(k, dim=1)
        cls = best_cls.gather(1, anchor)
        more = (best > conf_thres).sum(1) > k
    valid = top > conf_thres  # (B, K), sorted by score
    cand = boxes.gather(1, anchor[..., None].expand(-1, -1, 4))
    offset = cls[..., None].to(cand.dtype) * (0 if agnostic else MAX_WH)
    higher = torch.ones(k, k, dtype=torch.bool, device=pred.device).triu(1)  # j < i
    overlaps = (_pairwise_iou(cand + offset) > iou_thres) & higher  # [b, j, i]
    keep = valid
    for _ in range(rounds):
        keep, before = valid & ~(keep[:, :, None] & overlaps).any(1), keep
    converged = (keep == before).all(1) if rounds else keep.new_ones(b)
    # the first max_det kept candidates, in score order, into fixed rows
    rank = keep.cumsum(1) - 1
    take = keep & (rank < max_det)
    rows = torch.cat((cand, top[..., None], cls[..., None].to(cand.dtype)), -1)
    out = rows.new_zeros(b, max_det + 1, 6)  # row max_det collects what is not taken
    index = torch.where(take, rank, max_det)
    out.scatter_(1, index[..., None].expand(-1, -1, 6), rows * take[..., None])
    return StaticDetections(out[:, :max_det], take.sum(1), converged & ~more)


class EndToEnd(nn.Module):
    """A deployed model followed by :func:`nms_static`: one module a CUDA graph (or
    ``torch.compile``) can take whole, image in, fixed-shape detections out."""

    def __init__(self, model: nn.Module, conf_thres: float = 0.25, iou_thres: float = 0.45,
                 max_det: int = 300, max_candidates: int = 1024):
        super().__init__()
        self.model = model
        self.nms = {"conf_thres": conf_thres, "iou_thres": iou_thres, "max_det": max_det,
                    "max_candidates": max_candidates}

    def forward(self, x: torch.Tensor) -> StaticDetections:
        pred = self.model(x)
        return nms_static(pred[0] if isinstance(pred, (list, tuple)) else pred, **self.nms)
