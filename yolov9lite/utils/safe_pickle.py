"""Reading checkpoint pickles without trusting them (official ``.pt`` files and ours).

A ``torch.save`` file is a pickle, and plain ``pickle`` imports whatever module the file names and
calls whatever it asks for. An official YOLOv9 checkpoint even *needs* that: its ``model`` and
``ema`` entries are pickled module objects of classes from the official ``models/common.py`` and
``models/yolo.py``. This module reads such files in two guarded steps:

1. **Scan before unpickling** (:func:`check_pickle_globals`). Every name the pickle refers to
   (its ``GLOBAL`` opcodes) must be on an explicit list: the official class names, the
   ``torch.nn`` classes an official model is made of, the handful of torch names that rebuild
   tensors, and numpy's array/scalar names. Anything else (``os.system``, ``builtins.eval``,
   ``builtins.bytearray`` ...) is refused before a single opcode runs.
2. **Unpickle with inert stand-ins** (:func:`restricted_load`: PyTorch's ``weights_only``
   unpickler plus :func:`allowed_globals`). Every allowed class name, official or ``torch.nn``,
   is bound to a stand-in class made here that only stores the restored ``__dict__``. A pickle
   restores a saved module with ``cls.__new__`` + ``__setstate__`` and never calls the class; the
   stand-ins refuse to be called, so a file cannot make ``nn.Conv2d(4096, 4096, 3)`` allocate
   600 MB. numpy values (``best_fitness`` of a training file) become inert placeholders.

What is built from the loaded tensors is guarded by the callers: :func:`check_tensor_sizes` (no
tensor larger than the bytes stored for it), :data:`MAX_CLASSES`, and the shape-only (meta
device) comparisons in :mod:`yolov9lite.weights.official` and :mod:`yolov9lite.weights.checkpoint`.
"""
from __future__ import annotations

import _compat_pickle
import functools
import io
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch import nn

__all__ = [
    "MAX_CLASSES",
    "OFFICIAL_CLASSES",
    "TORCH_TENSOR_GLOBALS",
    "CheckpointError",
    "UnsafeCheckpointError",
    "allowed_globals",
    "check_pickle_globals",
    "check_tensor_sizes",
    "load_weights_only",
    "official_globals",
    "restricted_load",
]

# Upper bound on the number of classes read from any checkpoint (COCO 80, LVIS 1203): a file
# cannot make us build a head of a size it chooses.
MAX_CLASSES = 10_000


class CheckpointError(RuntimeError):
    """A file that cannot be read as a checkpoint (truncated, corrupted, unknown layout)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A file that asks for something no checkpoint needs; refused without running it."""

# =============================================================================================
# What a checkpoint pickle may name
# =============================================================================================

# Class names an official checkpoint may reference, per official module (official
# models/common.py and models/yolo.py; ``Silence`` is layer 0 of yolov9-m/c/e and gelan-e).
OFFICIAL_CLASSES = {
    "models.yolo": ("DetectionModel", "DDetect", "DualDDetect"),
    "models.common": ("Silence", "Conv", "AConv", "ADown", "ELAN1", "RepNCSPELAN4", "RepNCSP",
                      "RepNBottleneck", "RepConvN", "SPPELAN", "SP", "Concat", "CBLinear",
                      "CBFuse", "DFL"),
}

# torch.nn classes an official model is built from; they get stand-ins too (only their names are
# taken from torch).
TORCH_NN_CLASSES = (
    nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.Identity, nn.MaxPool2d, nn.Upsample,
    nn.Sequential, nn.ModuleList,
)

# torch names that plain tensors, parameters and state dicts pickle to (``torch.save`` output).
# A subset of torch's own weights-only allowlist: its entries that allocate a size given as a
# number (``bytearray(n)``, ``torch.Tensor(n)``, ``UntypedStorage(n)``, quantized/meta/sparse
# rebuilds) are left out, because no checkpoint needs them.
TORCH_TENSOR_GLOBALS = frozenset({
    "collections.OrderedDict", "builtins.set", "_codecs.encode", "torch.Size", "torch.device",
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    # storage types name the dtype of a stored tensor (torch maps them to inert markers)
    *(f"torch.{kind}Storage" for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                          "Short", "Char", "Byte", "Bool", "ComplexFloat",
                                          "ComplexDouble")),
    *(str(t) for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8,
                       torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)),
})


