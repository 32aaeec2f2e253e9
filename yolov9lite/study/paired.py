"""The paired experiment: one scaffold for every trained comparison (notebooks 03, 04, 05).

Read top to bottom: the PGI variants under their paper names (:data:`VARIANTS`), the pieces every
run uses (:func:`cached_batches`, :func:`held_out_loss` of the main head, :func:`batch_order`,
:func:`train_steps`), how arms share their initial weights (:func:`copy_shared_weights`,
:func:`jitter_weights`), and then the scaffold itself: an :class:`Arm` is one variant (model
knobs, frozen parameters, jittered weights), a :class:`Design` what every arm and seed hold fixed,
:func:`run_arm` one (arm, seed) run turned into :class:`~yolov9lite.study.runs.RunRecord` rows,
:func:`paired_experiment` every arm at every seed, and :func:`recompute_sample` the check CI runs
on committed records. Notebook 03's arms, design and margin are in
:mod:`yolov9lite.study.gelan_study` (Tables 2-3), notebook 05's in :mod:`yolov9lite.study.ablation`
(Tables 4-5), both fixed in code before any data.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import build_dataloader, load_data_config, make_synthetic
from ..nn import models as _models
from ..nn.gelan import round_up8
from ..training.loss import DetectionLoss
from ..training.step import reference_step
from .gradients import copy_main_branch, preserved_buffers
from .runs import RunRecord, provenance

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


# --------------------------------------------------------------------------- the pieces of a run
# Training is a plain loop (forward, loss, step; no EMA, augmentation or validation pass) on
# batches cached in memory, so that hundreds of runs fit a CPU budget; it isolates the one thing
# an experiment varies. The outcome is the main head's held-out loss (paper Sec. 4: the loss of
# ``loss_tal_dual.py``, box / cls / DFL), compared per seed between arms.

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
                on_step: Callable | None = None, optimizer: Callable | None = None,
                decay_to_zero: bool = False):
    """The one training loop of the paired experiments: one step
    (:func:`yolov9lite.training.step.reference_step`: the training loss, main + 0.25 auxiliary,
    :mod:`yolov9lite.training.loss`, gradient clipping at 10 as the official trainer does) per
    entry of ``order`` (batch indices, :func:`batch_order`).

    The optimizer is plain SGD (Nesterov) at ``lr`` by default, on the official loss, x batch size
    (``lr`` applies to it as in the recipe); ``optimizer(params)`` replaces it (e.g. AdamW in
    :func:`train_arm`; ``lr``/``momentum`` are then unused). Only parameters that require a
    gradient are optimised (a frozen backbone stays frozen). ``decay_to_zero``: the learning rate
    falls linearly to zero at the last step, so a measurement after it sits where the held-out
    curve has flattened. ``on_step(k, model)`` after step k (1-based)."""
    loss_fn = DetectionLoss(model, lead_head_guided=lead_head_guided)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (optimizer(params) if optimizer is not None else
           torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0))
    total = len(order)
    schedule = (torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - k / total)
                if decay_to_zero else None)
    model.train()
    for k, i in enumerate(order, start=1):
        images, targets = batches[i]
        reference_step(model, opt, loss_fn, images, targets, max_grad_norm)
        if schedule is not None:
            schedule.step()
        if on_step is not None:
            on_step(k, model)
    return model


def jitter_weights(model: nn.Module, relative: float, seed: int) -> None:
    """Multiply every parameter by ``1 + relative * e`` with ``e ~ N(0, 1)`` drawn from its own
    generator (seeded by ``seed``), so the global random state is left as it was."""
    g = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        for p in model.parameters():
            e = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.mul_((1 + relative * e).to(p.dtype).to(p.device))


def copy_shared_weights(src: nn.Module, dst: nn.Module) -> float:
    """Copy every tensor (parameters and buffers) of ``src`` whose name and shape exist in ``dst``;
    returns the fraction of ``dst``'s parameter elements that now equal ``src``'s."""
    src_state, dst_state = src.state_dict(), dst.state_dict()
    shared = {k for k, v in dst_state.items() if k in src_state and src_state[k].shape == v.shape}
    with torch.no_grad():
        for k in shared:
            dst_state[k].copy_(src_state[k])
    params = dict(dst.named_parameters())
    total = sum(p.numel() for p in params.values())
    return sum(params[k].numel() for k in shared if k in params) / max(total, 1)


# --------------------------------------------------------------------------- one paired scaffold
# Notebooks 03 (Tables 2-3) and 05 (Tables 4-5) run the same experiment, with other arms:
#
# * a seed is the unit. It draws its OWN synthetic data (:func:`seed_batches`), one set of initial
#   weights and one batch order; every arm of the seed starts from those weights wherever the
#   architectures allow (:class:`Design` ``share``) and sees those batches in that order;
# * training runs to a plateau: AdamW (or the recipe's SGD) with a learning rate that decays
#   linearly to zero at the last step, so the measuring point sits where the held-out curve has
#   flattened (the reference arm records its curve to show it);
# * the outcome is the main head's held-out loss at the end; a comparison is the per-seed
#   difference of two arms, with a t interval over seeds (:mod:`yolov9lite.study.claims`);
# * controls run in the same design: a **positive control** of known sign (the reference whose
#   backbone never trains: ``Arm(freeze=("backbone.",))``) shows the experiment can see an effect,
#   and a **null control** (the reference from initial weights jittered by float32 rounding,
#   ``Arm(init_jitter=1e-6)``) shows its noise floor;
# * every run is one row set of :class:`yolov9lite.study.runs.RunRecord` (``figures/runs/*.csv``),
#   so the notebooks render verdicts from committed records and CI recomputes a sample
#   (:func:`run_arm` runs one (arm, seed) alone and gives the same numbers as the whole grid).

@dataclass(frozen=True)
class Arm:
    """One arm: model knobs (:class:`yolov9lite.nn.models.ModelConfig` fields, e.g.
    ``{"pgi": "icn"}`` or ``{"block": "conv"}``) and how it trains.

    ``freeze``: parameter-name prefixes that never train (a positive control: ``("backbone.",)``);
    ``init_jitter``: initial weights multiplied by ``1 + init_jitter * N(0, 1)`` after sharing (a
    null control); ``lead_head_guided``: Table 4's LHG."""

    knobs: dict = field(default_factory=dict)
    freeze: tuple[str, ...] = ()
    init_jitter: float = 0.0
    lead_head_guided: bool = False


