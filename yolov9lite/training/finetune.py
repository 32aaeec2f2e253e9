"""Fine-tuning: start a run from weights (``train --weights W --freeze N``).

What the official ``train_dual.py`` does with ``--weights`` and ``--freeze``, on our models:

* :func:`load_source` reads the weights through the safe loaders only -- one of our checkpoints
  or an official YOLOv9/GELAN ``.pt`` (:func:`yolov9lite.weights.checkpoint.load_model`, which
  scans the pickle first and never runs code from the file);
* :func:`source_model_name` is the preset the weights hold, used as the run's ``model`` when
  none is given (as the official code builds the checkpoint's own yaml);
* :func:`transfer_weights` copies every tensor whose name and shape match (the official
  ``intersect_dicts``); on a dataset with another class count the head's classification layers
  (``cv3``, whose widths follow ``nc``) do not match and keep their fresh initialisation (with
  the class-prior bias); the counts are printed. From a YOLOv9 (dual-head) source into a GELAN
  target the main head is mapped onto the target's only head;
* :func:`freeze_layers` is the official ``freeze = [f'model.{x}.' for x in range(freeze)]``
  (``requires_grad = False`` for the parameters of the first ``N`` official layers), with our
  module names mapped to the official layer indices by
  :func:`yolov9lite.weights.official.official_key_map`.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..nn.models import BASELINES, PRESETS, main_branch_keys
from ..utils.safe_pickle import CheckpointError
from ..weights.checkpoint import load_model
from ..weights.official import official_key_map
from .config import TrainError

__all__ = ["freeze_layers", "load_source", "source_model_name", "transfer_weights"]


def load_source(path: str | os.PathLike) -> nn.Module:
    """The model held by ``--weights`` (ours or official), float32 on the CPU, auxiliary branch
    kept (so that a YOLOv9 source gives its auxiliary branch to a YOLOv9 target too)."""
    try:
        return load_model(path, deploy=False)
    except FileNotFoundError as err:
        raise TrainError(f"--weights {str(path)!r}: no such file") from err
    except (CheckpointError, OSError, ValueError, KeyError) as err:
        raise TrainError(f"--weights {str(path)!r}: {err}") from err


def source_model_name(source: nn.Module, path) -> str:
    """The preset name of the source model; refused when it is not a preset (e.g. a model
    trained with ablation knobs): then ``--model`` (and its knobs) must say which model to build."""
    name = str(getattr(source, "name", "")).lower()
    if name in PRESETS or name in BASELINES:
        return name
    raise TrainError(f"--weights {str(path)!r} holds a {name!r} model, which is not a preset; "
                     "pass --model (and the same model knobs) to say which model to train")


def _source_state(source: nn.Module, target: nn.Module) -> dict[str, torch.Tensor]:
    """The source's tensors under the target's names: identical names, except that a dual-head
    (YOLOv9) source gives its main head (``head.main.*``) to a single-head (GELAN) target."""
    state = source.state_dict()
    if getattr(source, "has_aux", False) and not getattr(target, "has_aux", False):
        return {plain: state[key] for plain, key in main_branch_keys(source).items()}
    return state


def transfer_weights(target: nn.Module, source: nn.Module) -> dict:
    """Copy every source tensor whose name and shape match the target's (official
    ``intersect_dicts``); the rest of the target keeps its initialisation. Returns the counts
    (``transferred``, ``reinitialised``, ``total``) and the names left out (``reinitialised_keys``).
    Refuses weights that share almost nothing with the target (another architecture)."""
    state = _source_state(source, target)
    own = target.state_dict()
    matched = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    kept = sorted(k for k in own if k not in matched)
    trainable = [k for k in own if not k.endswith("num_batches_tracked")]
    n_matched = sum(1 for k in matched if not k.endswith("num_batches_tracked"))
    if n_matched < len(trainable) // 2:
        raise TrainError(f"the weights fit only {n_matched} of the {len(trainable)} tensors of "
                         f"model {getattr(target, 'name', '?')!r} (they hold "
                         f"{getattr(source, 'name', '?')!r}); pass the matching --model")
    own.update({k: v.to(own[k].dtype) for k, v in matched.items()})
    target.load_state_dict(own, strict=True)
    return {"transferred": len(matched), "reinitialised": len(kept), "total": len(own),
            "reinitialised_keys": kept}


def freeze_layers(model: nn.Module, n: int) -> list[str]:
    """Freeze the parameters of the first ``n`` official layers (official ``--freeze N``:
    ``requires_grad = False`` for every parameter under ``model.0.`` ... ``model.{n-1}.``; e.g.
    10 freezes the backbone of yolov9-c, whose layer 0 is the weightless ``Silence``; 9 that of
    gelan-c).
    Returns the frozen parameter names. Needs the official layer layout (presets, not ablation
    variants)."""
    if n <= 0:
        return []
    try:
        official = official_key_map(model)
    except (ValueError, KeyError, AttributeError) as err:
        raise TrainError(f"--freeze {n}: model {getattr(model, 'name', '?')!r} has no official "
                         f"layer numbering to count layers by ({err})") from None
    frozen = []
    for name, p in model.named_parameters():
        index = int(official[name].split(".")[1])
        if index < n:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen
