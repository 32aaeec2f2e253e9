"""The reference step (``yolov9lite/training/step.py``) is what the engine's step does to the
weights, once AMP, DDP, accumulation, the guard and the EMA are taken away; the engine's step is
built on its pieces (forward_loss, backward, clip_gradients, optimizer step), and accumulates
(under DDP in ``no_sync``) exactly as those pieces do; the paired experiments train with it."""
from __future__ import annotations

import copy

import pytest
import torch

from yolov9lite import build_model
from yolov9lite.study.paired import train_steps
from yolov9lite.training.engine import State, train_step
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.training.step import clip_gradients, forward_loss, reference_step
from yolov9lite.utils.runtime import DistInfo

NC = 3
pytestmark = pytest.mark.usefixtures("one_thread")  # identical sums, whatever the CPU


def batches(n: int = 2, size: int = 32):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        images = torch.rand(2, 3, size, size, generator=g)
        boxes = torch.rand(4, 4, generator=g) * 0.4 + 0.2  # cx, cy, w, h inside the image
        targets = torch.cat([torch.tensor([[0.0], [0.0], [1.0], [1.0]]),
                             torch.randint(0, NC, (4, 1), generator=g).float(), boxes], 1)
        out.append((images, targets))
    return out


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, foreach=False)


def test_engine_step_equals_the_reference_step_in_float32_without_accumulation_or_ema():
    torch.manual_seed(0)
    ref = build_model("yolov9-nano", num_classes=NC).train()  # with PGI: main + auxiliary loss
    eng, init = copy.deepcopy(ref), copy.deepcopy(ref)
    ref_opt, eng_opt = sgd(ref), sgd(eng)
    ref_loss, eng_loss = DetectionLoss(ref), DetectionLoss(eng)
    state = State(model=eng, net=eng, optimizer=eng_opt,
                  scaler=torch.amp.GradScaler("cpu", enabled=False), ema=None)
    sums = torch.zeros(3)
    for images, targets in batches():
        loss, _ = reference_step(ref, ref_opt, ref_loss, images, targets)
        ok, eng_step_loss, _ = train_step(state, images, targets, eng_loss, DistInfo(), None, sums,
                                          step_due=True)
        assert ok and torch.equal(loss, eng_step_loss.detach())
    for (name, a), b in zip(ref.state_dict().items(), eng.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, b) for a, b in zip(ref.parameters(), init.parameters()))


def test_paired_train_steps_is_the_reference_step_in_a_loop():
    torch.manual_seed(1)
    a = build_model("gelan-nano", num_classes=NC).train()
    b = copy.deepcopy(a)
    data = batches()
    order = [1, 0, 1]
    train_steps(a, data, order, lr=0.01, momentum=0.9)
    opt = torch.optim.SGD(b.parameters(), lr=0.01, momentum=0.9, nesterov=True)  # as train_steps
    loss_fn = DetectionLoss(b)
    for i in order:
        reference_step(b, opt, loss_fn, *data[i])
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.fixture
def one_rank_group(tmp_path, monkeypatch):
    """A gloo process group of world size 1 in this process (DDP without a second process)."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}",
                                         rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("ddp", [False, True])
def test_engine_accumulates_as_the_reference_pieces(ddp, request):
    """Accumulation 2: the engine's two batches (the first without a step) equal the reference
    step's pieces written out by hand: forward_loss + backward twice, then clip, step, zero.
    Under DDP (one rank: the all-reduce averages over one) the first batch runs in ``no_sync``
    and the second all-reduces, as :func:`engine.gradient_sync` promises."""
    torch.manual_seed(2)
    ref = build_model("gelan-nano", num_classes=NC).train()
    eng = copy.deepcopy(ref)
    ref_opt, eng_opt = sgd(ref), sgd(eng)
    ref_loss, eng_loss = DetectionLoss(ref), DetectionLoss(eng)
    net, synced = eng, []
    if ddp:
        request.getfixturevalue("one_rank_group")
        net = torch.nn.parallel.DistributedDataParallel(eng)
        eng.register_forward_pre_hook(lambda *_: synced.append(net.require_backward_grad_sync))
    state = State(model=eng, net=net, optimizer=eng_opt,
                  scaler=torch.amp.GradScaler("cpu", enabled=False), ema=None)
    data = batches(4)
    for i, (images, targets) in enumerate(data):
        ok, _, _ = train_step(state, images, targets, eng_loss, DistInfo(), None, torch.zeros(3),
                              step_due=i % 2 == 1)
        assert ok
        loss, _ = forward_loss(ref, ref_loss, images, targets)
        loss.backward()
        if i % 2 == 1:
            clip_gradients(ref.parameters())
            ref_opt.step()
            ref_opt.zero_grad(set_to_none=True)
    for (name, a), b in zip(ref.state_dict().items(), eng.state_dict().values()):
        assert torch.equal(a, b), name
    assert synced == ([False, True, False, True] if ddp else [])

