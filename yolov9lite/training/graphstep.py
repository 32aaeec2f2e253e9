"""The training step with static shapes and no host syncs, ready to be captured as a CUDA graph.

The reference step of :mod:`yolov9lite.training.step` and the eager step of
:mod:`yolov9lite.training.engine` built on it are the readable ones; this is the same mathematics
(official ``train_dual.py``: :func:`~yolov9lite.training.step.forward_loss`, backward, clip at 10,
SGD, EMA), rearranged so that the GPU never waits for the host and the host never waits for the
GPU:

1. **Static shapes.** The targets are padded on the CPU to a fixed *box budget* per image
   (:data:`BOX_BUDGET`; a batch with more boxes is padded to the next multiple of it), so the
   loss always sees ``(B, M)`` tensors of one shape. Padding rows carry weight 0: the loss is the
   same sum as with the batch's own largest box count (``tests/test_graph_step.py``).
2. **Gradients in one flat buffer.** Every parameter's ``.grad`` is a view into one float32
   buffer that lives for the whole run: backward accumulates into it in place, clipping is one
   norm over it, and zeroing is one ``zero_()``.
3. **The non-finite guard on the device.** The eager step reads ``isfinite(loss)`` on the host to
   decide whether to run backward. Here backward always runs and the batch's gradient is kept
   only if its loss was finite: ``grad = where(ok, grad_after, grad_before)``. The flag, a count
   of skipped batches, the longest run of them and the running loss sums stay on the device and
   are read once every :data:`CHECK_EVERY` steps and at the end of the epoch (one sync), where
   too many in a row stop the run as in the eager loop. The optimizer step is skipped on the
   device too: the fused SGD kernel takes ``found_inf`` = "this batch's loss or the gradient
   norm is not finite" (with fp16, added to the scaler's own flag).
4. **CUDA graph.** On a GPU, forward + loss + backward + guard of one batch are captured once
   per padded shape and replayed: one launch instead of thousands of small kernels. The optimizer
   step and the EMA run eagerly after it (their learning rate and momentum change every batch in
   warm-up; both are a few multi-tensor kernels and need no sync). On a CPU the same function
   simply runs eagerly, which is what the tests compare with the eager step.

Differences from the eager step, all only after a non-finite loss: the EMA is still updated
(towards unchanged weights, as the official code does after a step its scaler skipped); with
gradient accumulation, a step skipped because its batch was bad is taken at the next scheduled
step rather than at the next batch (the host does not know it was skipped); with fp16 the
scaler lowers its scale (the official fp16 loop does too). Not supported:
DDP (the eager step is used there). ``torch.compile`` of the model (``TrainConfig.compile``)
composes with the capture; ``compile_loss=True`` also compiles the loss.
"""
from __future__ import annotations

import warnings

import torch

from .step import forward_loss

BOX_BUDGET = 64  # boxes per image the static shape holds (a mosaic of 4 COCO images: ~30 typical)
CHECK_EVERY = 50  # device flags are read once per this many steps (one sync) and at epoch end
MAX_GRAPHS = 3  # captured shapes kept (one per padded box count); others run eagerly


class DeviceGuard:
    """The non-finite guard's counters, all on the device; :meth:`read` is the only sync."""

    def __init__(self, device: torch.device, n_items: int, dtype: torch.dtype = torch.float32):
        z = {"device": device, "dtype": dtype}
        self.sums = torch.zeros(n_items, **z)  # loss items of kept batches, this epoch
        self.n_bad = torch.zeros((), **z)  # skipped batches, this epoch
        self.streak = torch.zeros((), **z)  # non-finite losses in a row (carries over epochs)
        self.max_streak = torch.zeros((), **z)  # longest streak since the last read
        self.steps = torch.zeros((), **z)  # steps recorded this epoch
        self.last_bad = torch.full((), -1.0, **z)  # step index (this epoch) of the last bad batch
        self.last_ok = torch.ones((), dtype=torch.bool, device=device)  # the latest batch's flag

    def record(self, ok: torch.Tensor, items: torch.Tensor) -> None:
        """Device-only bookkeeping of one batch (capturable: in-place, fixed shapes)."""
        self.sums.add_(torch.where(ok, items.detach().to(self.sums.dtype), 0.0))
        self.n_bad.add_((~ok).to(self.n_bad.dtype))
        self.streak.copy_(torch.where(ok, 0.0, self.streak + 1))
        torch.maximum(self.max_streak, self.streak, out=self.max_streak)
        self.last_bad.copy_(torch.where(ok, self.last_bad, self.steps))
        self.last_ok.copy_(ok)
        self.steps.add_(1)

    def read(self) -> dict:
        """One host sync: every counter at once."""
        values = torch.cat([self.sums, torch.stack([self.n_bad, self.streak, self.max_streak,
                                                    self.last_bad, self.steps])]).tolist()
        n = self.sums.numel()
        return {"sums": values[:n], "n_bad": int(values[n]), "streak": int(values[n + 1]),
                "max_streak": int(values[n + 2]), "last_bad": int(values[n + 3]),
                "steps": int(values[n + 4])}

    def new_epoch(self) -> None:
        for t in (self.sums, self.n_bad, self.steps, self.max_streak):
            t.zero_()
        self.last_bad.fill_(-1)


