"""Ablation variants and the paired experiment of paper Tables 4 and 5 (notebooks 04 and 05).

A *variant* is a dict of model knobs (fields of :class:`yolov9lite.nn.models.ModelConfig`, e.g.
``pgi="ds"``) plus, optionally, training options (e.g. ``lead_head_guided=True``, Table 4's LHG);
:data:`VARIANTS` holds the PGI variants under their paper names and :func:`split_variant` separates
knobs from options.

**The paired experiment** (:func:`paired_runs`): for each seed every variant starts from identical
main-branch weights and sees identical batches in identical order; the outcome is the main head's
held-out loss (box / cls / DFL, :func:`held_out_loss`), compared per seed with
:func:`paired_differences`. A short plain SGD loop (:func:`train_steps`) on batches cached once
(:func:`cached_batches`) keeps dozens of runs inside a notebook's CPU budget; :func:`width_knobs`
makes a thinner main branch for the "lightweight models" question. The AP grid, the statistics
over seeds and the tables in the paper's layout are in :mod:`yolov9lite.study.ablation`.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from ..data import build_dataloader
from ..evaluation.coco_eval import evaluate
from ..nn import models as _models
from ..nn.gelan import round_up8
from ..training.loss import DetectionLoss
from ..training.step import reference_step
from .gradients import copy_main_branch, preserved_buffers

METRICS = ("AP", "AP50", "AP75", "APS", "APM", "APL")

# Paper names -> knobs. "PFH" (Table 4) is the "DS" of Table 5: classic deep supervision.
VARIANTS: dict[str, dict] = {
    "none": {"pgi": "none"},
    "PFH": {"pgi": "ds"},
    "FPN": {"pgi": "fpn"},
    "PAN": {"pgi": "pan"},
    "ICN": {"pgi": "icn"},
    "LHG-ICN": {"pgi": "icn", "lead_head_guided": True},
    "neck-ICN": {"pgi_neck": "icn"},  # Table 4: G_backbone -, G_neck ICN
    "FPN+neck-ICN": {"pgi": "fpn", "pgi_neck": "icn"},  # Table 4: G_backbone FPN, G_neck ICN
}
TRAIN_OPTIONS = ("lead_head_guided",)  # variant keys that go to train(), not to the model


def split_variant(spec: dict) -> tuple[dict, dict]:
    """(model knobs, train options) of one variant spec; unknown keys raise ValueError."""
    fields = {f.name for f in dataclasses.fields(_models.ModelConfig)}
    knobs = {k: v for k, v in spec.items() if k in fields}
    opts = {k: v for k, v in spec.items() if k in TRAIN_OPTIONS}
    unknown = set(spec) - set(knobs) - set(opts)
    if unknown:
        raise ValueError(f"unknown variant option(s) {sorted(unknown)}: use ModelConfig fields "
                         f"or {TRAIN_OPTIONS}")
    return knobs, opts


def percent_or_nan(value) -> float:
    """A COCO metric (fraction, -1 if undefined) in %, NaN when undefined or missing."""
    if value is None or float(value) < 0:
        return float("nan")
    return 100.0 * float(value)


# --------------------------------------------------------------------------- the paired experiment
# The AP grid (yolov9lite.study.ablation.run_grid) needs long runs before any variant detects anything.
# The paired experiment below asks the same question (does the auxiliary branch make the *main*
# branch learn better?) with a continuous metric and a design that removes most of the noise:
#
# * every variant of one seed starts from the SAME main-branch weights (copied from one plain GELAN
#   model, :func:`yolov9lite.study.gradients.copy_main_branch`): only the auxiliary branch differs;
# * every variant sees the SAME batches in the SAME order (cached in memory once, no augmentation);
# * the result of one seed is the held-out loss of the main head after ``steps`` SGD steps, split
#   into its box / cls / DFL parts (paper Sec. 4: the loss of ``loss_tal_dual.py``, main head only);
# * the comparison is the per-seed *difference* to the baseline, with a bootstrap interval over
#   seeds (:func:`yolov9lite.study.claims.paired_claim`).
#
# Training is a short plain loop (forward, loss, SGD step; no EMA, no validation), so that dozens of
# runs fit into a notebook's two CPU minutes. It is not the paper's recipe; it isolates the one thing
# Tables 4-5 vary, the auxiliary supervision.

LOSS_PARTS = ("loss", "box", "cls", "dfl")  # held-out main-head loss and its parts (gains applied)


def width_knobs(name: str = "gelan-nano", factor: float = 1.0) -> dict:
    """Model knobs that scale every width of preset ``name`` by ``factor`` (rounded up to a multiple
    of 8, the official builder's rule): e.g. ``factor=0.5`` gives a thin, "lightweight" main branch
    with the same topology and depth. ``factor=1`` returns ``{}`` (the preset itself)."""
    if factor == 1.0:
        return {}
    cfg = _models.PRESETS[name]

    def w(c: int) -> int:
        return max(8, round_up8(round(c * factor)))

    def pair(p: tuple[int, int]) -> tuple[int, int]:
        return w(p[0]), w(p[1])

    return {"conv0": w(cfg.conv0), "conv1": w(cfg.conv1),
            "stem": (cfg.stem[0], w(cfg.stem[1]), w(cfg.stem[2])),
            "backbone_down": tuple(w(c) for c in cfg.backbone_down),
            "backbone": tuple(pair(u) for u in cfg.backbone), "spp": pair(cfg.spp),
            "n4": pair(cfg.n4), "p3": pair(cfg.p3), "pan_down": pair(cfg.pan_down),
            "p4": pair(cfg.p4), "p5": pair(cfg.p5)}


def cached_batches(data_cfg, split: str, imgsz: int, batch_size: int, device="cpu",
                   limit: int = 0) -> list[tuple]:
    """Every batch of ``split``, without augmentation, in file order, held in memory:
    ``[(images float (B, 3, H, W) in [0, 1] on device, targets (N, 6) on the CPU), ...]``
    (``limit`` > 0 keeps the first ``limit`` batches). All variants reuse the same tensors."""

    loader = build_dataloader(data_cfg, split, imgsz, batch_size, 0, augment=False, rect=False,
                              shuffle=False)
    out = []
    for images, targets, _ in loader:
        out.append((images.to(device).float().div_(255), targets))
        if limit and len(out) == limit:
            break
    return out


def main_head_maps(model, images):
    """The MAIN head's raw train-mode maps, without running the auxiliary branch at all (for a
    held-out score the auxiliary half would only cost time)."""
    f = model.forward_features(images, with_aux=False)
    head = model.head.main if getattr(model, "has_aux", False) else model.head
    return head.forward_maps([f["P3"], f["P4"], f["P5"]])


def held_out_loss(model, batches) -> dict[str, float]:
    """Mean main-head loss over ``batches`` (``{"loss", "box", "cls", "dfl"}``).

    BatchNorm uses batch statistics, as in training (after a few dozen steps the running averages,
    momentum 0.03, are still mostly their initial values); buffers are restored afterwards.
    """
    was = model.training
    model.train()
    total = None
    with torch.no_grad(), preserved_buffers(model):
        head = model.head.main if getattr(model, "has_aux", False) else model.head
        loss_fn = DetectionLoss(head)
        for images, targets in batches:
            items = loss_fn(main_head_maps(model, images), targets)[1].double().cpu()
            total = items if total is None else total + items
    model.train(was)
    box, cls, dfl = (float(v) / len(batches) for v in total)
    return {"loss": box + cls + dfl, "box": box, "cls": cls, "dfl": dfl}


def batch_order(n_batches: int, steps: int, seed: int) -> list[int]:
    """Indices of the batches seen at each step: epoch after epoch, each a seeded permutation."""
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < steps:
        order += torch.randperm(n_batches, generator=g).tolist()
    return order[:steps]


def train_steps(model, batches, order, lr: float = 0.01, momentum: float = 0.9,
                lead_head_guided: bool = False, max_grad_norm: float = 10.0,
                on_step: Callable | None = None, optimizer: Callable | None = None):
    """Plain SGD (Nesterov) on the training loss (main + 0.25 auxiliary, :mod:`yolov9lite.training.loss`),
    one step (:func:`yolov9lite.training.step.reference_step`) per entry of ``order``; gradient
    clipping at 10 as the official trainer does.
    The loss is the official one, x batch size; ``lr`` applies to it as in the recipe.
    ``optimizer(params)`` replaces the SGD (``lr``/``momentum`` are then unused), e.g. AdamW in
    :func:`yolov9lite.study.gelan_study.adamw_steps`."""
    loss_fn = DetectionLoss(model, lead_head_guided=lead_head_guided)
    opt = (optimizer(model.parameters()) if optimizer is not None else
           torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0))
    model.train()
    for step, i in enumerate(order):
        images, targets = batches[i]
        reference_step(model, opt, loss_fn, images, targets, max_grad_norm)
        if on_step is not None:
            on_step(step, model)
    return model


def paired_runs(model: str, variants: dict[str, dict], seeds, train_batches, val_batches,
                num_classes: int, steps: int, lr: float = 0.01, momentum: float = 0.9,
                knobs: dict | None = None, setting: str = "", evals: int = 1, device="cpu",
                ap_data=None, ap_imgsz: int = 640,
                log: Callable[[str], None] | None = None) -> list[dict]:
    """One row per (seed, variant): the held-out main-head loss after training ``steps`` steps.

    For each seed a plain GELAN model (``model`` + ``knobs``) is built with that seed; every variant
    (``{label: spec}``, see :data:`VARIANTS`) is built, its main branch overwritten with that
    model's weights, and trained on ``train_batches`` in the seed's batch order. With ``evals`` > 1
    the held-out loss is measured at ``evals`` evenly spaced points of the second half of the run
    and averaged (a smoother summary of where the run ends than its very last step). Rows carry
    ``setting`` (e.g. a width label), ``variant``, ``seed``, :data:`LOSS_PARTS`, the loss before
    training (``loss0``, equal for all variants of a seed by construction) and ``cpu_s``.
    With ``ap_data`` (a data config) the trained main branch is also scored with COCO metrics
    (:func:`yolov9lite.evaluation.coco_eval.evaluate`, eval mode: needs runs long enough for BatchNorm's
    running statistics to settle, i.e. GPU scale) and the rows get :data:`METRICS` in %.
    """
    knobs = dict(knobs or {})
    checkpoints = sorted({steps - 1 - round(i * (steps / 2) / evals) for i in range(evals)})
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        reference = _models.build_model(model, num_classes=num_classes, **knobs).to(device)
        order = batch_order(len(train_batches), steps, seed)
        for label, spec in variants.items():
            vknobs, opts = split_variant(spec)
            t0 = time.process_time()
            torch.manual_seed(seed + 10_000)  # the auxiliary branch's own initialisation
            net = _models.build_model(model, num_classes=num_classes, **{**knobs, **vknobs})
            net = copy_main_branch(reference, net.to(device))
            loss0 = held_out_loss(net, val_batches)["loss"]
            measured: list[dict] = []

            def measure(step, m, measured=measured):
                if step in checkpoints:
                    measured.append(held_out_loss(m, val_batches))

            train_steps(net, train_batches, order, lr, momentum, on_step=measure, **opts)
            mean = {k: sum(d[k] for d in measured) / len(measured) for k in LOSS_PARTS}
            row = {"setting": setting, "variant": label, "seed": seed, "loss0": loss0, **mean,
                   "cpu_s": time.process_time() - t0}
            if ap_data is not None:
                metrics = evaluate(net, ap_data, imgsz=ap_imgsz, batch_size=32, workers=4)
                row.update({m: percent_or_nan(metrics.get(m)) for m in METRICS})
            rows.append(row)
            if log:
                log(f"{setting:6s} {label:8s} seed {seed}: held-out main loss {loss0:.3f} -> "
                    f"{row['loss']:.3f} ({row['cpu_s']:.1f} s CPU)")
    return rows


def paired_differences(rows: list[dict], variant: str, baseline: str = "none",
                       part: str = "loss", setting: str | None = None):
    """Per seed: ``baseline - variant`` of ``part`` (positive = the variant's main head is better),
    as a numpy array in seed order; only rows of ``setting`` when given."""
    sel = [r for r in rows if setting is None or r["setting"] == setting]
    base = {r["seed"]: r[part] for r in sel if r["variant"] == baseline}
    var = {r["seed"]: r[part] for r in sel if r["variant"] == variant}
    seeds = sorted(set(base) & set(var))
    if not seeds:
        raise ValueError(f"no seed has both {baseline!r} and {variant!r}")
    return np.array([base[s] - var[s] for s in seeds])
