"""Our checkpoint format, :func:`load_model` for any checkpoint, their commands are in :mod:`yolov9lite.cli.checkpoints`.

A yolov9lite checkpoint is a plain dict of tensors and plain Python values, readable with
``torch.load(path, weights_only=True)`` and written atomically (:func:`save_checkpoint`):
``format``, ``version``, ``model_name``, ``config`` (the :class:`~yolov9lite.nn.models.ModelConfig`
as plain types), ``nc``, ``names``, ``deployed`` and ``state_dict``, plus whatever the trainer adds
(epoch, optimizer, RNG states ...).

Official ``.pt`` files are read by :mod:`yolov9lite.weights.official`; :func:`load_model` accepts both
kinds and returns a ready inference model. Reading never trusts the file: the pickle is scanned
before it is unpickled (:func:`yolov9lite.utils.safe_pickle.check_pickle_globals`), and the ``config`` is
checked against bounds and against the stored tensors on a shape-only model before a real model
is built (:func:`model_from_checkpoint`), so a small crafted file cannot make us allocate a big
model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from ..nn.deployment import deploy as deploy_model
from ..nn.deployment import fuse
from ..nn.models import BASELINES, PRESETS, DetectionModel, ModelConfig
from ..utils.safe_pickle import (
    MAX_CLASSES,
    TORCH_TENSOR_GLOBALS,
    CheckpointError,
    check_pickle_globals,
    check_tensor_sizes,
    load_weights_only,
    restricted_load,
)
from .official import class_names, model_from_official

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_DEPTH", "MAX_DEPTH_PRODUCT", "MAX_WIDTH",
           "atomic_save", "check_model_fits", "config_from_dict", "load_checkpoint", "load_model",
           "model_from_checkpoint", "save_checkpoint"]

FORMAT_NAME = "yolov9lite"
FORMAT_VERSION = 1

# Bounds on a stored config, checked before any model is built. The largest official width is
# 1024 (gelan-e); paper Table 3 uses depths up to 3 (D_ELAN x D_CSP up to 6). The cost of even the
# shape-only model grows with D_ELAN x D_CSP, hence the bound on the product.
MAX_WIDTH = 4096
MAX_DEPTH = 8
MAX_DEPTH_PRODUCT = 16


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


def _check_like(name: str, value, reference) -> None:
    """``value`` must have the structure of the preset's ``reference`` value, with every integer
    in 1..MAX_WIDTH (1..MAX_DEPTH for depths) and short strings."""
    if isinstance(reference, bool):
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        limit = MAX_DEPTH if name.startswith("depth") else MAX_WIDTH
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit
    elif isinstance(reference, str):
        ok = isinstance(value, str) and len(value) <= 32
    elif isinstance(reference, tuple):
        ok = isinstance(value, tuple) and len(value) == len(reference)
        if ok:
            for v, r in zip(value, reference):
                _check_like(name, v, r)
    else:  # ``paper``: published numbers, never used to build anything
        ok = isinstance(value, dict)
    if not ok:
        raise CheckpointError(f"model config field {name!r} = {value!r:.80} is out of range or "
                              f"of the wrong kind (expected like {reference!r})")


def config_of(model) -> dict:
    """What a checkpoint stores to rebuild ``model``: its ModelConfig as plain types, or
    ``{"baseline": name}`` for a model without knobs (Table 6's ``yolov7-af``)."""
    cfg = getattr(model, "cfg", None)
    if isinstance(cfg, ModelConfig):
        return _plain(dataclasses.asdict(cfg))
    name = next((k for k, cls in BASELINES.items() if type(model) is cls), None)
    if name is None:
        raise ValueError(f"cannot store a {type(model).__name__}: not a yolov9lite model")
    return {"baseline": name}


def config_from_dict(d: dict) -> ModelConfig | str:
    """Inverse of :func:`config_of`, checked: lists back to the tuples of ModelConfig, every
    field of the kind and within the bounds of a real model; a baseline's name as a string."""
    if not isinstance(d, dict):
        raise CheckpointError(f"model config must be a dict, got {type(d).__name__}")
    if set(d) == {"baseline"}:
        if d["baseline"] not in BASELINES:
            raise CheckpointError(f"unknown baseline model {d['baseline']!r:.40} (known: "
                                  f"{', '.join(BASELINES)})")
        return d["baseline"]
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(d) - fields
    if unknown:
        raise CheckpointError(f"unknown model config fields {sorted(unknown)} (newer yolov9lite?)")
    values = {k: (v if k == "paper" else _tuples(v)) for k, v in d.items()}
    reference = PRESETS["gelan-c"]
    for name, value in values.items():
        _check_like(name, value, getattr(reference, name))
    depths = values.get("depth_elan", 1) * values.get("depth_csp", 1)
    if depths > MAX_DEPTH_PRODUCT:
        raise CheckpointError(f"model config depth_elan x depth_csp = {depths} is out of range "
                              f"(at most {MAX_DEPTH_PRODUCT})")
    try:
        return ModelConfig(**values)
    except TypeError as err:  # a required field missing
        raise CheckpointError(f"incomplete model config: {err}") from None


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
    reserved = {"format", "version", "model_name", "config", "nc", "names", "deployed",
                "state_dict"}
    if reserved & extra.keys():
        raise ValueError("extra fields may not use the reserved names "
                         f"{sorted(reserved & extra.keys())}")
    names = class_names(names if names is not None else getattr(model, "names", None), model.nc)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
             for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "model_name": model.name,
        "config": config_of(model), "nc": model.nc, "names": names,
        "deployed": bool(getattr(model, "deployed", False)), "state_dict": state, **extra,
    }
    return atomic_save(ckpt, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read one of our checkpoints: the pickle is scanned for anything but plain tensors and
    Python values, then read with ``torch.load(weights_only=True)`` (no extra allowlist)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    check_pickle_globals(path, TORCH_TENSOR_GLOBALS)
    ckpt = load_weights_only(path)
    if not _is_ours(ckpt):
        raise CheckpointError(f"{path} is not a yolov9lite checkpoint (official files: use "
                              "load_official or load_model)")
    if not isinstance(ckpt.get("version"), int) or ckpt["version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {ckpt.get('version')!r} is not one this "
                              f"yolov9lite understands (<= {FORMAT_VERSION})")
    return ckpt


def _model_skeleton(ckpt: dict, device: str | torch.device) -> DetectionModel:
    """The checkpoint's model, built on ``device`` (``meta``: shapes only, nothing allocated)."""
    cfg = config_from_dict(ckpt.get("config"))
    nc = ckpt.get("nc")
    if not isinstance(nc, int) or isinstance(nc, bool) or not 1 <= nc <= MAX_CLASSES:
        raise CheckpointError(f"nc = {nc!r:.40} is out of range (1 to {MAX_CLASSES})")
    try:
        with torch.device(device):
            if isinstance(cfg, str):  # a baseline (Table 6's yolov7-af): no knobs
                model = BASELINES[cfg](nc, name=cfg)
            else:
                model = DetectionModel(cfg, nc, name=str(ckpt.get("model_name", "custom"))[:100])
            if ckpt.get("deployed"):  # fused weights: give the model the fused key layout
                model.eval()
                fuse(model)
                model.deployed = True
    except (ValueError, KeyError) as err:  # e.g. an unknown block or PGI variant
        raise CheckpointError(f"model config cannot be built: {err}") from None
    return model


def _check_state_matches(state, model: DetectionModel) -> None:
    """The stored tensors must be exactly the model's keys and shapes, each backed by its bytes."""
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError("'state_dict' is not a dict of tensors")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected.keys() != state.keys():
        extra = sorted(state.keys() - expected.keys())
        missing = sorted(expected.keys() - state.keys())
        raise CheckpointError(f"the weights do not fit the stored config (unexpected keys "
                              f"{extra[:2]}, missing keys {missing[:2]})")
    bad = [k for k in expected if tuple(state[k].shape) != expected[k]]
    if bad:
        raise CheckpointError(f"the weights do not fit the stored config ({len(bad)} shape "
                              f"mismatches, e.g. {bad[0]}: {tuple(state[bad[0]].shape)} vs "
                              f"{expected[bad[0]]})")
    check_tensor_sizes(state)


def check_model_fits(ckpt: dict) -> ModelConfig | str:
    """The checkpoint's model config, after every check that needs no real model: fields and
    ``nc`` within bounds, and the stored tensors exactly the keys and shapes of that model
    (compared on a shape-only, meta-device model), each backed by its own stored bytes.

    Call it before building anything from a file's config: the model is then no larger than the
    weights the file really holds. Raises :class:`CheckpointError`.
    """
    _check_state_matches(ckpt.get("state_dict"), _model_skeleton(ckpt, "meta"))
    return config_from_dict(ckpt["config"])


def model_from_checkpoint(ckpt: dict) -> DetectionModel:
    """Rebuild the model of one of our checkpoint dicts (float32, eval mode).

    :func:`check_model_fits` first; a deployed checkpoint holds fused weights, so the model is
    fused before loading.
    """
    check_model_fits(ckpt)
    model = _model_skeleton(ckpt, "cpu")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt["state_dict"].items()}, strict=True)
    if ckpt.get("deployed"):
        model.requires_grad_(False)
    model.names = class_names(ckpt.get("names"), model.nc)
    return model.float().eval()


def load_model(path: str | os.PathLike, deploy: bool = True) -> DetectionModel:
    """Load our checkpoint or an official ``.pt``; return a ready model (eval mode, float32).

    With ``deploy=True`` (default, what ``predict`` and ``val`` use) the auxiliary branch is removed
    and BatchNorm/RepConvN are fused (:func:`yolov9lite.nn.deployment.deploy`); the outputs are those of
    the main branch, so the detections are the same either way. ``model.names`` holds the class
    names.
    """
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
