"""Measuring the gradient information that reaches the backbone (paper Sec. 4.1, Fig. 3).

The PGI argument of the paper (Section 4.1, Figure 3) is about *gradients*: deep supervision and
the auxiliary reversible branch exist so that "reliable gradient information" reaches the main
branch's backbone, and the paper judges this by the final AP and by pictures (Figure 7). This
module turns the claim into numbers that can be computed for one model and a few batches:

* :func:`backbone_gradients`: the gradient of the training loss with respect to the parameters of
  each backbone stage, split exactly into the part that comes from the **main** head's loss and
  the part that comes from the **auxiliary** head's loss (``total = main + aux``; the auxiliary
  part is the official ``0.25 x`` auxiliary loss, :mod:`yolov9lite.training.loss`).
* :func:`backbone_gradient_norms`: their L2 norms per stage, and the cosine between the two parts
  (does the auxiliary branch push the backbone the same way as the main head, or somewhere else?).
* :func:`gradient_agreement`: the mean pairwise cosine similarity between the backbone gradients of
  different mini-batches. High agreement means every batch points the weights the same way,
  i.e. the gradient carries information about the task rather than about the particular batch:
  our operational reading of the paper's "reliable gradient".
* :func:`copy_main_branch`: give several PGI variants exactly the same main-branch weights, so
  that the only difference between them is the auxiliary branch.
* :func:`gradient_reliability`: per training batch, with and without the auxiliary term, the
  cosine to the full-data gradient (leave-one-out, :func:`leave_one_out_cosines`) and to the
  held-out gradient (:func:`held_out_gradient`: to first order, how far a step along the batch's
  direction lowers the held-out loss); with ``controls`` also the same for a known-worse gradient
  (each image's boxes swapped for another image's, :func:`mismatched_targets`);
  :func:`reliability_snr` gives the gradient signal-to-noise ratio (:func:`gradient_snr`) of
  each, and :func:`snr_over_floor` that ratio in units of its pure-noise floor. Notebook 04's
  design around them: :mod:`yolov9lite.study.pgi_study`.
* :func:`object_focus`: Figure 7 in numbers, the share of a feature map's energy inside the
  ground-truth boxes over their share of the area, with a random-box null.

The measurements never change the model: BatchNorm running statistics, which a train-mode forward
updates, are restored afterwards, and ``.grad`` fields are not touched (``torch.autograd.grad``).

Backbone stages are named by resolution level as in :class:`yolov9lite.nn.gelan.Backbone`: ``L1``
(first conv, stride 2), ``L2`` (second conv + stem, stride 4), ``B3``, ``B4``, ``B5`` (downsampler +
GELAN unit, strides 8, 16, 32). They are the stages of ``model.backbone``, the backbone every PGI
variant attaches to (for GELAN-E, its first backbone).
"""
from __future__ import annotations

import contextlib
import itertools
import math

import torch
from torch import nn

from ..nn.models import main_branch_keys
from ..training.loss import DetectionLoss

STAGES = ("L1", "L2", "B3", "B4", "B5")
PARTS = ("main", "aux", "total")


