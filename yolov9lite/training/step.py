"""One training step, the reference: forward, loss, backward, optimizer step.

This is the whole of what a step of YOLOv9 training does to the weights (official
``train_dual.py``, the body of its batch loop, without the machinery around it)::

    preds = model(images)                # train mode: the main head's maps, and with PGI the
                                         # auxiliary head's too (paper Sec. 4.1)
    loss, items = loss_fn(preds, targets)  # TAL-assigned box (CIoU) + cls (BCE) + DFL losses,
                                         # main + 0.25 x auxiliary, x batch size (Sec. 5.1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()                      # PGI: the auxiliary loss's gradient reaches the shared
                                         # backbone along its own path
    clip_grad_norm_(params, 10.0)        # the official clip, on the true gradient
    optimizer.step()                     # SGD with Nesterov momentum in the recipe

:func:`reference_step` is exactly that. The engine's step
(:func:`yolov9lite.training.engine.train_step` and
:func:`~yolov9lite.training.engine.optimizer_step`) is this step plus what a long run on real
hardware needs: mixed precision (autocast, a gradient scaler for fp16), gradient accumulation
up to the nominal batch of 64, a guard that skips non-finite losses on all DDP ranks alike,
fused optimizers that skip a non-finite step without a host sync, and the EMA of the weights.
With none of those (CPU, float32, accumulation 1, no EMA) both give identical weights
(``tests/test_train.py`` checks it). The paired experiments of :mod:`yolov9lite.study.paired`
train with this step.
"""
from __future__ import annotations

import torch
from torch import nn

MAX_GRAD_NORM = 10.0  # official clip_grad_norm_ max_norm (applied after unscaling)


def reference_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn,
                   images: torch.Tensor, targets: torch.Tensor,
                   max_grad_norm: float = MAX_GRAD_NORM) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on one batch: ``images`` float (B, 3, H, W) in [0, 1], ``targets`` (N, 6) rows
    ``(image index, class, cx, cy, w, h)`` normalised. Returns the detached loss and its items
    (box, cls, dfl)."""
    preds = model(images)
    loss, items = loss_fn(preds, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach(), items.detach()


__all__ = ["MAX_GRAD_NORM", "reference_step"]
