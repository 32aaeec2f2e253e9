"""The training engine: one batch, one epoch, one validation, and the state they share.

Per batch (:func:`train_step`, :func:`optimizer_step`), the official ``train_dual.py`` loop: the
reference step of :mod:`yolov9lite.training.step` (its :func:`~yolov9lite.training.step.forward_loss`,
backward, :func:`~yolov9lite.training.step.clip_gradients`, optimizer step) extended with AMP,
DDP, accumulation, a non-finite guard and the EMA:

1. uint8 images -> float 0-1 on the device (optionally channels-last), forward and loss under
   autocast (bf16, or fp16 with a gradient scaler; plain float32 on CPU); the loss of
   :mod:`yolov9lite.training.loss` is a *sum* over the batch's images (x batch size x world size);
2. a non-finite loss skips the batch (all ranks agree), too many in a row stop the run;
3. backward (of the scaled loss; under DDP without the gradient all-reduce unless a step is due);
4. every ``accumulate`` batches (nominal batch 64): unscale, clip the gradient norm at 10, SGD
   step (Nesterov 0.937, three parameter groups) unless the norm is not finite, zero the
   gradients, EMA update;
5. the lr, momentum and ``accumulate`` of every batch come from :func:`yolov9lite.training.optim.schedule`.

:class:`State` is everything the loop mutates; ``state_dict()`` / ``load_state_dict()`` are what
a checkpoint stores and a resume restores. Orchestration (run folder, loaders, checkpoints,
logging) is in :mod:`yolov9lite.training.trainer`.
"""
from __future__ import annotations

import contextlib
import inspect
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ..evaluation.coco_eval import evaluate
from ..utils.accel import autocast
from ..utils.runtime import DistInfo, rng_state, set_rng_state
from .config import TrainConfig
from .graphstep import GraphStep
from .loss import ITEM_NAMES
from .optim import ModelEMA, apply_schedule, schedule
from .step import MAX_GRAD_NORM, clip_gradients, forward_loss


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


@dataclass
class State:
    """Everything the loop mutates; what a checkpoint saves and a resume restores."""

    model: nn.Module  # the bare model
    net: nn.Module  # what the loop calls: the model, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    epoch: int = 0  # the epoch being (or about to be) trained
    last_opt_step: int = -1  # global batch index of the last optimizer step
    best_fitness: float = -1.0
    nonfinite_streak: int = 0
    history: History = field(default_factory=History)

    def state_dict(self) -> dict:
        """After epoch ``self.epoch`` has been trained: the checkpoint's ``epoch``,
        ``best_fitness``, ``history`` and ``train_state`` (weights, EMA, optimizer, scaler,
        pending accumulated gradients, RNG states). Plain types and tensors only."""
        pending = [None if p.grad is None else p.grad.detach().cpu().clone()
                   for p in self.model.parameters()]
        train_state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "last_opt_step": self.last_opt_step,
            # gradients accumulated but not yet applied (the nominal batch can span an epoch end)
            "pending_grads": pending if any(g is not None for g in pending) else None,
            "rng": rng_state(),
            "nonfinite_streak": self.nonfinite_streak,
        }
        return {"epoch": self.epoch, "best_fitness": self.best_fitness,
                "history": list(self.history), "train_state": train_state}

    def load_state_dict(self, state: dict) -> None:
        """Continue after the saved epoch (older checkpoints' extra keys are ignored)."""
        saved = state["train_state"]
        self.model.load_state_dict(saved["model"])
        if self.ema is not None and saved["ema"] is not None:
            self.ema.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        if saved["pending_grads"] is not None:
            for p, g in zip(self.model.parameters(), saved["pending_grads"]):
                p.grad = None if g is None else g.to(p.device)
        self.last_opt_step = int(saved["last_opt_step"])
        self.nonfinite_streak = int(saved["nonfinite_streak"])
        self.best_fitness = float(state["best_fitness"])
        self.epoch = int(state["epoch"]) + 1
        self.history[:] = state["history"]
        set_rng_state(saved["rng"])


