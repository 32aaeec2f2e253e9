"""Checkpoints written by the official classes load through ``load_official`` and the CLI.

The files are made the way the official scripts make them, with the real classes of the pinned
``yolo9`` package (:mod:`official_code`) pickled under their released names (``models.yolo``,
``models.common``): ``train_dual.py``'s training checkpoint (``model`` and ``ema``, each
``deepcopy(...).half()``, optimizer state, numpy ``best_fitness``), the stripped release layout
(``utils/general.py`` ``strip_optimizer``) and the converted layout of
``tools/reparameterization.ipynb`` (a gelan model and ``None`` everywhere else). Unlike the
stand-ins of ``fixtures_official.py`` these keep what the official objects really contain, e.g.
the single ``nn.SiLU`` that every official ``Conv`` shares (``Conv.default_act``).
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import pickle
import sys
import time

import numpy as np
import pytest
import torch
from fixtures_official import official_modules
from helpers import randomize_batchnorm
from official_code import official, official_model, released_names

from yolov9lite import load_official
from yolov9lite.cli import main as cli_main
from yolov9lite.utils.safe_pickle import UnsafeCheckpointError
from yolov9lite.weights.checkpoint import load_checkpoint, model_from_checkpoint
from yolov9lite.weights.official import official_key_map

pytestmark = pytest.mark.usefixtures("one_thread")


@functools.lru_cache(maxsize=4)
def _official_reference(name: str, nc: int = 80, seed: int = 0):
    """An official model with non-trivial BN statistics and fp16-representable weights (so the
    fp16 file is lossless), in eval mode. Cached: callers must not change it."""
    torch.manual_seed(seed)
    model = official_model(name, nc)
    randomize_batchnorm(model, seed=seed + 1)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model.eval()


def _save(obj, path):
    with released_names():
        torch.save(obj, path)
    assert "models" not in sys.modules and importlib.util.find_spec("models") is None
    return path


def _training_file(model, ema, path):
    """What the official train_dual.py saves at the end of an epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    return _save({"epoch": 3, "best_fitness": np.array([0.1234]),
                  "model": copy.deepcopy(model).half(), "ema": copy.deepcopy(ema).half(),
                  "updates": 100, "optimizer": optimizer.state_dict(),
                  "opt": {"weights": "", "cfg": "models/detect/x.yaml", "epochs": 500},
                  "git": {"url": None}, "date": "2024-02-21T00:00:00"}, path)


def _stripped_file(model, path):
    """What the official strip_optimizer leaves (the released yolov9-X.pt / gelan-X.pt)."""
    return _save({"epoch": -1, "best_fitness": None, "model": copy.deepcopy(model).half(),
                  "ema": None, "updates": None, "optimizer": None,
                  "opt": {"weights": "", "epochs": 500}, "git": None, "date": None}, path)


def _converted_file(model, path):
    """The layout of tools/reparameterization.ipynb (yolov9-X-converted.pt: a gelan-X model)."""
    return _save({"model": copy.deepcopy(model).half(), "optimizer": None, "best_fitness": None,
                  "ema": None, "updates": None, "opt": None, "git": None, "date": None,
                  "epoch": -1}, path)


def _official_main_output(model, x):
    """The official eval output: (y, maps); y is [aux, main] for a dual head."""
    y = model(x)[0]
    return y[1] if isinstance(y, list) else y


def _rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_real_files_share_one_activation_module():
    """The property the stand-in fixtures lack: every official Conv with the default activation
    refers to one SiLU (``Conv.default_act``), so a file names that module over a hundred times."""
    model = official_model("gelan-t", meta=True)
    shared = official().common.Conv.default_act
    uses = [m for m in model.modules() if type(m).__name__ == "Conv" and m.act is shared]
    assert len(uses) > 100


