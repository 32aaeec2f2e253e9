"""Speed switches for training and inference, each one small and each one optional.

Nothing here changes the mathematics of the model or the loss; every switch is either a different
memory layout (channels-last), a different kernel choice (cuDNN autotuning, TF32, a fused
optimizer kernel, ``torch.compile``), a lower-precision autocast (bf16 / fp16), or a replay of
already-recorded GPU work (CUDA graphs). ``tests/test_accel.py`` checks on CPU that the fast path
gives the loss and gradients of the plain path within tolerance.

* :func:`setup_backends` - cuDNN autotuning and TF32 matmuls on CUDA (skipped in deterministic runs).
* :func:`pick_amp` - the autocast dtype: bf16 where the GPU has it (no gradient scaler needed),
  fp16 on older GPUs (with a scaler), float32 on CPU unless asked.
* :func:`prepare_model` - channels-last weights and an optional ``torch.compile`` wrapper that
  reports how long compilation took (:class:`CompileTimer`).
* :func:`fused_sgd_available` - whether ``torch.optim.SGD(fused=True)`` runs on a device; the
  fused kernel also takes an on-device "skip this step" flag, which is how the training step
  avoids a host sync for its non-finite-gradient guard (see
  :func:`yolov9lite.training.engine.step_if_finite`).
* :class:`CudaGraphRunner` - capture a deployed model's forward once for a fixed input shape and
  replay it: at batch 1 the eager model is limited by Python and kernel-launch overhead, a graph
  replay is one launch. Falls back to the eager model on CPU.
* :func:`compile_for_inference` - ``torch.compile`` with autotuned kernels, then that same
  :class:`CudaGraphRunner` around it (the fastest batch-1 path); the compile time is returned.
"""
from __future__ import annotations

import time

import torch
from torch import nn

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


# --------------------------------------------------------------------------- backends, precision
def setup_backends(device: torch.device | str, deterministic: bool = False) -> None:
    """Let cuDNN time its convolution algorithms once per shape and keep the fastest, and allow
    TF32 for float32 matmuls/convolutions. Both are off in deterministic runs, where the chosen
    algorithm must not depend on timing. Nothing to do on CPU."""
    if torch.device(device).type != "cuda" or deterministic:
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def pick_amp(device: torch.device | str, amp: str = "auto") -> torch.dtype | None:
    """Autocast dtype for ``amp`` on ``device``, or None for plain float32.

    ``auto``: bf16 on GPUs that support it (same exponent range as float32, so no gradient scaler
    and no fp16 overflow), fp16 on older GPUs, float32 on CPU (CPU bf16 autocast is slower than
    float32 on most CPUs). ``bf16`` on CPU is allowed (tests use it); ``fp16`` needs CUDA.
    Raises ValueError for an unknown choice or fp16 without CUDA.
    """
    device = torch.device(device)
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device (use 'bf16' or 'off' on CPU)")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device | str, amp_dtype: torch.dtype | None):
    """The autocast context of the training step (a no-op context for float32)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                          enabled=amp_dtype is not None)


# --------------------------------------------------------------------------- model preparation
class CompileTimer(nn.Module):
    """Wraps a ``torch.compile``'d module and records the wall time of its first call.

    Compilation happens lazily inside the first forward (and the first backward), so the first
    call's time is the honest "what did compiling cost" figure for a user deciding whether
    ``--compile`` pays for itself. ``compile_s`` is None until the first call. The wrapped module
    is ``self.compiled``; weights are shared with the original model (state dicts are taken from
    the bare model, never from this wrapper).
    """

    def __init__(self, compiled: nn.Module):
        super().__init__()
        self.compiled = compiled
        self.compile_s: float | None = None

    def forward(self, *args, **kwargs):
        if self.compile_s is not None:
            return self.compiled(*args, **kwargs)
        t0 = time.perf_counter()
        out = self.compiled(*args, **kwargs)
        _sync(args[0] if args else None)
        self.compile_s = time.perf_counter() - t0
        return out


def prepare_model(model: nn.Module, channels_last: bool = False, compile: bool = False,
                  compile_mode: str | None = None) -> nn.Module:
    """Convert ``model`` in place to channels-last (if asked) and return what the loop should call:
    the model itself, or a :class:`CompileTimer` around ``torch.compile(model)``.

    Channels-last (NHWC) lets cuDNN use its tensor-core convolution kernels without transposes;
    the input must be channels-last too (:func:`yolov9lite.training.engine.to_model_input` does it).
    ``compile_mode`` is passed to ``torch.compile`` (e.g. ``"max-autotune-no-cudagraphs"``).
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if not compile:
        return model
    return CompileTimer(torch.compile(model, mode=compile_mode))


