"""yolov9lite: a compact, exact, readable YOLOv9 (GELAN + PGI) in plain PyTorch.

Paper: C.-Y. Wang, I-H. Yeh, H.-Y. M. Liao, "YOLOv9: Learning What You Want to Learn Using
Programmable Gradient Information", arXiv:2402.13616 (ECCV 2024).

Where each paper idea lives (one home per idea; ``tests/test_structure.py`` checks that every
module below is reachable as ``yolov9lite.<name>`` and that the imports between them form no
cycle):

===============================  ==================================================================
information retention (Sec. 3)   :mod:`~yolov9lite.retention` (probe images, renderings),
                                 :mod:`~yolov9lite.stacks` (PlainNet ... GELAN, RevNet stacks),
                                 :mod:`~yolov9lite.retention_measures` (Jacobian, ridge, CKA)
blocks (GELAN, Sec. 4.2)         :mod:`~yolov9lite.blocks` (layers), :mod:`~yolov9lite.gelan`
                                 (backbone, neck, DHLC second backbone)
models and presets               :mod:`~yolov9lite.models` (:func:`build_model`),
                                 :mod:`~yolov9lite.yolov7` (Table 6's YOLOv7-AF baseline)
PGI (Sec. 4.1)                   :mod:`~yolov9lite.pgi`
detection head, DFL, boxes       :mod:`~yolov9lite.head`, :mod:`~yolov9lite.boxes`
deployment (aux removal)         :mod:`~yolov9lite.deployment` (:func:`deploy`),
                                 :mod:`~yolov9lite.export`
params / FLOPs                   :mod:`~yolov9lite.complexity` (:func:`profile`)
assigner, loss (Sec. 5.1)        :mod:`~yolov9lite.assign`, :mod:`~yolov9lite.loss`
data and augmentation            :mod:`~yolov9lite.data` (a package)
optimizer, LR schedule, EMA      :mod:`~yolov9lite.optim`
training                         :mod:`~yolov9lite.config` (``TrainConfig``),
                                 :mod:`~yolov9lite.engine` (step, epoch, validation),
                                 :mod:`~yolov9lite.runtime` (device, DDP, AMP, seeds),
                                 :mod:`~yolov9lite.trainer` (:func:`train`, the run, its CLI),
                                 :mod:`~yolov9lite.trainsetup` (loaders, model state),
                                 :mod:`~yolov9lite.runfolder` (run folder, lock, files)
COCO evaluation                  :mod:`~yolov9lite.coco_eval` (:func:`evaluate`),
                                 :mod:`~yolov9lite.postprocess` (NMS, boxes back to the image),
                                 :mod:`~yolov9lite.val` (``yolov9lite val``)
inference on images              :mod:`~yolov9lite.predictor` (:func:`predict`),
                                 :mod:`~yolov9lite.sources` (images, folders, globs, videos),
                                 :mod:`~yolov9lite.results` (``Results``, drawing boxes)
checkpoints                      :mod:`~yolov9lite.checkpoint` (ours, :func:`load_model`),
                                 :mod:`~yolov9lite.official` (official ``.pt`` files),
                                 :mod:`~yolov9lite.safe_pickle` (reading untrusted pickles)
PGI gradient measurements        :mod:`~yolov9lite.gradients`
ablations (Tables 2-6)           :mod:`~yolov9lite.ablation` (AP grid, tables),
                                 :mod:`~yolov9lite.paired` (variants, paired experiment),
                                 :mod:`~yolov9lite.gelan_study`,
                                 :mod:`~yolov9lite.yolov7` (Table 6's anchor-free YOLOv7)
notebooks: claims, parameters   :mod:`~yolov9lite.claims`, :mod:`~yolov9lite.nbparams`
speed, latency                   :mod:`~yolov9lite.accel`, :mod:`~yolov9lite.latency`,
                                 :mod:`~yolov9lite.graphstep` (CUDA-graph training step)
plots and figures                :mod:`~yolov9lite.viz`, :mod:`~yolov9lite.plots`,
                                 :mod:`~yolov9lite.figures`,
                                 :mod:`~yolov9lite.book` (the executed notebooks as a site)
command line                     :mod:`~yolov9lite.cli` (``yolov9lite <command>``),
                                 :mod:`~yolov9lite.cliargs` (shared options and errors)
===============================  ==================================================================
"""
from __future__ import annotations

import importlib
import pkgutil

from .complexity import profile
from .deployment import deploy
from .models import PRESETS, DetectionModel, ModelConfig, build_model, list_models

__version__ = "0.1.0"

# Heavier or optional parts are imported on first use, so `import yolov9lite` stays fast.
# Public function -> the module that defines it. A function here must not share its name with a
# module of the package: importing that module would rebind the package attribute (the reason the
# training and inference modules are `trainer` and `predictor`, not `train` and `predict`).
_LAZY = {
    "DetectionLoss": "yolov9lite.loss",
    "evaluate": "yolov9lite.coco_eval",
    "train": "yolov9lite.trainer",
    "load_official": "yolov9lite.official",
    "load_model": "yolov9lite.checkpoint",
    "predict": "yolov9lite.predictor",
}

# Every module and subpackage, found on disk rather than listed by hand (`__main__` runs the CLI
# when imported, so it is no attribute).
_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__) if m.name != "__main__")


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # next time a plain attribute, no import machinery
        return value
    if name in _SUBMODULES:  # e.g. `yolov9lite.data.make_synthetic(...)` after `import yolov9lite`
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = ["PRESETS", "DetectionLoss", "DetectionModel", "ModelConfig", "build_model", "deploy",
           "evaluate", "list_models", "load_model", "load_official", "predict", "profile", "train"]
