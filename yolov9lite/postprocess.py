"""Post-processing of raw detections: box formats, NMS and undoing the letterbox.

This is the first half of the evaluation protocol, ``shared/reference/yolov9-spec.md`` Section 5
("NMS" and "JSON output"). In eval mode every model returns one tensor ``(B, 4 + nc, A)``:
pixel centre-xywh boxes in the letterboxed input image, then sigmoid class scores (there is no
objectness, so a class score *is* the detection confidence). :func:`non_max_suppression` turns that
into at most ``max_det`` boxes per image and :func:`scale_boxes` maps them back onto the original
image.

Everything is vectorised over boxes; the only Python loop is over the images of a batch, because
each image keeps a different number of boxes.
"""
from __future__ import annotations

import torch
import torchvision

from .boxes import xywh2xyxy, xyxy2xywh  # noqa: F401  (re-exported: box formats live in boxes.py)

# Offset between classes for the class-offset NMS trick (spec Section 5: "box offset class x 7680").
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
    """Per-class NMS of a batch of raw predictions (spec Section 5, "NMS").

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

    Spec Section 5, "JSON output": minus the pad, divided by the resize gain, clipped to the image.

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