def fused_sgd_available(device: torch.device | str) -> bool:
    """Whether this PyTorch has a fused SGD kernel for the device type (CUDA, and CPU since 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # very old PyTorch: no fused SGD at all
        return False
    return torch.device(device).type in _get_fused_kernels_supported_devices()


def _sync(x) -> None:
    """Wait for the GPU when ``x`` is a CUDA tensor (so timings include the queued work)."""
    if isinstance(x, torch.Tensor) and x.is_cuda:
        torch.cuda.synchronize(x.device)


# --------------------------------------------------------------------------- CUDA graphs
class CudaGraphRunner:
    """Run a deployed (eval, fused) model by replaying one captured CUDA graph.

    The graph is recorded for the example input's exact shape, dtype, memory format and device;
    every call copies the new input into the recorded input buffer and replays. The output tensors
    are the recorded ones and are **overwritten by the next call**: clone them to keep them.
    Inputs of another shape are run eagerly (a new graph per shape would hold its own memory).

    Warm-up runs on a side stream before capture, as PyTorch requires, so that lazy
    initialisation (cuDNN autotuning, workspace allocation) is not recorded. On CPU there is
    nothing to capture and the runner simply calls the model (``self.graph is None``).
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, warmup: int = 3):
        self.model = model.eval()
        self.graph = None
        self.static_in = self.static_out = None
        if not example.is_cuda:
            return
        self.static_in = example.detach().clone(memory_format=torch.preserve_format)
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(warmup):
                self.model(self.static_in)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_out = self.model(self.static_in)

    def matches(self, x: torch.Tensor) -> bool:
        """Whether ``x`` can be replayed through the recorded graph."""
        s = self.static_in
        return (s is not None and x.shape == s.shape and x.dtype == s.dtype
                and x.device == s.device)  # copy_ converts the memory format if it differs

    def __call__(self, x: torch.Tensor):
        if self.graph is None or not self.matches(x):
            with torch.inference_mode():
                return self.model(x)
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out


def compile_for_inference(model: nn.Module, example: torch.Tensor,
                          mode: str | None = "max-autotune-no-cudagraphs",
                          backend: str = "inductor"):
    """``(runner, compile_s)``: ``torch.compile(model)`` run once on ``example`` (that first call
    compiles; its wall time is ``compile_s``), wrapped in a :class:`CudaGraphRunner`.

    ``max-autotune-no-cudagraphs`` is ``max-autotune`` (Triton/cuBLAS/cuDNN kernels chosen by
    timing, convolutions fused with their neighbours) without inductor's own CUDA graphs, so
    that our runner records one graph for the whole call, as for the eager model. On a CPU
    there is nothing to capture: the runner calls the compiled model (``backend="eager"`` or
    ``"aot_eager"`` traces without generating code, which is how the tests check it quickly).
    """
    model = model.eval()
    compiled = torch.compile(model, mode=mode if backend == "inductor" else None,
                             backend=backend)
    t0 = time.perf_counter()
    with torch.inference_mode():
        compiled(example)
    _sync(example)
    compile_s = time.perf_counter() - t0
    return CudaGraphRunner(compiled, example), compile_s
