"""Training: the YOLOv9 recipe as one readable loop, from a laptop CPU to ``torchrun`` on 8 GPUs.

The recipe is the official ``train_dual.py`` / ``train.py`` with ``hyp.scratch-high.yaml``
(``shared/reference/yolov9-spec.md`` Section 4; paper Section 5.1 and appendix). Per batch:

1. uint8 images -> float 0-1 on the device (optionally channels-last), forward under autocast
   (bf16, or fp16 with a gradient scaler; plain float32 on CPU);
2. the loss of :mod:`yolov9lite.loss` (a *sum* over the batch's images: x batch size x world size);
3. a non-finite loss skips the batch (all ranks agree), too many in a row stop the run;
4. backward; every ``accumulate`` batches (nominal batch 64): unscale, clip the gradient norm at
   10, SGD step (Nesterov 0.937, three parameter groups), EMA update;
5. during the first ``max(3 epochs, 100)`` batches the warm-up of :mod:`yolov9lite.optim` sets
   lr, momentum and ``accumulate``; afterwards lr follows the per-epoch linear (or cosine) decay.

Per epoch: mosaic is closed for the last ``close_mosaic`` (15) epochs; the EMA model is validated
with COCO metrics (:func:`yolov9lite.coco_eval.evaluate`) every ``val_interval`` epochs and at
the end; fitness = 0.1 mAP50 + 0.9 mAP50:95 picks ``best.pt``; ``last.pt`` is written every
epoch. Both are written atomically and hold everything a resumed run needs (model, EMA,
optimizer, scaler, schedule, epoch, RNG states, pending accumulated gradients, the config), so
``resume`` continues a killed run exactly where the last epoch ended; on CPU with
``deterministic=True`` and ``workers=0`` the result is bit-identical to an uninterrupted run.

Watching: tqdm bars (losses, lr, images/s), ``results.csv``, TensorBoard scalars when the
``tensorboard`` package is installed, ``results.png`` at the end, and ``callbacks`` for notebooks.

Multi-GPU: launch the same command with ``torchrun --nproc_per_node 8 -m yolov9lite train ...``;
``--batch`` is the *total* batch, split over the ranks (as in the official code). Each rank sees
its own shard of every epoch (DistributedSampler); DDP averages gradients and the loss's
``x world_size`` turns that back into the sum over the global batch; only rank 0 validates,
logs and writes files.

Deviations from the official code, on purpose:

* the close-mosaic rule is "the last ``close_mosaic`` epochs" even when the run is shorter than
  that (the official ``epoch == epochs - close_mosaic`` test never fires then);
* a non-finite gradient norm (possible in bf16/fp32, where no scaler catches it) skips the step;
* the data order and augmentation of every epoch are re-seeded from ``(seed, epoch)``, and
  accumulated-but-unapplied gradients are saved, so that a resume is exact;
* checkpoints keep float32 weights (the official ones are fp16), again for exact resume.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .accel import AMP_CHOICES, autocast, pick_amp, prepare_model, setup_backends
from .blocks import BLOCK_TYPES
from .loss import ITEM_NAMES, DetectionLoss
from .models import PGI_VARIANTS, build_model
from .optim import (
    ModelEMA,
    apply_schedule,
    build_optimizer,
    scaled_weight_decay,
    schedule,
    warmup_iters,
)

MAX_GRAD_NORM = 10.0  # official clip_grad_norm_ max_norm (applied after unscaling)
OPTIM_KEYS = ("lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum",
              "warmup_bias_lr")  # hyp.yaml keys that are train() arguments
LOSS_GAINS = {"box": "box_gain", "cls": "cls_gain", "dfl": "dfl_gain"}  # hyp key -> loss kwarg
RUNTIME_KEYS = ("device", "workers", "callbacks", "resume", "verbose")  # may differ on resume


class TrainError(ValueError):
    """A problem with the training inputs (model, data, batch, resume file), found at start."""


class NonFiniteLossError(RuntimeError):
    """Too many non-finite losses in a row; the run stopped (``last.pt`` is kept)."""


class History(list):
    """The per-epoch records (a list of dicts, e.g. ``pandas.DataFrame(history)``), plus
    ``save_dir``, ``best`` / ``last`` checkpoint paths, and the trained ``model`` and ``ema``
    (rank 0; other ranks have ``ema = None``)."""

    save_dir: Path | None = None
    best: Path | None = None
    last: Path | None = None
    model: nn.Module | None = None
    ema: nn.Module | None = None


# --------------------------------------------------------------------------- setup helpers
@dataclass
class DistInfo:
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


def setup_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT); a plain run has WORLD_SIZE unset = 1 process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, **kwargs)
        info.initialized_here = True
    return info


def select_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU if there is one, else the CPU. ``"0"`` means ``cuda:0``."""
    if isinstance(device, torch.device):
        return device
    spec = str(device).strip().lower()
    if spec in ("auto", ""):
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for float32. ``auto``: bf16 on GPUs that support it (no scaler,
    no fp16 overflow, see users-and-performance.md A4), fp16 on older GPUs, float32 on CPU."""
    try:
        return pick_amp(device, amp)
    except ValueError as err:
        raise TrainError(str(err)) from err


def init_seeds(seed: int, deterministic: bool) -> None:
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
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def increment_dir(project: str | Path, name: str) -> Path:
    """``project/name``, or ``name2``, ``name3``, ... if it is taken (never overwrites a run)."""
    path = Path(project) / name
    k = 2
    while path.exists():
        path = Path(project) / f"{name}{k}"
        k += 1
    return path


def find_last_checkpoint(project: str | Path) -> Path:
    candidates = sorted(Path(project).glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise TrainError(f"resume=True but no */weights/last.pt under {project}; pass a path")
    return candidates[-1]


# --------------------------------------------------------------------------- checkpoints
def _save(path: Path, state: dict) -> None:
    """Atomic write (temp file + rename): a run killed mid-save leaves the previous file intact."""
    from .checkpoint import save_checkpoint

    model = state.pop("model")
    save_checkpoint(path, model, names=state.pop("names"), **state)


def _load(path: str | Path) -> dict:
    """Read a training checkpoint (weights_only=True); any failure is a TrainError naming it."""
    from .checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise TrainError(f"resume checkpoint {str(path)!r} does not exist")
    try:
        ckpt = load_checkpoint(path)
    except Exception as err:  # report what was wrong with the file, not a traceback
        raise TrainError(f"cannot read resume checkpoint {str(path)!r}: {type(err).__name__}: "
                         f"{err}") from err
    missing = [k for k in ("train_state", "train_config", "epoch") if k not in ckpt]
    if missing:
        raise TrainError(f"{str(path)!r} is not a training checkpoint of this project "
                         f"(missing {missing}); use it as weights, not with resume")
    return ckpt


# --------------------------------------------------------------------------- data
def build_loaders(cfg: dict, batch_per_rank: int, imgsz: int, workers: int, seed: int,
                  hyp: dict | None, dinfo: DistInfo, val_batch: int):
    """Training loader (augmented, shuffled; one shard per rank) and, on rank 0, the
    validation loader (rectangular letterboxed batches) with its COCO ground truth.

    Training workers are not persistent: they are started again every epoch, so that the
    per-epoch seeds of :func:`set_loader_epoch` reach them (a resume is then exact with any
    number of workers). Starting a few forked workers costs well under a second per epoch.
    """
    from .data import build_dataloader, build_dataset, collate, dataset_to_coco
    from .data.loader import seed_worker

    rank_seed = seed + 1 + dinfo.rank  # official init_seeds(seed + 1 + RANK): own augmentation
    if dinfo.ddp:  # the same dataset, one DistributedSampler shard per rank
        dataset = build_dataset(cfg, "train", imgsz, augment=True, rect=False,
                                batch_size=batch_per_rank, hyp=hyp, seed=rank_seed)
        sampler = torch.utils.data.distributed.DistributedSampler(  # same seed on every rank
            dataset, dinfo.world_size, dinfo.rank, shuffle=True, seed=seed)
        train_loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_per_rank, sampler=sampler, num_workers=workers,
            collate_fn=collate, pin_memory=torch.cuda.is_available(),
            worker_init_fn=seed_worker if workers > 0 else None,
            generator=torch.Generator().manual_seed(rank_seed))
    else:
        train_loader = build_dataloader(cfg, "train", imgsz, batch_per_rank, workers,
                                        augment=True, rect=False, shuffle=True, seed=rank_seed,
                                        hyp=hyp, persistent_workers=False)
    val_loader = gt = None
    if dinfo.main:
        val_loader = build_dataloader(cfg, "val", imgsz, val_batch, workers, augment=False,
                                      rect=True, shuffle=False, seed=seed)
        gt = cfg["val_json"] if cfg.get("val_json") else dataset_to_coco(cfg, "val")
    return train_loader, val_loader, gt


def set_loader_epoch(loader, seed: int, epoch: int) -> None:
    """Make this epoch's data order and augmentation a function of (seed, epoch) only, so a
    resumed run sees exactly the batches the uninterrupted run would have seen."""
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)  # DistributedSampler: its own seed + epoch
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed)  # RandomSampler order and worker seeds
    if loader.num_workers == 0 and hasattr(loader.dataset, "rng"):
        loader.dataset.rng = np.random.default_rng(epoch_seed)  # augmentation in this process


def to_model_input(images: torch.Tensor, device: torch.device, channels_last: bool):
    """uint8 (B, 3, H, W) -> float 0-1 on the device; the copy is async from pinned memory."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# --------------------------------------------------------------------------- logging
def write_csv(path: Path, history: list[dict]) -> None:
    """Rewritten every epoch from the history, so a resumed run never keeps stale rows."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def tensorboard_writer(save_dir: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module needs the separate `tensorboard` package
        print("TensorBoard logging skipped: `pip install tensorboard` to enable it")
        return None
    return SummaryWriter(str(save_dir))


def plot_history(history: list[dict], path: str | Path | None = None):
    """Loss, learning-rate and mAP curves of a run, one panel each; returns the matplotlib
    Figure (shown inline in a notebook) and writes it to ``path`` if given."""
    import seaborn as sns
    from matplotlib.figure import Figure  # no pyplot: works without a display, no global state

    panels = [("train loss", [f"train/{k}" for k in ITEM_NAMES] + ["train/loss"]),
              ("learning rate", ["lr/bias", "lr/weight_decay", "lr/bn_weight"]),
              ("mAP (EMA model)", ["metrics/AP50", "metrics/AP"])]
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
        axes = fig.subplots(1, len(panels))
        for ax, (title, keys) in zip(axes, panels):
            for key in keys:
                pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
                if pts:
                    xs, ys = zip(*pts)
                    sns.lineplot(x=list(xs), y=list(ys), ax=ax, marker="o", markersize=3,
                                 label=key.split("/")[-1])
            ax.set(title=title, xlabel="epoch")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _fire(callbacks: dict | None, event: str, *args) -> None:
    """Call ``callbacks[event]``: one function or a list of them."""
    fns = (callbacks or {}).get(event, [])
    for fn in [fns] if callable(fns) else fns:
        fn(*args)


def _plain(value):
    """Config values as plain Python (paths -> str), so checkpoints load with weights_only."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a data.Hyp
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k) if isinstance(k, Path) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return str(value) if isinstance(value, Path) else value


# --------------------------------------------------------------------------- the loop
@dataclass
class State:
    """Everything the loop mutates; what a checkpoint saves and a resume restores."""

    model: nn.Module  # the bare model
    net: nn.Module  # what the loop calls: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    epoch: int = 0  # the epoch being (or about to be) trained
    last_opt_step: int = -1  # global batch index of the last optimizer step
    best_fitness: float = -1.0
    nonfinite_streak: int = 0
    history: History = field(default_factory=History)


def checkpoint_state(s: State, cfg: dict, names: list[str]) -> dict:
    """The checkpoint dict, after epoch ``s.epoch`` has been trained. ``model`` is the EMA (the
    model to use); ``train_state`` holds the rest of what a resume needs."""
    pending = [None if p.grad is None else p.grad.detach().cpu().clone()
               for p in s.model.parameters()]
    train_state = {
        "model": s.model.state_dict(),
        "ema": s.ema.state_dict() if s.ema else None,
        "optimizer": s.optimizer.state_dict(),
        "scaler": s.scaler.state_dict(),
        # the schedule is a pure function of (epoch, batch index) and these settings
        "scheduler": {k: cfg[k] for k in ("lr0", "lrf", "cos_lr", "epochs", "warmup_epochs",
                                          "momentum", "warmup_momentum", "warmup_bias_lr",
                                          "nominal_batch")},
        "last_opt_step": s.last_opt_step,
        # gradients accumulated but not yet applied (the nominal batch can span an epoch end)
        "pending_grads": pending if any(g is not None for g in pending) else None,
        "rng": rng_state(),
        "nonfinite_streak": s.nonfinite_streak,
    }
    return {"model": s.ema.module if s.ema else s.model, "names": names, "epoch": s.epoch,
            "best_fitness": s.best_fitness, "train_config": cfg, "history": list(s.history),
            "train_state": train_state}


def restore_state(s: State, ckpt: dict) -> None:
    ts = ckpt["train_state"]
    s.model.load_state_dict(ts["model"])
    if s.ema is not None and ts["ema"] is not None:
        s.ema.load_state_dict(ts["ema"])
    s.optimizer.load_state_dict(ts["optimizer"])
    s.scaler.load_state_dict(ts["scaler"])
    if ts["pending_grads"] is not None:
        for p, g in zip(s.model.parameters(), ts["pending_grads"]):
            p.grad = None if g is None else g.to(p.device)
    s.last_opt_step = int(ts["last_opt_step"])
    s.nonfinite_streak = int(ts["nonfinite_streak"])
    s.best_fitness = float(ckpt["best_fitness"])
    s.epoch = int(ckpt["epoch"]) + 1
    s.history[:] = ckpt["history"]
    set_rng_state(ts["rng"])


def optimizer_step(s: State) -> bool | torch.Tensor:
    """Unscale, clip at 10, step, zero the gradients, update the EMA. Returns whether the step
    was applied: a bool, or a 0-d device tensor when deciding it needed no host sync.

    A non-finite gradient norm never reaches the weights. With a fused optimizer (the default
    where PyTorch has one) the skip is decided on the device, without a host sync: the scaler
    hands its inf flag to the fused kernel (fp16), or the flag is ``~isfinite(norm)`` (bf16/fp32).
    The EMA is then updated anyway, towards the unchanged weights, as the official code does
    after a step its scaler skipped; with the plain optimizer the EMA skips too (one sync).
    """
    s.scaler.unscale_(s.optimizer)  # clip the true gradient, not the fp16-scaled one
    params = [p for p in s.model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    fused = all(g.get("fused") for g in s.optimizer.param_groups)
    stepped = True
    if s.scaler.is_enabled():
        s.scaler.step(s.optimizer)  # the scaler itself skips steps with inf/NaN gradients
        s.scaler.update()
    elif fused:  # the kernel skips the update when found_inf != 0: no host sync
        stepped = torch.isfinite(norm)
        s.optimizer.found_inf = (~stepped).float()
        s.optimizer.step()
        s.optimizer.found_inf = None
    elif torch.isfinite(norm):
        s.optimizer.step()
    else:  # no scaler to catch it (fp32/bf16): never let a NaN reach the weights
        stepped = False
    s.optimizer.zero_grad(set_to_none=True)
    if stepped is not False and s.ema is not None:
        s.ema.update(s.model)
    return stepped


def all_ranks_finite(loss: torch.Tensor, dinfo: DistInfo, sums: torch.Tensor | None = None,
                     items: torch.Tensor | None = None, read_sums: bool = False):
    """Whether the loss is finite on every rank: one host sync; under DDP every rank must take
    the same branch or backward would hang.

    With ``sums`` and ``items``: ``sums += items`` on the device when the batch is kept, and with
    ``read_sums`` the new sums come back in the same sync (the progress bar's running means, at
    no extra sync). Returns ``(ok, sums_list_or_None)`` then; a bare bool otherwise.
    """
    ok = torch.isfinite(loss.detach()).float().view(1)
    if dinfo.ddp:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if sums is None:
        return bool(ok.item())
    sums += torch.where(ok > 0, items.detach(), 0.0)
    values = torch.cat([ok, sums]).tolist() if read_sums else ok.tolist()
    return values[0] > 0, (values[1:] if read_sums else None)


def train_step(s: State, x: torch.Tensor, targets: torch.Tensor, loss_fn, dinfo: DistInfo,
               amp_dtype, sums: torch.Tensor, step_due: bool, read_sums: bool = False):
    """Forward, loss, non-finite guard, backward and (when ``step_due``) the optimizer step of
    one batch. Returns ``(ok, loss, sums_list_or_None)``; ``ok`` False = batch skipped.

    One device sync, whatever the precision and verbosity: the guard reads one flag (plus the
    running loss sums for the progress bar). The loss reads the padded box count from the
    targets, which the loop passes on the CPU, so that read is not a device sync
    (``tests/test_accel.py`` counts both). The optimizer step adds none with a fused optimizer.
    """
    with autocast(x.device, amp_dtype):
        preds = s.net(x)
        loss, items = loss_fn(preds, targets)
    ok, values = all_ranks_finite(loss, dinfo, sums, items, read_sums)
    if not ok:
        return False, loss, values
    s.scaler.scale(loss).backward()
    if step_due:
        optimizer_step(s)
    return True, loss, values


def train_one_epoch(s: State, loader, loss_fn, cfg: dict, dinfo: DistInfo, device: torch.device,
                    amp_dtype, nb: int, nw: int, save_dir: Path | None) -> dict:
    """One pass over (at most ``nb`` batches of) the training loader; returns the epoch's
    mean losses, last learning rates and throughput."""
    from tqdm import tqdm

    s.net.train()
    epoch, epochs, batch_size = s.epoch, cfg["epochs"], cfg["batch_size"]
    sums = torch.zeros(len(ITEM_NAMES), device=device)
    n_ok = n_images = 0
    compile_s = None
    settings = {}
    recipe = {k: cfg[k] for k in ("lr0", "lrf", "cos_lr", "momentum", "warmup_momentum",
                                  "warmup_bias_lr", "nominal_batch")}
    bar = tqdm(total=nb, disable=not (dinfo.main and cfg["verbose"]), dynamic_ncols=True,
               desc=f"epoch {epoch + 1}/{epochs}", bar_format="{l_bar}{bar:12}{r_bar}")
    t0 = time.perf_counter()
    for i, (images, targets, metas) in enumerate(loader):
        if i >= nb:
            break
        ni = i + nb * epoch  # batches since the start of training
        settings = schedule(ni, epoch, epochs=epochs, nw=nw, batch_size=batch_size, **recipe)
        apply_schedule(s.optimizer, settings)

        x = to_model_input(images, device, cfg["channels_last"])
        step_due = ni - s.last_opt_step >= settings["accumulate"]
        # targets stay on the CPU: the loss pads them there (no device sync, see loss.py)
        ok, loss, mean = train_step(s, x, targets, loss_fn, dinfo,
                                    amp_dtype, sums, step_due, read_sums=not bar.disable)
        if not ok:
            s.nonfinite_streak += 1
            where = f"epoch {epoch + 1}, batch {i} (images {[m['path'] for m in metas][:4]}...)"
            warnings.warn(f"non-finite loss (this rank: {loss.item():.4g}) at {where}: batch skipped "
                          f"({s.nonfinite_streak} in a row)", RuntimeWarning, stacklevel=2)
            if s.nonfinite_streak >= cfg["max_nonfinite"]:
                last = save_dir / "weights" / "last.pt" if save_dir else None
                kept = (f"the last good checkpoint is kept at {last}"
                        if last is not None and last.exists() else "no checkpoint was written yet")
                raise NonFiniteLossError(
                    f"{s.nonfinite_streak} non-finite losses in a row (last at {where}); training "
                    f"stopped; {kept}. Try amp='off' (or 'bf16'), a lower lr0, or check the data.")
            continue
        s.nonfinite_streak = 0
        if step_due:
            s.last_opt_step = ni
        n_ok += 1
        n_images += images.shape[0] * dinfo.world_size
        if i == 0 and getattr(s.net, "compile_s", None) is not None:
            compile_s = s.net.compile_s  # first forward of a compiled model: compile time
            if not bar.disable:
                bar.write(f"torch.compile: first forward took {compile_s:.1f} s")
        if not bar.disable:  # the running sums came back with the guard's sync: no extra one
            mean = [v / n_ok for v in mean]
            speed = n_images / (time.perf_counter() - t0)
            bar.set_postfix_str(" ".join(f"{k} {v:.3f}" for k, v in zip(ITEM_NAMES, mean))
                                + f" lr {settings['lr'][1]:.2e} {speed:.1f} img/s"
                                + f" {len(targets)} obj {x.shape[-1]}px")
            bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    mean = (sums / max(n_ok, 1)).tolist()
    if dinfo.ddp:  # report the mean over all ranks
        t = torch.tensor(mean, device=device) / dinfo.world_size
        dist.all_reduce(t)
        mean = t.tolist()
    record = {f"train/{k}": v for k, v in zip(ITEM_NAMES, mean)}
    record["train/loss"] = sum(mean)
    record.update({f"lr/{g['name']}": g["lr"] for g in s.optimizer.param_groups})
    record["images_per_s"] = n_images / max(elapsed, 1e-9)
    record["epoch_time_s"] = elapsed
    if compile_s is not None:
        record["compile_s"] = compile_s
    return record


def validate(s: State, data_cfg: dict, val_loader, gt, cfg: dict, device) -> dict:
    """COCO metrics of the EMA model (official: the EMA is what is validated and saved).

    A copy is evaluated because ``evaluate(half=True)`` casts the model it is given to fp16 and
    back, which would round the EMA weights; the copy is cheap next to a validation pass.
    """
    from copy import deepcopy

    from .coco_eval import evaluate

    model = deepcopy(s.ema.module if s.ema else s.model)
    metrics = evaluate(model, data_cfg, imgsz=cfg["imgsz"], batch_size=cfg["batch_size"] * 2,
                       half=device.type == "cuda", device=device, dataloader=val_loader, gt=gt,
                       backend=cfg["val_backend"])
    return {f"metrics/{k}": float(metrics[k]) for k in ("AP50", "AP", "AP75", "APS", "APM", "APL")}


def fitness(record: dict) -> float:
    """Official model selection: 0.1 mAP50 + 0.9 mAP50:95."""
    return 0.1 * record["metrics/AP50"] + 0.9 * record["metrics/AP"]


def train(model: str = "gelan-nano", data: str | dict = "synthetic", epochs: int = 100,
          batch_size: int = 16, imgsz: int = 640, device: str = "auto", workers: int = 4,
          amp: str = "auto", lr0: float = 0.01, lrf: float = 0.01, cos_lr: bool = False,
          momentum: float = 0.937, weight_decay: float = 5e-4, warmup_epochs: float = 3.0,
          warmup_momentum: float = 0.8, warmup_bias_lr: float = 0.1, nominal_batch: int = 64,
          close_mosaic: int = 15, ema: bool = True, val_interval: int = 1,
          project: str | Path = "runs/train", name: str = "exp", resume: bool | str | Path | None = None,
          seed: int = 0, deterministic: bool = False, max_batches: int | None = None,
          sync_bn: bool = False, channels_last: bool | None = None, compile: bool = False,
          callbacks: dict | None = None,
          hyp: dict | None = None, lead_head_guided: bool = False, max_nonfinite: int = 10,
          val_backend: str = "faster_coco_eval", tensorboard: bool = True,
          plots: bool = True, verbose: bool = True, model_kwargs: dict | None = None) -> History:
    """Train ``model`` on ``data`` with the YOLOv9 recipe (see the module docstring).

    Arguments mirror the CLI (``yolov9lite train --help``); defaults are hyp.scratch-high.
    ``batch_size`` is the total over all ranks; ``max_batches`` caps the batches per epoch
    (quick runs); ``hyp`` overrides augmentation settings (``mosaic``, ``mixup``, ...; see
    :class:`yolov9lite.data.augment.Hyp`) and the loss gains ``box``, ``cls``, ``dfl``;
    ``resume`` is a ``last.pt`` path, or True for the newest one under ``project`` (the saved
    config is then used; only device, workers, callbacks and verbose may change);
    ``callbacks = {"on_epoch_end": fn(history), "on_train_end": fn(history)}``;
    ``model_kwargs`` are ablation knobs passed to :func:`yolov9lite.build_model` (e.g.
    ``{"pgi": "ds", "block": "res", "depth_elan": 3}``) and saved with the run's config;
    ``compile`` wraps the model in ``torch.compile`` (the first epoch's record then holds
    ``compile_s``, the time of the first, compiling, forward).

    Returns the :class:`History`: one dict per epoch (``epoch``, ``train/box`` ... ``lr/...``,
    ``metrics/AP50``, ``metrics/AP``, ``fitness`` on validated epochs), with ``save_dir``,
    ``best``, ``last``, ``model`` and ``ema`` attributes.
    """
    cfg = _plain({k: v for k, v in locals().items() if k != "callbacks"})

    # ---- resume: the saved config wins, except what only concerns this machine
    ckpt, save_dir = None, None
    if resume:
        path = find_last_checkpoint(project) if resume is True else Path(resume)
        ckpt = _load(path)
        saved = dict(ckpt["train_config"])
        if int(ckpt["epoch"]) + 1 >= int(saved["epochs"]):
            raise TrainError(f"{path} is from a finished run ({saved['epochs']} epochs); "
                             "nothing to resume (start a new run, e.g. with weights)")
        cfg = {**saved, **{k: cfg[k] for k in RUNTIME_KEYS if k in cfg}, "resume": str(path)}
        save_dir = path.resolve().parent.parent

    # ---- device, processes, seeds
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(cfg["device"], local_rank)
    if dev.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device(f"cuda:{local_rank}")  # under torchrun: one GPU per process
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dinfo = setup_distributed(dev)
    try:
        return _train(cfg, dev, dinfo, ckpt, save_dir, callbacks)
    finally:
        if dinfo.initialized_here:
            dist.destroy_process_group()


def _check_inputs(cfg: dict, dinfo: DistInfo):
    """Model, data and batch checks before anything heavy: errors name the problem."""
    from .data import load_data_config

    try:
        data_cfg = load_data_config(cfg["data"])  # a YAML path, "synthetic" or a dict
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"data {cfg['data']!r}: {err}") from err
    try:
        model = build_model(cfg["model"], num_classes=int(data_cfg["nc"]),
                            **(cfg.get("model_kwargs") or {}))
    except ValueError as err:
        raise TrainError(f"model: {err}") from err
    bs, ws = cfg["batch_size"], dinfo.world_size
    if bs < 1 or bs % ws:
        raise TrainError(f"batch size {bs} must be a positive multiple of the number of "
                         f"processes ({ws}); it is the total batch, split over the ranks")
    if cfg["epochs"] < 1:
        raise TrainError(f"epochs must be >= 1, got {cfg['epochs']}")
    if cfg["imgsz"] % 32:
        raise TrainError(f"imgsz must be a multiple of 32 (the largest stride), got {cfg['imgsz']}")
    return data_cfg, model


