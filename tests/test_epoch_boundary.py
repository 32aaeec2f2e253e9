"""Gradients accumulated but not applied by an epoch's end are dropped when the next epoch
starts, as in the official loop (``optimizer.zero_grad()`` before each epoch's batches in
``train_dual.py``); in place, so the graph step's flat-buffer views stay attached."""
import inspect

import torch

from yolov9lite import build_model
from yolov9lite.training.engine import State, discard_pending_grads, train_one_epoch
from yolov9lite.training.graphstep import attach_flat_grads
from yolov9lite.training.optim import build_optimizer


def test_pending_gradients_are_dropped_in_place():
    model = build_model("gelan-nano", 2)
    params = [p for p in model.parameters() if p.requires_grad]
    flat = attach_flat_grads(params)
    flat.fill_(1.0)
    state = State(model=model, net=model, optimizer=build_optimizer(model, fused=False),
                  scaler=torch.amp.GradScaler("cpu", enabled=False), ema=None)
    discard_pending_grads(state)
    assert flat.abs().sum() == 0
    assert all(p.grad.data_ptr() >= flat.data_ptr() for p in params)  # still views of the buffer


def test_every_epoch_starts_by_dropping_them():
    source = inspect.getsource(train_one_epoch)
    body = source.split("for i, (images", 1)[0]
    assert "discard_pending_grads(state)" in body
