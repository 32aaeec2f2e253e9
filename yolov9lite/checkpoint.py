"""Checkpoints: safe import of official YOLOv9 ``.pt`` files, our own format, ``convert``/``deploy``.

Three things live here (issue 6, ``shared/reference/yolov9-spec.md`` Sections 2.3-2.5, 3 and 6):

1. **A restricted loader for official checkpoints.** An official ``.pt`` is a dict whose ``model``
   and ``ema`` entries are *pickled module objects* of classes from the official ``models.common``
   and ``models.yolo`` (spec Section 6). Plain ``pickle`` would import those modules and could run
   arbitrary code. We instead use PyTorch's own ``weights_only`` unpickler (a small pickle VM that
   only calls what is on an allowlist) and add to its allowlist exactly the names an official file
   holds: every official class name is bound to an *inert stand-in* ``nn.Module`` subclass created
   here, plus a few ``torch.nn`` containers/layers, ``pathlib`` paths (as pure paths) and numpy
   scalars. Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) stops
   the load with :class:`UnsafeCheckpointError` before anything runs.
2. **The official -> ours key mapping.** Our sub-module names inside each block are the official
   ones, so a key maps by renaming its layer prefix (``backbone.stem`` <-> ``model.2``) and, in the
   head, ``cv4/cv5/dfl2`` of ``DualDDetect`` <-> ``head.main.cv2/cv3/dfl``.
   :func:`official_layer_table` derives the prefix -> index table from a model's config;
   :func:`official_key_map` expands it to every tensor. The model is recognised from the keys and
   shapes alone (:func:`recognise_official`), never from code or yaml in the file.
3. **Our format**: a plain dict of tensors and plain Python values, readable with
   ``torch.load(path, weights_only=True)`` and written atomically (:func:`save_checkpoint`).

``load_model(path)`` accepts either kind of file and returns a ready inference model.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import pathlib
import pickle
import re
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from .models import OFFICIAL_MODELS, PRESETS, DetectionModel, ModelConfig, build_model, round_up8

FORMAT_NAME = "yolov9lite"
FORMAT_VERSION = 1

# Presets :func:`recognise_official` tries. The tiny "nano" presets have an official-style layout
# too, which lets tests exercise the whole import path with small models.
RECOGNISED_MODELS = (*OFFICIAL_MODELS, "gelan-nano", "yolov9-nano", "yolov9-nano-icn")


class CheckpointError(RuntimeError):
    """A file that cannot be read as a checkpoint (truncated, corrupted, unknown layout)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A file whose pickle references something outside the allowlist; nothing was executed."""


# =============================================================================================
# 1. Restricted unpickling of official files (spec Section 6, "Classes referenced by the pickle")
# =============================================================================================

# Class names an official checkpoint may reference, per official module (spec Section 6).
OFFICIAL_CLASSES = {
    "models.yolo": ("DetectionModel", "DDetect", "DualDDetect"),
    "models.common": ("Silence", "Conv", "AConv", "ADown", "ELAN1", "RepNCSPELAN4", "RepNCSP",
                      "RepNBottleneck", "RepConvN", "SPPELAN", "SP", "Concat", "CBLinear",
                      "CBFuse", "DFL"),
}

# torch.nn classes an official model is built from. These are torch's own classes; restoring one
# only fills its ``__dict__`` (``nn.Module.__setstate__``), no user code runs.
TORCH_NN_CLASSES = (
    nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.Identity, nn.MaxPool2d, nn.Upsample,
    nn.Sequential, nn.ModuleList,
)


class OfficialStandIn(nn.Module):
    """Base of the inert stand-ins for official classes: holds restored state, computes nothing.

    Unpickling fills ``_parameters``/``_buffers``/``_modules`` and plain attributes (``yaml``,
    ``names``, ``stride`` ...), so ``state_dict()`` and attribute reads work; the weights are then
    copied into our own modules (:func:`load_official`).
    """

    official_name = "?"

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.official_name} is a weights-only stand-in for the official "
                           "class; use yolov9lite.load_official() to get a runnable model")


def _make_stand_in(module: str, name: str) -> type:
    return type(name, (OfficialStandIn,), {
        "__module__": __name__, "__qualname__": f"official.{name}",
        "official_name": f"{module}.{name}", "__doc__": f"Inert stand-in for {module}.{name}."})


STAND_INS: dict[str, type] = {
    f"{mod}.{name}": _make_stand_in(mod, name)
    for mod, names in OFFICIAL_CLASSES.items() for name in names
}


def _numpy_globals() -> list[tuple[object, str]]:
    """numpy names found in training checkpoints (``best_fitness`` is a numpy array there).

    ``_reconstruct``/``scalar``/``dtype`` only build arrays and scalars from bytes; object arrays
    would still have to get their elements through this same restricted unpickler.
    """
    try:
        import numpy as np
    except ImportError:  # numpy is a dependency, but the loader does not need it
        return []
    out: list[tuple[object, str]] = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray  # numpy 1.x
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # files from either numpy
        out += [(multiarray._reconstruct, f"{mod}._reconstruct"), (multiarray.scalar, f"{mod}.scalar")]
    for code in ("f8", "f4", "f2", "i8", "i4", "u1", "b1"):
        dtype_cls = type(np.dtype(code))
        if dtype_cls is not np.dtype:  # numpy >= 1.25 has one class per dtype
            out.append((dtype_cls, f"numpy.dtypes.{dtype_cls.__name__}"))
    return out


@functools.lru_cache(maxsize=1)
def allowed_globals() -> tuple[tuple[object, str], ...]:
    """Everything an official or yolov9lite checkpoint may reference, as (object, pickled name).

    Added to ``torch.load(weights_only=True)``'s built-in allowlist (tensors, storages, dtypes,
    ``OrderedDict``, ``set``); spec Section 6 lists what official files reference.
    """
    out = [(cls, name) for name, cls in STAND_INS.items()]
    out += [(cls, f"{cls.__module__}.{cls.__qualname__}") for cls in TORCH_NN_CLASSES]
    # ``opt`` may hold paths; pure paths carry the text without touching the file system.
    for mod in ("pathlib", "pathlib._local"):  # Python < 3.13 / >= 3.13 module of the classes
        out += [(pathlib.PurePosixPath, f"{mod}.PosixPath"), (pathlib.PureWindowsPath, f"{mod}.WindowsPath"),
                (pathlib.PurePosixPath, f"{mod}.PurePosixPath"),
                (pathlib.PureWindowsPath, f"{mod}.PureWindowsPath")]
    out += _numpy_globals()
    return tuple(out)


_REFUSED = re.compile(r"GLOBAL ([\w.]+)|unrecognized function ([^\s]+)|got <class '([\w.]+)'>")


def restricted_load(path: str | os.PathLike):
    """``torch.load`` that admits only official-checkpoint / yolov9lite names (see module docs).

    Raises :class:`UnsafeCheckpointError` naming the refused global for anything else, and
    :class:`CheckpointError` for files that are truncated or not checkpoints at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5
        raise CheckpointError(f"reading official checkpoints safely needs torch >= 2.5 "
                              f"(found {torch.__version__})")
    try:
        with torch.serialization.safe_globals(list(allowed_globals())):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _explain_refusal(path, err) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as err:
        raise CheckpointError(f"{path}: cannot read this file as a PyTorch checkpoint; it is "
                              f"truncated or corrupted ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None


def _explain_refusal(path: Path, err: Exception) -> Exception:
    """Turn torch's weights-only message (which suggests ``weights_only=False``) into ours."""
    text = str(err)
    match = _REFUSED.search(text)
    if match is None:  # not about a global: a damaged stream or an opcode the VM does not run
        detail = text.split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if text else ""
        return CheckpointError(f"{path}: cannot read this file as a PyTorch checkpoint; it is "
                               f"truncated or corrupted ({detail}); nothing from it was executed")
    what = next(g for g in match.groups() if g)
    return UnsafeCheckpointError(
        f"refused to load {path}: it references {what}, which is not part of an official YOLOv9 "
        f"or yolov9lite checkpoint. Nothing from the file was executed. If you trust the file, "
        f"load it yourself with torch.load(..., weights_only=False).")


# =============================================================================================
# 2. Official layer layout and key mapping (spec Sections 2.3-2.5; Section 3 for "converted")
# =============================================================================================

# The main backbone, in official order: 9 layers (spec 2.3 layers 0-8).
_BACKBONE = ("conv0", "conv1", "stem", "downs.0", "stages.0", "downs.1", "stages.1",
             "downs.2", "stages.2")
# Top-down + bottom-up neck, as offsets from its first layer (spec 2.3 layers 9-21; the gaps are
# Upsample and Concat layers, which have no weights).
_NECK = {"top_down.spp": 0, "top_down.n4": 3, "top_down.p3": 6, "down4": 7, "p4": 9,
         "down5": 10, "p5": 12}
_NECK_LEN = 13
# The auxiliary FPN of yolov9-t/s/e (spec 2.5): SPPELAN, Up, Concat, GELAN, Up, Concat, GELAN.
_TOP_DOWN = {"spp": 0, "n4": 3, "p3": 6}
_TOP_DOWN_LEN = 7


def _check_official_style(cfg: ModelConfig) -> None:
    if cfg.pgi not in ("none", "fpn", "icn") or cfg.depth_elan != 2 or cfg.block != "csp":
        raise ValueError("only official-style models (pgi none/fpn/icn, D_ELAN 2, CSP blocks) have "
                         f"an official key layout; got pgi={cfg.pgi!r}, depth_elan={cfg.depth_elan}, "
                         f"block={cfg.block!r}")


def _reversible_layers(prefix: str, levels, start: int) -> tuple[dict[str, int], int]:
    """A CBNet second backbone: conv0, conv1, stem, 3 x (down, stage), with a weightless CBFuse
    layer right after the layer that enters each linked level (spec 2.4 layers 15-28, 2.5 26-37)."""
    table, i = {}, start
    entries = {"conv0": "L1", "conv1": "L2", "downs.0": "B3", "downs.1": "B4", "downs.2": "B5"}
    for name in _BACKBONE:
        table[f"{prefix}.{name}"] = i
        i += 1
        if entries.get(name) in levels:
            i += 1  # CBFuse
    return table, i


def official_layer_table(cfg: ModelConfig) -> tuple[dict[str, int], int]:
    """Our module prefix -> official ``model.N`` index, and the head's index.

    Rules, from the official yaml files (spec Sections 2.3-2.5):

    * a model whose second backbone re-reads the image (yolov9-m/c, gelan-e, yolov9-e) starts with
      a ``Silence`` layer, which shifts every index by one;
    * the main backbone takes 9 layers; GELAN-E then has 5 CBLinear layers and the DHLC backbone;
    * the neck takes 13 layers; with an auxiliary FPN the neck and the FPN are stacked in the yaml
      order: after the neck for t/s, before it for e (its FPN hangs off backbone 1);
    * the m/c auxiliary reversible branch = 3 CBLinear layers and a second backbone;
    * the head is last.
    """
    _check_official_style(cfg)
    table: dict[str, int] = {}
    i = 1 if (cfg.dhlc or cfg.pgi == "icn") else 0  # Silence at layer 0
    for name in _BACKBONE:
        table[f"backbone.{name}"] = i
        i += 1
    if cfg.dhlc:
        levels = ("L1", "L2", "B3", "B4", "B5")
        for k in range(len(levels)):
            table[f"dhlc.links.{k}"] = i + k
        part, i = _reversible_layers("dhlc.backbone", levels, i + len(levels))
        table.update(part)

    def add_neck(start: int) -> int:
        table.update({f"neck.{k}": start + v for k, v in _NECK.items()})
        return start + _NECK_LEN

    def add_aux(start: int) -> int:
        if cfg.pgi == "fpn":
            table.update({f"aux.neck.{k}": start + v for k, v in _TOP_DOWN.items()})
            return start + _TOP_DOWN_LEN
        levels = ("B3", "B4", "B5")
        for k in range(len(levels)):
            table[f"aux.branch.links.{k}"] = start + k
        part, end = _reversible_layers("aux.branch.backbone", levels, start + len(levels))
        table.update(part)
        return end

    if cfg.pgi == "none":
        i = add_neck(i)
    elif cfg.dhlc:  # yolov9-e: auxiliary FPN on backbone 1 first, then the main neck
        i = add_neck(add_aux(i))
    else:
        i = add_aux(add_neck(i))
    return table, i


# DualDDetect: official head attribute -> ours (spec 2.2: inputs 0-2 auxiliary, 3-5 main).
_DUAL_HEAD = {"cv2": "aux.cv2", "cv3": "aux.cv3", "dfl": "aux.dfl",
              "cv4": "main.cv2", "cv5": "main.cv3", "dfl2": "main.dfl"}


def official_key_map(model: DetectionModel) -> dict[str, str]:
    """Every state-dict key of ``model`` -> the official key of the same tensor.

    Raises ``KeyError`` if some key has no official place (which would be a bug in the table).
    """
    table, head = official_layer_table(model.cfg)
    ours_to_head = {v: k for k, v in _DUAL_HEAD.items()}
    out = {}
    for key in model.state_dict():
        parts = key.split(".")
        if parts[0] == "head":
            rest = parts[1:]
            if model.has_aux:  # head.aux.cv2.0... -> cv2.0..., head.main.cv2... -> cv4...
                rest = [ours_to_head[".".join(rest[:2])], *rest[2:]]
            out[key] = ".".join(["model", str(head), *rest])
            continue
        for n in range(len(parts) - 1, 0, -1):  # longest matching prefix
            prefix = ".".join(parts[:n])
            if prefix in table:
                out[key] = ".".join(["model", str(table[prefix]), *parts[n:]])
                break
        else:
            raise KeyError(f"no official layer for {key!r}")
    return out


def _head_info(state: dict) -> tuple[int, int, bool]:
    """(head index, number of classes, dual head?) of an official state dict."""
    try:
        head = max(int(k.split(".")[1]) for k in state if k.startswith("model."))
        nc = state[f"model.{head}.cv3.0.2.bias"].shape[0]
    except (ValueError, KeyError):
        raise CheckpointError("the weights do not look like a YOLOv9/GELAN detection model (no "
                              "'model.N.cv3.0.2.bias' class layer in the last layer)") from None
    return head, int(nc), f"model.{head}.cv4.0.0.conv.weight" in state


def _candidates(state: dict, head: int, dual: bool) -> list[str]:
    """Presets with the file's head index, head type and main-head input widths (P3, P4, P5):
    a cheap filter (no model built) that leaves one candidate for every official file."""
    box = "cv4" if dual else "cv2"  # the main head's box branch
    try:
        widths = tuple(state[f"model.{head}.{box}.{i}.0.conv.weight"].shape[1] for i in range(3))
    except KeyError:
        return []
    out = []
    for name in RECOGNISED_MODELS:
        cfg = PRESETS[name]
        expected = tuple(round_up8(c[0]) for c in (cfg.p3, cfg.p4, cfg.p5))
        if (cfg.pgi != "none") == dual and official_layer_table(cfg)[1] == head and expected == widths:
            out.append(name)
    return out


def _match_official(state: dict) -> tuple[DetectionModel, dict[str, str]]:
    """Build the preset whose official keys and shapes are exactly those of ``state``.

    Returns the (randomly initialised) model and its ours -> official key map.
    """
    head, nc, dual = _head_info(state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    near = []
    for name in _candidates(state, head, dual):
        model = build_model(name, nc)
        mapping = official_key_map(model)
        ours = model.state_dict()
        expected = {off: tuple(ours[k].shape) for k, off in mapping.items()}
        if expected.keys() != shapes.keys():
            extra, missing = sorted(shapes.keys() - expected.keys()), sorted(expected.keys() - shapes.keys())
            near.append(f"{name} (unexpected keys {extra[:2]}, missing keys {missing[:2]})")
            continue
        bad = [k for k in expected if expected[k] != shapes[k]]
        if not bad:
            return model, mapping
        near.append(f"{name} ({len(bad)} shape mismatches, e.g. {bad[0]}: file "
                    f"{shapes[bad[0]]} vs {expected[bad[0]]})")
    hint = "; closest: " + ", ".join(near) if near else ""
    raise CheckpointError(f"unrecognised model: {len(state)} tensors, head at layer {head}, "
                          f"nc={nc}, {'dual' if dual else 'single'} head; expected one of "
                          f"{', '.join(OFFICIAL_MODELS)}{hint}")


def recognise_official(state: dict) -> tuple[str, int]:
    """Which preset an official state dict holds, and its number of classes.

    Decided by keys and shapes only: the file's keys must be exactly the preset's official keys,
    with equal shapes. "Converted" yolov9-X files are gelan-X files (spec Section 3).
    """
    model, _ = _match_official(state)
    return model.name, model.nc


def _class_names(names, nc: int) -> list[str]:
    """Official ``names`` is a dict {index: name} (or a list); ours is always a list of nc strings."""
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    names = [str(n) for n in (names or [])]
    return names if len(names) == nc else [str(i) for i in range(nc)]


def _official_module(obj):
    """The pickled DetectionModel inside a loaded official file: EMA if present (as the official
    ``attempt_load`` does, spec Section 5), else ``model``."""
    if isinstance(obj, dict):
        for key in ("ema", "model"):
            if obj.get(key) is not None:
                return obj[key]
        raise CheckpointError("official checkpoint has neither 'ema' nor 'model'")
    return obj


def _tensors(module: nn.Module, prefix: str = "model") -> dict[str, torch.Tensor]:
    """The state dict of an unpickled module, read from its ``__dict__`` directly.

    Unlike ``module.state_dict()`` this calls no method of the unpickled objects and so no hook a
    crafted file might have planted (they could only be allowlisted callables anyway).
    """
    d = vars(module)
    out = {}
    skip = d.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, t in (d.get(group) or {}).items():
            if torch.is_tensor(t) and name not in skip:
                out[f"{prefix}.{name}"] = t.detach()
    for name, child in (d.get("_modules") or {}).items():
        if isinstance(child, nn.Module):
            out.update(_tensors(child, f"{prefix}.{name}"))
    return out


def model_from_official(obj) -> DetectionModel:
    """Build our model from an already restricted-loaded official checkpoint object."""
    module = _official_module(obj)
    if isinstance(module, nn.Module):
        state = {k.split(".", 1)[1]: v for k, v in _tensors(module, "_").items()}
    elif isinstance(module, dict) and all(torch.is_tensor(v) for v in module.values()):
        state = module  # a bare official state dict
    else:
        raise CheckpointError(f"expected an official DetectionModel, found {type(module).__name__}")
    model, mapping = _match_official(state)
    # official tensors are fp16; every fp16 value is exact in fp32
    model.load_state_dict({ours: state[off].float() if state[off].is_floating_point() else state[off]
                           for ours, off in mapping.items()}, strict=True)
    attrs = vars(module) if isinstance(module, nn.Module) else {}
    stride = attrs.get("stride")
    if torch.is_tensor(stride) and stride.tolist() != list(model.strides):
        raise CheckpointError(f"unexpected strides {stride.tolist()} (expected {list(model.strides)})")
    model.names = _class_names(attrs.get("names"), model.nc)
    return model.float().eval()


def load_official(path: str | os.PathLike) -> DetectionModel:
    """Read an official YOLOv9/GELAN ``.pt`` without the official code and without running code
    from the file; return our equivalent model (float32, eval mode, auxiliary branch kept).

    The model is recognised from the weights (``yolov9-t/s/m/c/e``, their "converted" versions,
    ``gelan-t/s/m/c/e``); ``model.names`` holds the class names. Use :func:`load_model` for a
    deployed (aux-free, fused) model.
    """
    obj = restricted_load(path)
    if _is_ours(obj):
        raise CheckpointError(f"{path} is a yolov9lite checkpoint; use load_model()")
    return model_from_official(obj)


# =============================================================================================
# 3. Our format
# =============================================================================================

def _is_ours(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT_NAME


def _plain(x):
    """Config values as plain Python (tuples -> lists) so ``weights_only`` can read them."""
    if isinstance(x, (tuple, list)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def config_from_dict(d: dict) -> ModelConfig:
    """Inverse of ``_plain(dataclasses.asdict(cfg))``: lists back to the tuples of ModelConfig."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(d) - fields
    if unknown:
        raise CheckpointError(f"unknown model config fields {sorted(unknown)} (newer yolov9lite?)")
    return ModelConfig(**{k: (v if k == "paper" else _tuples(v)) for k, v in d.items()})


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: a crash never
    leaves a half-written file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(path: str | os.PathLike, model: DetectionModel, names=None, half: bool = False,
                    **extra) -> Path:
    """Write ``model`` in our format (atomically). Returns the path.

    The file is a dict: ``format``, ``version``, ``model_name``, ``config`` (the ModelConfig as
    plain types), ``nc``, ``names``, ``deployed`` (fused weights) and ``state_dict``, plus any
    ``extra`` fields (epoch, optimizer state, ...). Extra values must be tensors or plain Python
    so that the file stays readable with ``torch.load(weights_only=True)``.
    ``half=True`` stores floating-point tensors in fp16 (lossless for imported official weights).
    """
    reserved = {"format", "version", "model_name", "config", "nc", "names", "deployed", "state_dict"}
    if reserved & extra.keys():
        raise ValueError(f"extra fields may not use the reserved names {sorted(reserved & extra.keys())}")
    names = _class_names(names if names is not None else getattr(model, "names", None), model.nc)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
             for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "model_name": model.name,
        "config": _plain(dataclasses.asdict(model.cfg)), "nc": model.nc, "names": names,
        "deployed": bool(getattr(model, "deployed", False)), "state_dict": state, **extra,
    }
    return atomic_save(ckpt, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read one of our checkpoints with ``torch.load(weights_only=True)`` (no extra allowlist)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _explain_refusal(path, err) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read this file as a PyTorch checkpoint; it is "
                              f"truncated or corrupted ({str(err).splitlines()[0]})") from None
    if not _is_ours(ckpt):
        raise CheckpointError(f"{path} is not a yolov9lite checkpoint (official files: use "
                              "load_official or load_model)")
    if ckpt.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {ckpt['version']} is newer than this "
                              f"yolov9lite understands ({FORMAT_VERSION})")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> DetectionModel:
    """Rebuild the model of one of our checkpoint dicts (float32, eval mode).

    A deployed checkpoint holds fused weights, so the freshly built model is fused first (which
    gives it the fused key layout) and then loaded.
    """
    from .deploy import fuse

    cfg = config_from_dict(ckpt["config"])
    model = DetectionModel(cfg, ckpt["nc"], name=ckpt.get("model_name", "custom"))
    if ckpt.get("deployed"):
        model.eval()
        fuse(model)
        model.deployed = True
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt["state_dict"].items()}, strict=True)
    if ckpt.get("deployed"):
        model.requires_grad_(False)
    model.names = _class_names(ckpt.get("names"), model.nc)
    return model.float().eval()


def load_model(path: str | os.PathLike, deploy: bool = True) -> DetectionModel:
    """Load our checkpoint or an official ``.pt``; return a ready model (eval mode, float32).

    With ``deploy=True`` (default, what ``predict`` and ``val`` use) the auxiliary branch is removed
    and BatchNorm/RepConvN are fused (:func:`yolov9lite.deploy.deploy`); the outputs are those of the
    main branch, so the detections are the same either way. ``model.names`` holds the class names.
    """
    from .deploy import deploy as deploy_model

    obj = restricted_load(path)
    if _is_ours(obj):
        model = model_from_checkpoint(obj)
    else:
        model = model_from_official(obj)
    if deploy and not getattr(model, "deployed", False):
        names = model.names
        model = deploy_model(model)
        model.names = names
    return model


# =============================================================================================
# CLI: ``yolov9lite convert`` and ``yolov9lite deploy``
# =============================================================================================

def convert_main(argv: list[str] | None = None) -> int:
    """``yolov9lite convert official.pt ours.pt [--deploy]``: official file -> our format."""
    ap = argparse.ArgumentParser(prog="yolov9lite convert", description=convert_main.__doc__)
    ap.add_argument("source", help="official YOLOv9/GELAN .pt file")
    ap.add_argument("dest", help="output file (yolov9lite format)")
    ap.add_argument("--deploy", action="store_true",
                    help="also remove the auxiliary branch and fuse layers (inference only)")
    args = ap.parse_args(argv)
    try:
        model = load_official(args.source)
        if args.deploy:
            from .deploy import deploy as deploy_model
            names, model = model.names, deploy_model(model)
            model.names = names
        # unfused official weights are fp16 values: storing fp16 keeps them exactly, at half size
        save_checkpoint(args.dest, model, half=not args.deploy, source=str(args.source))
    except (CheckpointError, FileNotFoundError) as err:
        print(f"yolov9lite convert: {err}", file=sys.stderr)
        return 1
    print(f"{args.source}: {model.name} (nc={model.nc}) -> {args.dest}"
          + (" (deployed)" if args.deploy else ""))
    return 0


def deploy_main(argv: list[str] | None = None) -> int:
    """``yolov9lite deploy --weights in.pt --out out.pt``: the inference model that predict uses
    (auxiliary branch removed, RepConvN merged, BatchNorm folded), in our format."""
    ap = argparse.ArgumentParser(prog="yolov9lite deploy", description=deploy_main.__doc__)
    ap.add_argument("--weights", required=True, help="our checkpoint or an official .pt")
    ap.add_argument("--out", required=True, help="output file (yolov9lite format)")
    args = ap.parse_args(argv)
    try:
        model = load_model(args.weights, deploy=True)
        save_checkpoint(args.out, model, source=str(args.weights))
    except (CheckpointError, FileNotFoundError) as err:
        print(f"yolov9lite deploy: {err}", file=sys.stderr)
        return 1
    print(f"{args.weights}: {model.name} (nc={model.nc}) deployed -> {args.out}")
    return 0


__all__ = [
    "OFFICIAL_CLASSES",
    "CheckpointError",
    "UnsafeCheckpointError",
    "allowed_globals",
    "atomic_save",
    "config_from_dict",
    "convert_main",
    "deploy_main",
    "load_checkpoint",
    "load_model",
    "load_official",
    "model_from_checkpoint",
    "model_from_official",
    "official_key_map",
    "official_layer_table",
    "recognise_official",
    "restricted_load",
    "save_checkpoint",
]
