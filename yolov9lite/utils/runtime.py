"""Where and how a run executes: device, processes (DDP), mixed precision, seeds, RNG state.

Shared by training, ``yolov9lite val``, ``yolov9lite predict`` and the notebooks, so that a
device string means the same everywhere and one function seeds every generator.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .accel import pick_amp


# --------------------------------------------------------------------------- device
def select_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` / ``""`` / None: this rank's GPU if there is one, else the CPU; ``"0"`` means
    ``cuda:0``; ``"cuda"`` this rank's GPU; ``"cpu"``, ``"cuda:1"``, ``"mps"`` as given.
    Raises ValueError when CUDA is asked for but not available."""
    if isinstance(device, torch.device):
        return device
    spec = str(device or "").strip().lower()
    if spec in ("auto", ""):
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        dev = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} not understood ({err}); use auto, cpu, cuda, 0, "
                         "or cuda:1") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for float32. ``auto``: bf16 on GPUs that support it (no scaler,
    no fp16 overflow), fp16 on older GPUs, float32 on CPU (see :func:`yolov9lite.utils.accel.pick_amp`).
    Raises ValueError for an unknown or impossible choice."""
    return pick_amp(device, amp)


# --------------------------------------------------------------------------- processes
@dataclass
class DistInfo:
    """This process's place in a ``torchrun`` job (a plain run: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world_size > 1


def launch_info() -> DistInfo:
    """Rank, local rank and world size as ``torchrun`` sets them in the environment."""
    env = os.environ
    return DistInfo(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")),
                    int(env.get("WORLD_SIZE", "1")))


def training_device(spec: str | torch.device) -> torch.device:
    """The device of this process: under ``torchrun`` one GPU per process (its local rank);
    the current CUDA device is set to it."""
    info = launch_info()
    device = select_device(spec, info.local_rank)
    if device.type == "cuda" and info.ddp:
        device = torch.device(f"cuda:{info.local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's share), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_training_threads(device: torch.device):
    """Torch's intra-op threads for a training run on the CPU: one fewer than the CPUs this
    process may use (at least 1; what ultralytics does on a CPU), leaving a core to the data
    loader, never more than the current setting, and restored afterwards. Nothing changes on a
    GPU or when ``OMP_NUM_THREADS`` is set (the user's choice; torchrun sets it too).

    Why: with torch's default (all CPUs) on a 2-core machine shared with other work, OpenMP
    threads spin against each other and against the loader: a yolov9-t step at 160 px took
    ~100 s instead of ~3 s with one thread (benchmarks/first_hour.md)."""
    before = torch.get_num_threads()
    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        yield before
        return
    threads = max(1, min(before, available_cpus() - 1))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def setup_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT); a plain run has WORLD_SIZE unset = 1 process."""
    info = launch_info()
    if info.ddp and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, **kwargs)
        info.initialized_here = True
    return info


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group, if :func:`setup_distributed` joined it."""
    if info.initialized_here:
        dist.destroy_process_group()


# --------------------------------------------------------------------------- randomness
def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; with ``deterministic``, deterministic kernels where torch
    has them (cheap on CPU, slower on GPU) and cuDNN autotuning off."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting to be reproducible; harmless elsewhere
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    """Every global random generator, as plain tensors/ints (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- scratch space
SCRATCH_MARK = ".yolov9lite-scratch"  # only folders carrying this mark are ever deleted


def scratch_folder(path: str | os.PathLike) -> Path:
    """An empty working folder at ``path`` (e.g. ``../runs/scratch/06_train_coco`` for a
    notebook's generated data and runs), replacing the one the previous run of the same
    notebook left: disk use stays one run's worth, inside the git-ignored ``runs/``, instead
    of a new ``/tmp/yolov9lite_*`` folder per run that nothing removes. A non-empty folder
    without our mark (a regular file, not a symlink) is never deleted (ValueError naming it)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        mark = path / SCRATCH_MARK
        # the mark must be a regular file in a real folder: a planted symlink vouches for nothing
        marked = not path.is_symlink() and not mark.is_symlink() and mark.is_file()
        empty = path.is_dir() and not path.is_symlink() and not any(path.iterdir())
        if not (marked or empty):
            raise ValueError(f"{path} exists and is not a yolov9lite scratch folder; "
                             "move it away or choose another folder")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / SCRATCH_MARK).write_text("scratch space of a notebook run; deleted by the next run\n")
    return path