class GraphStep:
    """Drop-in for :func:`yolov9lite.training.engine.train_step` (same call, same return) built on the
    static-shape, sync-free step of the module docstring. Build it with
    :func:`yolov9lite.training.engine.make_graph_step`, which passes the engine's clipping norm and error
    (``max_grad_norm``, ``nonfinite_error``); ``state`` is the engine's ``State``.

    ``step(state, x, targets, loss_fn, dist_info, amp_dtype, sums, step_due, read_sums)``
    returns ``(True, loss, sums_or_None)``: ``True`` because whether the batch was kept is known
    only on the device; ``sums`` (for the progress bar) are those of the last read, scaled to
    the steps taken since. :meth:`end_epoch` reads the guard, warns about skipped batches,
    raises ``nonfinite_error`` after ``max_nonfinite`` in a row, and returns the number of
    skipped batches.
    """

    def __init__(self, state, loss_fn, amp_dtype: torch.dtype | None, device, *,
                 max_grad_norm: float, nonfinite_error: type[Exception],
                 max_nonfinite: int = 10, box_budget: int = BOX_BUDGET,
                 check_every: int = CHECK_EVERY, cuda_graph: bool | None = None,
                 compile_loss: bool = False):
        self.state, self.loss_fn, self.amp_dtype = state, loss_fn, amp_dtype
        self.max_grad_norm, self.nonfinite_error = max_grad_norm, nonfinite_error
        self.device = torch.device(device)
        self.max_nonfinite, self.box_budget, self.check_every = max_nonfinite, box_budget, check_every
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        opt = state.optimizer
        if not all(g.get("fused") for g in opt.param_groups):
            raise ValueError("the graph step needs the fused SGD (build_optimizer(fused=True)): "
                             "it skips a non-finite step on the device")
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.flat = attach_flat_grads(self.params)
        self.before = torch.empty_like(self.flat)  # the gradient before this batch's backward
        self.loss_of = (torch.compile(loss_fn.from_padded, dynamic=False) if compile_loss
                        else loss_fn.from_padded)
        self.guard = DeviceGuard(self.device, 3, self.flat.dtype)
        self.graphs: dict[tuple, _Captured] = {}
        self.warned_shapes = False
        self._sums_id = None
        self._last = {"sums": [0.0, 0.0, 0.0], "steps": 0}
        self._since_read = 0

    # ------------------------------------------------------------------ one batch
    def region(self, x: torch.Tensor, gt: tuple, autocast_cache: bool = True):
        """Forward, loss, guarded backward into the flat buffer, guard bookkeeping: no host
        sync and no data-dependent shape (what a CUDA graph captures). Returns loss, items."""
        amp = self.amp_dtype
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None,
                            cache_enabled=autocast_cache):
            loss, items = forward_loss(self.state.net, self.loss_of, x, gt)
        ok = torch.isfinite(loss.detach())
        self.before.copy_(self.flat)
        self.state.scaler.scale(loss).backward()
        torch.where(ok, self.flat, self.before, out=self.flat)
        self.guard.record(ok, items)
        return loss.detach(), items

    def __call__(self, state, x: torch.Tensor, targets: torch.Tensor, loss_fn, dist_info,
                 amp_dtype, sums: torch.Tensor, step_due: bool, read_sums: bool = False):
        if id(sums) != self._sums_id:  # a new epoch of the loop: new running sums
            self._sums_id = id(sums)
            self.guard.new_epoch()
            self._last, self._since_read = {"sums": [0.0] * sums.numel(), "steps": 0}, 0
        gt = self.loss_fn.pad(targets, x.shape[0], (x.shape[3], x.shape[2]),
                              dtype=torch.promote_types(x.dtype, torch.float32),
                              budget=self.box_budget)
        loss = self._run(x, gt)
        sums.copy_(self.guard.sums)  # the loop's running sums, on the device, no sync
        if step_due:
            self.optimizer_step()
        self._since_read += 1
        if self._since_read >= self.check_every:
            self.check()
        values = None
        if read_sums:
            steps_now = self._last["steps"] + self._since_read
            scale = steps_now / max(self._last["steps"], 1)
            values = [v * scale for v in self._last["sums"]]
        return True, loss, values

    def _run(self, x: torch.Tensor, gt: tuple) -> torch.Tensor:
        if not self.cuda_graph:
            gt = tuple(t.to(x.device, non_blocking=True) for t in gt)
            return self.region(x, gt)[0]
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last),
               tuple(gt[0].shape))
        graph = self.graphs.get(key)
        if graph is None and len(self.graphs) < MAX_GRAPHS:
            graph = self.graphs[key] = _Captured(self, x, gt)
            return graph.loss
        if graph is None:
            if not self.warned_shapes:
                warnings.warn(f"graph step: more than {MAX_GRAPHS} batch shapes (box counts "
                              "beyond the budget); the others run eagerly", RuntimeWarning,
                              stacklevel=3)
                self.warned_shapes = True
            gt = tuple(t.to(x.device, non_blocking=True) for t in gt)
            return self.region(x, gt)[0]
        return graph.replay(x, gt)

    # ------------------------------------------------------------------ optimizer
    def optimizer_step(self) -> None:
        """Unscale (fp16), clip the flat gradient at 10, fused SGD that skips itself on the
        device, zero the buffer in place, EMA. No host sync.

        The step is skipped when this batch's loss was not finite (its gradient was never added;
        the accumulated ones are kept for the next step, as the eager loop, which skips the
        whole batch, would apply them then) or when the gradient norm is not finite (then the
        gradient is dropped, as in the eager step)."""
        state = self.state
        state.scaler.unscale_(state.optimizer)
        ok = self.guard.last_ok
        norm = self.flat.norm()
        finite = torch.isfinite(norm)
        clip = (self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)  # torch clip_grad_norm_
        self.flat.mul_(torch.where(ok, clip, 1.0))  # unclipped when kept for the next step
        skip = (~(ok & finite)).float()
        if state.scaler.is_enabled():
            # the fused kernel reads the scaler's inf flags; add ours (the official fp16 loop
            # also lowers the scale after a non-finite loss)
            flags = state.scaler._per_optimizer_states[id(state.optimizer)]
            for t in flags["found_inf_per_device"].values():
                torch.maximum(t, skip.to(t.device), out=t)
            state.scaler.step(state.optimizer)
            state.scaler.update()
        else:
            state.optimizer.found_inf = skip
            state.optimizer.step()
            state.optimizer.found_inf = None
        self.flat.masked_fill_(ok | ~finite, 0.0)  # zero it, unless kept for the next step
        if state.ema is not None:
            state.ema.update(state.model)

    # ------------------------------------------------------------------ the deferred guard
    def check(self, where: str = "") -> dict:
        """Read the device counters (one sync); stop the run after too many non-finite losses in
        a row, as the eager loop does."""
        info = self.guard.read()
        self._last, self._since_read = {"sums": info["sums"], "steps": info["steps"] - info["n_bad"]}, 0
        self.state.nonfinite_streak = info["streak"]
        if info["max_streak"] >= self.max_nonfinite:
            raise self.nonfinite_error(
                f"{info['max_streak']} non-finite losses in a row{where}; training stopped. "
                "Try amp='off' (or 'bf16'), a lower lr0, or check the data.")
        return info

    def end_epoch(self, where: str = "") -> int:
        """At the end of an epoch: read the guard, warn about skipped batches; returns how many
        there were (the loop subtracts them from its count of kept batches)."""
        info = self.check(where)
        if info["n_bad"]:
            warnings.warn(f"non-finite loss in {info['n_bad']} batch(es){where} (the last at "
                          f"step {info['last_bad']} of the epoch): those batches were skipped",
                          RuntimeWarning, stacklevel=2)
        return info["n_bad"]