def _train(cfg: dict, device: torch.device, dinfo: DistInfo, ckpt: dict | None,
           save_dir: Path | None, callbacks: dict | None) -> History:
    # Model init is seeded identically on every rank (DDP also broadcasts rank 0's weights);
    # augmentation is seeded per rank and per epoch (set_loader_epoch).
    init_seeds(cfg["seed"], cfg["deterministic"])
    data_cfg, model = _check_inputs(cfg, dinfo)
    names = list(data_cfg["names"].values()) if isinstance(data_cfg["names"], dict) \
        else list(data_cfg["names"])
    channels_last = cfg["channels_last"]
    if channels_last is None:
        channels_last = cfg["channels_last"] = device.type == "cuda"
    amp_dtype = resolve_amp(cfg["amp"], device)

    bs_rank = cfg["batch_size"] // dinfo.world_size
    hyp = dict(cfg["hyp"] or {})
    loss_gains = {LOSS_GAINS[k]: float(hyp.pop(k)) for k in list(hyp) if k in LOSS_GAINS}
    data_seed = cfg["seed"] + 1 + dinfo.rank  # per-rank augmentation seed (official)
    try:
        train_loader, val_loader, gt = build_loaders(
            data_cfg, bs_rank, cfg["imgsz"], cfg["workers"], cfg["seed"], hyp or None, dinfo,
            val_batch=cfg["batch_size"] * 2)
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"data {cfg['data']!r}: {err}") from err
    n_train = len(train_loader.dataset)
    if n_train < cfg["batch_size"]:
        raise TrainError(f"batch size {cfg['batch_size']} is larger than the training set "
                         f"({n_train} images in {cfg['data']!r}); use --batch {max(n_train, 1)} "
                         "or less")
    nb = len(train_loader) if cfg["max_batches"] is None else min(len(train_loader),
                                                                    cfg["max_batches"])
    nw = warmup_iters(nb, cfg["warmup_epochs"])

    # ---- model, optimizer, EMA, loss
    setup_backends(device, cfg["deterministic"])  # cuDNN autotuning, TF32 (CUDA only)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if dinfo.ddp and cfg["sync_bn"]:
        if device.type == "cuda":  # official for 8-GPU runs: BN statistics over the global batch
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            warnings.warn("sync_bn ignored: SyncBatchNorm needs CUDA", RuntimeWarning, stacklevel=2)
    wd = scaled_weight_decay(cfg["weight_decay"], cfg["batch_size"], cfg["nominal_batch"])
    optimizer = build_optimizer(model, cfg["lr0"], cfg["momentum"], wd)
    net = model
    if dinfo.ddp:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    net = prepare_model(net, compile=bool(cfg.get("compile")))  # old configs lack the key
    s = State(model=model, net=net, optimizer=optimizer,
              scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
              ema=ModelEMA(model) if cfg["ema"] and dinfo.main else None)
    loss_fn = DetectionLoss(model, lead_head_guided=cfg["lead_head_guided"],
                            world_size=dinfo.world_size, **loss_gains)
    if ckpt is not None:
        restore_state(s, ckpt)

    # ---- output folder, logs (rank 0 only)
    writer = None
    if dinfo.main:
        if save_dir is None:
            save_dir = increment_dir(cfg["project"], cfg["name"])
        (save_dir / "weights").mkdir(parents=True, exist_ok=True)
        writer = tensorboard_writer(save_dir, cfg["tensorboard"])
        if cfg["verbose"]:
            what = f"resuming at epoch {s.epoch + 1}" if ckpt else "starting"
            print(f"{what}: {model.name} ({sum(p.numel() for p in model.parameters()):,} params) "
                  f"on {device}{f' x {dinfo.world_size} processes' if dinfo.ddp else ''}, "
                  f"amp {amp_dtype or 'off'}, batch {cfg['batch_size']} (accumulate to "
                  f"{cfg['nominal_batch']}), {n_train} train images, {nb} batches/epoch, "
                  f"warm-up {nw} batches -> {save_dir}")
    history = s.history
    history.save_dir = save_dir
    last, best = (save_dir / "weights" / "last.pt", save_dir / "weights" / "best.pt") \
        if save_dir else (None, None)

    # ---- epochs
    epochs = cfg["epochs"]
    while s.epoch < epochs:
        epoch = s.epoch
        mosaic = epoch < epochs - cfg["close_mosaic"]
        if not mosaic and hasattr(train_loader.dataset, "set_mosaic"):
            train_loader.dataset.set_mosaic(False)  # close mosaic (also after a resume)
        set_loader_epoch(train_loader, data_seed, epoch)
        record = {"epoch": epoch + 1, "mosaic": int(mosaic and train_loader.dataset.mosaic)
                  if hasattr(train_loader.dataset, "mosaic") else None}
        record.update(train_one_epoch(s, train_loader, loss_fn, cfg, dinfo, device, amp_dtype,
                                      nb, nw, save_dir))
        final = epoch + 1 == epochs
        if dinfo.main:
            if final or (cfg["val_interval"] > 0 and (epoch + 1) % cfg["val_interval"] == 0):
                record.update(validate(s, data_cfg, val_loader, gt, cfg, device))
                record["fitness"] = fitness(record)
            history.append(record)
            improved = record.get("fitness", -1.0) > s.best_fitness
            if improved:
                s.best_fitness = record["fitness"]
            state = checkpoint_state(s, cfg, names)
            _save(last, dict(state))
            if improved:
                _save(best, dict(state))
            write_csv(save_dir / "results.csv", history)
            if writer is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "epoch":
                        writer.add_scalar(k, v, epoch + 1)
            if cfg["verbose"] and "fitness" in record:
                print(f"epoch {epoch + 1}/{epochs}: mAP50 {record['metrics/AP50']:.4f} "
                      f"mAP50:95 {record['metrics/AP']:.4f} (EMA), "
                      f"{record['images_per_s']:.1f} img/s")
            _fire(callbacks, "on_epoch_end", history)
        s.epoch += 1

    # ---- end
    history.model, history.ema = s.model, s.ema.module if s.ema else None
    if dinfo.main:
        history.last, history.best = last, best if best.exists() else None
        if writer is not None:
            writer.close()
        if cfg["plots"] and history:
            plot_history(history, save_dir / "results.png")
        if cfg["verbose"]:
            print(f"done: {epochs} epochs, best fitness {s.best_fitness:.4f}; results in {save_dir}")
        _fire(callbacks, "on_train_end", history)
    return history


