"""Official YOLOv9 ``.pt`` files: recognise the model from its tensors and build ours.

An official checkpoint (official ``train_dual.py`` / ``train.py``) is read by
:func:`yolov9lite.utils.safe_pickle.restricted_load`, which admits only the official class names (as
inert stand-ins) and never runs code from the file. From the unpickled object this module takes
only the tensors, read straight from the modules' ``__dict__``, and the class names. The model is
recognised from keys and shapes alone (:func:`recognise_official`): the file's tensors must be
exactly the official keys of one preset, with equal shapes (compared on a shape-only model, so
nothing of a size the file chose is allocated); only then is our model built and the weights
copied in (:func:`model_from_official`). Code or yaml inside the file is never used.

The official -> ours key mapping: our sub-module names inside each block are the official ones,
so a key maps by renaming its layer prefix (``backbone.stem`` <-> ``model.2``) and, in the head,
``cv4/cv5/dfl2`` of the official ``DualDDetect`` <-> ``head.main.cv2/cv3/dfl``.
:func:`official_layer_table` derives the prefix -> index table from a model's config (the layer
order of the official ``models/detect/*.yaml`` files); :func:`official_key_map` expands it to
every tensor.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..nn.gelan import round_up8
from ..nn.models import OFFICIAL_MODELS, PRESETS, DetectionModel, ModelConfig, build_model
from ..utils.safe_pickle import (
    MAX_CLASSES,
    CheckpointError,
    UnsafeCheckpointError,
    check_tensor_sizes,
    restricted_load,
)

__all__ = [
    "RECOGNISED_MODELS",
    "class_names",
    "load_official",
    "model_from_official",
    "official_key_map",
    "official_layer_table",
    "recognise_official",
]

# Presets :func:`recognise_official` tries. The tiny "nano" presets have an official-style layout
# too, which lets tests exercise the whole import path with small models.
RECOGNISED_MODELS = (*OFFICIAL_MODELS, "gelan-nano", "yolov9-nano", "yolov9-nano-icn")

# =============================================================================================
# 1. Official layer layout and key mapping (official models/detect/*.yaml layer order)
# =============================================================================================

# The main backbone, in official order: 9 layers (official yaml layers 0-8).
_BACKBONE = ("conv0", "conv1", "stem", "downs.0", "stages.0", "downs.1", "stages.1",
             "downs.2", "stages.2")
# Top-down + bottom-up neck, as offsets from its first layer (the gaps are Upsample and Concat
# layers, which have no weights).
_NECK = {"top_down.spp": 0, "top_down.n4": 3, "top_down.p3": 6, "down4": 7, "p4": 9,
         "down5": 10, "p5": 12}
_NECK_LEN = 13
# The auxiliary FPN of yolov9-t/s/e: SPPELAN, Up, Concat, GELAN, Up, Concat, GELAN.
_TOP_DOWN = {"spp": 0, "n4": 3, "p3": 6}
_TOP_DOWN_LEN = 7


def _check_official_style(cfg: ModelConfig) -> None:
    if cfg.pgi not in ("none", "fpn", "icn") or cfg.depth_elan != 2 or cfg.block != "csp":
        raise ValueError("only official-style models (pgi none/fpn/icn, D_ELAN 2, CSP blocks) have "
                         f"an official key layout; got pgi={cfg.pgi!r}, "
                         f"depth_elan={cfg.depth_elan}, "
                         f"block={cfg.block!r}")


def _reversible_layers(prefix: str, levels, start: int) -> tuple[dict[str, int], int]:
    """A CBNet second backbone: conv0, conv1, stem, 3 x (down, stage), with a weightless CBFuse
    layer right after the layer that enters each linked level (official yolov9-c.yaml layers
    23-37, gelan-e.yaml layers 15-28)."""
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

    Rules, from the official yaml files:

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


# Official DualDDetect attribute -> ours (its inputs 0-2 are auxiliary, 3-5 main).
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


# =============================================================================================
# 2. Recognising the model and building ours
# =============================================================================================

def _head_info(state: dict) -> tuple[int, int, bool]:
    """(head index, number of classes, dual head?) of an official state dict."""
    try:
        head = max(int(k.split(".")[1]) for k in state if k.startswith("model."))
        nc = state[f"model.{head}.cv3.0.2.bias"].shape[0]
    except (ValueError, KeyError, AttributeError, IndexError):
        raise CheckpointError("the weights do not look like a YOLOv9/GELAN detection model (no "
                              "'model.N.cv3.0.2.bias' class layer in the last layer)") from None
    if not 1 <= nc <= MAX_CLASSES:
        raise CheckpointError(f"the class layer has {nc} outputs; expected 1 to {MAX_CLASSES}")
    return head, int(nc), f"model.{head}.cv4.0.0.conv.weight" in state


def _candidates(state: dict, head: int, dual: bool) -> list[str]:
    """Presets with the file's head index, head type and main-head input widths (P3, P4, P5):
    a cheap filter (no model built) that leaves one candidate for every official file."""
    box = "cv4" if dual else "cv2"  # the main head's box branch
    try:
        widths = tuple(state[f"model.{head}.{box}.{i}.0.conv.weight"].shape[1] for i in range(3))
    except (KeyError, AttributeError, IndexError):
        return []
    out = []
    for name in RECOGNISED_MODELS:
        cfg = PRESETS[name]
        expected = tuple(round_up8(c[0]) for c in (cfg.p3, cfg.p4, cfg.p5))
        same_head = (cfg.pgi != "none") == dual and official_layer_table(cfg)[1] == head
        if same_head and expected == widths:
            out.append(name)
    return out


def _match_official(state: dict) -> tuple[DetectionModel, dict[str, str]]:
    """Build the preset whose official keys and shapes are exactly those of ``state``.

    Keys and shapes are compared on a shape-only (meta device) model first, so nothing of a size
    the file chose is allocated. Returns the (randomly initialised) model and its ours ->
    official key map.
    """
    head, nc, dual = _head_info(state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    near = []
    for name in _candidates(state, head, dual):
        with torch.device("meta"):
            shape_model = build_model(name, nc)
        mapping = official_key_map(shape_model)
        ours = shape_model.state_dict()
        expected = {off: tuple(ours[k].shape) for k, off in mapping.items()}
        if expected.keys() != shapes.keys():
            extra = sorted(shapes.keys() - expected.keys())
            missing = sorted(expected.keys() - shapes.keys())
            near.append(f"{name} (unexpected keys {extra[:2]}, missing keys {missing[:2]})")
            continue
        bad = [k for k in expected if expected[k] != shapes[k]]
        if not bad:
            return build_model(name, nc), mapping
        near.append(f"{name} ({len(bad)} shape mismatches, e.g. {bad[0]}: file "
                    f"{shapes[bad[0]]} vs {expected[bad[0]]})")
    hint = "; closest: " + ", ".join(near) if near else ""
    raise CheckpointError(f"unrecognised model: {len(state)} tensors, head at layer {head}, "
                          f"nc={nc}, {'dual' if dual else 'single'} head; expected one of "
                          f"{', '.join(OFFICIAL_MODELS)}{hint}")


def recognise_official(state: dict) -> tuple[str, int]:
    """Which preset an official state dict holds, and its number of classes.

    Decided by keys and shapes only: the file's keys must be exactly the preset's official keys,
    with equal shapes. "Converted" yolov9-X files (official ``tools/reparameterization.ipynb``)
    are gelan-X files.
    """
    model, _ = _match_official(state)
    return model.name, model.nc


def class_names(names, nc: int) -> list[str]:
    """Official ``names`` is a dict {index: name} (or a list); ours is always a list of nc strings
    (the indices as strings when the file's names do not fit)."""
    if isinstance(names, dict):
        try:
            names = [names[k] for k in sorted(names)]
        except TypeError:  # keys of mixed types: not a names table
            names = []
    names = [str(n) for n in (names or [])] if isinstance(names, (list, tuple)) else []
    return names if len(names) == nc else [str(i) for i in range(nc)]


def _official_module(obj):
    """The pickled DetectionModel inside a loaded official file: EMA if present (as the official
    ``attempt_load`` in ``models/experimental.py`` does), else ``model``."""
    if isinstance(obj, dict):
        for key in ("ema", "model"):
            if obj.get(key) is not None:
                return obj[key]
        raise CheckpointError("official checkpoint has neither 'ema' nor 'model'")
    return obj


# Bounds on what walking an unpickled module tree may cost. A real file names one module many
# times (the official ``Conv`` keeps a single ``nn.SiLU()`` as the class attribute
# ``default_act`` and every layer refers to it; ``deepcopy`` keeps the sharing), so sharing is
# accepted; what is bounded is the work: module visits along all paths (yolov9-e: about 3,000)
# and the bytes of the state dict read (yolov9-e: about 120 MB in fp16). A tree in which every
# node names the same child twice has 2**depth paths and stops at the first bound.
_MAX_MODULE_VISITS = 100_000
_MAX_STATE_BYTES = 2 << 30


def _items(table) -> list:
    """Entries of a module's ``_parameters``/``_buffers``/``_modules`` (nothing if a crafted file
    put something other than a dict there)."""
    return list(table.items()) if isinstance(table, dict) else []


def _tensors(module: nn.Module, prefix: str = "model") -> dict:
    """The state dict of an unpickled module, read from its ``__dict__`` directly.

    Unlike ``module.state_dict()`` this calls no method of the unpickled objects. Like it, a
    module reached along several paths contributes its tensors under each path. Iterative (a
    pickle can nest modules deeper than Python's recursion limit) and bounded by
    :data:`_MAX_MODULE_VISITS` and :data:`_MAX_STATE_BYTES`, so a small pickle cannot describe a
    tree that takes exponential time or memory to walk.
    """
    out: dict[str, torch.Tensor] = {}
    todo, visits, nbytes = [(prefix, module)], 0, 0
    while todo:
        prefix, module = todo.pop()
        visits += 1
        if visits > _MAX_MODULE_VISITS:
            raise UnsafeCheckpointError(
                f"the module tree has more than {_MAX_MODULE_VISITS} modules along all its paths "
                f"(far more than any YOLOv9 model; stopped at {prefix[:200]!r}); refusing it")
        d = vars(module)
        skip = d.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, t in _items(d.get(group)):
                if torch.is_tensor(t) and name not in skip:
                    nbytes += t.numel() * t.element_size()
                    if nbytes > _MAX_STATE_BYTES:
                        raise UnsafeCheckpointError(
                            f"the model's tensors add up to more than {_MAX_STATE_BYTES >> 30} GiB "
                            f"(far more than any YOLOv9 model; stopped at {prefix[:200]!r}); "
                            "refusing it")
                    out[f"{prefix}.{name}"] = t.detach()
        children = [(f"{prefix}.{name}", child)
                    for name, child in _items(d.get("_modules"))
                    if isinstance(child, nn.Module)]
        todo += reversed(children)  # depth first, in the module's own order
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
    check_tensor_sizes(state)
    model, mapping = _match_official(state)
    # official tensors are fp16; every fp16 value is exact in fp32
    weights = {ours: state[off] for ours, off in mapping.items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in weights.items()}, strict=True)
    attrs = vars(module) if isinstance(module, nn.Module) else {}
    stride = attrs.get("stride")
    if torch.is_tensor(stride) and stride.tolist() != list(model.strides):
        raise CheckpointError(f"unexpected strides {stride.tolist()} "
                              f"(expected {list(model.strides)})")
    model.names = class_names(attrs.get("names"), model.nc)
    return model.float().eval()


def load_official(path: str | os.PathLike) -> DetectionModel:
    """Read an official YOLOv9/GELAN ``.pt`` without the official code and without running code
    from the file; return our equivalent model (float32, eval mode, auxiliary branch kept).

    The model is recognised from the weights (``yolov9-t/s/m/c/e``, their "converted" versions,
    ``gelan-t/s/m/c/e``); ``model.names`` holds the class names. Use
    :func:`yolov9lite.weights.checkpoint.load_model` for a deployed (aux-free, fused) model.
    """
    obj = restricted_load(path)
    if isinstance(obj, dict) and "format" in obj:  # official files have no "format" entry
        raise CheckpointError(f"{path} is not an official checkpoint (format "
                              f"{obj['format']!r}); use yolov9lite.load_model()")
    return model_from_official(obj)
