"""The training configuration: one typed dataclass instead of a dict of keyword arguments.

:class:`TrainConfig` holds every setting of a run; its nested :class:`Schedule` holds the
optimizer and learning-rate schedule of the official ``hyp.scratch-high.yaml`` (the one place
where those keys are listed). The same fields produce the command line of ``yolov9lite train``
(:func:`build_parser` reads their ``help`` metadata; :func:`config_from_args` parses it),
``dataclasses.asdict`` of a config is what a checkpoint stores and what a run writes as
``args.yaml``, and :meth:`TrainConfig.from_dict` reads it back (also the flat layout of older
checkpoints).

Hyperparameters that are not part of the schedule (augmentation, loss gains) stay in
``TrainConfig.hyp``: a dict whose keys are checked by name, so that a typo such as ``mosiac``
fails at the start instead of silently training with the default.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..data.augment import Hyp

LOSS_GAINS = {"box": "box_gain", "cls": "cls_gain", "dfl": "dfl_gain"}  # hyp key -> loss kwarg
# keys of the official hyp.scratch-high.yaml that no loss of the official dual-head code
# (utils/loss_tal_dual.py) reads either; accepted so that the official file can be passed as is
OFFICIAL_UNUSED_HYP = ("cls_pw", "obj", "obj_pw", "iou_t", "anchor_t", "fl_gamma")
RUNTIME_KEYS = ("device", "workers", "cache_images", "resume", "verbose")  # may differ on resume


class TrainError(ValueError):
    """A problem with the training inputs (config, model, data, batch, resume file)."""


def _opt(default, help: str, **cli):
    """A dataclass field with its command-line help (and optional flag names/choices)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class Schedule:
    """Optimizer and learning-rate schedule (official ``hyp.scratch-high.yaml`` and
    ``train_dual.py``; see :mod:`yolov9lite.training.optim` for the formulas)."""

    lr0: float = _opt(0.01, "initial learning rate (SGD)")
    lrf: float = _opt(0.01, "final learning rate, as a fraction of lr0")
    cos_lr: bool = _opt(False, "cosine instead of linear learning-rate decay")
    momentum: float = _opt(0.937, "SGD Nesterov momentum after warm-up")
    weight_decay: float = _opt(5e-4, "weight decay at the nominal batch")
    warmup_epochs: float = _opt(3.0, "warm-up length in epochs (at least 100 batches; 0: none)")
    warmup_momentum: float = _opt(0.8, "momentum at the start of warm-up")
    warmup_bias_lr: float = _opt(0.1, "bias learning rate at the start of warm-up")
    nominal_batch: int = _opt(64, "accumulate gradients up to this batch before a step")

    def validate(self) -> None:
        """Ranges in which the official recipe's formulas make sense (:mod:`yolov9lite.training.optim`).
        A learning rate above 1 makes SGD on these losses diverge within a few steps (the
        official value is 0.01), so it is refused rather than left to produce NaN weights."""
        _check_int(self, "nominal_batch", 1)
        ranges = {  # name: (low, high, low is allowed)
            "lr0": (0.0, 1.0, False), "lrf": (0.0, 1.0, True), "momentum": (0.0, 1.0, True),
            "weight_decay": (0.0, 1.0, True), "warmup_epochs": (0.0, 1e4, True),
            "warmup_momentum": (0.0, 1.0, True), "warmup_bias_lr": (0.0, 1.0, True)}
        for name, (low, high, closed) in ranges.items():
            value = getattr(self, name)
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(value) and (low <= value if closed else low < value)
                  and value <= high)
            if not ok:
                interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
                raise TrainError(f"{flag_of(name)} {value!r}: must be a number in {interval} "
                                 f"(official: {getattr(Schedule(), name)})")