# --------------------------------------------------------------------------- command line
def _hyp_file(path: str) -> dict:
    import yaml

    try:
        with open(path) as f:
            hyp = yaml.safe_load(f) or {}
    except OSError as err:
        raise TrainError(f"--hyp {path!r}: {err}") from err
    if not isinstance(hyp, dict):
        raise TrainError(f"--hyp {path!r}: expected a mapping of hyperparameters")
    return hyp


MODEL_KNOBS = ("pgi", "block", "depth_elan", "depth_csp")  # CLI flags passed as model_kwargs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yolov9lite train",
        description="Train a GELAN / YOLOv9 model with the official recipe (hyp.scratch-high). "
                    "Multi-GPU: torchrun --nproc_per_node N -m yolov9lite train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--model", default="gelan-nano", help="preset name (yolov9lite models lists them)")
    # ablation knobs (paper Tables 2-5); unset = the preset's own value
    a("--pgi", choices=PGI_VARIANTS, default=None, help="auxiliary branch (Tables 4-5)")
    a("--block", choices=sorted(BLOCK_TYPES), default=None, help="computational block (Table 2)")
    a("--depth-elan", type=int, default=None, help="D_ELAN: stages per GELAN unit (Table 3)")
    a("--depth-csp", type=int, default=None, help="D_CSP: bottlenecks per CSP block (Table 3)")
    a("--data", default="synthetic", help="data yaml, or 'synthetic' (generated offline)")
    a("--epochs", type=int, default=100)
    a("--batch", type=int, default=16, help="total batch size over all GPUs")
    a("--img", type=int, default=640, help="training and validation image size")
    a("--device", default="auto", help="auto, cpu, cuda, 0, cuda:1")
    a("--workers", type=int, default=4, help="data loader processes per rank")
    a("--amp", choices=AMP_CHOICES, default="auto",
      help="autocast: auto = bf16 (or fp16) on GPU, float32 on CPU")
    a("--hyp", default=None, help="yaml of hyperparameters (e.g. the official "
      "hyp.scratch-high.yaml): lr0..warmup_bias_lr, box/cls/dfl gains, augmentation")
    for key, default in (("lr0", 0.01), ("lrf", 0.01), ("momentum", 0.937),
                         ("weight-decay", 5e-4), ("warmup-epochs", 3.0),
                         ("warmup-momentum", 0.8), ("warmup-bias-lr", 0.1)):
        a(f"--{key}", type=float, default=None, help=f"default {default} (or from --hyp)")
    a("--cos-lr", action="store_true", help="cosine instead of linear lr decay")
    a("--nominal-batch", type=int, default=64, help="accumulate gradients up to this batch")
    a("--close-mosaic", type=int, default=15, help="epochs at the end without mosaic")
    a("--no-ema", action="store_true", help="validate and save the raw model, not an EMA")
    a("--val-interval", type=int, default=1, help="validate every N epochs (and at the end)")
    a("--project", default="runs/train")
    a("--name", default="exp")
    a("--resume", nargs="?", const=True, default=None,
      help="continue from a last.pt (no path: the newest under --project)")
    a("--seed", type=int, default=0)
    a("--deterministic", action="store_true", help="deterministic algorithms (slower on GPU)")
    a("--max-batches", type=int, default=None, help="cap batches per epoch (quick runs)")
    a("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (official for 8 GPUs)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=None,
      help="NHWC memory format (default: on for GPU)")
    a("--compile", action="store_true", help="torch.compile the model (the first batch "
      "compiles; its time is reported)")
    a("--lead-head-guided", action="store_true", help="PGI loss variant (Table 4 LHG)")
    a("--max-nonfinite", type=int, default=10, help="stop after this many NaN losses in a row")
    a("--val-backend", choices=("pycocotools", "faster_coco_eval"), default="faster_coco_eval")
    a("--no-tensorboard", action="store_true")
    a("--no-plots", action="store_true")
    a("--quiet", action="store_true", help="no progress bars or summaries")
    return p


