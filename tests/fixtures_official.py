"""Write checkpoints in the *official* YOLOv9 layout without the official code (test fixtures).

An official ``.pt`` (as the official ``train_dual.py`` saves it) is a dict whose ``model``/``ema``
entries are pickled ``models.yolo.DetectionModel`` objects: an ``nn.Sequential`` called ``model`` of layers whose
classes live in ``models.common`` / ``models.yolo``, in half precision, with plain attributes
(``yaml``, ``names``, ``nc``, ``stride`` ...). To write such a file here we

1. create throw-away modules named ``models``, ``models.common`` and ``models.yolo`` in
   ``sys.modules`` holding empty ``nn.Module`` subclasses with the official class names;
2. copy each of our layers, switch every yolov9lite class to the same-named official stand-in
   (our sub-module names are the official ones), and put it at its official index;
3. ``torch.save`` the training-script dict, then remove the fake modules again, so that the
   loader under test can *not* import them.

Layer indices come from :func:`yolov9lite.weights.official.official_layer_table`; the tests check that
table independently (official tensor counts, per-layer parameter counts, sample keys).
These stand-ins do not share modules as the real official objects do (every official ``Conv``
refers to one ``nn.SiLU``); files written by the real official classes are tested in
test_official_checkpoints.py.
"""
from __future__ import annotations

import contextlib
import copy
import pathlib
import sys
import types

import torch
from torch import nn

from yolov9lite.utils.safe_pickle import OFFICIAL_CLASSES
from yolov9lite.weights.official import official_layer_table

FAKE_PACKAGES = ("models", "models.common", "models.yolo")


@contextlib.contextmanager
def official_modules():
    """Temporarily install fake ``models.common`` / ``models.yolo`` modules; yields name -> class."""
    if any(name in sys.modules for name in FAKE_PACKAGES):
        raise RuntimeError("a real 'models' package is imported; the fixture needs the name")
    modules = {name: types.ModuleType(name) for name in FAKE_PACKAGES}
    classes = {}
    for mod_name, names in OFFICIAL_CLASSES.items():
        for name in names:
            cls = type(name, (nn.Module,), {"__module__": mod_name, "__qualname__": name})
            setattr(modules[mod_name], name, cls)
            classes[name] = cls
    modules["models"].common, modules["models"].yolo = modules["models.common"], modules["models.yolo"]
    sys.modules.update(modules)
    try:
        yield classes
    finally:
        for name in FAKE_PACKAGES:
            sys.modules.pop(name, None)


def _half(t):
    if t is None:
        return None
    t = t.detach()
    return t.half() if t.is_floating_point() else t.clone()


def _officialise(module: nn.Module, classes: dict) -> nn.Module:
    """A copy of one of our modules in fp16 whose yolov9lite classes are the official stand-ins.

    Built by hand rather than ``copy.deepcopy(...).half()``: the same result at a fraction of the
    cost, which matters when writing the big models in every test run.
    """
    cls = type(module)
    if cls.__module__.startswith("yolov9lite"):
        cls = classes[cls.__name__]
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)  # plain attributes (and hook dicts, which are empty)
    new._parameters = {k: None if v is None else nn.Parameter(_half(v), requires_grad=False)
                       for k, v in module._parameters.items()}
    new._buffers = {k: _half(v) for k, v in module._buffers.items()}
    new._modules = {k: _officialise(c, classes) for k, c in module._modules.items()}
    return new


def _new(cls, **attrs) -> nn.Module:
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    obj.__dict__.update(attrs)
    return obj


def _head(model, classes) -> nn.Module:
    head = model.head
    attrs = {"nc": model.nc, "nl": 3, "reg_max": 16, "no": model.nc + 64, "inplace": True,
             "stride": torch.tensor([8.0, 16.0, 32.0])}
    if not model.has_aux:
        out = _officialise(head, classes)
        out.__dict__.update(attrs)
        return out
    dual = _new(classes["DualDDetect"], **attrs)
    # official DualDDetect: cv2/cv3/dfl = auxiliary head, cv4/cv5/dfl2 = main head (official models/yolo.py)
    for official, ours in (("cv2", head.aux.cv2), ("cv3", head.aux.cv3), ("dfl", head.aux.dfl),
                           ("cv4", head.main.cv2), ("cv5", head.main.cv3), ("dfl2", head.main.dfl)):
        dual.add_module(official, _officialise(ours, classes))
    return dual