class _RefusedCall(Exception):
    """Raised inside the unpickler when a pickle calls a stand-in class (see OfficialStandIn)."""


class OfficialStandIn(nn.Module):
    """Base of the inert stand-ins for official and ``torch.nn`` classes.

    Unpickling creates one with ``__new__`` and fills ``_parameters``/``_buffers``/``_modules`` and
    plain attributes (``names``, ``stride`` ...) through ``nn.Module.__setstate__``; nothing else
    runs. Calling the class, which a saved module never needs but a crafted pickle could ask for
    (``Conv2d(4096, 4096, 3)``), is refused before anything is allocated.
    """

    official_name = "?"

    def __init__(self, *args, **kwargs):
        raise _RefusedCall(self.official_name)

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.official_name} is a weights-only stand-in for the official "
                           "class; use yolov9lite.load_official() to get a runnable model")


def _make_stand_in(qualified: str) -> type:
    name = qualified.rsplit(".", 1)[1]
    return type(name, (OfficialStandIn,), {
        "__module__": __name__, "__qualname__": f"official.{name}", "official_name": qualified,
        "__doc__": f"Inert stand-in for {qualified}."})


STAND_INS: dict[str, type] = {
    qualified: _make_stand_in(qualified)
    for qualified in [f"{mod}.{name}" for mod, names in OFFICIAL_CLASSES.items() for name in names]
    + [f"{cls.__module__}.{cls.__qualname__}" for cls in TORCH_NN_CLASSES]
}


class NumpyPlaceholder:
    """What a numpy array, scalar or dtype in an official file becomes (``best_fitness``, values
    in ``opt``). The loader never reads them, so they are not rebuilt: a pickle cannot make numpy
    allocate an array of a size it chooses. Arguments and state are dropped."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self) -> str:
        return "<numpy value, not loaded>"


def _numpy_names() -> list[str]:
    out = ["numpy.ndarray", "numpy.dtype"]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x / 2.x files
        out += [f"{mod}._reconstruct", f"{mod}.scalar"]
    out += [f"numpy.dtypes.{kind}DType" for kind in ("Float64", "Float32", "Float16", "Int64",
                                                    "Int32", "UInt8", "Bool")]
    return out


@functools.lru_cache(maxsize=1)
def allowed_globals() -> tuple[tuple[object, str], ...]:
    """What an official checkpoint may reference beyond plain tensors, as (object, pickled name),
    for ``torch.serialization.safe_globals``. Every object here is inert (see module docs)."""
    out: list[tuple[object, str]] = [(cls, name) for name, cls in STAND_INS.items()]
    # ``opt`` may hold paths; pure paths carry the text without touching the file system.
    for mod in ("pathlib", "pathlib._local"):  # Python < 3.13 / >= 3.13 module of the classes
        out += [(PurePosixPath, f"{mod}.PosixPath"), (PureWindowsPath, f"{mod}.WindowsPath"),
                (PurePosixPath, f"{mod}.PurePosixPath"),
                (PureWindowsPath, f"{mod}.PureWindowsPath")]
    out += [(NumpyPlaceholder, name) for name in _numpy_names()]
    return tuple(out)


def official_globals() -> frozenset[str]:
    """Every name an official checkpoint pickle may contain (the scan's list for such files)."""
    return TORCH_TENSOR_GLOBALS | {name for _, name in allowed_globals()}


# =============================================================================================
# Scanning and loading
# =============================================================================================

_MAX_PICKLE_BYTES = 256 << 20  # far above any model's pickle (tensors are stored outside it)


def _global_name(arg: str) -> str:
    """``GLOBAL`` argument "module name" -> "module.name", with pickle's Python 2 renames (as the
    unpickler applies them: ``__builtin__.set`` is ``builtins.set``)."""
    module, name = arg.split(" ", 1)
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _refuse_unknown_globals(stream, allowed: frozenset[str], path: Path, pickles: int) -> None:
    """Walk the opcodes of ``pickles`` consecutive pickles in ``stream`` without executing any."""
    for _ in range(pickles):
        for op, arg, _pos in pickletools.genops(stream):
            if op.name == "GLOBAL" and _global_name(arg) not in allowed:
                raise UnsafeCheckpointError(
                    f"refused to load {path}: it references {_global_name(arg)}, which is not "
                    f"part of an official YOLOv9 or yolov9lite checkpoint. Nothing from the file "
                    f"was executed (it was refused before unpickling). If you trust the file, "
                    f"load it yourself with torch.load(..., weights_only=False).")


def check_pickle_globals(path: Path, allowed: frozenset[str]) -> None:
    """Refuse ``path`` if its pickle names anything outside ``allowed``; runs nothing from it.

    Handles both ``torch.save`` formats: the zip archive (every ``*.pkl`` member is scanned) and
    the legacy stream (five pickles in a row: magic number, protocol, system info, the object,
    the storage keys). Raises :class:`CheckpointError` when the file cannot be parsed.
    """
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":  # torch's own test for the zip format
                f.seek(0)
                with zipfile.ZipFile(f) as archive:
                    _scan_archive(archive, allowed, path)
            else:
                f.seek(0)
                _refuse_unknown_globals(f, allowed, path, pickles=5)
    except UnsafeCheckpointError:
        raise
    except (ValueError, EOFError, zipfile.BadZipFile, OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read this file as a PyTorch checkpoint; it is "
                              f"truncated or corrupted ({type(err).__name__}: {err})") from None


def _scan_archive(archive: zipfile.ZipFile, allowed: frozenset[str], path: Path) -> None:
    members = [m for m in archive.infolist() if m.filename.endswith(".pkl")]
    names = [m.filename for m in members]
    if not members or len(set(names)) != len(names):
        raise CheckpointError(f"{path}: not an archive written by torch.save (no pickle, or the "
                              "same pickle name twice)")
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED or member.file_size > _MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path}: {member.filename} is compressed or larger than "
                                  "torch.save writes; refusing to read it")
        _refuse_unknown_globals(io.BytesIO(archive.read(member)), allowed, path, pickles=1)