@dataclass(frozen=True)
class Design:
    """Everything a paired experiment holds fixed across its arms and seeds.

    ``share``: ``"main"`` copies the main branch of a plain model built from the seed into every
    arm (arms that differ only in the auxiliary branch, Tables 4-5: the main branches start
    identical); ``"shapes"`` copies every tensor whose name and shape equal those of the
    ``reference`` knobs' model (arms whose blocks differ, Tables 2-3: stem, downsamplings, the 1x1
    convolutions of every GELAN unit and the head are shared, each block only by its seed)."""

    model: str = "gelan-nano"
    knobs: dict = field(default_factory=dict)  # applied to every arm (e.g. a width)
    reference: dict = field(default_factory=dict)  # knobs of the model whose weights are shared
    share: str = "shapes"
    steps: int = 60
    lr: float = 3e-3
    optimizer: str = "adamw"  # adamw | sgd (Nesterov, momentum 0.9)
    curve_every: int = 10  # reference-arm held-out loss every this many steps (0: none)
    num_train: int = 64
    num_val: int = 32
    imgsz: int = 64
    batch_size: int = 8

    def __post_init__(self):
        if self.share not in ("main", "shapes"):
            raise ValueError(f"Design.share must be 'main' or 'shapes', got {self.share!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"Design.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")


def seed_batches(design: Design, seed: int, root: Path, device="cpu") -> tuple[list, list, int]:
    """(training batches, held-out batches, class count) of the seed's own synthetic set
    (:func:`yolov9lite.data.make_synthetic` with ``seed``, written under ``root``), cached in
    memory without augmentation."""
    cfg = load_data_config(make_synthetic(Path(root) / f"seed{seed}", num_train=design.num_train,
                                          num_val=design.num_val, imgsz=design.imgsz, seed=seed))
    train = cached_batches(cfg, "train", design.imgsz, design.batch_size, device)
    val = cached_batches(cfg, "val", design.imgsz, design.batch_size, device)
    return train, val, int(cfg["nc"])


def make_optimizer(name: str, lr: float, params) -> torch.optim.Optimizer:
    """``"adamw"`` (no weight decay) or ``"sgd"`` (Nesterov, momentum 0.9) at ``lr``."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {name!r}")


def _optimizer(design: Design, params):
    return make_optimizer(design.optimizer, design.lr, params)


def build_arm(design: Design, arm: Arm, seed: int, num_classes: int, device="cpu") -> nn.Module:
    """The arm's model at the seed's shared initial weights (see :class:`Design`)."""
    torch.manual_seed(seed)
    base = {**design.knobs, **design.reference} if design.share == "shapes" else design.knobs
    reference = _models.build_model(design.model, num_classes=num_classes, **base).to(device)
    torch.manual_seed(seed if design.share == "shapes" else seed + 10_000)  # + the aux branch's own
    net = _models.build_model(design.model, num_classes=num_classes,
                              **{**design.knobs, **arm.knobs}).to(device)
    if design.share == "main":
        copy_main_branch(reference, net)
    else:
        copy_shared_weights(reference, net)
    if arm.init_jitter:
        jitter_weights(net, arm.init_jitter, seed)
    for name, p in net.named_parameters():
        if name.startswith(tuple(arm.freeze)):
            p.requires_grad_(False)
    return net


def train_arm(design: Design, arm: Arm, net: nn.Module, batches, order,
              on_step: Callable | None = None) -> nn.Module:
    """:func:`train_steps` with the design's optimizer (:class:`Design` ``optimizer``, ``lr``)
    decaying linearly to zero at the last step (the measuring point is on the plateau), and the
    arm's options. ``on_step(k, net)`` after step k."""
    return train_steps(net, batches, order, lead_head_guided=arm.lead_head_guided,
                       on_step=on_step, optimizer=lambda params: _optimizer(design, params),
                       decay_to_zero=True)


def run_arm(design: Design, label: str, arm: Arm, seed: int, data, curve: bool = False,
            device="cpu", score: Callable[[nn.Module], dict] | None = None) -> list[RunRecord]:
    """One (arm, seed): build, train, measure. ``data`` is :func:`seed_batches`' triple.

    Records: ``held-out loss`` and its parts (``held-out box``, ``cls``, ``dfl``) at the last
    step, the loss before training (``held-out loss at init``), with ``curve`` the held-out loss
    every ``design.curve_every`` steps (metric ``held-out loss curve``, ``steps`` = the step), and
    with ``score`` every ``{metric: value}`` it returns for the trained model (e.g. COCO AP)."""
    train, val, nc = data
    t0 = time.perf_counter()
    net = build_arm(design, arm, seed, nc, device)
    init = held_out_loss(net, val)["loss"]
    points: list[tuple[int, float]] = [(0, init)]

    def measure(k, m):
        if curve and design.curve_every and k % design.curve_every == 0 and k < design.steps:
            points.append((k, held_out_loss(m, val)["loss"]))

    train_arm(design, arm, net, train, batch_order(len(train), design.steps, seed), measure)
    end = held_out_loss(net, val)
    wall = time.perf_counter() - t0
    commit, machine = provenance()

    def rec(metric, value, steps=design.steps):
        return RunRecord(label, seed, steps, metric, float(value), commit, machine, wall)

    out = [rec("held-out loss", end["loss"]), rec("held-out box", end["box"]),
           rec("held-out cls", end["cls"]), rec("held-out dfl", end["dfl"]),
           rec("held-out loss at init", init, 0)]
    if curve:
        out += [rec("held-out loss curve", v, k) for k, v in points[1:]]  # step 0: "at init"
        out.append(rec("held-out loss curve", end["loss"]))
    if score is not None:
        out += [rec(metric, value) for metric, value in score(net).items()]
    return out


def paired_experiment(design: Design, arms: dict[str, Arm], seeds, root: Path,
                      curve_arm: str | None = None, device="cpu",
                      log: Callable[[str], None] | None = None,
                      data_of: Callable[[int], tuple] | None = None,
                      score: Callable[[nn.Module], dict] | None = None) -> list[RunRecord]:
    """Every arm at every seed (:func:`run_arm`), each seed on its own synthetic data under
    ``root`` (:func:`seed_batches`) unless ``data_of(seed)`` gives the (train, val, classes)
    triple (a real data set: the same for every seed); ``curve_arm`` also records its held-out
    curve; ``score``: see :func:`run_arm`."""
    records: list[RunRecord] = []
    for seed in seeds:
        data = data_of(seed) if data_of else seed_batches(design, seed, root, device)
        for label, arm in arms.items():
            rows = run_arm(design, label, arm, seed, data, curve=label == curve_arm, device=device,
                           score=score)
            records += rows
            if log:
                log(f"seed {seed} {label:24s} held-out loss {rows[4].value:.3f} -> "
                    f"{rows[0].value:.3f} ({rows[0].wall_s:.1f} s)")
    return records


def recompute_sample(recorded: dict[str, tuple[Design, Arm]], pairs, root: Path,
                     device="cpu") -> list[RunRecord]:
    """Rerun the ``(label, seed)`` pairs alone (:func:`run_arm`), each arm with its design
    (``recorded``: label -> (design, arm), e.g. :func:`yolov9lite.study.gelan_study.
    recorded_arms`): how CI checks that committed run records reproduce."""
    out: list[RunRecord] = []
    data: dict[tuple, tuple] = {}
    for label, seed in pairs:
        design, arm = recorded[label]
        key = (seed, design.num_train, design.num_val, design.imgsz, design.batch_size)
        if key not in data:
            data[key] = seed_batches(design, seed, root, device)
        out += run_arm(design, label, arm, seed, data[key], device=device)
    return out