def attach_flat_grads(params: list[torch.Tensor]) -> torch.Tensor:
    """One zeroed buffer (the parameters' dtype, at least float32); each parameter's ``.grad``
    becomes a view into it with the parameter's own strides (channels-last kernels stay
    channels-last, as the fused optimizer wants); gradients already present are copied in.
    Backward then accumulates in place into the buffer."""
    p0 = params[0]
    flat = torch.zeros(sum(p.numel() for p in params), device=p0.device,
                       dtype=torch.promote_types(p0.dtype, torch.float32))
    offset = 0
    for p in params:
        view = flat.as_strided(p.shape, p.stride(), offset)
        if p.grad is not None:
            view.copy_(p.grad)
        p.grad = view
        offset += p.numel()
    return flat


class _Captured:
    """One CUDA graph of :meth:`GraphStep.region` for one input shape, with its static input
    buffers. Capturing runs the region three times eagerly on a side stream first (cuDNN
    autotuning, lazy allocations, compilation), as PyTorch requires; those are real training
    batches (the same batch), so the guard and gradients are reset after them."""

    def __init__(self, step: GraphStep, x: torch.Tensor, gt: tuple, warmup: int = 3):
        self.x = x.detach().clone(memory_format=torch.preserve_format)
        self.gt = tuple(t.to(x.device) for t in gt)
        saved = {"flat": step.flat.clone(), "guard": {k: v.clone() for k, v in
                                                      vars(step.guard).items()}}
        bn_state = {k: v.clone() for k, v in step.state.model.state_dict().items()
                    if "running_" in k or "num_batches" in k}
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step.region(self.x, self.gt, autocast_cache=False)
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the data loader's pin-memory thread may call CUDA during the capture
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.loss, _ = step.region(self.x, self.gt, autocast_cache=False)
        # undo the warm-up's effects, then run the real batch through the graph
        step.flat.copy_(saved["flat"])
        for k, v in saved["guard"].items():
            getattr(step.guard, k).copy_(v)
        with torch.no_grad():
            state = step.state.model.state_dict()
            for k, v in bn_state.items():
                state[k].copy_(v)
        self.graph.replay()

    def replay(self, x: torch.Tensor, gt: tuple) -> torch.Tensor:
        self.x.copy_(x)
        for static, new in zip(self.gt, gt):
            static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.loss