def backbone_stages(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The parameters of each backbone stage, ``{"L1": [...], ..., "B5": [...]}`` (input to output)."""
    bb = model.backbone
    modules = {"L1": [bb.conv0], "L2": [bb.conv1, bb.stem]}
    for level, down, stage in zip(STAGES[2:], bb.downs, bb.stages):
        modules[level] = [down, stage]
    return {k: [p for m in mods for p in m.parameters()] for k, mods in modules.items()}


@contextlib.contextmanager
def preserved_buffers(model: nn.Module):
    """Restore every buffer (BatchNorm running mean/var, batch counters) on exit."""
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])


def _head_losses(model: nn.Module, preds, targets: torch.Tensor, aux_weight: float):
    """(main loss, weighted auxiliary loss or None) of one train-mode output."""
    head = model.head
    if not getattr(model, "has_aux", False):
        return DetectionLoss(head)(preds, targets)[0], None
    aux_maps, main_maps = preds
    main = DetectionLoss(head.main)(main_maps, targets)[0]
    aux = DetectionLoss(head.aux)(aux_maps, targets)[0]
    return main, aux_weight * aux


def mismatched_targets(targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``targets`` (N, 6) with each image's boxes given to the previous image of the batch (image
    i gets image i + 1's boxes, the last image the first's): the same boxes, classes and count per
    batch, none of them where its object is (notebook 04's known-worse supervision)."""
    out = targets.clone()
    out[:, 0] = (targets[:, 0] - 1) % batch_size
    return out


def backbone_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                       aux_weight: float = 0.25, mismatched: bool = False
                       ) -> dict[str, dict[str, torch.Tensor]]:
    """``{stage: {"main": g, "aux": g, "total": g[, "wrong": g]}}``: flat gradient vectors of one
    batch.

    ``images`` float (B, 3, H, W) in [0, 1], ``targets`` (N, 6) as the loss takes them. The model
    runs in train mode (as in training: batch statistics in BatchNorm, both heads); its buffers
    and training flag are restored afterwards. ``main`` is the gradient of the main head's loss,
    ``aux`` that of ``aux_weight`` x the auxiliary head's loss (zero without a PGI branch), and
    ``total = main + aux`` is the gradient of the training loss of :mod:`yolov9lite.training.loss`
    (paper Sec. 4.1: PGI adds the auxiliary term; deep supervision, Fig. 3 (c), and PGI, Fig. 3 (d),
    differ only in where it comes from).

    ``mismatched`` adds ``wrong``: the gradient of the main head's loss with every image's boxes
    swapped for another image's (:func:`mismatched_targets`), from the same forward pass, so
    BatchNorm normalised with the same batch statistics: a gradient whose supervision does not
    belong to the images and nothing else changed (notebook 04's positive control,
    :func:`gradient_reliability`). Only what does not depend on where the objects are (class
    frequencies, box sizes, background) is still right in it.
    """
    stages = backbone_stages(model)
    params = [p for ps in stages.values() for p in ps]
    was_training = model.training
    model.train()
    try:
        with preserved_buffers(model):
            preds = model(images)
            main, aux = _head_losses(model, preds, targets, aux_weight)
            g_main = torch.autograd.grad(main, params, retain_graph=aux is not None or mismatched,
                                         allow_unused=True)
            g_aux = (torch.autograd.grad(aux, params, retain_graph=mismatched, allow_unused=True)
                     if aux is not None else [None] * len(params))
            if mismatched:  # the same graph, each image supervised by another image's boxes
                wrong, _ = _head_losses(model, preds,
                                        mismatched_targets(targets, images.shape[0]), 0.0)
                g_wrong = torch.autograd.grad(wrong, params, allow_unused=True)
    finally:
        model.train(was_training)

    def flat(grads, ps):
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, ps)])

    out, i = {}, 0
    for stage, ps in stages.items():
        m, a = flat(g_main[i:i + len(ps)], ps), flat(g_aux[i:i + len(ps)], ps)
        out[stage] = {"main": m, "aux": a, "total": m + a}
        if mismatched:
            out[stage]["wrong"] = flat(g_wrong[i:i + len(ps)], ps)
        i += len(ps)
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    # float64: over millions of float32 terms the rounding of a @ b alone reaches ~1e-5
    a, b = a.double(), b.double()
    den = a.norm() * b.norm()
    return float((a @ b) / den) if den > 0 else float("nan")


def backbone_gradient_norms(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                            aux_weight: float = 0.25) -> dict[str, dict[str, float]]:
    """Per backbone stage: the L2 norms of the main, auxiliary and total gradient of one batch,
    and ``cos_main_aux``, the cosine between the main and the auxiliary part (NaN without PGI).

    The question of paper Sec. 4.1 / Fig. 3 in numbers: how much gradient does the auxiliary
    branch add to each stage, and does it point the same way as the main head's?
    """
    grads = backbone_gradients(model, images, targets, aux_weight)
    return {stage: {**{k: float(g[k].norm()) for k in PARTS},
                    "cos_main_aux": _cos(g["main"], g["aux"])}
            for stage, g in grads.items()}


def mean_pairwise_cosine(vectors: list[torch.Tensor]) -> float:
    """Mean cosine similarity over all pairs of vectors (needs at least two)."""
    if len(vectors) < 2:
        raise ValueError("agreement needs at least two mini-batches")
    return sum(_cos(a, b) for a, b in itertools.combinations(vectors, 2)) / (
        len(vectors) * (len(vectors) - 1) / 2)


