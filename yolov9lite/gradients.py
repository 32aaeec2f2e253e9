"""Measuring the gradient information that reaches the backbone (paper Sec. 4.1, Fig. 3).

The PGI argument of the paper (Section 4.1, Figure 3) is about *gradients*: deep supervision and
the auxiliary reversible branch exist so that "reliable gradient information" reaches the main
branch's backbone, and the paper judges this by the final AP and by pictures (Figure 7). This
module turns the claim into numbers that can be computed for one model and a few batches:

* :func:`backbone_gradients`: the gradient of the training loss with respect to the parameters of
  each backbone stage, split exactly into the part that comes from the **main** head's loss and
  the part that comes from the **auxiliary** head's loss (``total = main + aux``; the auxiliary
  part is the official ``0.25 x`` auxiliary loss, :mod:`yolov9lite.loss`).
* :func:`backbone_gradient_norms`: their L2 norms per stage, and the cosine between the two parts
  (does the auxiliary branch push the backbone the same way as the main head, or somewhere else?).
* :func:`gradient_agreement`: the mean pairwise cosine similarity between the backbone gradients of
  different mini-batches. High agreement means every batch points the weights the same way,
  i.e. the gradient carries information about the task rather than about the particular batch:
  our operational reading of the paper's "reliable gradient".
* :func:`copy_main_branch`: give several PGI variants exactly the same main-branch weights, so
  that the only difference between them is the auxiliary branch.

The measurements never change the model: BatchNorm running statistics, which a train-mode forward
updates, are restored afterwards, and ``.grad`` fields are not touched (``torch.autograd.grad``).

Backbone stages are named by resolution level as in :class:`yolov9lite.models.Backbone`: ``L1``
(first conv, stride 2), ``L2`` (second conv + stem, stride 4), ``B3``, ``B4``, ``B5`` (downsampler +
GELAN unit, strides 8, 16, 32). They are the stages of ``model.backbone``, the backbone every PGI
variant attaches to (for GELAN-E, its first backbone).
"""
from __future__ import annotations

import contextlib
import itertools

import torch
from torch import nn

from .loss import DetectionLoss

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


def backbone_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                       aux_weight: float = 0.25) -> dict[str, dict[str, torch.Tensor]]:
    """``{stage: {"main": g, "aux": g, "total": g}}``: flat gradient vectors of one batch.

    ``images`` float (B, 3, H, W) in [0, 1], ``targets`` (N, 6) as the loss takes them. The model
    runs in train mode (as in training: batch statistics in BatchNorm, both heads); its buffers
    and training flag are restored afterwards. ``main`` is the gradient of the main head's loss,
    ``aux`` that of ``aux_weight`` x the auxiliary head's loss (zero without a PGI branch), and
    ``total = main + aux`` is the gradient of the training loss of :mod:`yolov9lite.loss`
    (paper Sec. 4.1: PGI adds the auxiliary term; Fig. 3 (b)-(d) differ only in where it comes from).
    """
    stages = backbone_stages(model)
    params = [p for ps in stages.values() for p in ps]
    was_training = model.training
    model.train()
    try:
        with preserved_buffers(model):
            main, aux = _head_losses(model, model(images), targets, aux_weight)
            g_main = torch.autograd.grad(main, params, retain_graph=aux is not None,
                                         allow_unused=True)
            if aux is not None:
                g_aux = torch.autograd.grad(aux, params, allow_unused=True)
            else:
                g_aux = [None] * len(params)
    finally:
        model.train(was_training)

    def flat(grads, ps):
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, ps)])

    out, i = {}, 0
    for stage, ps in stages.items():
        m, a = flat(g_main[i:i + len(ps)], ps), flat(g_aux[i:i + len(ps)], ps)
        out[stage] = {"main": m, "aux": a, "total": m + a}
        i += len(ps)
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
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
    (GELAN <-> YOLOv9, or two PGI variants): the auxiliary branch (``aux.*``) and auxiliary head
    (``head.aux.*``) are left as they are, and the main head is ``head.*`` in a single-head model
    and ``head.main.*`` in a dual-head one. Afterwards the two models compute the same main-branch
    output, so any difference in their gradients comes from the auxiliary branch alone.
    """
    def main_keys(model):
        dual = getattr(model, "has_aux", False)
        keys = {}
        for k in model.state_dict():
            if k.startswith("aux.") or k.startswith("head.aux."):
                continue
            common = k.replace("head.main.", "head.", 1) if dual else k
            keys[common] = k
        return keys

    src_state, dst_state = src.state_dict(), dst.state_dict()
    src_keys, dst_keys = main_keys(src), main_keys(dst)
    if set(src_keys) != set(dst_keys):
        missing = sorted(set(src_keys) ^ set(dst_keys))[:5]
        raise ValueError(f"main branches differ (e.g. {missing}): same preset and knobs needed")
    for common, k in dst_keys.items():
        dst_state[k].copy_(src_state[src_keys[common]])
    return dst