SCHEDULE_KEYS = tuple(f.name for f in fields(Schedule))


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the official recipe (hyp.scratch-high)."""

    model: str = _opt("gelan-nano", "preset name (yolov9lite models lists them)")
    data: str | dict = field(default="synthetic", metadata={
        "help": "data yaml, or 'synthetic' (generated offline)"})
    weights: str | None = _opt(None, "start from these weights (fine-tuning): our checkpoint or "
                               "an official YOLOv9/GELAN .pt; tensors whose name and shape match "
                               "are copied, the rest (the class layers on another class count) "
                               "is initialised afresh; without --model, the model they hold")
    freeze: int = _opt(0, "freeze the first N layers of the official layer numbering (official "
                       "--freeze; e.g. 10 = the backbone of yolov9-c, 9 of gelan-c)")
    epochs: int = _opt(100, "epochs to train")
    batch_size: int = _opt(16, "total batch size over all GPUs",
                           flags=("--batch", "--batch-size"))
    imgsz: int = _opt(640, "training and validation image size", flags=("--img", "--img-size", "--imgsz"))
    device: str = _opt("auto", "auto, cpu, cuda, 0, cuda:1")
    workers: int = _opt(4, "data loader processes per rank")
    cache_images: bool = _opt(False, "decode and resize every image once into a memory-mapped "
                              "cache shared by all workers (same batches, less CPU per sample; "
                              "about 0.9 MB per image at 640, in $YOLOV9LITE_CACHE_DIR or "
                              "~/.cache/yolov9lite)")
    amp: str = _opt("auto", "autocast: auto = bf16 (or fp16) on GPU, float32 on CPU")
    schedule: Schedule = field(default_factory=Schedule)
    close_mosaic: int = _opt(15, "epochs at the end without mosaic")
    ema: bool = _opt(True, "validate and save an EMA of the weights (official)")
    val_interval: int = _opt(1, "validate every N epochs (and at the end; 0: only at the end)")
    project: str = _opt("runs/train", "folder of the runs")
    name: str = _opt("exp", "run name (exp, exp2, ... if taken)")
    resume: bool | str | None = _opt(None, "continue from a last.pt (no path: the newest under "
                                     "--project)")
    seed: int = _opt(0, "random seed")
    deterministic: bool = _opt(False, "deterministic algorithms (slower on GPU)")
    max_batches: int | None = _opt(None, "cap batches per epoch (quick runs)")
    sync_bn: bool = _opt(False, "SyncBatchNorm under DDP (official for 8 GPUs)")
    channels_last: bool | None = _opt(None, "NHWC memory format (None: on for GPU)")
    compile: bool = _opt(False, "torch.compile the model (the first batch compiles; its time "
                         "is reported)")
    graph_step: bool = _opt(False, "static-shape training step without host syncs, replayed as "
                            "a CUDA graph on a GPU (yolov9lite/training/graphstep.py)")
    hyp: dict | None = field(default=None, metadata={
        "help": "yaml of hyperparameters (e.g. the official hyp.scratch-high.yaml): schedule "
                "keys, box/cls/dfl gains, augmentation"})
    lead_head_guided: bool = _opt(False, "PGI loss variant (Table 4 LHG)")
    max_nonfinite: int = _opt(10, "stop after this many non-finite losses in a row")
    val_backend: str = _opt("faster_coco_eval", "COCO evaluation backend",
                            choices=("pycocotools", "faster_coco_eval"))
    tensorboard: bool = _opt(True, "TensorBoard scalars (if the package is installed)")
    plots: bool = _opt(True, "write the run's plots at the end (results.png, labels, train "
                             "batches, PR/F1 curves, confusion matrix)")
    verbose: bool = _opt(True, "progress bars and summaries")
    model_kwargs: dict | None = field(default=None, metadata={
        "help": "ablation knobs for build_model, e.g. {'pgi': 'ds'}"})

    def __post_init__(self):
        if isinstance(self.schedule, dict):
            self.schedule = Schedule(**self.schedule)
        self.data = plain_python(self.data)
        self.device, self.project = str(self.device), str(self.project)  # e.g. torch.device, Path
        if self.weights is not None:
            self.weights = str(self.weights)
        if self.resume is not None and not isinstance(self.resume, bool):
            self.resume = str(self.resume)
        if self.hyp is not None:
            self.hyp = {str(k): plain_python(v) for k, v in plain_python(self.hyp).items()}
            check_hyp_keys(self.hyp, allow_schedule=False)
        if self.model_kwargs is not None:
            self.model_kwargs = plain_python(dict(self.model_kwargs))
        self.validate()

    def validate(self) -> None:
        """Refuse settings that would crash later or train on garbage: one TrainError naming
        the option (its command-line flag) and what is allowed. Called at construction."""
        for name, low in (("epochs", 1), ("batch_size", 1), ("imgsz", 32), ("workers", 0),
                          ("close_mosaic", 0), ("val_interval", 0), ("max_nonfinite", 1),
                          ("freeze", 0)):
            _check_int(self, name, low)
        if self.imgsz % 32:
            raise TrainError(f"{flag_of('imgsz')} {self.imgsz}: must be a multiple of 32 "
                             "(the largest stride), e.g. 640")
        if self.max_batches is not None:
            _check_int(self, "max_batches", 1)
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            raise TrainError(f"--seed {self.seed!r}: expected an integer")
        name = str(self.name)  # checked here, before the dataset scan, not when the folder is made
        if not name or os.path.basename(name) != name or name in (".", "..") or "\\" in name:
            raise TrainError(f"--name {name!r}: must be a plain folder name (no '/'), e.g. exp; "
                             "use --project for the parent folder")
        self.schedule.validate()
        for key, value in (self.hyp or {}).items():
            check_hyp_value(key, value)


    @classmethod
    def from_options(cls, **options) -> TrainConfig:
        """Build from the flat keyword arguments of :func:`yolov9lite.train`: fields of this
        class and of :class:`Schedule` side by side. Schedule keys inside ``hyp`` (e.g. from the
        official yaml) are moved to the schedule; an explicit keyword beats them."""
        top = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - top - set(SCHEDULE_KEYS))
        if unknown:
            raise TrainError(f"unknown training option(s) {unknown}; valid: "
                             f"{sorted(top - {'schedule'}) + list(SCHEDULE_KEYS)}")
        hyp = plain_python(options.get("hyp"))
        hyp = dict(hyp) if hyp else {}
        check_hyp_keys(hyp)
        schedule = {k: hyp.pop(k) for k in SCHEDULE_KEYS if k in hyp}
        given = options.get("schedule") or {}
        schedule.update(asdict(given) if isinstance(given, Schedule) else given)
        schedule.update({k: options[k] for k in SCHEDULE_KEYS if k in options})
        rest = {k: v for k, v in options.items() if k in top and k not in ("schedule", "hyp")}
        return cls(**rest, schedule=_typed_schedule(schedule), hyp=hyp or None)

    @classmethod
    def from_dict(cls, saved: dict) -> TrainConfig:
        """Read ``asdict(config)`` back, e.g. from a checkpoint; the flat layout of older
        checkpoints (schedule keys at the top level) is accepted too."""
        saved = dict(saved)
        nested = saved.pop("schedule", None) or {}
        return cls.from_options(**saved, schedule=nested)

    def to_dict(self) -> dict:
        """Plain Python types only: loadable with ``torch.load(weights_only=True)``."""
        return asdict(self)

    def hyperparameters(self) -> dict:
        """What the run's ``hyp.yaml`` holds: the schedule, the augmentation and the loss gains
        in effect (defaults filled in)."""
        hyp = dict(self.hyp or {})
        gains = {k: hyp.pop(k) for k in list(hyp) if k in LOSS_GAINS}
        return {**asdict(self.schedule), **asdict(Hyp.from_any(hyp)), **gains}


def _typed_schedule(values: dict) -> Schedule:
    """A Schedule with each value converted to its field's type (a yaml may give ``1`` for 1.0)."""
    typed = {}
    for f in fields(Schedule):
        if f.name not in values:
            continue
        value = values[f.name]
        try:
            if f.type == "bool":
                typed[f.name] = value if isinstance(value, bool) else str(value).lower() == "true"
            else:
                typed[f.name] = {"float": float, "int": int}[f.type](value)
        except (TypeError, ValueError) as err:
            raise TrainError(f"schedule {f.name}: expected a {f.type}, got {value!r}") from err
    return Schedule(**typed)