def gradient_agreement(model: nn.Module, batches, aux_weight: float = 0.25,
                       parts=("main", "total")) -> dict[str, dict[str, float]]:
    """Agreement between mini-batch gradients: ``{stage: {part: mean pairwise cosine}}``.

    ``batches`` is an iterable of ``(images, targets)`` (at least two). For every batch the
    backbone gradient is computed (:func:`backbone_gradients`); for each stage and each gradient
    ``part`` ("main": the main head alone, i.e. what plain GELAN gets; "total": with the auxiliary
    branch) the result is the mean cosine similarity between the gradients of all pairs of batches,
    plus ``"all"`` for the whole backbone as one vector.

    Reading (paper Sec. 4.1, Fig. 3): 1 means every batch asks for the same update, 0 means the
    batch gradients are unrelated (pure noise); PGI's "more reliable gradients" should raise it.
    """
    per_batch = [backbone_gradients(model, x, t, aux_weight) for x, t in batches]
    out = {}
    for stage in list(STAGES) + ["all"]:
        out[stage] = {}
        for part in parts:
            if stage == "all":
                vecs = [torch.cat([g[s][part] for s in STAGES]) for g in per_batch]
            else:
                vecs = [g[stage][part] for g in per_batch]
            out[stage][part] = mean_pairwise_cosine(vecs)
    return out


@torch.no_grad()
def copy_main_branch(src: nn.Module, dst: nn.Module) -> nn.Module:
    """Copy every main-branch tensor of ``src`` into ``dst``; returns ``dst``.

    Works between any two models of the same preset and knobs that differ only in ``pgi``
    (GELAN <-> YOLOv9, or two PGI variants): the auxiliary branch and auxiliary head are left as
    they are (:func:`yolov9lite.nn.models.main_branch_keys` says which keys are main branch).
    Afterwards the two models compute the same main-branch output, so any difference in their
    gradients, or in how they train, comes from the auxiliary branch alone.
    """
    src_state, dst_state = src.state_dict(), dst.state_dict()
    src_keys, dst_keys = main_branch_keys(src), main_branch_keys(dst)
    if set(src_keys) != set(dst_keys):
        missing = sorted(set(src_keys) ^ set(dst_keys))[:5]
        raise ValueError(f"main branches differ (e.g. {missing}): same preset and knobs needed")
    for common, k in dst_keys.items():
        dst_state[k].copy_(src_state[src_keys[common]])
    return dst


# --------------------------------------------------------------------------- gradient reliability
# "Reliable gradient" (paper Sec. 4.1) made operational, per training batch b of a data set:
#
# * cos(g_b, g_full): how well one batch's gradient points along the gradient of the whole
#   training set. g_full is the mean over the OTHER batches (leave-one-out), so a batch is never
#   compared with itself (with 8 batches, including it would add ~1/8 of self-agreement);
# * gradient SNR: |mean g|^2 / mean |g_b - mean g|^2, the energy of the common direction over that
#   of the batch-to-batch noise (a ratio, so the overall scale of a gradient does not matter);
# * one-step look-ahead: step the backbone along -g_b and score the result by the main head's
#   loss on held-out images. Both steps (main-only and main + auxiliary) get the same length, so
#   the look-ahead compares directions, not step sizes.
#
# "main" is the gradient plain GELAN receives; "total" adds PGI's auxiliary term (0.25 x the
# auxiliary head's loss). Both are computed on the same model and batch, so every comparison is
# paired per batch. Only the backbone is measured: it is where the auxiliary loss enters the main
# branch (neck and main head get no auxiliary gradient).


def batch_gradients(model: nn.Module, batches, aux_weight: float = 0.25,
                    dtype=torch.float64, mismatched: bool = False) -> dict[str, torch.Tensor]:
    """``{"main": (n_batches, P), "total": (n_batches, P)}``: the whole-backbone gradient of every
    batch, main-head part and main + auxiliary, stacked (``dtype``, float64 by default).
    ``mismatched`` adds ``"wrong"``: the main gradient with each image's boxes swapped for another
    image's (:func:`backbone_gradients`, same forward)."""
    rows = {"main": [], "total": [], **({"wrong": []} if mismatched else {})}
    for images, targets in batches:
        g = backbone_gradients(model, images, targets, aux_weight, mismatched)
        for part, vectors in rows.items():
            vectors.append(torch.cat([g[s][part] for s in STAGES]).to(dtype).cpu())
    return {part: torch.stack(v) for part, v in rows.items()}


