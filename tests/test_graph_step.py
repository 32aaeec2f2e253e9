"""The static-shape, sync-free training step (yolov9lite/training/graphstep.py) against the eager step of
yolov9lite/training/engine.py, on CPU (where the capturable step runs eagerly: what a CUDA graph would
replay is exactly this computation).

Everything runs in float64, so the comparisons can be tight on any x86 CPU: the two paths differ
only in summation order (padding to the box budget adds zero-weight rows; the gradient norm is one
norm over a flat buffer instead of a norm of per-tensor norms), i.e. at the 1e-15 level.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from helpers import count_host_syncs

import yolov9lite.training.engine as E
from yolov9lite import build_model
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.training.optim import ModelEMA, build_optimizer
from yolov9lite.utils.runtime import DistInfo

RTOL = 1e-9


pytestmark = pytest.mark.usefixtures("one_thread")


class PoisonedLoss(DetectionLoss):
    """The real loss, made non-finite on demand (``poison = True``) without touching the images,
    so that BatchNorm statistics stay comparable between the two paths."""

    poison = False

    def from_padded(self, preds, gt):
        loss, items = super().from_padded(preds, gt)
        return (loss * float("nan"), items * float("nan")) if self.poison else (loss, items)


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return build_model("yolov9-nano", 3).double().train()


def batches(n=3, size=2, img=64):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.rand(size, 3, img, img, generator=g, dtype=torch.float64)
        boxes = int(torch.randint(1, 5, (1,), generator=g))
        k = size * boxes
        wh = 0.1 + 0.3 * torch.rand(k, 2, generator=g, dtype=torch.float64)
        xy = 0.3 + 0.4 * torch.rand(k, 2, generator=g, dtype=torch.float64)
        idx = torch.arange(size).repeat_interleave(boxes)[:, None].double()
        cls = torch.randint(0, 3, (k, 1), generator=g).double()
        out.append((x, torch.cat([idx, cls, xy, wh], 1)))
    return out


def setup(nano):
    model = copy.deepcopy(nano)
    state = E.State(model=model, net=model, optimizer=build_optimizer(model, fused=True),
                    scaler=torch.amp.GradScaler("cpu", enabled=False), ema=ModelEMA(model))
    return state, PoisonedLoss(model)


def close(a, b):
    return (a - b).norm() <= RTOL * a.norm() + 1e-300


def test_box_budget_padding_keeps_loss_and_gradients(nano):
    """Padding the targets to a budget of 64 boxes per image (static shapes) gives the loss and
    gradients of padding to the batch's own largest count."""
    (x, t), = batches(1)
    results = []
    for budget in (None, 64):
        model = copy.deepcopy(nano)
        loss_fn = DetectionLoss(model, max_boxes=budget)
        loss, items = loss_fn(model(x), t)
        loss.backward()
        results.append((loss.detach(), items, [p.grad for p in model.parameters()
                                               if p.grad is not None]))
    (la, ia, ga), (lb, ib, gb) = results
    assert torch.allclose(la, lb, rtol=RTOL) and torch.allclose(ia, ib, rtol=RTOL)
    assert len(ga) == len(gb) and all(close(a, b) for a, b in zip(ga, gb))
    gt = DetectionLoss(nano, max_boxes=64).pad(t, 2, (64, 64), torch.float64)
    assert gt[0].shape == (2, 64)  # 1-4 boxes per image -> the budget


def test_graph_step_equals_eager_step(nano):
    """Same losses, same accumulated gradients before the step, and the same weights, momentum
    buffers, BatchNorm statistics and EMA after two batches accumulated into one step."""
    data, due = batches(2), (False, True)
    eager, loss_e = setup(nano)
    graph, loss_g = setup(nano)
    step = E.make_graph_step(graph, loss_g, None, "cpu")
    sums_e, sums_g = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for i, ((x, t), step_due) in enumerate(zip(data, due)):
        ok, le, _ = E.train_step(eager, x, t, loss_e, DistInfo(), None, sums_e, step_due)
        assert ok
        if i == 0:  # compare what is accumulated before any step
            ge = [p.grad.clone() for p in eager.model.parameters() if p.grad is not None]
        ok, lg, _ = step(graph, x, t, loss_g, DistInfo(), None, sums_g, step_due)
        assert ok and torch.allclose(le.detach(), lg, rtol=RTOL)
        if i == 0:
            gg = [p.grad for p in graph.model.parameters() if p.requires_grad]
            assert len(ge) == len(gg) and all(close(a, b) for a, b in zip(ge, gg))
    assert torch.allclose(sums_e, sums_g, rtol=RTOL)
    for a, b in zip(eager.model.state_dict().values(), graph.model.state_dict().values()):
        assert close(a.double(), b.double())
    for p, q in zip(eager.model.parameters(), graph.model.parameters()):
        if p.requires_grad:
            assert close(eager.optimizer.state[p]["momentum_buffer"],
                         graph.optimizer.state[q]["momentum_buffer"])
    for a, b in zip(eager.ema.module.state_dict().values(), graph.ema.module.state_dict().values()):
        assert close(a.double(), b.double())
    assert step.end_epoch() == 0


