"""``yolov9lite train``: the command line of :func:`yolov9lite.training.trainer.train`.

Its options are generated from the fields of :class:`~yolov9lite.training.config.TrainConfig` and
:class:`~yolov9lite.training.config.Schedule` (each field's ``metadata`` holds its flags and help),
so that a new field is a new flag with its help and default. :func:`config_to_args` is the
inverse (e.g. to launch the same run under ``torchrun``).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import yaml

from ..nn.blocks import BLOCK_TYPES
from ..nn.pgi import PGI_NECK_VARIANTS, PGI_VARIANTS
from ..training.config import (
    SCHEDULE_KEYS,
    Schedule,
    TrainConfig,
    TrainError,
    check_hyp_keys,
    check_hyp_value,
)
from ..training.engine import NonFiniteLossError
from ..training.runfolder import interrupted_message
from ..training.trainer import train, train_resolved
from ..utils.accel import AMP_CHOICES
from .args import error_line, make_parser, run_cli

MODEL_KNOBS = ("pgi", "pgi_neck", "block", "depth_elan", "depth_csp")  # CLI flags -> model_kwargs
CLI_CHOICES = {"amp": AMP_CHOICES}
NOT_FLAGS = ("schedule", "hyp", "resume", "model_kwargs")  # added by hand below


def _add_field(parser: argparse.ArgumentParser, f, default) -> None:
    """One option from one dataclass field: its flags, type, choices and help."""
    meta = f.metadata
    flags = meta.get("flags", (f"--{f.name.replace('_', '-')}",))
    kwargs = {"dest": f.name, "help": meta.get("help"), "default": default}
    choices = meta.get("choices", CLI_CHOICES.get(f.name))
    if choices:
        kwargs["choices"] = choices
    kind = str(f.type).replace(" | None", "")
    if kind == "bool" and f.default is False:
        kwargs["action"] = "store_true"
    elif kind == "bool":  # default on, or None = decided at run time
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = {"int": int, "float": float}.get(kind, str)
    parser.add_argument(*flags, **kwargs)


def build_parser(suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The ``yolov9lite train`` parser, generated from the fields of TrainConfig and Schedule.

    ``suppress_defaults``: options not given on the command line are left out of the result,
    which is how :func:`main` tells an explicit ``--lr0`` (beats ``--hyp``) from the default.
    """
    p = make_parser("yolov9lite train",
                    "Train a GELAN / YOLOv9 model with the official recipe (hyp.scratch-high). "
                    "Multi-GPU: torchrun --nproc_per_node N -m yolov9lite train ...",
                    argument_default=argparse.SUPPRESS if suppress_defaults else None)
    train_cfg, schedule = TrainConfig(), Schedule()
    for f in fields(TrainConfig):
        if f.name not in NOT_FLAGS:
            _add_field(p, f, argparse.SUPPRESS if suppress_defaults else getattr(train_cfg, f.name))
    group = p.add_argument_group("schedule (also settable with --hyp; a flag beats the file)")
    for f in fields(Schedule):
        _add_field(group, f, argparse.SUPPRESS if suppress_defaults else getattr(schedule, f.name))
    p.add_argument("--hyp", metavar="YAML", help=fields_help("hyp"))
    p.add_argument("--resume", nargs="?", const=True, help=fields_help("resume"))
    p.add_argument("--quiet", dest="verbose", action="store_false", help="same as --no-verbose (default: print them)")
    knobs = p.add_argument_group("model knobs (ablations, paper Tables 2-5; unset = the preset's)")
    knobs.add_argument("--pgi", choices=PGI_VARIANTS, help="auxiliary branch (Tables 4-5)")
    knobs.add_argument("--pgi-neck", choices=PGI_NECK_VARIANTS,
                       help="auxiliary reversible branch on the neck (Table 4's G_neck column)")
    knobs.add_argument("--block", choices=sorted(BLOCK_TYPES), help="computational block (Table 2)")
    knobs.add_argument("--depth-elan", type=int, help="D_ELAN: stages per GELAN unit (Table 3)")
    knobs.add_argument("--depth-csp", type=int, help="D_CSP: bottlenecks per CSP block (Table 3)")
    return p


