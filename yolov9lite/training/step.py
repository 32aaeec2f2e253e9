"""One training step, the reference: forward, loss, backward, clip, optimizer step.

:func:`reference_step` is the whole of what a step of YOLOv9 training does to the weights (the
body of the batch loop of official ``train_dual.py`` without the machinery around it). The
engine's step (:func:`yolov9lite.training.engine.train_step` and
:func:`~yolov9lite.training.engine.optimizer_step`) calls the same pieces, :func:`forward_loss`
and :func:`clip_gradients`, and adds around them what a long run on real hardware needs: autocast
and a gradient scaler (the scaled loss goes backward, ``unscale_`` runs before the clip), a
non-finite guard between loss and backward that skips the batch on all DDP ranks alike,
gradient accumulation up to the nominal batch of 64 (so it zeroes the gradients *after* its step;
with a step every batch that is the same; under DDP the batches between two steps run in
``no_sync``), a step that never lets a non-finite gradient reach the weights, and the EMA.
With none of those (CPU, float32, accumulation 1, no EMA) both give identical weights
(``tests/test_train_step.py``). The graph-capturable step (:mod:`yolov9lite.training.graphstep`)
calls :func:`forward_loss` too; the paired experiments (:mod:`yolov9lite.study.paired`) train
with :func:`reference_step`.
"""
from __future__ import annotations

import torch
from torch import nn

MAX_GRAD_NORM = 10.0  # official clip_grad_norm_ max_norm (applied after unscaling)


def forward_loss(model: nn.Module, loss_fn, images: torch.Tensor, targets):
    """Forward in train mode, then the loss: ``(loss, items)``. The model returns the main head's
    maps, and with PGI the auxiliary head's too (paper Sec. 4.1); the loss is TAL-assigned box
    (CIoU) + cls (BCE) + DFL, main + 0.25 x auxiliary, x batch size (Sec. 5.1)."""
    preds = model(images)
    return loss_fn(preds, targets)


def clip_gradients(parameters, max_norm: float = MAX_GRAD_NORM) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm`` (official
    ``clip_grad_norm_`` at 10; parameters without a gradient are passed over). Returns the norm
    before clipping, which the engine's guard reads."""
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def reference_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn,
                   images: torch.Tensor, targets: torch.Tensor,
                   max_grad_norm: float = MAX_GRAD_NORM) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on one batch: ``images`` float (B, 3, H, W) in [0, 1], ``targets`` (N, 6) rows
    ``(image index, class, cx, cy, w, h)`` normalised. Returns the detached loss and its items
    (box, cls, dfl)."""
    loss, items = forward_loss(model, loss_fn, images, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # with PGI the auxiliary loss reaches the shared backbone along its own path
    clip_gradients(model.parameters(), max_grad_norm)  # the official clip, on the true gradient
    optimizer.step()  # SGD with Nesterov momentum in the recipe
    return loss.detach(), items.detach()


__all__ = ["MAX_GRAD_NORM", "clip_gradients", "forward_loss", "reference_step"]