def restricted_load(path: str | os.PathLike):
    """``torch.load`` of an official or yolov9lite file, guarded as the module docs describe.

    Raises :class:`UnsafeCheckpointError` naming what was refused, and :class:`CheckpointError`
    for files that are truncated or not checkpoints at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    check_pickle_globals(path, official_globals())
    return load_weights_only(path, allowed_globals())


def load_weights_only(path: Path, extra_globals=()):
    """``torch.load(weights_only=True)`` with ``extra_globals``; errors become ours."""
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except _RefusedCall as err:
        raise UnsafeCheckpointError(
            f"refused to load {path}: its pickle calls {err.args[0]}(...) to build a new object, "
            f"which a saved model never does (modules are restored, not constructed). The call "
            f"was stopped before it ran; nothing from the file was executed.") from None
    except pickle.UnpicklingError as err:
        raise _explain_refusal(path, err) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot read this file as a PyTorch checkpoint; it is "
                              f"truncated or corrupted ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    check_tensor_sizes(obj, str(path))
    return obj


_REFUSED = re.compile(r"GLOBAL ([\w.]+)|unrecognized function ([^\s]+)|got <class '([\w.]+)'>")


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
        f"refused to load {path}: it uses {what} in a way no checkpoint does. Nothing from the "
        f"file was executed. If you trust the file, load it yourself with "
        f"torch.load(..., weights_only=False).")


def check_tensor_sizes(obj, path_hint: str = "") -> None:
    """Refuse tensors that claim more elements than the bytes stored for them, anywhere in
    ``obj`` (nested dicts, lists, tuples and restored modules).

    A pickle can describe a tensor as a stride-0 view (``10**9`` elements over one stored value);
    converting or copying it (``.float()``, ``optimizer.load_state_dict``) would allocate all of
    them. No tensor saved by ``torch.save`` from a model, optimizer or RNG does this.
    """
    todo, seen = [("", obj)], set()
    while todo:  # iterative: a pickle can nest containers deeper than Python's recursion limit
        key, x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if torch.is_tensor(x):
            if x.numel() * x.element_size() > x.untyped_storage().nbytes():
                raise UnsafeCheckpointError(
                    f"refused to load {path_hint or 'the checkpoint'}: tensor {key!r} claims "
                    f"{x.numel()} elements over {x.untyped_storage().nbytes()} stored bytes; "
                    f"nothing from the file was executed")
        elif isinstance(x, dict):
            todo += [(f"{key}.{k}".lstrip("."), v) for k, v in x.items()]
        elif isinstance(x, (list, tuple, set)):
            todo += [(f"{key}[{i}]", v) for i, v in enumerate(x)]
        elif isinstance(x, OfficialStandIn):
            todo += [(key, vars(x))]
