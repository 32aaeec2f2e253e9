"""Optimizer, learning-rate / momentum schedule and EMA of the YOLOv9 recipe.

Everything here is the official ``hyp.scratch-high.yaml`` recipe of ``train.py`` / ``train_dual.py``,
written as small pure functions so that a notebook can plot the schedule without training:

* **SGD, Nesterov momentum 0.937**, three parameter groups *in this order* (the order matters
  because warm-up treats group 0 differently):

  0. every bias (conv and BatchNorm), no weight decay;
  1. every other weight (the convolution kernels), weight decay ``5e-4 * batch * accumulate / 64``;
  2. the BatchNorm (any ``*Norm*`` layer) scale weights, no weight decay.

* **Nominal batch 64.** Gradients are accumulated over ``accumulate = max(round(64 / batch), 1)``
  batches before each step, so a step always sees about 64 images whatever ``--batch`` is. Because
  the loss is a *sum* over images (it is multiplied by the batch size, see :mod:`yolov9lite.training.loss`),
  ``lr0 = 0.01`` needs no rescaling when the batch changes; the weight decay is scaled so that its
  pull per step matches that of the nominal batch.
* **Per-epoch LR factor** ``lf(e)``: linear from 1 to ``lrf`` (the public recipe, for every size),
  or a cosine from 1 to ``lrf`` (``cos_lr=True``). After warm-up, ``lr = lr0 * lf(e - 1)`` during
  epoch ``e``: the official ``LambdaLR`` is stepped at the end of each epoch (see :func:`schedule`).
* **Warm-up** for the first ``nw = max(round(warmup_epochs * batches_per_epoch), 100)`` batches:
  the bias group's lr falls from ``warmup_bias_lr = 0.1`` to ``lr0 * lf(e)``, the other groups' lr
  rises from 0 to it, momentum rises from 0.8 to 0.937, and ``accumulate`` rises from 1 to
  ``64 / batch``. (The paper's "only the bias is updated at first" is this: weights start at lr 0.)
* **EMA** of all floating-point state (parameters and BatchNorm statistics) with decay
  ``0.9999 * (1 - exp(-k / 2000))`` after the ``k``-th optimizer step: the ramp makes the early
  average follow the fast-changing weights instead of remembering the random initialisation.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..utils.accel import fused_sgd_available

GROUP_NAMES = ("bias", "weight_decay", "bn_weight")  # order of the optimizer's param groups


# --------------------------------------------------------------------------- optimizer
def param_groups(model: nn.Module) -> tuple[list, list, list]:
    """(biases, decayed weights, norm-layer weights) of the trainable parameters.

    Frozen parameters (the DFL's fixed 0..15 projection) are left out: SGD would skip them anyway.
    Every trainable parameter lands in exactly one group (checked), so a new layer type cannot be
    silently left out of training.
    """
    biases, decay, norm_weights = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "bias":
                biases.append(p)
            elif "Norm" in type(module).__name__:  # BatchNorm2d, SyncBatchNorm, GroupNorm, ...
                norm_weights.append(p)
            else:
                decay.append(p)
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(biases) + len(decay) + len(norm_weights) == n_trainable, "parameter left ungrouped"
    return biases, decay, norm_weights


def build_optimizer(model: nn.Module, lr0: float = 0.01, momentum: float = 0.937,
                    weight_decay: float = 5e-4, fused: bool | None = None) -> torch.optim.SGD:
    """SGD with Nesterov momentum and the three groups of the module docstring.

    ``weight_decay`` must already be scaled to the batch (see :func:`scaled_weight_decay`).
    ``fused``: one fused kernel per step instead of PyTorch's multi-tensor ("foreach") one; the
    same update up to float rounding. None = fused where this PyTorch has it for the model's
    device. The fused kernel can also skip a step on the device (``found_inf``), which the
    training loop uses to avoid a host sync; for that its momentum buffers start at zero here
    (``0.937 * 0 + g == g``: the same first step as SGD's lazily created buffers), so that a
    skipped *first* step does not leave them uninitialised.
    """
    biases, decay, norm_weights = param_groups(model)
    if fused is None:
        fused = fused_sgd_available(next(model.parameters()).device)
    optimizer = torch.optim.SGD([
        {"params": biases, "weight_decay": 0.0, "name": GROUP_NAMES[0]},
        {"params": decay, "weight_decay": weight_decay, "name": GROUP_NAMES[1]},
        {"params": norm_weights, "weight_decay": 0.0, "name": GROUP_NAMES[2]},
    ], lr=lr0, momentum=momentum, nesterov=True, fused=fused or None)
    if fused:
        for group in optimizer.param_groups:
            for p in group["params"]:
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format)
    return optimizer


def accumulate_steps(batch_size: int, nominal_batch: int = 64) -> int:
    """Batches per optimizer step after warm-up: ``max(round(64 / batch), 1)``."""
    return max(round(nominal_batch / batch_size), 1)


def scaled_weight_decay(weight_decay: float, batch_size: int, nominal_batch: int = 64) -> float:
    """``weight_decay * batch * accumulate / nominal_batch``: the decay is applied once per step,
    and a step covers ``batch * accumulate`` images instead of exactly 64."""
    return weight_decay * batch_size * accumulate_steps(batch_size, nominal_batch) / nominal_batch


# --------------------------------------------------------------------------- schedule
def lr_factor(epoch: int, epochs: int, lrf: float = 0.01, cos_lr: bool = False) -> float:
    """``lf(e)``: 1 at epoch 0 down to ``lrf`` at epoch ``epochs`` (linear, or cosine)."""
    if cos_lr:
        return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return (1 - epoch / epochs) * (1.0 - lrf) + lrf


def warmup_iters(batches_per_epoch: int, warmup_epochs: float = 3.0) -> int:
    """``nw``: warm-up length in batches, at least 100 (official). 0 disables warm-up."""
    if warmup_epochs <= 0:
        return 0
    return max(round(warmup_epochs * batches_per_epoch), 100)


def short_run_warning(epochs: int, batches_per_epoch: int, warmup_batches: int) -> str | None:
    """The warning for a run that ends before its warm-up does (None otherwise). With the
    100-batch floor of :func:`warmup_iters` the warm-up is many epochs long on a small dataset,
    and a run inside it never trains at ``lr0``: it learns almost nothing."""
    total = epochs * batches_per_epoch
    if warmup_batches == 0 or warmup_batches < total:
        return None
    return (f"the run ({epochs} epochs x {batches_per_epoch} batches = {total} batches) is not "
            f"longer than its warm-up ({warmup_batches} batches: --warmup-epochs x batches per "
            "epoch, at least 100 batches), so the learning rate never reaches --lr0 and the model "
            "will learn little; train for more epochs or set --warmup-epochs 0")


def schedule(ni: int, epoch: int, *, epochs: int, nw: int, batches_per_epoch: int,
             batch_size: int, lr0: float = 0.01, lrf: float = 0.01, cos_lr: bool = False,
             momentum: float = 0.937, warmup_momentum: float = 0.8, warmup_bias_lr: float = 0.1,
             nominal_batch: int = 64) -> dict:
    """The optimizer settings for global batch ``ni`` (counted from the start of training) in
    ``epoch``: ``{"lr": [lr of group 0, 1, 2], "momentum": m, "accumulate": k}``.

    A pure function of its arguments, so a resumed run (or a notebook) gets the same numbers.

    Which epoch's factor applies after warm-up follows the official ``train_dual.py``, where a
    ``LambdaLR`` scheduler is stepped at the *end* of every epoch (and ``scheduler.last_epoch =
    start_epoch - 1``): during epoch ``e`` the lr is ``lr0 * lf(e - 1)``, one epoch behind.
    Only the epoch in which warm-up ends keeps the warm-up's target ``lr0 * lf(e)`` (the official
    warm-up interpolates towards ``lf(epoch)`` and nothing resets it before the epoch ends).
    """
    accumulate = accumulate_steps(batch_size, nominal_batch)
    if ni > nw:  # after warm-up (also when nw == 0)
        warmup_ended_this_epoch = batches_per_epoch * epoch <= nw
        factor_epoch = epoch if warmup_ended_this_epoch else epoch - 1
        base = lr0 * lr_factor(factor_epoch, epochs, lrf, cos_lr)
        return {"lr": [base] * 3, "momentum": momentum, "accumulate": accumulate}
    base = lr0 * lr_factor(epoch, epochs, lrf, cos_lr)
    xp = [0, nw]
    bias_lr = float(np.interp(ni, xp, [warmup_bias_lr, base]))
    lr = float(np.interp(ni, xp, [0.0, base]))
    return {
        "lr": [bias_lr, lr, lr],
        "momentum": float(np.interp(ni, xp, [warmup_momentum, momentum])),
        "accumulate": max(1, int(np.interp(ni, xp, [1, nominal_batch / batch_size]).round())),
    }


def apply_schedule(optimizer: torch.optim.Optimizer, settings: dict) -> None:
    for group, lr in zip(optimizer.param_groups, settings["lr"]):
        group["lr"] = lr
        group["momentum"] = settings["momentum"]


# --------------------------------------------------------------------------- EMA
class ModelEMA:
    """Exponential moving average of a model's floating-point state (official ``ModelEMA``).

    ``ema.module`` is an eval-mode copy that is validated every epoch and saved as the model of
    the checkpoints. ``update(model)`` is called after each optimizer step.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0,
                 updates: int = 0):
        model = getattr(model, "module", model)  # unwrap DDP
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        model = getattr(model, "module", model)
        self.updates += 1
        d = self.current_decay()
        source = model.state_dict()
        average = self.module.state_dict()
        names = [k for k, v in average.items()
                 if v.dtype.is_floating_point]  # skips BatchNorm's integer batch counter
        ema = [average[k] for k in names]
        # multi-tensor kernels instead of a loop over tensors, with the official arithmetic
        # per element (official utils/torch_utils.py ModelEMA: v *= d; v += (1 - d) * x): the
        # product (1 - d) * x is rounded on its own before the add. A fused add_(x, alpha=1 - d)
        # rounds once and differs in the last bit.
        torch._foreach_mul_(ema, d)
        torch._foreach_add_(ema, torch._foreach_mul([source[k].detach() for k in names], 1 - d))

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates,
                "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay, self.tau = float(state["decay"]), float(state["tau"])