def flag_of(name: str) -> str:
    """The command-line flag of a TrainConfig or Schedule field (``imgsz`` -> ``--img``)."""
    for f in fields(TrainConfig) + fields(Schedule):
        if f.name == name:
            return f.metadata.get("flags", (f"--{name.replace('_', '-')}",))[0]
    return f"--{name.replace('_', '-')}"


def _check_int(obj, name: str, low: int) -> None:
    value = getattr(obj, name)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise TrainError(f"{flag_of(name)} {value!r}: must be an integer >= {low}")


PROBABILITIES = ("flipud", "fliplr", "mosaic", "mixup", "copy_paste", "blur", "median_blur",
                 "to_gray", "clahe")  # Hyp fields in [0, 1]


def check_hyp_value(key: str, value) -> None:
    """A hyperparameter value must be a finite number (yaml ``1`` or ``0.5``; not ``'high'``);
    probabilities lie in [0, 1] and loss gains are not negative."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise TrainError(f"hyperparameter {key} = {value!r}: expected a finite number")
    if key in PROBABILITIES and not 0 <= value <= 1:
        raise TrainError(f"hyperparameter {key} = {value!r}: a probability, must be in [0, 1]")
    if key in LOSS_GAINS and value < 0:
        raise TrainError(f"hyperparameter {key} = {value!r}: a loss gain, must be >= 0")


def valid_hyp_keys(allow_schedule: bool = True) -> list[str]:
    augmentation = [f.name for f in fields(Hyp)]
    return (list(SCHEDULE_KEYS) if allow_schedule else []) + list(LOSS_GAINS) + augmentation


def check_hyp_keys(hyp: dict, allow_schedule: bool = True) -> None:
    """Reject misspelt hyperparameters by name (a typo would otherwise train with a default)."""
    valid = valid_hyp_keys(allow_schedule)
    unknown = [k for k in hyp if k not in valid and k not in OFFICIAL_UNUSED_HYP]
    if unknown:
        where = "" if allow_schedule else " (schedule keys belong in TrainConfig.schedule)"
        raise TrainError(f"unknown hyperparameter(s) {unknown}{where}; valid keys: "
                         f"{', '.join(valid)}")


def plain_python(value):
    """Config values as plain Python (paths -> str, dataclasses -> dicts), so that checkpoints
    load with ``weights_only=True`` and ``args.yaml`` is readable."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a data.Hyp
        return plain_python(asdict(value))
    if isinstance(value, dict):
        return {str(k) if isinstance(k, Path) else k: plain_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_python(v) for v in value)
    return str(value) if isinstance(value, Path) else value