@dataclass
class EpochPlan:
    """What every epoch of a run shares: the settings, where it runs, the loss and the lengths."""

    cfg: TrainConfig
    device: torch.device
    dist_info: DistInfo
    amp_dtype: torch.dtype | None
    loss_fn: Callable
    batches_per_epoch: int  # nb: at most max_batches
    warmup_batches: int  # nw
    last_checkpoint: Path | None = None  # named in the message when non-finite losses stop a run
    graph_step: Callable | None = None  # the GraphStep of a graph_step run (built on first use)


# --------------------------------------------------------------------------- one batch
def to_model_input(images: torch.Tensor, device: torch.device, channels_last: bool):
    """uint8 (B, 3, H, W) -> float 0-1 on the device; the copy is async from pinned memory."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def optimizer_step(state: State) -> bool | torch.Tensor:
    """The reference step's clip and optimizer step, guarded: unscale, clip at 10, step unless
    the gradient norm is not finite, zero the gradients, update the EMA. Returns whether the
    step was applied: a bool, or a 0-d device tensor when deciding it needed no host sync."""
    state.scaler.unscale_(state.optimizer)  # clip the true gradient, not the fp16-scaled one
    norm = clip_gradients(state.model.parameters())
    stepped = step_if_finite(state, norm)
    state.optimizer.zero_grad(set_to_none=True)  # after the step: the next batches accumulate
    if stepped is not False and state.ema is not None:
        state.ema.update(state.model)
    return stepped


def step_if_finite(state: State, norm: torch.Tensor) -> bool | torch.Tensor:
    """``optimizer.step()``, never with a non-finite gradient (``norm``: what
    :func:`~yolov9lite.training.step.clip_gradients` returned).

    With a fused optimizer (the default where PyTorch has one) the skip is decided on the device,
    without a host sync: the scaler hands its inf flag to the fused kernel (fp16), or the flag is
    ``~isfinite(norm)`` (bf16/fp32). The EMA is then updated anyway, towards the unchanged
    weights, as the official code does after a step its scaler skipped; with the plain optimizer
    the step and the EMA are skipped after one host sync.
    """
    if state.scaler.is_enabled():
        state.scaler.step(state.optimizer)  # the scaler itself skips steps with inf/NaN gradients
        state.scaler.update()
        return True
    if all(g.get("fused") for g in state.optimizer.param_groups):
        stepped = torch.isfinite(norm)  # the kernel skips the update when found_inf != 0
        state.optimizer.found_inf = (~stepped).float()
        state.optimizer.step()
        state.optimizer.found_inf = None
        return stepped
    if torch.isfinite(norm):
        state.optimizer.step()
        return True
    return False  # no scaler to catch it (fp32/bf16): never let a NaN reach the weights


def all_ranks_finite(loss: torch.Tensor, dist_info: DistInfo, sums: torch.Tensor | None = None,
                     items: torch.Tensor | None = None, read_sums: bool = False):
    """Whether the loss is finite on every rank: one host sync; under DDP every rank must take
    the same branch or backward would hang.

    With ``sums`` and ``items``: ``sums += items`` on the device when the batch is kept, and with
    ``read_sums`` the new sums come back in the same sync (the progress bar's running means, at
    no extra sync). Returns ``(ok, sums_list_or_None)`` then; a bare bool otherwise.
    """
    ok = torch.isfinite(loss.detach()).float().view(1)
    if dist_info.ddp:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if sums is None:
        return bool(ok.item())
    sums += torch.where(ok > 0, items.detach(), 0.0)
    values = torch.cat([ok, sums]).tolist() if read_sums else ok.tolist()
    return values[0] > 0, (values[1:] if read_sums else None)


def train_step(state: State, x: torch.Tensor, targets: torch.Tensor, loss_fn,
               dist_info: DistInfo, amp_dtype, sums: torch.Tensor, step_due: bool,
               read_sums: bool = False):
    """The reference step's forward, loss and backward of one batch under autocast, with the
    non-finite guard between loss and backward, and (when ``step_due``) :func:`optimizer_step`.
    Returns ``(ok, loss, sums_list_or_None)``; ``ok`` False = batch skipped.

    One device sync, whatever the precision and verbosity: the guard reads one flag (plus the
    running loss sums for the progress bar). The loss reads the padded box count from the
    targets, which the loop passes on the CPU, so that read is not a device sync
    (``tests/test_accel.py`` counts both). The optimizer step adds none with a fused optimizer.
    """
    with gradient_sync(state.net, step_due):
        with autocast(x.device, amp_dtype):
            loss, items = forward_loss(state.net, loss_fn, x, targets)
        ok, values = all_ranks_finite(loss, dist_info, sums, items, read_sums)
        if not ok:
            return False, loss, values
        state.scaler.scale(loss).backward()
    if step_due:
        optimizer_step(state)
    return True, loss, values


def gradient_sync(net: nn.Module, sync: bool):
    """Where ``net`` is DDP and no optimizer step follows this batch: its ``no_sync()`` (the
    gradients accumulate on each rank, and the backward of the batch that steps all-reduces
    their sum: one all-reduce per optimizer step instead of one per batch). Otherwise nothing. DDP decides at the forward whether the backward all-reduces,
    so forward and backward both run inside. A compiled DDP model (``compile=True``)
    all-reduces every batch, as the official loop does: ``no_sync`` is not applied through
    ``torch.compile``."""
    if sync or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def count_nonfinite(state: State, loss: torch.Tensor, where: str, plan: EpochPlan) -> None:
    """The non-finite guard's bookkeeping: warn about a skipped batch; stop the run after
    ``max_nonfinite`` in a row (the last good checkpoint stays)."""
    state.nonfinite_streak += 1
    warnings.warn(f"non-finite loss (this rank: {loss.item():.4g}) at {where}: batch skipped "
                  f"({state.nonfinite_streak} in a row)", RuntimeWarning, stacklevel=3)
    if state.nonfinite_streak >= plan.cfg.max_nonfinite:
        raise NonFiniteLossError(
            f"{state.nonfinite_streak} non-finite losses in a row (last at {where}); training "
            f"stopped; {_kept(plan)}. Try amp='off' (or 'bf16'), a lower lr0, or check the data.")


def _kept(plan: EpochPlan) -> str:
    last = plan.last_checkpoint
    return (f"the last good checkpoint is kept at {last}"
            if last is not None and last.exists() else "no checkpoint was written yet")


# --------------------------------------------------------------------------- one epoch
def discard_pending_grads(state: State) -> None:
    """Drop gradients accumulated but not applied in the previous epoch, as the official loop
    does (``optimizer.zero_grad()`` before each epoch's batches, official ``train_dual.py``): a
    nominal batch never spans an epoch end. Zeroed in place, so that the gradient views into
    the graph step's flat buffer stay attached (0 + g is exactly g for the next backward)."""
    with torch.no_grad():
        for p in state.model.parameters():
            if p.grad is not None:
                p.grad.zero_()


def train_one_epoch(state: State, loader, plan: EpochPlan) -> dict:
    """One pass over (at most ``plan.batches_per_epoch`` batches of) the training loader;
    returns the epoch's mean losses, last learning rates and throughput."""
    cfg, nb, epoch = plan.cfg, plan.batches_per_epoch, state.epoch
    state.net.train()
    discard_pending_grads(state)
    sums = torch.zeros(len(ITEM_NAMES), device=plan.device)
    n_ok = n_images = 0
    compile_s = None
    bar = tqdm(total=nb, disable=not (plan.dist_info.main and cfg.verbose), dynamic_ncols=True,
               desc=f"epoch {epoch + 1}/{cfg.epochs}", bar_format="{l_bar}{bar:12}{r_bar}")
    step_fn = step_function(state, plan)
    wait = WaitClock()
    t0 = time.perf_counter()
    for i, (images, targets, metas) in enumerate(wait.timed(loader)):
        if i >= nb:
            break
        ni = i + nb * epoch  # batches since the start of training
        settings = schedule(ni, epoch, epochs=cfg.epochs, nw=plan.warmup_batches,
                            batches_per_epoch=nb, batch_size=cfg.batch_size,
                            **_schedule_kwargs(cfg))
        apply_schedule(state.optimizer, settings)
        x = to_model_input(images, plan.device, cfg.channels_last)
        step_due = ni - state.last_opt_step >= settings["accumulate"]
        # targets stay on the CPU: the loss pads them there (no device sync, see loss.py)
        ok, loss, sums_now = step_fn(state, x, targets, plan.loss_fn, plan.dist_info,
                                     plan.amp_dtype, sums, step_due, read_sums=not bar.disable)
        if not ok:
            paths = [m["path"] for m in metas][:4]
            count_nonfinite(state, loss, f"epoch {epoch + 1}, batch {i} (images {paths}...)",
                            plan)
            continue
        state.nonfinite_streak = 0
        if step_due:
            state.last_opt_step = ni
        n_ok += 1
        n_images += images.shape[0] * plan.dist_info.world_size
        if i == 0 and getattr(state.net, "compile_s", None) is not None:
            compile_s = state.net.compile_s  # first forward of a compiled model: compile time
            if not bar.disable:
                bar.write(f"torch.compile: first forward took {compile_s:.1f} s")
        if not bar.disable:  # the running sums came back with the guard's sync: no extra one
            speed = n_images / (time.perf_counter() - t0)
            bar.set_postfix_str(" ".join(f"{k} {v / n_ok:.3f}" for k, v in zip(ITEM_NAMES, sums_now))
                                + f" lr {settings['lr'][1]:.2e} {speed:.1f} img/s"
                                + f" {len(targets)} obj {x.shape[-1]}px")
            bar.update()
    bar.close()
    if step_fn is not train_step:  # the deferred guard: one read per epoch (may stop the run)
        n_ok -= step_fn.end_epoch(f" in epoch {epoch + 1}")
    if n_ok == 0:  # every batch skipped: no mean loss (0/0), and nothing was learned
        raise NonFiniteLossError(
            f"epoch {epoch + 1}: no batch had a finite loss; training stopped; "
            f"{_kept(plan)}. Try a lower lr0, amp='off' (or 'bf16'), or check the data.")
    elapsed = time.perf_counter() - t0
    record = _epoch_record(state, plan, sums / n_ok, n_images, elapsed, compile_s)
    record["data_wait_s"] = wait.seconds
    return record


class WaitClock:
    """Seconds the training loop spent waiting for the loader's next batch: the host-side
    measure of "the GPU waits for data" (with an async device the host runs ahead, so a loop
    that is not loader-bound waits ~0 s; a loader-bound one waits for most of the epoch)."""

    def __init__(self):
        self.seconds = 0.0

    def timed(self, iterable):
        batches = iter(iterable)
        while True:
            start = time.perf_counter()
            try:
                item = next(batches)
            except StopIteration:
                return
            self.seconds += time.perf_counter() - start
            yield item


def step_function(state: State, plan: EpochPlan):
    """:func:`train_step`, or with ``TrainConfig.graph_step`` the static-shape step without host
    syncs of :mod:`yolov9lite.training.graphstep` (same call and return; built once per run). Under DDP
    the eager step is used."""
    if not getattr(plan.cfg, "graph_step", False):
        return train_step
    if plan.dist_info.ddp:
        if plan.graph_step is None:
            warnings.warn("graph_step: not available under DDP; the eager step is used",
                          RuntimeWarning, stacklevel=3)
            plan.graph_step = train_step
        return train_step
    if plan.graph_step is None:
        plan.graph_step = make_graph_step(state, plan.loss_fn, plan.amp_dtype, plan.device,
                                          max_nonfinite=plan.cfg.max_nonfinite)
    return plan.graph_step


def make_graph_step(state: State, loss_fn, amp_dtype, device, **options):
    """A :class:`yolov9lite.training.graphstep.GraphStep` with this engine's clipping norm and
    non-finite error (``options``: ``max_nonfinite``, ``box_budget``, ``check_every``,
    ``cuda_graph``, ``compile_loss``)."""
    return GraphStep(state, loss_fn, amp_dtype, device, max_grad_norm=MAX_GRAD_NORM,
                     nonfinite_error=NonFiniteLossError, **options)


def _schedule_kwargs(cfg: TrainConfig) -> dict:
    """The schedule settings that :func:`yolov9lite.training.optim.schedule` takes (the weight decay is
    set once in the optimizer, and the warm-up length arrives as ``nw``)."""
    takes = inspect.signature(schedule).parameters
    return {k: v for k, v in asdict(cfg.schedule).items() if k in takes}


def _epoch_record(state: State, plan: EpochPlan, mean_items: torch.Tensor, n_images: int,
                  elapsed: float, compile_s: float | None) -> dict:
    """The epoch's row of the history: mean losses (over all ranks), lrs, throughput."""
    if plan.dist_info.ddp:  # report the mean over all ranks
        mean_items = mean_items / plan.dist_info.world_size
        dist.all_reduce(mean_items)
    mean = mean_items.tolist()
    record = {f"train/{k}": v for k, v in zip(ITEM_NAMES, mean)}
    record["train/loss"] = sum(mean)
    record.update({f"lr/{g['name']}": g["lr"] for g in state.optimizer.param_groups})
    record["images_per_s"] = n_images / max(elapsed, 1e-9)
    record["epoch_time_s"] = elapsed
    if compile_s is not None:
        record["compile_s"] = compile_s
    return record


# --------------------------------------------------------------------------- validation
def validate(state: State, data_cfg: dict, val_loader, gt, cfg: TrainConfig,
             device: torch.device, keep_records: bool = False) -> dict:
    """COCO metrics of the EMA model (official: the EMA is what is validated and saved).
    ``evaluate`` runs FP16 through autocast and restores the train/eval mode, so the EMA's
    float32 weights are evaluated in place, unchanged. ``keep_records``: the result also holds
    ``detections`` (``records``, ``cat_ids``, ``gt_dict`` of the pass) for the run's plots."""
    model = state.ema.module if state.ema else state.model
    # a progress bar over the validation batches (it goes away when done: the table stays)
    progress = tqdm(val_loader, desc="  val", unit="batch", leave=False, dynamic_ncols=True,
                    disable=not cfg.verbose)
    try:
        metrics = evaluate(model, data_cfg, imgsz=cfg.imgsz, batch_size=cfg.batch_size * 2,
                           half=device.type == "cuda", device=device, dataloader=progress, gt=gt,
                           backend=cfg.val_backend, keep_records=keep_records)
    finally:
        progress.close()
    out = {"metrics/P": float(metrics["all"]["P"]), "metrics/R": float(metrics["all"]["R"])}
    out.update({f"metrics/{k}": float(metrics[k])
                for k in ("AP50", "AP", "AP75", "APS", "APM", "APL")})
    out["table"] = {"classes": metrics["classes"], "all": metrics["all"],
                    "conf_best_f1": metrics["conf_best_f1"]}  # printed, not logged as a scalar
    if keep_records:
        out["detections"] = {k: metrics[k] for k in ("records", "cat_ids", "gt_dict")}
    return out


def fitness(record: dict) -> float:
    """Official model selection: 0.1 mAP50 + 0.9 mAP50:95."""
    return 0.1 * record["metrics/AP50"] + 0.9 * record["metrics/AP"]
