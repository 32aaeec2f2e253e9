"""GELAN's design choices (paper Sec. 4.2, Tables 2-3) as paired experiments, and what they cost.

Tables 2 and 3 of the paper compare GELAN-S variants (the computational block: Conv, Res, Dark,
CSP; the depths D_ELAN and D_CSP) by COCO AP after 500 epochs each. At a laptop scale no variant
detects anything after a few minutes, so AP cannot rank them. We ask the same question with a
continuous metric and a paired design meant to remove the noise that variants can share, the design
of the PGI experiments in :mod:`yolov9lite.study.paired` (whose batch cache, batch order and held-out
loss we reuse):

* every variant of one seed starts from the same initial weights **where the shapes allow**: each
  variant is built with the seed, then every tensor whose name and shape equal those of the
  reference variant (the paper's choice, CSP with D_ELAN = 2, D_CSP = 1) is copied from it
  (:func:`copy_shared_weights`). Stem, downsampling convolutions, the 1x1 convolutions around
  every GELAN unit and the head are shared; the computational blocks themselves cannot be (their
  shapes differ), and there only the seed is shared;
* every variant sees the same batches in the same order (cached once, no augmentation);
* the result of one seed is the held-out loss (box + cls + DFL of official
  ``utils/loss_tal_dual.py``) after a fixed number of optimizer steps, and a comparison is the
  per-seed difference to the paper's choice, with a Student's t interval over seeds
  (:func:`yolov9lite.study.claims.paired_claim`);
* a noise control (:data:`JITTER_CONTROL`) trains the paper's choice again from initial weights
  moved by about float32's rounding error. At the default scale (a tiny model at 64 px, 20 steps)
  that alone moves the held-out loss by a large part of the spread between seeds (notebook 03
  prints both): the short training amplifies rounding differences, so pairing removes little of
  the noise there, and two CPUs give different numbers for the same seed. The verdicts therefore
  need several seeds and a margin on both sides (notebook 03).

Why AdamW here and not the recipe's SGD (:func:`yolov9lite.study.paired.train_steps`): from scratch,
SGD at the recipe's learning rate sits on the loss plateau of an untrained detector for a number of
steps that varies a lot between seeds and then drops suddenly, so after a short budget the loss
mostly measures *when* that drop happened. AdamW leaves the plateau within a few steps for every
variant, and the loss after the budget then compares how fast each architecture learns.

The efficiency side of the paper's argument ("lightweight, inference speed, and accuracy") is
measured, not quoted: :func:`variant_costs` counts the deployed parameters and FLOPs of each
variant and times its deployed forward pass on the current device (:mod:`yolov9lite.evaluation.latency`).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..evaluation.latency import measure_latency
from ..nn import models as _models
from ..nn.complexity import profile
from ..nn.deployment import deploy
from .paired import (
    Arm,
    Design,
    batch_order,
    copy_shared_weights,
    held_out_loss,
    jitter_weights,
    train_steps,
)

REFERENCE = "csp (2, 1)"  # the paper's choice: GELAN's CSP block, D_ELAN = 2, D_CSP = 1


def variant_label(block: str, depth_elan: int, depth_csp: int) -> str:
    """``"csp (2, 1)"``: the label of a variant in rows, tables and claims."""
    return f"{block} ({depth_elan}, {depth_csp})"


def variant(block: str, depth_elan: int, depth_csp: int) -> tuple[str, dict]:
    """(label, model knobs) of one GELAN variant."""
    knobs = {"block": block, "depth_elan": int(depth_elan), "depth_csp": int(depth_csp)}
    return variant_label(block, depth_elan, depth_csp), knobs


# Table 2: the computational block at D_ELAN = 2, D_CSP = 1 (its CSP row is Table 3's (2, 1) row).
BLOCK_VARIANTS: dict[str, dict] = dict(variant(b, 2, 1) for b in ("conv", "res", "dark", "csp"))
# Table 3: the depths (D_ELAN, D_CSP) of the CSP-block GELAN.
DEPTH_VARIANTS: dict[str, dict] = dict(variant("csp", de, dc)
                                       for de, dc in ((1, 1), (2, 1), (3, 1), (2, 2), (2, 3)))


# The noise control: the paper's choice again, its initial weights multiplied by (1 + 1e-6 e),
# e ~ N(0, 1), about the rounding error of float32 arithmetic. Its difference to the reference
# measures how far the training amplifies rounding noise: what two CPUs (other vector units,
# other summation orders) make of the same seed. Wherever that is as large as the differences
# between variants, pairing by seed cannot remove the noise, and only more seeds and a margin in
# the verdict rule can (notebook 03, section 5).
JITTER = 1e-6
JITTER_LABEL = f"{REFERENCE}, init jittered {JITTER:g}"
JITTER_CONTROL = {JITTER_LABEL: {**BLOCK_VARIANTS[REFERENCE], "init_jitter": JITTER}}


# --------------------------------------------------------------------------- notebook 03's experiment
# Fixed in code before any data was seen (the arms, the design, the controls and the margin), so
# that no rule can be fitted to the outcome. The experiment: :func:`yolov9lite.study.paired.
# paired_experiment` with :data:`DESIGN` over :func:`experiment_arms`.
REFERENCE_KNOBS = {"block": "csp", "depth_elan": 2, "depth_csp": 1}
FROZEN_LABEL = f"{REFERENCE}, backbone frozen"
# gelan-nano at 64 px on each seed's own synthetic set; 60 AdamW steps whose learning rate decays
# linearly to zero, so the held-out loss is measured where its curve has flattened.
DESIGN = Design(model="gelan-nano", reference=REFERENCE_KNOBS, share="shapes", steps=60, lr=3e-3)
MARGIN_FRACTION = 0.02
MARGIN_REASON = ("2 % of the reference's mean held-out loss: the paper's Table 2-3 differences are "
                 "0.5-1.8 AP on 44-53 AP (1-4 %); a smaller effect on the loss is not one of "
                 "interest at this scale (the fraction of the earlier design, unchanged)")


def experiment_arms(blocks=("conv", "res", "dark", "csp"),
                    depths=((3, 1), (2, 2), (1, 1))) -> dict[str, Arm]:
    """Notebook 03's arms: the blocks at (2, 1) (Table 2), the CSP depths (Table 3; (1, 1) is the
    paper's one large effect, ELAN depth 1 -> 2), and two controls of the reference: a positive
    one (:data:`FROZEN_LABEL`: its backbone never trains, so it must come out worse) and a null
    one (:data:`JITTER_LABEL`: its initial weights moved by float32 rounding, the noise floor)."""
    arms = {variant_label(b, 2, 1): Arm(variant(b, 2, 1)[1]) for b in blocks}
    arms.update({variant_label("csp", de, dc): Arm(variant("csp", de, dc)[1]) for de, dc in depths})
    arms[JITTER_LABEL] = Arm(dict(REFERENCE_KNOBS), init_jitter=JITTER)
    arms[FROZEN_LABEL] = Arm(dict(REFERENCE_KNOBS), freeze=("backbone.",))
    return arms


def adamw_steps(model: nn.Module, batches, order, lr: float = 3e-3, weight_decay: float = 0.0,
                max_grad_norm: float = 10.0) -> nn.Module:
    """AdamW on the training loss (:class:`yolov9lite.training.loss.DetectionLoss`, official x batch size;
    Adam is invariant to that scale), one step per entry of ``order``, gradient clipping at 10 as
    the official trainer does."""
    return train_steps(model, batches, order, max_grad_norm=max_grad_norm,
                       optimizer=lambda params: torch.optim.AdamW(
                           params, lr=lr, weight_decay=weight_decay))


def paired_variant_runs(model: str, variants: dict[str, dict], seeds, train_batches, val_batches,
                        num_classes: int, steps: int, lr: float = 3e-3,
                        reference: dict | None = None, device="cpu",
                        log: Callable[[str], None] | None = None) -> list[dict]:
    """One row per (seed, variant): the held-out loss after ``steps`` AdamW steps.

    ``variants`` maps a label to model knobs (``block``, ``depth_elan``, ``depth_csp``, and
    optionally ``init_jitter``: see :data:`JITTER_CONTROL`). For each
    seed, the ``reference`` knobs (default: the paper's CSP (2, 1)) are built with that seed, and
    every variant is built with the same seed and then given the reference's tensors wherever name
    and shape agree. All variants of a seed train on ``train_batches`` in the seed's order
    (:func:`yolov9lite.study.paired.batch_order`). Rows hold ``variant``, ``seed``, ``loss``, ``box``,
    ``cls``, ``dfl`` (held-out, :func:`yolov9lite.study.paired.held_out_loss`), ``shared`` (fraction of
    parameters copied from the reference) and ``cpu_s``.
    """
    reference = dict(reference or {"block": "csp", "depth_elan": 2, "depth_csp": 1})
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        ref = _models.build_model(model, num_classes=num_classes, **reference).to(device)
        order = batch_order(len(train_batches), steps, seed)
        for label, knobs in variants.items():
            t0 = time.process_time()
            knobs = dict(knobs)
            jitter = float(knobs.pop("init_jitter", 0.0))
            torch.manual_seed(seed)
            net = _models.build_model(model, num_classes=num_classes, **knobs).to(device)
            shared = copy_shared_weights(ref, net)
            if jitter:
                jitter_weights(net, jitter, seed)
            adamw_steps(net, train_batches, order, lr)
            row = {"variant": label, "seed": seed, **held_out_loss(net, val_batches),
                   "shared": shared, "cpu_s": time.process_time() - t0}
            rows.append(row)
            if log:
                log(f"{label:11s} seed {seed}: held-out loss {row['loss']:.3f} "
                    f"({100 * shared:.0f} % of weights shared, {row['cpu_s']:.1f} s CPU)")
    return rows


def differences(rows: list[dict], worse: str, better: str, part: str = "loss"):
    """Per seed, ``worse - better`` of ``part``: positive when ``better`` has the lower held-out
    loss, i.e. when the paper's ranking holds. A numpy array in seed order."""
    by = {(r["variant"], r["seed"]): r[part] for r in rows}
    seeds = sorted({s for v, s in by if v == worse} & {s for v, s in by if v == better})
    if not seeds:
        raise ValueError(f"no seed has both {worse!r} and {better!r}")
    return np.array([by[(worse, s)] - by[(better, s)] for s in seeds])


def deployed_counts(model: str, num_classes: int = 80, imgsz: int = 640, **knobs) -> dict:
    """``{"params", "gflops"}`` of the deployed (inference) model, the paper's columns; built on
    the meta device (shapes only) and counted by :func:`yolov9lite.nn.complexity.profile`."""
    with torch.device("meta"):
        return profile(deploy(_models.build_model(model, num_classes=num_classes, **knobs)), imgsz)


def variant_costs(model: str, variants: dict[str, dict], latency_imgsz: int = 640,
                  batch: int = 1, device=None, iters: int = 10, warmup: int = 2,
                  num_classes: int = 80, rounds: int = 1) -> list[dict]:
    """Deployed params, GFLOPs at 640 (the paper's columns) and measured latency per variant.

    Latency: :func:`yolov9lite.evaluation.latency.measure_latency` of the deployed model (branches merged,
    BatchNorm folded) at ``latency_imgsz``; with ``rounds`` > 1 the variants are timed in turn,
    round after round, and the median over rounds is kept, so that a change in the machine's load
    affects all variants alike. Timings depend on the machine: they are measurements of this run.
    """
    nets, rows = {}, {}
    for label, knobs in variants.items():
        counts = deployed_counts(model, num_classes, **knobs)
        torch.manual_seed(0)
        nets[label] = deploy(_models.build_model(model, num_classes=num_classes, **knobs)).eval()
        rows[label] = {"variant": label, "params (M)": counts["params"] / 1e6,
                       "GFLOPs (640)": counts["gflops"], "times": []}
    for _ in range(rounds):
        for label, net in nets.items():
            t = measure_latency(net, latency_imgsz, batch, device=device, iters=iters,
                                warmup=warmup)
            rows[label]["times"].append(t["ms_per_image"])
    out = []
    for r in rows.values():
        times = r.pop("times")
        out.append({**r, f"latency (ms, {latency_imgsz} px, batch {batch})":
                    statistics.median(times)})
    return out
