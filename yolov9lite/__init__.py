"""yolov9lite: a compact, exact, readable YOLOv9 (GELAN + PGI) in plain PyTorch.

Paper: C.-Y. Wang, I-H. Yeh, H.-Y. M. Liao, "YOLOv9: Learning What You Want to Learn Using
Programmable Gradient Information", arXiv:2402.13616 (ECCV 2024).

The folders are layers: a module imports only from its own folder and from folders on a lower
floor (``tests/test_structure.py`` holds the table and checks every import, also those inside
functions). ``nn/`` and ``data/`` never import each other, nor do ``training/`` and
``inference/``; only ``cli/`` and the notebooks import ``study/``.

Module map (floor, folder, modules):

    0  utils/      Helpers every layer may use: boxes, devices, speed, safe pickles, outputs.
                   accel, boxes, errors, paths, runtime, safe_pickle
    1  data/       Data pipeline of yolov9lite: datasets, the YOLOv9 augmentation recipe, loaders.
                   augment, cache, checks, coco_export, coco_json, config, dataset, draw,
                   imagecache, instances, labels, loader, records, sampling, synthetic
    1  nn/         The networks: blocks, GELAN, PGI, head, model zoo, deployment, counts.
                   blocks, complexity, deployment, gelan, head, models, pgi, yolov7
    2  report/     Figures: one style and save helper, run plots, notebook parameters.
                   nbparams, plots, viz
    2  weights/    Checkpoints: our format, and official .pt files read without executing them.
                   checkpoint, official
    3  evaluation/ Evaluation: NMS, boxes back to the image, COCO metrics, latency.
                   coco_eval, latency, postprocess, table
    4  inference/  Inference: predict on images and videos, sources, results, export.
                   export, predictor, results, sources
    4  training/   Training: assigner, loss, optimizer, the reference step, the engine, the run.
                   assign, config, engine, finetune, graphstep, loss, optim, runfolder, step,
                   trainer, trainsetup
    5  study/      The paper's experiments: retention, gradients, paired runs, ablations, claims.
                   ablation, claims, compare, deep_pgi, gelan_study, gradients, paired, pgi_study,
                   retention, retention_measures, runs, stacks, statistics
    6  cli/        The command line: ``yolov9lite <command>`` or ``python -m yolov9lite <command>``.
                   args, book, checkpoints, claims, export, figures, models, predict, train, val

(end of the module map)

Where each paper idea lives (one home per idea):

===============================  ==================================================================
information retention (Sec. 3)   :mod:`~yolov9lite.study.retention` (probe images, renderings),
                                 :mod:`~yolov9lite.study.stacks` (PlainNet ... GELAN, RevNet stacks),
                                 :mod:`~yolov9lite.study.retention_measures` (Jacobian, ridge, CKA)
blocks (GELAN, Sec. 4.2)         :mod:`~yolov9lite.nn.blocks` (layers), :mod:`~yolov9lite.nn.gelan`
                                 (backbone, neck, DHLC second backbone)
models and presets               :mod:`~yolov9lite.nn.models` (:func:`build_model`),
                                 :mod:`~yolov9lite.nn.yolov7` (Table 6's YOLOv7-AF baseline)
PGI (Sec. 4.1)                   :mod:`~yolov9lite.nn.pgi`
detection head, DFL, boxes       :mod:`~yolov9lite.nn.head`, :mod:`~yolov9lite.utils.boxes`
deployment (aux removal)         :mod:`~yolov9lite.nn.deployment` (:func:`deploy`),
                                 :mod:`~yolov9lite.inference.export`
params / FLOPs                   :mod:`~yolov9lite.nn.complexity` (:func:`profile`)
assigner, loss (Sec. 5.1)        :mod:`~yolov9lite.training.assign`, :mod:`~yolov9lite.training.loss`
data and augmentation            :mod:`~yolov9lite.data` (a package)
optimizer, LR schedule, EMA      :mod:`~yolov9lite.training.optim`
training                         :mod:`~yolov9lite.training.config` (``TrainConfig``),
                                 :mod:`~yolov9lite.training.engine` (step, epoch, validation),
                                 :mod:`~yolov9lite.utils.runtime` (device, DDP, AMP, seeds),
                                 :mod:`~yolov9lite.training.step` (one step, the reference),
                                 :mod:`~yolov9lite.training.trainer` (:func:`train`, the run),
                                 :mod:`~yolov9lite.training.trainsetup` (loaders, model state),
                                 :mod:`~yolov9lite.training.runfolder` (run folder, lock, files)
COCO evaluation                  :mod:`~yolov9lite.evaluation.coco_eval` (:func:`evaluate`),
                                 :mod:`~yolov9lite.evaluation.postprocess` (NMS, boxes back to the
                                 image), :mod:`~yolov9lite.cli.val` (``yolov9lite val``)
inference on images              :mod:`~yolov9lite.inference.predictor` (:func:`predict`),
                                 :mod:`~yolov9lite.inference.sources` (images, folders, globs, videos),
                                 :mod:`~yolov9lite.inference.results` (``Results``, drawing boxes)
checkpoints                      :mod:`~yolov9lite.weights.checkpoint` (ours, :func:`load_model`),
                                 :mod:`~yolov9lite.weights.official` (official ``.pt`` files),
                                 :mod:`~yolov9lite.utils.safe_pickle` (reading untrusted pickles)
PGI gradient measurements        :mod:`~yolov9lite.study.gradients`
ablations (Tables 2-6)           :mod:`~yolov9lite.study.ablation` (AP grid, tables),
                                 :mod:`~yolov9lite.study.paired` (variants, paired experiment),
                                 :mod:`~yolov9lite.study.gelan_study`,
                                 :mod:`~yolov9lite.nn.yolov7` (Table 6's anchor-free YOLOv7)
notebooks: claims, parameters   :mod:`~yolov9lite.study.claims`, :mod:`~yolov9lite.report.nbparams`
                                 :mod:`~yolov9lite.study.statistics` (intervals, equivalence, power),
                                 :mod:`~yolov9lite.study.runs` (per-run records)
speed, latency                   :mod:`~yolov9lite.utils.accel`, :mod:`~yolov9lite.evaluation.latency`,
                                 :mod:`~yolov9lite.training.graphstep` (CUDA-graph training step)
plots and figures                :mod:`~yolov9lite.report.viz`, :mod:`~yolov9lite.report.plots`,
                                 :mod:`~yolov9lite.cli.figures`,
                                 :mod:`~yolov9lite.cli.book` (the executed notebooks as a site)
command line                     :mod:`~yolov9lite.cli` (``yolov9lite <command>``),
                                 :mod:`~yolov9lite.cli.args` (shared options, one-line errors),
                                 :mod:`~yolov9lite.utils.errors` (``InputError``),
                                 :mod:`~yolov9lite.utils.paths` (run folders, no overwrite)
===============================  ==================================================================
"""
from __future__ import annotations

import importlib
import pkgutil

from .nn.complexity import profile
from .nn.deployment import deploy
from .nn.models import PRESETS, DetectionModel, ModelConfig, build_model, list_models

__version__ = "0.1.0"

# Heavier or optional parts are imported on first use, so `import yolov9lite` stays fast.
# Public function -> the module that defines it. A function here must not share its name with a
# module or folder of the package: importing it would rebind the package attribute (the reason the
# folders are `training` and `inference` and their modules `trainer` and `predictor`).
_LAZY = {
    "DetectionLoss": "yolov9lite.training.loss",
    "evaluate": "yolov9lite.evaluation.coco_eval",
    "train": "yolov9lite.training.trainer",
    "load_official": "yolov9lite.weights.official",
    "load_model": "yolov9lite.weights.checkpoint",
    "predict": "yolov9lite.inference.predictor",
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
