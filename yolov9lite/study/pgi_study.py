"""Notebook 04's experiment: GELAN and GELAN + PGI trained from the same weights (paper Sec. 4.1,
Figs. 3 and 7), with its controls and margins, fixed in code before the data.

The measurements are :mod:`yolov9lite.study.gradients`' (gradient reliability, object focus); the
training pieces are :mod:`yolov9lite.study.paired`'s. What is particular to notebook 04:

* **the unit is the seed** (:mod:`yolov9lite.study.statistics`): each seed builds one main
  branch, trains every arm from it on the same batches in the same order, and every measurement
  within a seed (training batches, validation images) is averaged to one value per seed
  (:func:`reliability_values`, :func:`focus_values`); the ledger's intervals are t intervals
  over seeds;
* **three arms per seed** (:func:`train_seed`): GELAN, GELAN + PGI (the paper's comparison) and
  GELAN again from its initial weights jittered by 1e-6 (:data:`JITTER`, the null control of
  notebooks 03 and 05: what float32 rounding, i.e. another CPU, makes of the same seed), trained
  as notebooks 03 and 05 train (AdamW whose learning rate decays linearly to zero); the gradients
  are measured during learning (:data:`MEASURE_STEP`: where the training loss has flattened its
  expected gradient is zero and the gradient measures see only batch noise), object focus after
  the last step, where learning has flattened;
* **controls of known sign** for every measure: a null control (jittered GELAN vs GELAN: an
  equivalence claim inside the margin) and a positive control, a direction known to be worse:
  the gradient with each image's boxes swapped for another image's for the three gradient
  measures (:func:`~yolov9lite.study.gradients.mismatched_targets`: supervision that does not
  belong to the images), and the random-box null for object focus; each gates its own paper claim
  (:func:`ledger_claims`), so a failed control reads "control failed";
* **margins** (:data:`COS_MARGIN`, :data:`SNR_MARGIN`, :data:`FOCUS_MARGIN`): the smallest effect of interest of each measure, with its reason,
  symmetric.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from ..data import load_data_config, make_synthetic
from ..nn.models import build_model
from . import paired
from . import statistics as st
from .ablation import JITTER  # the null control of notebooks 03 and 05, the same size here
from .claims import Claim, equivalence_claim, paired_claim
from .gradients import (
    copy_main_branch,
    gradient_reliability,
    object_focus,
    preserved_buffers,
    reliability_snr,
    snr_over_floor,
)
from .runs import RunRecord, provenance
from .statistics import Margin

GELAN = "GELAN"
# The positive controls' known-worse gradient (all three gradient measures): the main loss with every image's
# boxes swapped for another image's of the same batch, the forward unchanged
# (:func:`yolov9lite.study.gradients.mismatched_targets`). History, disclosed: the first design
# used the gradient of a quarter of each batch's images (1 of 4), after half a batch had moved
# nothing on a 2-seed pilot; with 5 seeds the quarter batch did not lower the agreement either
# (0.007 [-0.091, 0.105], commit 36f0a30): within a batch of 4 synthetic images the per-image
# gradients are not independent noise, so fewer images is not a known-worse gradient here.
# Supervision that does not belong to the images is, by construction.
#
# Second history item, disclosed: a first rerun with this control (commit 8247167) trained the
# arms with the recipe's SGD (lr 0.01, no warm-up, 50 steps) as before and took the look-ahead
# to first order along each direction's step. Those models were far from any plateau (held-out
# loss 7.9-14.2 across seeds and arms; the jittered copy differed from GELAN by up to 6.3), and
# in one seed the batch gradients pointed UP the held-out loss on average, so the uphill step
# was not a known-worse direction there. The arms now train as in notebooks 03 and 05 (AdamW
# decaying to zero: measured where learning has flattened), the look-ahead
# is the cosine to the held-out gradient (first order, scale-free: the step length no longer
# multiplies it), and its positive control is the same swapped supervision as the others'.
#
# Third history item, disclosed: the records of commit 3e8543d measured the gradients after the
# last step, where the training loss has flattened. There the batches' expected gradient is
# (nearly) zero and the measures saw only batch noise: the main gradient's SNR was 0.6-1.4 times
# its pure-noise floor (gradients.snr_over_floor; seed 0's figures/pgi_gradient_snr.csv at that
# commit: 0.019-0.042 against 1/32), and none of the three swapped-box controls was detected (one
# of them, the SNR's, read "contradicts" at one seed base). A pilot on seeds 990-995 (not record
# seeds; the PGI arm only, measured after steps 10, 20, 40, 80 and 120 of the same design; the
# script is not committed) gave, as mean +- standard error over the 6 seeds: SNR over its floor
# 1.38 +- 0.07, 1.29 +- 0.24, 2.27 +- 0.54, 1.68 +- 0.21, 1.12 +- 0.07; the agreement control
# (main - swapped boxes) +0.050 +- 0.007, +0.039 +- 0.025, +0.158 +- 0.048, +0.035 +- 0.023,
# -0.017 +- 0.018; the held-out control +0.002, +0.025, +0.081 +- 0.025, +0.025, +0.028. The
# gradients are therefore measured during learning, after step 40 of 120 (MEASURE_STEP; chosen
# on that pilot), and object focus still after the last step. Margins unchanged.
TRAIN_OPTIMIZER = "adamw"  # notebooks 03 and 05's (paired.Design); lr decays linearly to zero
MEASURE_STEP = 40  # of the default 120: the gradient measures' step (third history item above)
JITTER_NAME = f"GELAN, init jittered {JITTER:g}"
FOCUS_LEVEL = "P3"  # the finest PAN level: the most cells per object (paper Fig. 7 shows all three)

# --------------------------------------------------------------------------- margins (before data)
# The levels quoted in the reasons (cosines, the null's offset) come from the earlier 3-seed run
# of this notebook (figures/pgi_gradient_reliability.csv, figure7_object_focus.csv at commit
# f0b7e68), the pilot of this design; the margins are not fitted to any verdict.
COS_MARGIN = Margin(0.02, (
    "cos(g_batch, g_full) of a batch of 4 is 0.1-0.3 at this scale; for batch noise cos^2 / "
    "(1 - cos^2) grows in proportion to the batch size, so a 25 % larger batch raises such a "
    "cosine by about 0.01-0.035: a change below 0.02 is worth less than a quarter more data per "
    "step, not an effect of interest"))
SNR_MARGIN = Margin(math.log(1.25), (
    "log SNR ratio: the SNR of a batch k times larger is k times higher (its noise energy falls "
    "as 1/k); a change below a factor 1.25 is worth less than a 25 % larger batch, the same "
    "smallest effect as the agreement's"))
HELD_OUT_MARGIN = Margin(0.02, (
    "cos(g_batch, g_held-out) is the one-step look-ahead to first order (the held-out loss falls "
    "by step x |g_held-out| x this cosine), a cosine of the same kind as the agreement's: a "
    "change below 0.02 is worth less than a 25 % larger batch, as for COS_MARGIN"))
FOCUS_MARGIN = Margin(0.05, (
    "object focus is a ratio to its no-preference value 1, and its random-box null alone sits "
    "3-7 % above 1 (edge effects); a change below 0.05 is the size of what box placement does, "
    "not of focusing on objects"))


def pgi_name(pgi: str) -> str:
    return f"GELAN + PGI ({pgi})"


# --------------------------------------------------------------------------- one seed
def train_seed(model_name: str, num_classes: int, pgi: str, batches, steps: int, lr: float,
               seed: int, device="cpu", optimizer: str = TRAIN_OPTIMIZER,
               on_step=None) -> dict[str, nn.Module]:
    """``{GELAN, GELAN + PGI, jittered GELAN: trained model}`` of one seed: one main branch built
    at ``seed`` copied into each arm (:func:`~yolov9lite.study.gradients.copy_main_branch`; the
    auxiliary branch gets its own seed), the jittered arm's weights then moved by
    :func:`~yolov9lite.study.paired.jitter_weights`; ``steps`` steps of
    :func:`~yolov9lite.study.paired.train_steps` each (``optimizer`` at ``lr``, decaying linearly
    to zero), on the same batches in the same order. ``on_step(arm, k, model)`` after each step
    of every arm (e.g. GELAN's held-out learning curve; it must not change the model)."""
    torch.manual_seed(seed)
    reference = build_model(model_name, num_classes=num_classes).to(device)
    order = paired.batch_order(len(batches), steps, seed)
    out = {}
    for name, knob, jitter in ((GELAN, "none", 0.0), (pgi_name(pgi), pgi, 0.0),
                               (JITTER_NAME, "none", JITTER)):
        torch.manual_seed(seed + 10_000)
        net = copy_main_branch(reference, build_model(model_name, num_classes=num_classes,
                                                      pgi=knob).to(device))
        if jitter:
            paired.jitter_weights(net, jitter, seed)
        hook = (None if on_step is None else
                lambda k, model, arm=name: on_step(arm, k, model))
        paired.train_steps(net, batches, order, decay_to_zero=True,
                           optimizer=lambda ps: paired.make_optimizer(optimizer, lr, ps),
                           on_step=hook)
        out[name] = net
    return out


def along_training_row(rows: list[dict], grads: dict[str, torch.Tensor], step: int) -> dict:
    """The PGI arm's gradient measures at one step of its training, from
    :func:`~yolov9lite.study.gradients.gradient_reliability` with ``controls`` (``rows``, ``grads``),
    each averaged over the measured batches: ``cos_*`` (agreement with the full-data gradient),
    ``val_*`` (with the held-out gradient) and ``floor_*``
    (:func:`~yolov9lite.study.gradients.snr_over_floor`: 1 where the batches share no direction)
    for ``main``, ``total`` and ``wrong`` (the swapped boxes), plus the held-out loss. Where the
    training loss has flattened the batches' expected gradient is (nearly) zero and every measure
    sits at its noise floor; these rows show where during training the measures can see
    (notebook 04's figure ``pgi_gradients_along_training``; one seed, no claim)."""
    out = {"step": step, "held_out_loss": rows[0]["held_out_loss"]}
    for part in ("main", "total", "wrong"):
        out[f"cos_{part}"] = float(np.mean([r[f"cos_{part}"] for r in rows]))
        out[f"val_{part}"] = float(np.mean([r[f"val_{part}"] for r in rows]))
        out[f"floor_{part}"] = snr_over_floor(grads[part])
    return out


def _same_keys(rows: list[dict]) -> list[dict]:
    """Rows with every key of any row (NaN where a model has no control direction), so that a
    table of them has every column."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


@torch.no_grad()
def focus_seed(models: dict[str, nn.Module], val_batches, seed: int) -> list[dict]:
    """Object focus (:func:`~yolov9lite.study.gradients.object_focus`) of every validation image
    at P3, P4, P5 for every model of one seed (train-mode BatchNorm, buffers restored)."""
    rows = []
    for name, net in models.items():
        with preserved_buffers(net):
            net.train()
            first = 0
            for images, targets in val_batches:
                f = net.forward_features(images, with_aux=False)
                for level in ("P3", "P4", "P5"):
                    for r in object_focus(f[level].float().cpu(), targets, seed=seed):
                        rows.append({"seed": seed, "model": name, "level": level,
                                     "image": first + r["image"], "focus": r["focus"],
                                     "null": r["null"]})
                first += images.shape[0]
    return rows


# --------------------------------------------------------------------------- seeds -> claims
def _per_seed(pairs, seeds) -> np.ndarray:
    """One value per seed (``st.seed_means``) of ``[(seed, value), ...]``; non-finite values
    dropped; every seed must keep at least one."""
    kept = [(s, v) for s, v in pairs if math.isfinite(v)]
    got, means = st.seed_means([v for _, v in kept], [s for s, _ in kept])
    if got.tolist() != sorted(seeds):
        raise ValueError(f"seeds {sorted(set(seeds) - set(got.tolist()))} have no finite value")
    return means


def reliability_values(rel: list[dict], snr: list[dict], pgi: str, seeds
                       ) -> dict[str, np.ndarray]:
    """The gradient measures, one value per seed (ascending): per-batch paired differences
    averaged within the seed, or the seed's SNR log ratio. Keys: ``agree``, ``snr``, ``step``
    (the paper's claims, > 0: PGI better), ``agree_wrong``, ``snr_wrong``, ``step_wrong``
    (positive controls, > 0: the known-worse gradient is worse) and ``*_jitter`` (null controls:
    jittered GELAN - GELAN)."""
    P = pgi_name(pgi)

    def batch_mean(model, f):
        return _per_seed([(r["seed"], f(r)) for r in rel if r["model"] == model], seeds)

    def snr_of(model, key):
        return {r["seed"]: r[key] for r in snr if r["model"] == model}

    def snr_log(a, b):
        return np.array([math.log(a[s] / b[s]) for s in sorted(seeds)])

    return {
        "agree": batch_mean(P, lambda r: r["cos_total"] - r["cos_main"]),
        "agree_wrong": batch_mean(P, lambda r: r["cos_main"] - r["cos_wrong"]),
        "agree_jitter": batch_mean(JITTER_NAME, lambda r: r["cos_main"])
        - batch_mean(GELAN, lambda r: r["cos_main"]),
        "snr": snr_log(snr_of(P, "snr_total"), snr_of(P, "snr_main")),
        "snr_wrong": snr_log(snr_of(P, "snr_main"), snr_of(P, "snr_wrong")),
        "snr_jitter": snr_log(snr_of(JITTER_NAME, "snr_main"), snr_of(GELAN, "snr_main")),
        "step": batch_mean(P, lambda r: r["val_total"] - r["val_main"]),
        "step_wrong": batch_mean(P, lambda r: r["val_main"] - r["val_wrong"]),
        "step_jitter": batch_mean(JITTER_NAME, lambda r: r["val_main"])
        - batch_mean(GELAN, lambda r: r["val_main"]),
    }


def focus_values(focus: list[dict], pgi: str, seeds) -> dict[str, np.ndarray]:
    """Object focus at :data:`FOCUS_LEVEL`, one value per seed: per-image differences (same image,
    same seed) averaged within the seed. Keys: ``fig7`` (PGI - GELAN, the claim),
    ``focus_control`` (GELAN - its random-box null, positive control), ``focus_jitter`` (null)."""
    fmap = {(r["seed"], r["model"], r["image"]): r for r in focus if r["level"] == FOCUS_LEVEL}

    def diff(model, f):
        return _per_seed([(s, f(r, fmap[(s, GELAN, i)])) for (s, m, i), r in fmap.items()
                          if m == model], seeds)

    return {"fig7": diff(pgi_name(pgi), lambda r, g: r["focus"] - g["focus"]),
            "focus_control": diff(GELAN, lambda r, g: r["focus"] - r["null"]),
            "focus_jitter": diff(JITTER_NAME, lambda r, g: r["focus"] - g["focus"])}


RELIABLE = "PGI's auxiliary branch supplies reliable gradients to the main branch"
NULL_PAPER = "(control) rounding-sized changes of the initial weights change nothing that matters"
FIG3, FIG7 = "Sec. 4.1, Fig. 3", "Fig. 7"


def _measure(cid: str, paper: str, where: str, metric: str, key: str, margin: Margin | None,
             positive: tuple[str, str, str, str], null: tuple[str, str, str]) -> dict:
    """One measure of the ledger: its paper claim and its two controls, ``positive = (id, what
    is known, metric, values key)``, ``null = (id, metric, values key)``."""
    return {"id": cid, "paper": paper, "where": where, "metric": metric, "key": key,
            "margin": margin, "positive": positive, "null": null}


def ledger_claims(values: dict[str, np.ndarray], pgi: str, steps: int, scale: str,
                  measure_step: int = 0) -> list[Claim]:
    """Notebook 04's ledger from :func:`reliability_values` and/or :func:`focus_values` (the
    measures whose values are present): per measure its positive control, its null control (both
    gating the measure's paper claim) and the claim; t intervals over seeds, the measure's margin
    on both sides. ``measure_step``: the training step the gradients were measured at (0: the
    last, ``steps``), named in the first measure's metric."""
    P = pgi_name(pgi)
    per = "per seed the mean over training batches"
    per_image = "per seed the mean over validation images"
    measures = [
        _measure("04.pgi_gradient_agrees_with_full_data", RELIABLE, FIG3,
                 f"cos(g_batch, g_full) of the backbone gradient, with - without the auxiliary "
                 f"term ({P}, at step {measure_step or steps} of {steps}), {per}", "agree",
                 COS_MARGIN,
                 ("04.control_mismatched_boxes_agree_less",
                  ("a gradient from boxes that belong to other images agrees less with the "
                  "full-data gradient"),
                  (f"cos(g_batch, g_full) - cos(g_batch with boxes swapped between images, "
                   f"g_full), main gradient of {P}, {per}"), "agree_wrong"),
                 ("04.control_jitter_agreement",
                  f"cos(g_batch, g_full) of the main gradient, {JITTER_NAME} - {GELAN}, {per}",
                  "agree_jitter")),
        _measure("04.pgi_gradient_snr", RELIABLE, FIG3,
                 f"log(SNR with / SNR without the auxiliary term) of the backbone gradients of "
                 f"the training batches ({P}), per seed", "snr", SNR_MARGIN,
                 ("04.control_mismatched_boxes_snr_lower",
                  "gradients from boxes that belong to other images have a lower SNR",
                  (f"log(SNR with the images' own / with swapped boxes), main gradient of {P}, "
                   f"per seed"), "snr_wrong"),
                 ("04.control_jitter_snr",
                  f"log(SNR of {JITTER_NAME} / of {GELAN}), main gradient, per seed",
                  "snr_jitter")),
        _measure("04.pgi_step_lowers_held_out_loss",
                 "gradients with PGI lead the main branch to better parameters", FIG3,
                 (f"cos(g_batch, g_held-out) of the backbone gradient (one-step look-ahead to "
                  f"first order), with - without the auxiliary term ({P}), {per}"), "step",
                 HELD_OUT_MARGIN,
                 ("04.control_mismatched_boxes_point_less_downhill",
                  ("a gradient from boxes that belong to other images points less down the "
                   "held-out loss"),
                  (f"cos(g_batch, g_held-out) - cos(g_batch with boxes swapped between images, "
                   f"g_held-out), main gradient of {P}, {per}"), "step_wrong"),
                 ("04.control_jitter_step",
                  f"cos(g_batch, g_held-out) of the main gradient, {JITTER_NAME} - {GELAN}, {per}",
                  "step_jitter")),
        _measure("04.fig7_pgi_focuses_on_objects",
                 "after adding PGI's reversible branch, it is more capable of focusing on the "
                 "target object", FIG7,
                 f"{FOCUS_LEVEL} object focus, {P} - GELAN, {per_image} (same image, same seed)",
                 "fig7", FOCUS_MARGIN,
                 ("04.focus_measure_detects_objects", "object focus is above its random-box null",
                  f"{FOCUS_LEVEL} object focus of trained GELAN - random-box null, {per_image}",
                  "focus_control"),
                 ("04.control_jitter_focus",
                  f"{FOCUS_LEVEL} object focus, {JITTER_NAME} - {GELAN}, {per_image}",
                  "focus_jitter")),
    ]
    out = []
    for m in (m for m in measures if m["key"] in values):
        (pid, known, pmetric, pkey), (nid, nmetric, nkey) = m["positive"], m["null"]
        check = f"method check for {m['where']}"
        out.append(paired_claim(pid, f"(control) {known}", check, pmetric, values[pkey],
                                "positive", "seeds", scale, m["margin"], method="t",
                                kind="control", role="positive", gates=[m["id"]]))
        out.append(equivalence_claim(nid, NULL_PAPER, check, nmetric, values[nkey], m["margin"],
                                     "seeds", scale, kind="control", role="null",
                                     gates=[m["id"]]))
        out.append(paired_claim(m["id"], m["paper"], m["where"], m["metric"], values[m["key"]],
                                "positive", "seeds", scale, m["margin"], method="t"))
    return out


# --------------------------------------------------------------------------- run records
# Notebook 04 at its default scale needs more seeds than CI can train (the positive controls'
# per-seed spread, figures/pgi_power.md), so, like notebooks 03 and 05, its seeds are committed
# as run records (figures/runs/04_pgi.csv), one row per seed and measure; the notebook renders
# its ledger from them, trains one seed live for its figures, and `-p recompute True` (or
# `yolov9lite figures --recompute`) reruns every seed. tests/test_pgi_records.py reruns a sample
# on an emulated CPU. Fixed before the records were made: the design below (the seeds: see
# RECORDED_SEEDS).
RECORDS = "04_pgi.csv"
# Two seed bases of 96 seeds. Disclosed: the first records (50 steps of 4, commit 921513a) were
# made with 12 seeds per base, then 24 (the agreement control and the focus null control supported
# at seed base 0 and not at 100 with 12). With the present design (120 steps of 8, below) and 24
# seeds per base, the SNR control read "contradicts" at base 0 and "inconclusive" at base 100
# (-0.42 [-0.57, -0.28] and -0.35 [-0.56, -0.14] against the margin 0.223): seeds were added
# again (24 more per base, the same design), no margin moved. The present records (commit
# c6ebd6d) measure the gradients at MEASURE_STEP (third history item); object focus, measured
# after the last step as before, came out bit for bit equal to the previous records in all 96
# seeds, so measuring inside the training does not touch it. Its look-ahead control then
# clears its margin at one seed base only (+0.0448 [0.0162, 0.0733] at base 0, +0.0530 [0.0290,
# 0.0770] at base 100, margin 0.02), so 48 more seeds were added per base (commit 86f55f6, the
# same design; no margin moved): the policy's remedy, estimated from the spread before the run.
RECORDED_SEEDS = (*range(96), *range(100, 196))
# the notebook's parameters the records were made with (its defaults); any other value recomputes
RECORDED_DESIGN = {"model_name": "gelan-nano", "fig7_pgi": "icn", "data": "synthetic",
                   "num_train": 128, "num_val": 24, "imgsz": 64, "batch_size": 4,
                   "train_batch_size": 8, "max_batches": 0, "val_batches": 0, "steps": 120,
                   "optimizer": "adamw", "lr": 3e-3, "measure_step": MEASURE_STEP}
# Disclosed, the third design of this session: with batches of 4 for 50 steps (the design of the
# first 24-seed records, commit 921513a) GELAN's held-out loss did not fall at all (9.51 at init,
# 9.36 trained, seed 0; a learning curve of seed 5 rose from 10.9 to 12.2), so its gradients were
# measured on models that had not learned. A pilot of GELAN's learning curve alone (seeds 997 and
# 998, no measure and no claim) showed batches of 8 for 120 steps reaching a flat held-out loss
# (11.3 -> 6.5, 10.6 -> 6.6, the last three points within 0.1). The gradients are still measured
# on batches of 4 (32 per seed: the same images, the SNR's floor at 1/32).
VALUE_KEYS = ("agree", "agree_wrong", "agree_jitter", "snr", "snr_wrong", "snr_jitter", "step",
              "step_wrong", "step_jitter", "fig7", "focus_control", "focus_jitter")
FOCUS_KEYS = ("fig7", "focus_control", "focus_jitter")  # measured after the last step
VALUE_METRIC = "per-seed value"  # a record's metric; its variant is the key of VALUE_KEYS
INIT_METRIC = "held-out loss at init"  # of the seed's main branch before training (variant GELAN)


def init_loss(model_name: str, num_classes: int, val_batches, seed: int, device="cpu") -> float:
    """Held-out main loss of the seed's main branch before any training (as :func:`train_seed`
    builds it): no training, only rounding, so a rerun anywhere must give it again closely."""
    torch.manual_seed(seed)
    net = build_model(model_name, num_classes=num_classes).to(device)
    return paired.held_out_loss(net, val_batches)["loss"]


def run_seed(model_name: str, num_classes: int, pgi: str, batches, val_batches, steps: int,
             lr: float, seed: int, device="cpu", optimizer: str = TRAIN_OPTIMIZER,
             curve_every: int = 0, train_batches=None, along_every: int = 0,
             measure_step: int = 0) -> dict:
    """One seed of notebook 04, start to end: :func:`train_seed` on ``train_batches`` (default:
    ``batches``), the gradient measures of every arm (:func:`gradient_reliability` on
    ``batches``; the PGI arm's with its positive control) after
    step ``measure_step`` of its training (0: after the last step), :func:`focus_seed` after
    the last step, and the seed's run records (one per :data:`VALUE_KEYS` entry, its ``steps``
    the step it was measured at, plus :data:`INIT_METRIC`). Returns ``{"models", "rel", "snr",
    "focus", "records", "curve", "along"}``; ``curve``: GELAN's held-out loss ``[(step, loss),
    ...]`` every ``curve_every`` steps (with step 0; empty when ``curve_every`` is 0);
    ``along``: the PGI arm's :func:`along_training_row` every ``along_every`` steps (empty when
    0). Measuring never changes the training; ``curve`` and ``along`` do not enter the records."""
    if not 0 <= measure_step <= steps:
        raise ValueError(f"measure_step must be in [0, steps={steps}], got {measure_step}")
    at = measure_step or steps
    t0 = time.perf_counter()
    init = init_loss(model_name, num_classes, val_batches, seed, device)
    curve = [(0, init)] if curve_every else []
    along: list[dict] = []
    rel, snr = [], []  # per-batch rows and SNR rows of every arm, at the measuring step
    extra = [0.0]  # seconds spent only on `along` (not part of a record's wall time)

    def score(m):
        return paired.held_out_loss(m, val_batches)["loss"]

    def measure(arm, k, net):
        if arm == GELAN and curve_every and (k % curve_every == 0 or k == steps):
            curve.append((k, paired.held_out_loss(net, val_batches)["loss"]))
        is_pgi = arm == pgi_name(pgi)
        want_along = is_pgi and along_every and (k % along_every == 0 or k == steps)
        if k != at and not want_along:
            return
        t = time.perf_counter()
        rows, g = gradient_reliability(net, batches, val_batches, score, controls=is_pgi)
        if k == at:  # the records' gradient measures of this arm (the PGI arm's with controls)
            rel.extend({"seed": seed, "model": arm, **r} for r in rows)
            snr.append({"seed": seed, "model": arm, **reliability_snr(g)})
        else:
            extra[0] += time.perf_counter() - t
        if want_along:
            along.append(along_training_row(rows, g, k))

    models = train_seed(model_name, num_classes, pgi,
                        batches if train_batches is None else train_batches, steps, lr, seed,
                        device, optimizer, measure)
    rel, snr = _same_keys(rel), _same_keys(snr)
    focus = focus_seed(models, val_batches, seed)
    values = {**reliability_values(rel, snr, pgi, [seed]), **focus_values(focus, pgi, [seed])}
    wall = time.perf_counter() - t0 - extra[0]
    commit, machine = provenance()
    records = [RunRecord(GELAN, seed, 0, INIT_METRIC, init, commit, machine, wall)]
    records += [RunRecord(key, seed, steps if key in FOCUS_KEYS else at, VALUE_METRIC,
                          float(values[key][0]), commit, machine, wall) for key in VALUE_KEYS]
    return {"models": models, "rel": rel, "snr": snr, "focus": focus, "records": records,
            "curve": curve, "along": along}


def values_from_records(records: list[RunRecord], seeds) -> dict[str, np.ndarray]:
    """:data:`VALUE_KEYS` -> one value per seed (ascending), read from run records."""
    have = {(r.variant, r.seed): r.value for r in records if r.metric == VALUE_METRIC}
    missing = [(k, s) for k in VALUE_KEYS for s in seeds if (k, s) not in have]
    if missing:
        raise ValueError(f"run records lack {len(missing)} (measure, seed) values, e.g. "
                         f"{missing[:3]}: rerun with -p recompute True")
    return {k: np.array([have[(k, s)] for s in sorted(seeds)]) for k in VALUE_KEYS}


def recorded_data(root, device="cpu") -> tuple[list, list, list, int]:
    """(measured batches, training batches, held-out batches, classes) of the records' design:
    the notebook's synthetic set (:func:`yolov9lite.data.make_synthetic`, seed 0, images at twice
    ``imgsz``, written under ``root``), cached as notebook 04 caches it (held-out batches of 8)."""
    d = RECORDED_DESIGN
    cfg = load_data_config(make_synthetic(root, num_train=d["num_train"], num_val=d["num_val"],
                                          imgsz=2 * d["imgsz"], seed=0))
    measured = paired.cached_batches(cfg, "train", d["imgsz"], d["batch_size"], device)
    train = paired.cached_batches(cfg, "train", d["imgsz"], d["train_batch_size"], device)
    val = paired.cached_batches(cfg, "val", d["imgsz"], 8, device)
    return measured, train, val, int(cfg["nc"])


def recompute_seeds(seeds, root, device="cpu") -> list[RunRecord]:
    """Every record of ``seeds`` at the records' design (:func:`run_seed` on
    :func:`recorded_data`): how the committed records are made, and how CI checks a sample."""
    measured, train, val, nc = recorded_data(root, device)
    d = RECORDED_DESIGN
    out: list[RunRecord] = []
    for seed in seeds:
        out += run_seed(d["model_name"], nc, d["fig7_pgi"], measured, val, d["steps"], d["lr"],
                        seed, device, d["optimizer"], train_batches=train,
                        measure_step=d["measure_step"])["records"]
    return out
