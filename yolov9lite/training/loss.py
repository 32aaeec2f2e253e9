"""The YOLOv9 training loss: task-aligned assignment, CIoU + DFL box loss, BCE class loss, and PGI's
auxiliary head (official ``utils/loss_tal_dual.py``, ``ComputeLoss``; paper Section 4 and Table 4).

Per head (the main head, and for YOLOv9 models also the auxiliary head), with ``A`` anchors:

1. **decode**: the head's 64 box logits per anchor are 4 sides x ``reg_max = 16`` bins; the softmax
   expectation over the bins (``sum_i i * p_i``) is the distance, in grid units, from the cell centre
   to each side (l, t, r, b) -> a predicted xyxy box (Li et al. 2020, Generalized Focal Loss).
2. **assign** (:mod:`yolov9lite.training.assign`): each head gets its own task-aligned assignment computed
   from its own detached predictions, in pixels; ``lead_head_guided=True`` instead uses the main
   head's assignment for both heads (Table 4's "LHG").
3. **losses**, with ``y`` the soft class targets, ``w_a = sum_c y_ac`` and ``norm = max(sum y, 1)``:

   * ``L_cls = sum_{a,c} BCE(logit_ac, y_ac) / norm`` over *all* anchors and classes;
   * ``L_box = sum_a w_a (1 - CIoU(pred_a, gt_a)) / norm`` in grid units;
   * ``L_dfl = sum_a w_a mean_side DFL(side) / norm``, with the DFL of GFL Eq. 6:
     ``DFL(t) = -((i + 1 - t) log p_i + (t - i) log p_{i+1})``, ``i = floor(t)``, and the target
     distance ``t`` clamped to ``[0, reg_max - 1 - 0.01] = [0, 14.99]`` so that ``i + 1 <= 15``.

   ``w_a`` is zero on negative anchors. The box terms are computed on a fixed number of anchors
   per image (``M * topk``, an upper bound on the positives, negatives padding it with weight 0):
   the same sum as the official masked selection, without a data-dependent shape.
4. **combine**: ``L_k = 0.25 * L_k(aux) + L_k(main)`` for k in box, cls, dfl (the 0.25 applies to all
   three), then gains box 7.5, cls 0.5, dfl 1.5, and

       loss = (7.5 L_box + 0.5 L_cls + 1.5 L_dfl) * batch_size * world_size.

**Why ``x batch_size`` (and what it means for the learning rate).** Every term above is a *mean*
over the batch (sums divided by the batch's total target score), so without the factor the gradient
would not grow with the number of images. The official recipe (inherited from YOLOv5) multiplies by
the batch size to turn it back into a *sum over images*, and accumulates gradients until 64 images
have been seen (``accumulate = round(64 / batch)``) before each SGD step. An optimizer step
therefore always applies the gradient of a sum over ~64 images, whatever ``--batch`` is, and the
recipe's ``lr0 = 0.01`` (with weight decay ``5e-4 * batch * accumulate / 64``) is tuned for exactly
that. Consequences:

* change ``batch`` but keep the nominal-64 accumulation: keep ``lr0``; nothing to change;
* drop accumulation (step every batch of ``bs``): each step sees a ``bs``-image sum, i.e. linear
  LR scaling is built in; steps are ``64 / bs`` times smaller and more frequent;
* compare with a mean-reduced loss: SGD with lr 0.01 on this sum over 64 images equals SGD with
  lr ``0.01 * 64 = 0.64`` on a per-image mean (Adam-type optimizers are nearly scale-invariant);
* gradient clipping (official ``max_norm = 10``) sees the summed gradient, so it bites harder at
  larger effective batches;
* DDP averages gradients over ranks; ``world_size`` undoes that so the step again uses the sum over
  the global batch (official: ``loss * batch_size * WORLD_SIZE`` when training with DDP).

The logged ``items`` are *before* the batch-size factor: a (3,) detached tensor ``[box, cls, dfl]``
with gains applied (the official ``loss.detach()``); their sum times ``batch_size * world_size`` is
the returned loss.

**Host syncs.** Padding the targets to ``(B, M)`` needs ``M``, the largest per-image box count,
on the host: that is the one unavoidable sync per call. The cheap input validation piggybacks on it
(its flags are read back in the same transfer), so ``validate=True`` costs no extra sync and is the
default; pass ``validate=False`` to skip the few element-wise checks. Everything else (assignment,
losses, the zero-target case) runs without host syncs or data-dependent shapes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.head import DualDDetect, dist2bbox, make_anchors
from ..utils.boxes import bbox2dist, box_ciou, xywh2xyxy
from .assign import Assignment, TaskAlignedAssigner

ITEM_NAMES = ("box", "cls", "dfl")


# --- targets: (N, 6) normalised rows -> padded (B, M) pixel boxes ------------------------------------


def _target_flags(targets: torch.Tensor, batch_size: int, num_classes: int) -> torch.Tensor:
    """(4,) bool, True where a check fails: image index, class id, finiteness, sizes."""
    img, cls, wh = targets[:, 0], targets[:, 1], targets[:, 4:6]
    bad_img = (img != img.floor()) | (img < 0) | (img >= batch_size)
    bad_cls = (cls != cls.floor()) | (cls < 0) | (cls >= num_classes)
    bad_val = ~torch.isfinite(targets).all(1)
    bad_wh = (wh < 0).any(1)
    return torch.stack((bad_img, bad_cls, bad_val, bad_wh), 1).any(0)


def _target_error(targets: torch.Tensor, batch_size: int, num_classes: int) -> str:
    """Slow path, only after a failed check: say which rows are wrong and why."""
    t = targets.detach().cpu().double()
    img, cls, wh = t[:, 0], t[:, 1], t[:, 4:6]
    finite = torch.isfinite(t).all(1)
    checks = [
        (~finite, "non-finite values (NaN/inf)"),
        (finite & ((img != img.floor()) | (img < 0) | (img >= batch_size)),
         f"image index (column 0) not an integer in [0, batch_size={batch_size})"),
        (finite & ((cls != cls.floor()) | (cls < 0) | (cls >= num_classes)),
         f"class id (column 1) not an integer in [0, nc={num_classes})"),
        (finite & (wh < 0).any(1), "negative width or height (columns 4, 5)"),
    ]
    lines = []
    for bad, what in checks:
        rows = bad.nonzero().flatten().tolist()
        if rows:
            lines.append(f"{len(rows)} row(s) with {what}, e.g. row {rows[0]}: "
                         f"{[round(v, 4) for v in t[rows[0]].tolist()]}")
    return ("invalid targets, expected rows [image_index, class, cx, cy, w, h] normalised to 0-1: "
            + "; ".join(lines))


def pad_targets(targets: torch.Tensor, batch_size: int, image_wh: tuple[int, int],
                num_classes: int, validate: bool = True, budget: int | None = None):
    """(N, 6) ``[image, class, cx, cy, w, h]`` (normalised) -> padded per-image ground truth.

    Returns ``gt_labels`` (B, M) long, ``gt_boxes`` (B, M, 4) xyxy in pixels and ``gt_mask``
    (B, M) bool, with M the largest number of boxes in one image. Boxes keep their order within an
    image (the official layout; it matters for ties in the assigner). Padding rows are zeros.
    ``budget``: M is rounded up to a multiple of it instead (fixed shapes for a captured or
    compiled step; the extra rows are masked and change no sum).
    """
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be (N, 6) [image, class, cx, cy, w, h], got {tuple(targets.shape)}")
    device, n = targets.device, targets.shape[0]
    img = targets[:, 0].long().clamp(0, batch_size - 1)  # clamped: safe to index before the check
    counts = torch.zeros(batch_size, dtype=torch.long, device=device).index_add_(
        0, img, torch.ones_like(img))
    # the one host sync: M (needed for the padded shape) and, fused with it, the validation flags
    stats = [counts.max()]
    if validate:
        stats.append(_target_flags(targets, batch_size, num_classes).long())
    stats = torch.cat([s.view(-1) for s in stats]).tolist()
    if validate and any(stats[1:]):
        raise ValueError(_target_error(targets, batch_size, num_classes))
    m = stats[0] if not budget else budget * max(1, -(-stats[0] // budget))
    # rank of each row within its image: stable sort by image, minus the image's first position
    order = img.sort(stable=True).indices
    img_sorted = img[order]
    first = counts.cumsum(0) - counts
    rank = torch.arange(n, device=device) - first[img_sorted]
    out = targets.new_zeros(batch_size, m, 5)
    out[img_sorted, rank] = targets[order, 1:]
    scale = out.new_full((4,), float(image_wh[0]))  # (w, h, w, h), built on the device
    scale[1::2] = image_wh[1]
    gt_boxes = xywh2xyxy(out[..., 1:5] * scale)
    gt_mask = torch.arange(m, device=device) < counts[:, None]
    return out[..., 0].long(), gt_boxes, gt_mask


# --- predictions ----------------------------------------------------------------------------------


def split_maps(maps: list[torch.Tensor], reg_max: int, num_classes: int):
    """Per-level maps (B, 4*reg_max + nc, H, W) -> box logits (B, A, 4*reg_max) and class logits
    (B, A, nc), in at least float32 (half maps from autocast are upcast; float64 stays)."""
    no = 4 * reg_max + num_classes
    for m in maps:
        if m.ndim != 4 or m.shape[1] != no:
            raise ValueError(f"each prediction map must be (B, 4*reg_max + nc = {no}, H, W), "
                             f"got {tuple(m.shape)}")
    flat = torch.cat([m.flatten(2) for m in maps], 2)  # (B, no, A)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    dist, logits = flat.split((4 * reg_max, num_classes), 1)
    return dist.transpose(1, 2), logits.transpose(1, 2)


def decode_boxes(pred_dist: torch.Tensor, anchor_points: torch.Tensor, reg_max: int):
    """Box logits (B, A, 4*reg_max) -> xyxy (B, A, 4) in grid units: expectation over the bins
    (side-major layout: l, t, r, b, 16 bins each)."""
    b, a, _ = pred_dist.shape
    bins = torch.arange(reg_max, dtype=pred_dist.dtype, device=pred_dist.device)
    ltrb = pred_dist.view(b, a, 4, reg_max).softmax(-1) @ bins
    return dist2bbox(ltrb, anchor_points, xywh=False)


# --- loss terms -----------------------------------------------------------------------------------


def dfl_loss(pred_dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss (GFL Eq. 6). pred_dist (..., reg_max) logits, target (...) in
    [0, reg_max - 1): cross-entropy towards the two nearest bins, weighted by closeness."""
    left = target.long()  # floor, as target >= 0
    right = left + 1
    w_left = right.to(target.dtype) - target
    w_right = 1 - w_left
    logp = pred_dist.log_softmax(-1)
    return -(logp.gather(-1, left[..., None])[..., 0] * w_left
             + logp.gather(-1, right[..., None])[..., 0] * w_right)


