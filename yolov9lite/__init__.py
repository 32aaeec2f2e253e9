"""yolov9lite: a compact, exact, readable YOLOv9 (GELAN + PGI) in plain PyTorch.

Paper: C.-Y. Wang, I-H. Yeh, H.-Y. M. Liao, "YOLOv9: Learning What You Want to Learn Using
Programmable Gradient Information", arXiv:2402.13616 (ECCV 2024).

Where each paper idea lives:

==========================  ===========================================================
information retention (3)   :mod:`yolov9lite.retention`
blocks (GELAN, Sec. 4.2)    :mod:`yolov9lite.blocks`
models and presets          :mod:`yolov9lite.models`  (:func:`build_model`)
PGI (Sec. 4.1)              :mod:`yolov9lite.pgi`
detection head, DFL         :mod:`yolov9lite.head`
deployment (aux removal)    :mod:`yolov9lite.deploy`  (:func:`deploy`)
params / FLOPs              :mod:`yolov9lite.complexity`  (:func:`profile`)
assigner, loss (Sec. 5.1)   :mod:`yolov9lite.assign`, :mod:`yolov9lite.loss`
data and augmentation       :mod:`yolov9lite.data`
COCO evaluation             :mod:`yolov9lite.coco_eval`, :mod:`yolov9lite.postprocess`
PGI gradient measurements   :mod:`yolov9lite.gradients`
ablation tables (Tab. 4-5)  :mod:`yolov9lite.ablation`
training recipe             :mod:`yolov9lite.train`, :mod:`yolov9lite.optim`
checkpoints, predict        :mod:`yolov9lite.checkpoint`, :mod:`yolov9lite.predict`
speed, latency              :mod:`yolov9lite.accel`, :mod:`yolov9lite.latency`
plots and figures           :mod:`yolov9lite.viz`, :mod:`yolov9lite.figures`
==========================  ===========================================================
"""
from __future__ import annotations

import importlib

from .complexity import profile
from .deploy import deploy
from .models import PRESETS, DetectionModel, ModelConfig, build_model, list_models

__version__ = "0.1.0"

# Heavier or optional parts are imported on first use, so `import yolov9lite` stays fast.
_LAZY = {
    "DetectionLoss": "yolov9lite.loss",
    "evaluate": "yolov9lite.coco_eval",
    "train": "yolov9lite.train",
    "load_official": "yolov9lite.checkpoint",
    "load_model": "yolov9lite.checkpoint",
    "predict": "yolov9lite.predict",
}


_SUBMODULES = {"data", "loss", "assign", "boxes", "coco_eval", "postprocess", "train", "optim",
               "checkpoint", "predict", "viz", "figures", "retention", "pgi", "head", "blocks"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:  # e.g. `yolov9lite.data.make_synthetic(...)` after `import yolov9lite`
        return importlib.import_module(f"yolov9lite.{name}")
    raise AttributeError(f"module 'yolov9lite' has no attribute {name!r}")


__all__ = ["PRESETS", "DetectionLoss", "DetectionModel", "ModelConfig", "build_model", "deploy",
           "evaluate", "list_models", "load_model", "load_official", "predict", "profile", "train"]
