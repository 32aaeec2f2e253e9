"""Export the deployed model: ONNX, TorchScript, or a ``torch.export`` program.

What is exported is the inference model of :func:`yolov9lite.deploy` (auxiliary branch removed,
RepConvN merged, BatchNorm folded): exporting the training model is what fails or gives two
outputs in the official repository, whose answer is "re-parameterise first" (official
``export.py`` plus ``tools/reparameterization.ipynb``).

Input ``images``: float32 ``(B, 3, H, W)`` in [0, 1], RGB, letterboxed to a multiple of 32 (as
:mod:`yolov9lite.inference.predictor` prepares it). Output ``output0``: ``(B, 4 + nc, A)``, centre-xywh
boxes in input pixels and per-class scores, *before* NMS (as the official ``export.py`` without
``--end2end``); :func:`yolov9lite.evaluation.postprocess.non_max_suppression` turns it into boxes.

``dynamic=True`` makes the batch axis dynamic (any B at run time); the image size stays fixed,
because the anchor grid is computed from it at export time.

Formats and files:

==============  ==========  ===============================================================
``onnx``        ``.onnx``   ``torch.onnx.export(dynamo=True)``, run it with onnxruntime
``torchscript`` ``.torchscript``  ``torch.jit.trace``; ``torch.jit.load`` (C++ or Python)
``torch-export`` ``.pt2``   ``torch.export``; ``torch.export.load``, AOTInductor
==============  ==========  ===============================================================
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import torch

from ..nn.deployment import deploy
from ..utils.paths import refuse_overwrite
from ..weights.checkpoint import load_model

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "torch-export": ".pt2"}
INPUT_NAME, OUTPUT_NAME = "images", "output0"
MAX_STRIDE = 32


class ExportError(ValueError):
    """An export that cannot be done as asked (missing package, unknown format, ...)."""


def _deployed(model_or_weights) -> torch.nn.Module:
    if isinstance(model_or_weights, (str, os.PathLike)):
        return load_model(model_or_weights, deploy=True)
    model = model_or_weights
    if not getattr(model, "deployed", False) and hasattr(model, "cfg"):
        names = getattr(model, "names", None)
        model = deploy(model)
        if names is not None:
            model.names = names
    return model.eval()


def example_input(imgsz: int | tuple[int, int], batch: int = 1, device="cpu") -> torch.Tensor:
    """The traced input: ``(batch, 3, H, W)`` grey 0.5 (any value works: shapes are what count)."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    if h % MAX_STRIDE or w % MAX_STRIDE:
        raise ExportError(f"--img {h}x{w}: the input size must be a multiple of {MAX_STRIDE} "
                          f"(e.g. {math.ceil(max(h, w) / MAX_STRIDE) * MAX_STRIDE})")
    return torch.full((batch, 3, h, w), 0.5, device=device)


def _dynamic_batch(dynamic: bool):
    if not dynamic:
        return None
    # min 1: one image at a time is the common case; the example batch is at least 2 (below),
    # since torch.export specialises a size-1 example to the constant 1.
    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def export_onnx(model, x: torch.Tensor, path: Path, dynamic: bool, opset: int | None = None):
    try:
        import onnx  # noqa: F401  (torch.onnx needs both at export time)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the `{err.name}` package: pip install "
                          "'yolov9lite[export]' (onnx, onnxscript, onnxruntime)") from None
    kwargs = {"opset_version": opset} if opset else {}
    # The exporter prints progress lines and warns about its own internals; keep the CLI quiet.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_shapes=_dynamic_batch(dynamic),
                          external_data=False, **kwargs)


def onnx_metadata(model, imgsz: int, batch: int, dynamic: bool) -> dict[str, str]:
    """What a runtime needs besides the graph, as ONNX ``metadata_props`` (strings): class
    names (JSON ``{index: name}``), stride, input size, task, model name, batch and our version."""
    names = list(getattr(model, "names", None) or [str(i) for i in range(getattr(model, "nc", 0))])
    strides = getattr(model, "strides", (8, 16, 32))
    try:
        version = importlib.metadata.version("yolov9lite")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"names": json.dumps(dict(enumerate(names))), "stride": str(int(max(strides))),
            "imgsz": json.dumps([imgsz, imgsz]), "task": "detect",
            "model": str(getattr(model, "name", "model")), "batch": "dynamic" if dynamic
            else str(batch), "author": "yolov9lite", "version": version,
            "output": "(batch, 4 + nc, anchors): centre-xywh boxes in input pixels, then class "
                      "probabilities; NMS not included"}


def add_onnx_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the model's ``metadata_props`` (onnxruntime:
    ``session.get_modelmeta().custom_metadata_map``), atomically."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def export_torchscript(model, x: torch.Tensor, path: Path, dynamic: bool):
    # Tracing records the batch size symbolically (``x.shape[0]`` reads stay dynamic), so a traced
    # model takes any batch; ``dynamic`` needs nothing extra here. The shape checks in the
    # model's forward become constants (the TracerWarnings about them are expected).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.9+
        traced = torch.jit.trace(model, x, check_trace=False)
    traced.save(str(path))