def leave_one_out_cosines(grads: torch.Tensor) -> torch.Tensor:
    """(n,) cos(g_b, mean of the other batches' gradients) for each row b of ``grads`` (n >= 2)."""
    n = grads.shape[0]
    if n < 2:
        raise ValueError("leave-one-out agreement needs at least two batches")
    others = (grads.sum(0, keepdim=True) - grads) / (n - 1)
    return torch.nn.functional.cosine_similarity(grads, others, dim=1)


def gradient_snr(grads: torch.Tensor) -> float:
    """|mean g|^2 / mean_b |g_b - mean g|^2 over the rows of ``grads`` (n >= 2; unbiased noise
    energy, ddof 1). Above 1: the shared direction dominates a batch's gradient."""
    mean = grads.mean(0)
    noise = ((grads - mean) ** 2).sum(1).sum() / (grads.shape[0] - 1)
    return float(mean.pow(2).sum() / noise)


def snr_over_floor(grads: torch.Tensor) -> float:
    """n x :func:`gradient_snr` over the n rows of ``grads``: the SNR in units of its pure-noise
    floor. If the batches share no direction (their expected gradient is zero, as at a minimum of
    the training loss), the squared norm of their mean is noise alone, on average 1/n of a batch's
    noise energy, so the SNR sits at 1/n and this ratio at 1; ``n x SNR - 1`` estimates the
    shared direction's energy over the noise of the mean of n batches. Near 1, nothing computed
    from these gradients (agreement, SNR, look-ahead) can tell one gradient from another: the
    measurement sees only batch noise."""
    return grads.shape[0] * gradient_snr(grads)


def held_out_gradient(model: nn.Module, val_batches, dtype=torch.float64) -> torch.Tensor:
    """The whole-backbone gradient (flat, in :data:`STAGES` order like :func:`batch_gradients`) of
    the held-out main loss as training differentiates it: the mean over ``val_batches`` of each
    batch's main-head loss (box + cls + DFL, gains applied, not x batch size; the value of
    :func:`yolov9lite.study.paired.held_out_loss`), with the label assignment and the target
    scores detached as in the official loss (``utils/loss_tal_dual.py``). It is therefore not the
    derivative of the held-out loss *value*, whose targets move with the predictions (a finite
    difference of that value is rough: the top-k assignment jumps), but the held-out counterpart
    of the training gradient. Train-mode BatchNorm as in :func:`~yolov9lite.study.paired.
    held_out_loss` (:func:`batch_gradients`' ``main`` part of each held-out batch, over its size)."""
    main = batch_gradients(model, val_batches, aux_weight=0.0, dtype=dtype)["main"]
    sizes = torch.tensor([images.shape[0] for images, _ in val_batches], dtype=dtype)
    return (main / sizes[:, None]).mean(0)  # the official loss is x batch size