def test_deferred_guard_skips_only_the_bad_batch(nano, monkeypatch):
    """A non-finite loss in batch 2 of 3 (a step after every batch): the weights and momentum end
    as in the eager loop, which skips that batch on the host; the device guard reports it once,
    at the end of the epoch; and no step reads anything back from the device (on CPU: the
    only Tensor -> Python read per step is the box count of the CPU targets)."""
    data = batches(3)
    eager, loss_e = setup(nano)
    graph, loss_g = setup(nano)
    step = E.make_graph_step(graph, loss_g, None, "cpu")
    sums_e, sums_g = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    kept = []
    for i, (x, t) in enumerate(data):
        loss_e.poison = loss_g.poison = i == 1
        ok, _, _ = E.train_step(eager, x, t, loss_e, DistInfo(), None, sums_e, step_due=True)
        kept.append(ok)
        calls = count_host_syncs(monkeypatch)
        ok, _, _ = step(graph, x, t, loss_g, DistInfo(), None, sums_g, step_due=True)
        monkeypatch.undo()
        assert ok and calls == ["tolist"]
    assert kept == [True, False, True]
    for p, q in zip(eager.model.parameters(), graph.model.parameters()):
        assert close(p.detach(), q.detach())
        if p.requires_grad:
            assert close(eager.optimizer.state[p]["momentum_buffer"],
                         graph.optimizer.state[q]["momentum_buffer"])
    assert torch.allclose(sums_e, sums_g, rtol=RTOL) and torch.isfinite(sums_g).all()
    with pytest.warns(RuntimeWarning, match=r"1 batch\(es\).*step 1 of the epoch"):
        assert step.end_epoch() == 1


def test_deferred_guard_stops_after_too_many_in_a_row(nano):
    graph, loss_g = setup(nano)
    step = E.make_graph_step(graph, loss_g, None, "cpu", max_nonfinite=2, check_every=100)
    sums = torch.zeros(3, dtype=torch.float64)
    loss_g.poison = True
    before = [p.detach().clone() for p in graph.model.parameters()]
    for x, t in batches(2):  # nothing is read back yet: both steps run (and are skipped)
        step(graph, x, t, loss_g, DistInfo(), None, sums, step_due=True)
    assert all(torch.equal(a, b) for a, b in zip(before, graph.model.parameters()))
    with warnings.catch_warnings(), pytest.raises(E.NonFiniteLossError, match="2 non-finite"):
        warnings.simplefilter("ignore")
        step.end_epoch()


def test_graph_step_needs_the_fused_optimizer(nano):
    model = copy.deepcopy(nano)
    state = E.State(model=model, net=model, optimizer=build_optimizer(model, fused=False),
                    scaler=torch.amp.GradScaler("cpu", enabled=False), ema=None)
    with pytest.raises(ValueError, match="fused SGD"):
        E.make_graph_step(state, DetectionLoss(model), None, "cpu")


def test_loss_from_padded_targets_traces_as_one_graph():
    """``torch.compile(fullgraph=True)`` takes the loss from its padded targets on without a
    graph break: no host sync and no data-dependent shape left in it (what CUDA-graph capture
    and ``GraphStep(compile_loss=True)`` need). The ``eager`` backend traces without generating
    code, which keeps this fast on a CPU."""
    torch.manual_seed(0)
    model = build_model("gelan-nano", 3).train()
    (x, t), = batches(1)
    loss_fn = DetectionLoss(model, max_boxes=8)
    preds = model(x.float())
    gt = loss_fn.pad(t.float(), 2, (64, 64))
    want, _ = loss_fn.from_padded(preds, gt)
    try:
        got, _ = torch.compile(loss_fn.from_padded, backend="eager", fullgraph=True,
                               dynamic=False)(preds, gt)
    finally:
        torch._dynamo.reset()
    assert torch.allclose(got, want, rtol=1e-6)


def test_train_with_graph_step_follows_the_eager_run(tmp_path):
    """``train(graph_step=True)`` (the engine's hook, the config field): the same epoch losses
    and final weights as the eager run, to float32 rounding (float32 here: only the summation
    order differs)."""
    import yolov9lite
    from yolov9lite.data import make_synthetic

    data = str(make_synthetic(tmp_path / "data", num_train=16, num_val=4, imgsz=64, seed=1))
    runs = {}
    for graph_step in (False, True):
        runs[graph_step] = yolov9lite.train(
            model="gelan-nano", data=data, epochs=1, batch_size=4, imgsz=64, workers=0,
            device="cpu", max_batches=2, project=str(tmp_path), name=f"g{int(graph_step)}",
            verbose=False, plots=False, tensorboard=False, graph_step=graph_step,
            deterministic=True, warmup_epochs=0)
    eager, graph = runs[False], runs[True]
    assert eager[0]["train/loss"] == pytest.approx(graph[0]["train/loss"], rel=1e-5)
    for a, b in zip(eager.model.state_dict().values(), graph.model.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)