def fields_help(name: str) -> str:
    return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)


def read_hyp_file(path: str) -> dict:
    """The ``--hyp`` yaml: a mapping whose keys are all known hyperparameters."""
    try:
        with open(path) as f:
            hyp = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise TrainError(f"--hyp {path!r}: {err}") from err
    if not isinstance(hyp, dict):
        raise TrainError(f"--hyp {path!r}: expected a mapping of hyperparameters")
    try:
        check_hyp_keys(hyp)
        for key, value in hyp.items():
            if key != "cos_lr":  # the one switch among them
                check_hyp_value(key, value)
    except TrainError as err:
        raise TrainError(f"--hyp {path!r}: {err}") from err
    return hyp


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse the command line into a TrainConfig: defaults < ``--hyp`` file < explicit flags."""
    return parse_train_args(argv)[0]


def explicit_keys(argv: list[str] | None = None) -> set[str]:
    """The settings (flat names, e.g. ``lr0``, ``imgsz``) that the command line gives."""
    return parse_train_args(argv)[1]


def parse_train_args(argv: list[str] | None = None) -> tuple[TrainConfig, set[str]]:
    """The config of a command line, and the names of the settings it gives explicitly."""
    build_parser().parse_args(argv)  # --help, and errors for bad values, with the defaults shown
    given = vars(build_parser(suppress_defaults=True).parse_args(argv))
    knobs = {k: v for k in MODEL_KNOBS if (v := given.pop(k, None)) is not None}
    hyp_path = given.pop("hyp", None)
    hyp = read_hyp_file(hyp_path) if hyp_path else {}
    schedule = {k: hyp.pop(k) for k in SCHEDULE_KEYS if k in hyp}
    schedule.update({k: given.pop(k) for k in SCHEDULE_KEYS if k in given})
    explicit = set(given) | set(schedule) | ({"hyp"} if hyp else set())
    explicit |= {"model_kwargs"} if knobs else set()
    cfg = TrainConfig.from_options(**given, **schedule, hyp=hyp or None,
                                   model_kwargs=knobs or None)
    return cfg, explicit


def config_to_args(cfg: TrainConfig) -> list[str]:
    """The ``yolov9lite train`` arguments that give ``cfg`` back (only what differs from the
    defaults), e.g. to launch the same run under ``torchrun``; inverse of
    :func:`config_from_args`. ``hyp`` has no flag of its own: write it to a yaml for ``--hyp``."""
    if cfg.hyp:
        raise TrainError("config_to_args: hyp has no flags; save it as a yaml and pass --hyp")
    default, args = TrainConfig(), []
    pairs = [(f, getattr(cfg, f.name), getattr(default, f.name)) for f in fields(TrainConfig)
             if f.name not in NOT_FLAGS]
    pairs += [(f, getattr(cfg.schedule, f.name), getattr(default.schedule, f.name))
              for f in fields(Schedule)]
    for f, value, default_value in pairs:
        if value == default_value:
            continue
        flag = f.metadata.get("flags", (f"--{f.name.replace('_', '-')}",))[0]
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            args += [flag, str(value)]
    for knob, value in (cfg.model_kwargs or {}).items():
        args += [f"--{knob.replace('_', '-')}", str(value)]
    if cfg.resume:
        args += ["--resume"] + ([] if cfg.resume is True else [str(cfg.resume)])
    return args


@run_cli("yolov9lite train", interrupted=interrupted_message)
def main(argv: list[str] | None = None) -> int:
    """``yolov9lite train``: parse the arguments and call :func:`train`."""
    config, explicit = parse_train_args(argv)
    try:
        # the flags given, not only those that differ from the defaults: a resume refuses
        # changed ones, and --weights without --model builds the model the weights hold
        if config.resume or config.weights:
            train_resolved(config, None, explicit)
        else:
            train(config)
    except NonFiniteLossError as err:  # not a bad input, but a one-line ending all the same
        print(error_line("yolov9lite train", err), file=sys.stderr)
        return 2
    return 0


__all__ = ["build_parser", "config_from_args", "config_to_args", "explicit_keys", "main",
           "parse_train_args", "read_hyp_file"]
