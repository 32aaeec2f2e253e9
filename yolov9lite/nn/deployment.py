"""From a training model to the inference model (paper Section 4.1: PGI costs nothing at inference).

:func:`deploy` does what the official ``tools/reparameterization.ipynb`` plus ``model.fuse()`` do:

1. **Remove the auxiliary branch and head.** A yolov9-X model becomes a gelan-X model holding the
   same main-branch weights (the official "converted" checkpoints). GELAN-E's second backbone is
   *not* auxiliary: it stays.
2. **Re-parameterise** every :class:`~yolov9lite.nn.blocks.RepConvN` (3x3 + 1x1 branches) into one
   3x3 convolution.
3. **Fold BatchNorm** into the preceding convolution.

In eval mode the deployed model's output equals the original main-branch output up to float
rounding (tested at relative error 1e-5 in float32).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .blocks import Conv, RepConvN
from .models import DetectionModel, main_branch_keys


def strip_auxiliary(model: DetectionModel) -> DetectionModel:
    """A new model without the PGI branch (pgi='none'), with the main-branch weights copied."""
    if not model.has_aux:
        return copy.deepcopy(model)
    device = next(model.parameters()).device
    with torch.device(device):  # build where the source lives (meta: no memory, no init cost)
        plain = DetectionModel(model.cfg.without_pgi(), model.nc, name=_plain_name(model.name))
    source = model.state_dict()
    state = {plain_key: source[key] for plain_key, key in main_branch_keys(model).items()}
    # On the meta device (shape-only models used for counting) tensors cannot be copied, only
    # assigned; real tensors are copied so the input model is never shared or modified.
    plain.load_state_dict(state, strict=True, assign=device.type == "meta")
    return plain


def _plain_name(name: str) -> str:
    return name.replace("yolov9-", "gelan-", 1) if name.startswith("yolov9-") else f"{name}-deploy"


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """Merge RepConvN branches and fold every BatchNorm, in place; returns the model."""
    for module in model.modules():
        if isinstance(module, RepConvN):
            module.fuse()
    for module in model.modules():
        if isinstance(module, Conv):
            module.fuse()
    return model


def deploy(model: DetectionModel) -> DetectionModel:
    """The inference model: auxiliary branch removed, RepConvN merged, BN folded, eval mode.

    The input model is left unchanged.
    """
    out = strip_auxiliary(model)
    out.eval()
    fuse(out)
    for p in out.parameters():
        p.requires_grad_(False)
    out.deployed = True
    return out