def take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, K) of ``x`` (B, A, ...) -> (B, K, ...)."""
    index = index.view(*index.shape, *(1,) * (x.ndim - 2)).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


def head_loss(pred_dist, pred_logits, pred_boxes, anchor_points, stride, target: Assignment,
              reg_max: int, max_positives: int) -> torch.Tensor:
    """(3,) tensor [box, cls, dfl] of one head, normalised by max(sum of target scores, 1).

    pred_boxes and anchor_points are in grid units, ``target.boxes`` in pixels, stride (A, 1).
    The box terms only need the positives; an image has at most ``max_positives = M * topk`` of
    them (each is in some box's top-k), so we take that many anchors per image, positives first
    (a fixed shape: no host sync); the extra negatives have weight 0.
    """
    scores = target.scores
    norm = scores.sum().clamp(min=1)
    cls = F.binary_cross_entropy_with_logits(pred_logits, scores, reduction="none").sum() / norm
    # positives (and weight-0 fillers): (B, K) anchor indices
    k = min(max_positives, target.fg.shape[1])
    index = target.fg.to(scores.dtype).topk(k, dim=1).indices
    weight = take(scores.sum(-1, keepdim=True), index)[..., 0]  # w_a: zero on negatives
    anchors = anchor_points[index]  # (B, K, 2)
    gt_boxes = take(target.boxes, index) / stride[index]  # grid units
    box = ((1.0 - box_ciou(take(pred_boxes, index), gt_boxes)) * weight).sum() / norm
    gt_dist = bbox2dist(anchors, gt_boxes, reg_max - 1 - 0.01)  # clamp at 14.99
    b = index.shape[0]
    dfl = dfl_loss(take(pred_dist, index).view(b, k, 4, reg_max), gt_dist).mean(-1)
    dfl = (dfl * weight).sum() / norm
    return torch.stack((box, cls, dfl))


class DetectionLoss:
    """YOLOv9 / GELAN detection loss: ``loss, items = DetectionLoss(model)(preds, targets)``.

    * ``model``: a yolov9lite model (uses ``model.head``), a DDP wrapper of one, or a bare
      :class:`~yolov9lite.nn.head.DDetect` / :class:`~yolov9lite.nn.head.DualDDetect`.
    * ``preds``: the train-mode output: a list of 3 maps for a single head (GELAN), or
      ``[aux_maps, main_maps]`` for a dual head (YOLOv9).
    * ``targets``: (N, 6) ``[image_index, class, cx, cy, w, h]``, boxes normalised to 0-1 by the
      input image size, which is taken as ``H0 * stride0`` x ``W0 * stride0`` of the first map.
    * returns ``loss`` (scalar, ``x batch_size x world_size``, see the module docstring) and
      ``items``, a detached (3,) tensor ``[box, cls, dfl]`` (gains applied; names in ``ITEM_NAMES``).

    Official defaults: topk 10, alpha 0.5, beta 6, gains 7.5 / 0.5 / 1.5, aux weight 0.25.
    ``lead_head_guided=True`` assigns once, from the main head, and trains both heads on it
    (official ``ComputeLossLH``; unlike it, ``norm`` is also clamped at 1 there, which the
    official LH code omits). ``validate`` checks the targets (see the module docstring).
    """

    item_names = ITEM_NAMES

    def __init__(self, model, lead_head_guided: bool = False, aux_weight: float = 0.25,
                 box_gain: float = 7.5, cls_gain: float = 0.5, dfl_gain: float = 1.5,
                 topk: int = 10, alpha: float = 0.5, beta: float = 6.0, world_size: int = 1,
                 validate: bool = True, max_boxes: int | None = None):
        model = getattr(model, "module", model)  # unwrap DDP
        head = getattr(model, "head", model)
        self.dual = isinstance(head, DualDDetect)
        main = head.main if self.dual else head
        self.nc, self.reg_max, self.strides = main.nc, main.reg_max, tuple(main.strides)
        self.lead_head_guided, self.aux_weight = lead_head_guided, aux_weight
        self.gains = (box_gain, cls_gain, dfl_gain)
        self.world_size, self.validate = world_size, validate
        self.max_boxes = max_boxes  # box budget per image (static shapes), see pad_targets
        self.assigner = TaskAlignedAssigner(topk, alpha, beta)

    def __repr__(self) -> str:
        return (f"DetectionLoss(dual={self.dual}, lead_head_guided={self.lead_head_guided}, "
                f"aux_weight={self.aux_weight}, gains={self.gains}, {self.assigner})")

    def _heads(self, preds) -> list[list[torch.Tensor]]:
        """The train-mode output as a list of per-head map lists, auxiliary first."""
        nested = isinstance(preds, (list, tuple)) and len(preds) > 0 and isinstance(preds[0], (list, tuple))
        if nested != self.dual:
            want = "[aux_maps, main_maps]" if self.dual else "a list of per-level maps"
            raise ValueError(f"preds do not match the head: expected {want} (train-mode output)")
        return list(preds) if self.dual else [preds]

    def _assign(self, scores_logits, boxes, anchor_px, stride, gt) -> Assignment:
        return self.assigner(scores_logits.detach().sigmoid(), boxes.detach() * stride,
                             anchor_px, *gt)

    def pad(self, targets: torch.Tensor, batch_size: int, image_wh: tuple[int, int],
            dtype: torch.dtype = torch.float32, budget: int | None = None):
        """:func:`pad_targets` with this loss's classes, checks and box budget (``budget``
        overrides ``max_boxes``); the result stays where ``targets`` are."""
        return pad_targets(targets.to(dtype=dtype), batch_size, image_wh, self.nc, self.validate,
                           budget or self.max_boxes)

    def __call__(self, preds, targets: torch.Tensor):
        maps0 = self._heads(preds)[-1]
        dtype = torch.promote_types(maps0[0].dtype, torch.float32)
        image_wh = (maps0[0].shape[3] * self.strides[0], maps0[0].shape[2] * self.strides[0])
        # Padding happens where the targets are. The training loop passes them still on the CPU
        # (as the loader yields them), so reading the box count M there costs no device sync;
        # only the padded tensors travel to the device, asynchronously.
        return self.from_padded(preds, self.pad(targets, maps0[0].shape[0], image_wh, dtype))

    def from_padded(self, preds, gt):
        """The loss from targets already padded by :meth:`pad`: fixed shapes and no host sync
        from here on (what :mod:`yolov9lite.training.graphstep` captures)."""
        heads = self._heads(preds)
        maps0 = heads[-1]
        batch_size = maps0[0].shape[0]
        dtype = torch.promote_types(maps0[0].dtype, torch.float32)
        anchor_points, stride = (t.to(dtype) for t in make_anchors(maps0, self.strides))
        gt = tuple(t.to(anchor_points.device, non_blocking=True) for t in gt)
        anchor_px = anchor_points * stride

        decoded = []
        for maps in heads:
            dist, logits = split_maps(maps, self.reg_max, self.nc)
            decoded.append((dist, logits, decode_boxes(dist, anchor_points, self.reg_max)))
        if self.lead_head_guided:
            _, logits, boxes = decoded[-1]
            lead = self._assign(logits, boxes, anchor_px, stride, gt)
            assignments = [lead] * len(decoded)
        else:
            assignments = [self._assign(lg, bx, anchor_px, stride, gt) for _, lg, bx in decoded]

        max_positives = gt[1].shape[1] * self.assigner.topk
        parts = [head_loss(d, lg, bx, anchor_points, stride, a, self.reg_max, max_positives)
                 for (d, lg, bx), a in zip(decoded, assignments)]
        total = parts[-1] if len(parts) == 1 else self.aux_weight * parts[0] + parts[1]
        # gains as Python scalars: a torch.tensor(...) here would be a blocking host-to-device copy
        items = torch.stack([part * gain for part, gain in zip(total, self.gains)])
        return items.sum() * batch_size * self.world_size, items.detach()
