"""The official YOLOv9 code as the test oracle (test helper, not a test module).

PyPI's ``yolo9`` packages the official repository (github.com/WongKinYiu/yolov9) under the package
name ``yolo9``: ``yolo9.models.yolo``, ``yolo9.models.common``, ``yolo9.utils.*``. It is the
test-only extra ``official`` of pyproject.toml, pinned to :data:`YOLO9_VERSION` (installed with
``--no-deps`` by the Makefile; see the comment there). The library never imports it.

Two things this helper does around the package:

* ``utils/loss_tal_dual.py`` and ``utils/tal/assigner.py`` of the package still import
  ``utils.general`` etc. (the official top-level names, not ``yolo9.utils...``), so
  :func:`official` imports them with ``utils`` names pointing at ``yolo9.utils`` for the moment
  of the import.
* The official ``models/yolo.py`` appends its folder to ``sys.path`` when imported; that is
  undone, so ``import models`` keeps failing in the test session.
* The package's ``models/yolo.py`` misses ``models/common.py``'s names (Conv ...) until its
  first ``parse_model``; they are copied in once, as ``parse_model`` does.
* A released checkpoint pickles its classes as ``models.yolo.DetectionModel``,
  ``models.common.Conv`` ...; objects of the package's classes pickle as
  ``yolo9.models.common.Conv``. :func:`released_names` makes them pickle under the released
  names, so a file written in a test is byte for byte what users have.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import logging
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

YOLO9_VERSION = "1.0.18"
# The albumentations release the official ``Albumentations`` class runs with in the tests (the
# package's requirements allow >=1.0.3,<1.4; without the package that class does nothing).
ALBUMENTATIONS_VERSION = "1.3.1"

# the official modules the oracle tests use (package-relative names)
_MODULES = ("models.common", "models.yolo", "models.experimental", "utils.general",
            "utils.metrics", "utils.torch_utils", "utils.tal.anchor_generator",
            "utils.tal.assigner", "utils.loss_tal", "utils.loss_tal_dual", "utils.augmentations",
            "utils.dataloaders")


@functools.lru_cache(maxsize=1)
def official() -> types.SimpleNamespace:
    """The official modules, by their short names (``official().loss_tal_dual.ComputeLoss``).

    Skips the calling test when the extra is not installed; fails when another version is.
    """
    path_before, modules_before = list(sys.path), set(sys.modules)
    # The official utils/general.py changes process-wide state when imported: it replaces
    # cv2.imread/imwrite/imshow with its own (two-argument) versions, sets cv2's thread count,
    # torch's and numpy's print options and OMP/NUMEXPR variables (inherited by subprocesses).
    # All of it is put back afterwards, so the rest of the test session runs as without it.
    cv2_saved = {name: getattr(cv2, name) for name in ("imread", "imwrite", "imshow")}
    cv2_threads, environ_saved = cv2.getNumThreads(), dict(os.environ)
    np_print, torch_print = np.get_printoptions(), torch._tensor_str.PRINT_OPTS.__dict__.copy()
    pytest.importorskip("yolo9", reason="the official YOLOv9 code (test extra 'official': "
                        "pip install -e '.[official]' and yolo9 --no-deps, as `make install` does)"
                        " is not installed")
    version = importlib.metadata.version("yolo9")
    if version != YOLO9_VERSION:
        pytest.fail(f"yolo9 {version} is installed; the oracle tests are pinned to "
                    f"{YOLO9_VERSION} (run `make install`)")
    import yolo9.utils  # noqa: F401  (the package whose submodules get the top-level names)

    aliases = ("utils", "utils.general", "utils.metrics", "utils.torch_utils", "utils.tal",
               "utils.tal.anchor_generator")
    saved = {name: sys.modules.get(name) for name in aliases}
    try:
        for name in aliases:
            sys.modules[name] = importlib.import_module(f"yolo9.{name}")
        mods = {name.rsplit(".", 1)[-1]: importlib.import_module(f"yolo9.{name}")
                for name in _MODULES}
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
        # and the copies the official files imported under the top-level names meanwhile (the
        # package imports some of its own files as ``utils.general`` ...; the loss imports
        # ``utils.tal.assigner``): a later ``import utils`` must not find them
        for name in set(sys.modules) - modules_before:
            if name.split(".")[0] in ("utils", "models"):
                del sys.modules[name]
    # the official models/yolo.py appends its root (here the yolo9 folder) to sys.path, which
    # would make ``import models`` work for the rest of the test session; the checkpoint tests
    # rely on it not working (the loader must not need the official code)
    sys.path[:] = [p for p in sys.path if p in path_before]
    importlib.invalidate_caches()
    # The package's models/yolo.py copies models/common.py's names into its globals at import,
    # but yolo9/__init__ imports it while models/common.py is still half-initialised (a circular
    # import), so names such as Conv are missing until the first parse_model() copies them again.
    # Do that copy now, so that the heads can be built directly (what parse_model would do).
    vars(mods["yolo"]).update({k: v for k, v in vars(mods["common"]).items()
                               if not k.startswith("_")})
    mods["general"].LOGGER.setLevel(logging.WARNING)  # the builder prints a table per model
    for name, fn in cv2_saved.items():
        setattr(cv2, name, fn)
    cv2.setNumThreads(cv2_threads)
    os.environ.clear()
    os.environ.update(environ_saved)
    np.set_printoptions(**np_print)
    torch._tensor_str.PRINT_OPTS.__dict__.update(torch_print)
    return types.SimpleNamespace(**mods)


@functools.lru_cache(maxsize=1)
def albumentations() -> types.ModuleType:
    """The albumentations package, for the oracle tests of the official ``Albumentations`` step.

    Skips the calling test when it is not installed; fails when another version is.
    """
    module = pytest.importorskip(
        "albumentations", reason="albumentations (test extra 'official', pinned in pyproject.toml"
        " and the Makefile) is not installed; without it the official Albumentations class is a"
        " no-op, so there is nothing to compare against")
    if module.__version__ != ALBUMENTATIONS_VERSION:
        pytest.fail(f"albumentations {module.__version__} is installed; the oracle tests are "
                    f"pinned to {ALBUMENTATIONS_VERSION} (run `make install`)")
    return module


def yaml_path(name: str) -> Path:
    """The official ``models/detect/<name>.yaml`` shipped in the package."""
    return Path(official().yolo.__file__).parent / "detect" / f"{name}.yaml"


@contextlib.contextmanager
def _no_bias_init():
    """The official ``bias_init`` of the heads writes ``log(5 / nc / (640 / stride)**2)`` with
    ``.item()`` of a stride, which a shape-only (meta) tensor cannot give; it sets values only,
    never shapes, so the shape-only builds skip it."""
    heads = [getattr(official().yolo, n) for n in ("Detect", "DDetect", "DualDDetect")]
    saved = [h.bias_init for h in heads]
    for h in heads:
        h.bias_init = lambda self: None
    try:
        yield
    finally:
        for h, f in zip(heads, saved):
            h.bias_init = f


def official_model(name: str, nc: int = 80, meta: bool = False):
    """The official ``DetectionModel(models/detect/<name>.yaml)``; ``meta=True`` builds it on the
    meta device (shapes only, no weights: cheap even for yolov9-e)."""
    import torch

    Model = official().yolo.DetectionModel
    if not meta:
        return Model(str(yaml_path(name)), ch=3, nc=nc)
    with torch.device("meta"), _no_bias_init():
        return Model(str(yaml_path(name)), ch=3, nc=nc)


@contextlib.contextmanager
def released_names():
    """Objects of the official classes pickle as ``models.common.X`` / ``models.yolo.X`` (the
    names in released checkpoints) while this is active; the real ``models`` names are
    restored (absent) afterwards, so the loader under test cannot import them."""
    off = official()
    packages = {"models": importlib.import_module("yolo9.models"),
                "models.common": off.common, "models.yolo": off.yolo}
    if any(name in sys.modules for name in packages):
        raise RuntimeError("a 'models' package is imported already; cannot alias the names")
    renamed = []
    for short, mod in (("models.common", off.common), ("models.yolo", off.yolo)):
        for value in vars(mod).values():
            if isinstance(value, type) and value.__module__ == mod.__name__:
                renamed.append((value, value.__module__))
                value.__module__ = short
    sys.modules.update(packages)
    try:
        yield
    finally:
        for cls, module in renamed:
            cls.__module__ = module
        for name in packages:
            sys.modules.pop(name, None)