@pytest.mark.parametrize("name", ["gelan-t", "yolov9-t"])
def test_official_files_load_and_match_official_forward(name, tmp_path):
    """Training (the EMA wins, as in the official attempt_load), stripped and converted files of
    the real official model load; outputs equal the official forward (<= 1e-4 relative)."""
    ema = _official_reference(name)
    raw = copy.deepcopy(ema)  # different weights under 'model'
    with torch.no_grad():
        for p in raw.parameters():
            p.mul_(0.5)
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _official_main_output(ema, x)
        files = {"training": _training_file(raw, ema, tmp_path / "last.pt"),
                 "stripped": _stripped_file(ema, tmp_path / "stripped.pt")}
        if name.startswith("gelan"):
            files["converted"] = _converted_file(ema, tmp_path / "converted.pt")
        for layout, path in files.items():
            model = load_official(path)
            assert (model.name, model.nc) == (name, 80), layout
            assert _rel_err(model(x), expected) <= 1e-4, layout


def test_cli_convert_and_predict_official_file(tmp_path, capsys):
    ref = copy.deepcopy(_official_reference("yolov9-t"))
    ref.names = {i: f"name{i}" for i in range(80)}
    path = _stripped_file(ref, tmp_path / "yolov9-t.pt")
    assert cli_main(["convert", str(path), str(tmp_path / "ours.pt")]) == 0
    assert "yolov9-t" in capsys.readouterr().out
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model_from_checkpoint(load_checkpoint(tmp_path / "ours.pt"))
        assert ours.names[:2] == ["name0", "name1"]
        assert _rel_err(ours(x), _official_main_output(ref, x)) <= 1e-4
    # predict straight from the official file (deployed on load)
    import cv2

    cv2.imwrite(str(tmp_path / "img.png"), (x[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))
    assert cli_main(["predict", "--weights", str(path), "--source", str(tmp_path / "img.png"),
                     "--project", str(tmp_path / "runs"), "--img", "64", "--conf", "0.0",
                     "--device", "cpu"]) == 0
    assert (tmp_path / "runs" / "exp" / "detections.json").is_file()


@pytest.mark.parametrize("name", ["yolov9-c"])
def test_large_model_as_train_dual_saves_it_loads(name, tmp_path):
    """yolov9-c (the Silence / CBLinear / CBFuse / ADown family; the most downloaded release),
    saved as the official train_dual.py saves it (``{'model': deepcopy(model).half(), 'ema':
    None, ...}``), loads and keeps every weight. Built shape-only and filled with random values:
    the values are not what is tested. That every one of the ten official models pickles only
    allowed names, with the keys and shapes the loader expects, is tested on shape-only models in
    test_official_oracle.py (building and loading all ten here would take minutes)."""
    model = official_model(name, meta=True)
    # what to_empty does; the official BaseModel._apply(fn) (which also moves the head's stride)
    # takes no ``recurse`` argument, so to_empty itself fails on it
    model._apply(lambda t: torch.empty_like(t, device="cpu"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            t.copy_(torch.randn(t.shape, generator=gen) if t.is_floating_point() else 7)
    model.stride = model.model[-1].stride = torch.tensor([8.0, 16.0, 32.0])
    path = _save({"epoch": -1, "best_fitness": None, "model": copy.deepcopy(model).half(),
                  "ema": None, "updates": None, "optimizer": None, "opt": {}, "git": None,
                  "date": None}, tmp_path / f"{name}.pt")
    ours = load_official(path)
    assert ours.name == name
    theirs, mine = model.state_dict(), ours.state_dict()
    for k, off in official_key_map(ours).items():
        expected = theirs[off].half().float() if theirs[off].is_floating_point() else theirs[off]
        assert torch.equal(mine[k], expected), k


def test_train_weights_from_official_release_file(tmp_path, capsys):
    """``train --weights`` on a release file written by the real official classes (the stripped
    layout of yolov9-t.pt, 80 classes) onto a 3-class set, with ``--freeze 10``: the model it
    holds is built, every tensor but the class layers comes from the file under the official
    layer numbering, the backbone stays the file's bit for bit through a training step, the
    rest trains."""
    from yolov9lite import build_model
    from yolov9lite.data import make_synthetic

    ref = _official_reference("yolov9-t")
    path = _stripped_file(ref, tmp_path / "yolov9-t.pt")
    data = make_synthetic(tmp_path / "data", num_train=8, num_val=2, imgsz=64, seed=0,
                          classes=["disc", "square", "triangle"])
    assert cli_main(["train", "--weights", str(path), "--freeze", "10", "--data", str(data),
                     "--img", "64", "--epochs", "1", "--batch", "8", "--nominal-batch", "8",
                     "--max-batches", "1", "--workers", "0", "--device", "cpu",
                     "--warmup-epochs", "0", "--project", str(tmp_path / "runs"),
                     "--no-tensorboard", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "(yolov9-t, 80 classes -> 3)" in out and "freeze 10:" in out
    ckpt = load_checkpoint(tmp_path / "runs" / "exp" / "weights" / "last.pt")
    assert ckpt["model_name"] == "yolov9-t" and ckpt["nc"] == 3
    trained = ckpt["train_state"]["model"]  # the training weights (the EMA may move a last bit)
    theirs = ref.state_dict()
    names = official_key_map(build_model("yolov9-t", 3))
    params = {k for k, _ in build_model("yolov9-t", 3).named_parameters()}
    frozen = [k for k in params if int(names[k].split(".")[1]) < 10]
    assert len(frozen) > 50
    for k in frozen:
        assert torch.equal(trained[k], theirs[names[k]].float()), k
    moved = [k for k in params - set(frozen) if trained[k].shape == theirs[names[k]].shape
             and not torch.equal(trained[k], theirs[names[k]].float())]
    assert len(moved) > 50  # the neck and head trained
    assert trained["head.main.cv3.0.2.weight"].shape[0] == 3


def _shared_tree(classes, depth: int):
    """A module in which every node names the same child twice: 2**depth paths."""
    node = classes["Conv"].__new__(classes["Conv"])
    torch.nn.Module.__init__(node)
    node.register_buffer("w", torch.zeros(1))
    for _ in range(depth):
        parent = classes["RepNCSP"].__new__(classes["RepNCSP"])
        torch.nn.Module.__init__(parent)
        parent._modules.update(a=node, b=node)
        node = parent
    return node


def test_exponential_shared_tree_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.pt"
    with official_modules() as classes:
        torch.save({"model": _shared_tree(classes, 40)}, path)
    assert path.stat().st_size < 20_000
    t0 = time.perf_counter()
    with pytest.raises(UnsafeCheckpointError, match="more than 100000 modules along all its paths"):
        load_official(path)
    assert time.perf_counter() - t0 < 5  # not a timing benchmark: 2**40 visits would never end


def test_deeply_nested_module_chain_is_refused_clearly(tmp_path):
    """Nesting deeper than Python's recursion limit (the walk is iterative) ends in a clear
    refusal or error, never a RecursionError."""
    path = tmp_path / "deep.pt"
    with official_modules() as classes:
        node = _shared_tree(classes, 0)
        for _ in range(1500):
            parent = classes["RepNCSP"].__new__(classes["RepNCSP"])
            torch.nn.Module.__init__(parent)
            parent._modules["m"] = node
            node = parent
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # pickling itself recurses
        try:
            torch.save({"model": node}, path)
        finally:
            sys.setrecursionlimit(limit)
    with pytest.raises(Exception) as err:
        load_official(path)
    assert not isinstance(err.value, RecursionError)
    assert isinstance(err.value, (pickle.UnpicklingError, RuntimeError)), err.value


def test_oracle_package_is_pinned():
    assert official().yolo.DetectionModel.__name__ == "DetectionModel"