def export_program(model, x: torch.Tensor, path: Path, dynamic: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (x,), dynamic_shapes=_dynamic_batch(dynamic))
    torch.export.save(program, str(path))


def check_output_name(path: Path, format: str, exist_ok: bool = False, flag: str = "--out") -> Path:
    """Refuse, before anything is written, an output whose suffix is not the format's (a
    TorchScript file named ``last.pt`` would replace a checkpoint and could not be loaded back)
    and an existing file unless ``exist_ok`` (``--exist-ok``)."""
    if format not in FORMATS:
        raise ExportError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    suffix = FORMATS[format]
    if path.suffix != suffix:
        raise ExportError(f"{flag} {path}: a {format} export is a {suffix} file; give a name "
                          f"ending in {suffix} (e.g. {path.with_suffix(suffix).name})")
    if (path.exists() or path.is_symlink()) and not exist_ok:
        raise ExportError(f"{flag} {path} exists; pass --exist-ok to replace it, or choose "
                          "another name")
    return path


def export(model_or_weights, format: str = "onnx", imgsz: int = 640, batch: int = 1,
           dynamic: bool = False, out: str | os.PathLike | None = None, device=None,
           opset: int | None = None, exist_ok: bool = False, check=None) -> Path:
    """Export the deployed model to ``out`` and return its path.

    Args:
        model_or_weights: a checkpoint path (ours or official) or a model (deployed here if it
            is not yet).
        format: ``"onnx"``, ``"torchscript"`` or ``"torch-export"``.
        imgsz: input size (square), a multiple of 32.
        batch: the batch size of the exported input (the fixed one unless ``dynamic``).
        dynamic: dynamic batch axis.
        out: output file; default: the weights' name with the format's suffix, in the current
            folder.
        opset: ONNX opset (default: the exporter's).
        exist_ok: replace an existing ``out`` (otherwise refused).
        check: called with the written temporary file before it is renamed to ``out``; an
            exception there leaves ``out`` untouched.

    The file is written under a new temporary name (``mkstemp``) in ``out``'s folder and
    renamed when complete (and checked), so a failed export never leaves a partial file.
    """
    if format not in FORMATS:
        raise ExportError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if out is not None:
        check_output_name(Path(out), format, exist_ok)
    model = _deployed(model_or_weights)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).float()
    stem = Path(model_or_weights).stem if isinstance(model_or_weights, (str, os.PathLike)) else (
        getattr(model, "name", "model"))
    path = Path(out) if out is not None else Path(f"{stem}{FORMATS[format]}")
    inputs = [model_or_weights] if isinstance(model_or_weights, (str, os.PathLike)) else []
    refuse_overwrite(path, inputs)
    check_output_name(path, format, exist_ok)
    x = example_input(imgsz, max(batch, 2) if dynamic else batch, device)
    with torch.no_grad():
        model(x)  # fail here, with the model's own message, before the exporter does
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=FORMATS[format], dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with torch.no_grad():
            if format == "onnx":
                export_onnx(model, x, tmp, dynamic, opset)
                add_onnx_metadata(tmp, onnx_metadata(model, imgsz, batch, dynamic))
            elif format == "torchscript":
                export_torchscript(model, x, tmp, dynamic)
            else:
                export_program(model, x, tmp, dynamic)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_exported(path: str | os.PathLike, device="cpu"):
    """A callable ``f(images) -> output0`` (torch tensors) for any exported file, to check it.

    ONNX runs through onnxruntime (CPU); TorchScript through ``torch.jit.load``; ``.pt2`` through
    ``torch.export.load``. Only load files you exported yourself: TorchScript and ``.pt2`` archives
    are code."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.cpu().numpy()})[0])
    if path.suffix == ".torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device)
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    raise ExportError(f"{path}: unknown exported format (expected one of {list(FORMATS.values())})")


def check_export(model, path: str | os.PathLike, imgsz: int, batch: int = 1, seed: int = 0) -> float:
    """Max |exported - PyTorch| / max |PyTorch| on a random input of the given shape."""
    x = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    with torch.no_grad():
        ref = model(x.to(device)).float().cpu()
        got = load_exported(path, device)(x.to(device) if Path(path).suffix != ".onnx" else x)
    got = got.float().cpu()
    if got.shape != ref.shape:
        raise ExportError(f"{path}: output shape {tuple(got.shape)} != PyTorch {tuple(ref.shape)}")
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


__all__ = ["FORMATS", "ExportError", "add_onnx_metadata", "check_export", "check_output_name",
           "example_input", "export", "load_exported", "onnx_metadata"]