def gradient_reliability(model: nn.Module, batches, val_batches, score,
                         aux_weight: float = 0.25, controls: bool = False
                         ) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Per training batch, for the main and the total gradient (paired per batch):

    * ``cos_main``, ``cos_total``: cos(g_b, g_full), g_full the mean gradient of the *other*
      training batches (leave-one-out, :func:`leave_one_out_cosines`): does the batch ask for
      what the whole training set asks?
    * ``val_main``, ``val_total``: cos(g_b, g_held-out) (:func:`held_out_gradient`): does it point
      down the held-out loss? To first order a step of length s along -g_b changes the held-out
      loss by -s |g_held-out| cos(g_b, g_held-out), so at equal step length the direction with the
      larger cosine lowers it more: the one-step look-ahead, without the step. (A real step at the
      recipe's learning rate overshoots: 65 of the 120 downhill steps of notebook 04's run at
      commit 36f0a30 raised the held-out loss; and the held-out loss jumps along any step as its
      label assignment changes. A real look-ahead mostly measures that.)

    plus ``held_out_loss`` (``score(model)``, the level of the model). Without an auxiliary branch
    ``total`` is ``main`` exactly. ``controls`` adds the same two cosines of a known-worse gradient
    (notebook 04's positive control), ``cos_wrong`` and ``val_wrong``: the main gradient with each
    image's boxes swapped for another image's (:func:`mismatched_targets`, same forward), against
    the same g_full as ``cos_main`` and the same g_held-out. Returns (rows, the stacked gradients
    ``{"main", "total"[, "wrong"]}``)."""
    g = batch_gradients(model, batches, aux_weight, mismatched=controls)
    parts = ("main", "total", "wrong") if controls else ("main", "total")
    n = g["main"].shape[0]
    full = {"main": leave_one_out_cosines(g["main"]), "total": leave_one_out_cosines(g["total"])}
    if controls:  # against the images' own g_full, the one cos_main uses
        others = (g["main"].sum(0, keepdim=True) - g["main"]) / (n - 1)
        full["wrong"] = torch.nn.functional.cosine_similarity(g["wrong"], others, dim=1)
    g_val = held_out_gradient(model, val_batches)[None]
    held = {p: torch.nn.functional.cosine_similarity(g[p], g_val, dim=1) for p in parts}
    level = score(model)
    return [{"batch": b, **{f"cos_{p}": float(full[p][b]) for p in parts},
             **{f"val_{p}": float(held[p][b]) for p in parts}, "held_out_loss": level}
            for b in range(n)], g


def reliability_snr(grads: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{"snr_main", "snr_total"[, "snr_wrong"]}``: :func:`gradient_snr` of each stack of batch
    gradients that :func:`gradient_reliability` returns (one value per model: the SNR is a
    property of the set of batches, not of one batch)."""
    return {f"snr_{part}": gradient_snr(g) for part, g in grads.items()}


# --------------------------------------------------------------------------- Figure 7: object focus
# Figure 7 of the paper shows PAN feature maps of GELAN and GELAN + PGI and says the PGI model is
# "more capable of focusing on the target object". Object focus puts a number on that picture.


def box_mask(boxes, h: int, w: int) -> torch.Tensor:
    """(h, w) bool mask of the union of ``boxes`` (rows ``cx, cy, bw, bh`` normalised to 0-1),
    each box covering every map cell it touches."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    for cx, cy, bw, bh in boxes:
        x0, x1 = math.floor((cx - bw / 2) * w), math.ceil((cx + bw / 2) * w)
        y0, y1 = math.floor((cy - bh / 2) * h), math.ceil((cy + bh / 2) * h)
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return mask


def focus_ratio(energy: torch.Tensor, mask: torch.Tensor) -> float:
    """(share of ``energy`` inside ``mask``) / (share of the area inside it); 1 = no preference.
    NaN when the mask is empty or covers everything."""
    area = float(mask.float().mean())
    if not 0 < area < 1:
        return float("nan")
    return float(energy[mask].sum() / energy.sum()) / area


def object_focus(feat: torch.Tensor, targets: torch.Tensor, null_draws: int = 20,
                 seed: int = 0) -> list[dict]:
    """Per image of a feature map ``feat`` (B, C, h, w): ``focus`` = :func:`focus_ratio` of the
    channel-mean |activation| inside the ground-truth boxes (``targets`` rows ``[image, class, cx,
    cy, w, h]``), and ``null`` = the same for boxes of the same sizes placed uniformly at random
    (mean over ``null_draws`` placements, seeded): what a map with no knowledge of the objects
    would score, edge effects included."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(feat.shape[0]):
        energy = feat[i].abs().mean(0).double()
        h, w = energy.shape
        boxes = targets[targets[:, 0] == i][:, 2:6].tolist()
        focus = focus_ratio(energy, box_mask(boxes, h, w))
        nulls = []
        for _ in range(null_draws):
            moved = [(bw / 2 + float(torch.rand(1, generator=g)) * max(1 - bw, 0),
                      bh / 2 + float(torch.rand(1, generator=g)) * max(1 - bh, 0), bw, bh)
                     for _, _, bw, bh in boxes]
            nulls.append(focus_ratio(energy, box_mask(moved, h, w)))
        nulls = [v for v in nulls if math.isfinite(v)]
        rows.append({"image": i, "focus": focus,
                     "null": sum(nulls) / len(nulls) if nulls else float("nan")})
    return rows