def _gap_layer(i: int, table_by_index: dict, classes) -> nn.Module:
    """A weightless official layer (Silence, Upsample, CBFuse or Concat) for index ``i``."""
    if i == 0:
        return _new(classes["Silence"])
    before = table_by_index.get(i - 1, "")
    if before.endswith(("spp", "n4")):
        return nn.Upsample(None, 2, "nearest")
    if ".backbone." in before or before.startswith(("dhlc.backbone", "aux.branch.backbone")):
        return _new(classes["CBFuse"], idx=[0])
    return _new(classes["Concat"], d=1)


def official_object(model, classes, names=None) -> nn.Module:
    """Our ``model`` as an object shaped like the official ``models.yolo.DetectionModel``."""
    table, head_index = official_layer_table(model.cfg)
    by_index = {i: prefix for prefix, i in table.items()}
    layers = []
    for i in range(head_index + 1):
        if i == head_index:
            layer = _head(model, classes)
        elif i in by_index:
            layer = _officialise(model.get_submodule(by_index[i]), classes)
        else:
            layer = _gap_layer(i, by_index, classes)
        # per-layer attributes the official builder sets (official models/yolo.py, parse_model)
        layer.i, layer.f, layer.np = i, -1, sum(p.numel() for p in layer.parameters())
        layer.type = f"{type(layer).__module__}.{type(layer).__name__}"
        layers.append(layer)
    names = names or [f"class{i}" for i in range(model.nc)]
    # layers are fp16 already (``_officialise``), as after the official ``.half()``
    return _new(classes["DetectionModel"], yaml={"nc": model.nc, "ch": 3, "backbone": [], "head": []},
                yaml_file=f"{model.name}.yaml", names=dict(enumerate(names)), nc=model.nc,
                hyp={"box": 7.5, "cls": 0.5, "dfl": 1.5}, stride=torch.tensor([8.0, 16.0, 32.0]).half(),
                save=[], inplace=True, class_weights=torch.ones(model.nc).half(),
                _modules={"model": nn.Sequential(*layers)})


def write_official_checkpoint(path, model, names=None, ema=False, training: bool = False,
                              extra_attrs: dict | None = None) -> pathlib.Path:
    """Save ``model`` (ours) as the official training script would, in fp16.

    ``ema=True`` puts the object under ``ema`` too (a mid-training file), ``ema=<our model>`` puts
    that model there (the official loader prefers ``ema``); ``training=True`` adds
    what an unstripped ``last.pt`` holds (numpy ``best_fitness``, optimizer state dict).
    ``extra_attrs`` are set on the pickled DetectionModel (e.g. to smuggle in something nasty).
    """
    import numpy as np

    path = pathlib.Path(path)
    with official_modules() as classes:
        obj = official_object(model, classes, names)
        obj.__dict__.update(extra_attrs or {})
        ckpt = {"epoch": -1, "best_fitness": None, "model": obj, "ema": None, "updates": None,
                "optimizer": None,
                "opt": {"data": pathlib.PosixPath("data/coco.yaml"), "weights": "", "epochs": 500},
                "git": {"url": "https://example.invalid", "branch": "main"}, "date": "2024-02-21"}
        if isinstance(ema, nn.Module):
            ckpt["ema"] = official_object(ema, classes, names)
        elif ema:
            ckpt["ema"] = copy.deepcopy(obj)
        if training:
            ckpt.update(epoch=3, best_fitness=np.array([0.1234]), updates=100,
                        optimizer={"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]})
        torch.save(ckpt, path)
    assert "models" not in sys.modules
    return path