def main(argv: list[str] | None = None) -> int:
    """``yolov9lite train``: parse the arguments and call :func:`train`."""
    args = build_parser().parse_args(argv)
    try:
        hyp = _hyp_file(args.hyp) if args.hyp else {}
        optim = {k: hyp.pop(k) for k in OPTIM_KEYS if k in hyp}
        for k in OPTIM_KEYS:  # explicit flags beat the hyp file, which beats the defaults
            if getattr(args, k) is not None:
                optim[k] = getattr(args, k)
        train(model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch,
              imgsz=args.img, device=args.device, workers=args.workers, amp=args.amp,
              cos_lr=args.cos_lr, nominal_batch=args.nominal_batch,
              close_mosaic=args.close_mosaic, ema=not args.no_ema, val_interval=args.val_interval,
              project=args.project, name=args.name, resume=args.resume, seed=args.seed,
              deterministic=args.deterministic, max_batches=args.max_batches,
              sync_bn=args.sync_bn, channels_last=args.channels_last, compile=args.compile,
              hyp=hyp or None,
              lead_head_guided=args.lead_head_guided, max_nonfinite=args.max_nonfinite,
              val_backend=args.val_backend, tensorboard=not args.no_tensorboard,
              plots=not args.no_plots, verbose=not args.quiet,
              model_kwargs={k: v for k in MODEL_KNOBS
                            if (v := getattr(args, k)) is not None} or None,
              **{k: float(v) for k, v in optim.items()})
    except (TrainError, NonFiniteLossError) as err:
        print(f"yolov9lite train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
