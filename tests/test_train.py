"""Training (yolov9lite/training/trainer.py, engine.py, config.py, optim.py): recipe pieces, config and
command line, exact resume (also of older checkpoints), DDP, NaN guard and bad input. Convergence on CPU is checked by notebook 06 (a bar sized from its spread over seeds and CPUs).

All runs here are tiny (64-96 px, a few batches) on a small synthetic set, so that the file
takes well under a minute on 2 cores.
"""
from __future__ import annotations

import math
import os
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import yolov9lite.cli.train as train_cli
import yolov9lite.training.trainer as T
from yolov9lite import build_model
from yolov9lite.data import make_synthetic
from yolov9lite.training.config import TrainConfig, TrainError
from yolov9lite.training.engine import NonFiniteLossError
from yolov9lite.training.optim import (
    ModelEMA,
    build_optimizer,
    lr_factor,
    param_groups,
    scaled_weight_decay,
    schedule,
    warmup_iters,
)
from yolov9lite.weights.checkpoint import load_model

TINY = {"model": "gelan-nano", "imgsz": 64, "workers": 0, "tensorboard": False,
        "plots": False, "verbose": False, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    """32 train + 8 val synthetic images at 96 px: scanning and evaluation take a second."""
    root = tmp_path_factory.mktemp("synthetic")
    return str(make_synthetic(root, num_train=32, num_val=8, imgsz=96, seed=1))


# --------------------------------------------------------------------------- recipe pieces
def test_param_groups_order_and_decay():
    model = build_model("yolov9-nano", 3)
    biases, decay, bn = param_groups(model)
    assert all(p.ndim == 1 for p in biases) and all(p.ndim == 4 for p in decay)
    assert all(p.ndim == 1 for p in bn)
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(biases) + len(decay) + len(bn) == n_trainable
    opt = build_optimizer(model, 0.01, 0.937, scaled_weight_decay(5e-4, 16))
    assert [g["name"] for g in opt.param_groups] == ["bias", "weight_decay", "bn_weight"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 5e-4 * 16 * 4 / 64, 0.0]
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.937
    assert scaled_weight_decay(5e-4, 24) == pytest.approx(5e-4 * 24 * 3 / 64)  # round(64/24)=3


def test_schedule_warmup_and_decay():
    kw = {"epochs": 10, "nw": 100, "batches_per_epoch": 50, "batch_size": 16}
    s0 = schedule(0, 0, **kw)
    assert s0["lr"] == [0.1, 0.0, 0.0] and s0["momentum"] == 0.8 and s0["accumulate"] == 1
    s_end = schedule(100, 0, **kw)  # end of warm-up: everything at lr0 * lf(0)
    assert s_end["lr"] == pytest.approx([0.01] * 3) and s_end["momentum"] == pytest.approx(0.937)
    assert s_end["accumulate"] == 4
    mid = schedule(50, 0, **kw)
    assert mid["lr"][0] == pytest.approx(0.055) and mid["lr"][1] == pytest.approx(0.005)
    assert mid["accumulate"] == round(1 + 0.5 * 3)
    after = schedule(260, 5, **kw)  # official: one epoch behind after warm-up, lf(5 - 1)
    assert after["lr"] == pytest.approx([0.01 * ((1 - 0.4) * 0.99 + 0.01)] * 3)
    in_warmup_epoch = schedule(120, 2, **kw)  # warm-up ended in this epoch: its target, lf(2)
    assert in_warmup_epoch["lr"] == pytest.approx([0.01 * ((1 - 0.2) * 0.99 + 0.01)] * 3)
    assert lr_factor(10, 10) == pytest.approx(0.01) and lr_factor(10, 10, cos_lr=True) == pytest.approx(0.01)
    assert lr_factor(5, 10, cos_lr=True) == pytest.approx(0.505)
    assert warmup_iters(10, 3) == 100 and warmup_iters(1000, 3) == 3000 and warmup_iters(10, 0) == 0


def test_ema_decay_ramp_and_update():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEMA(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.current_decay() == pytest.approx(d)
    expected = d * (model[0].weight - 1) + (1 - d) * model[0].weight
    assert torch.allclose(ema.module[0].weight, expected)
    assert not any(p.requires_grad for p in ema.module.parameters())


# --------------------------------------------------------------------------- end-to-end
def test_short_run_outputs(data_yaml, tmp_path):
    """A 2-epoch run writes last/best, the CSV, the plots; history has the metrics; best.pt loads
    as a model with weights_only=True; callbacks fire once per epoch; the config is saved in
    the checkpoint and as args.yaml / hyp.yaml. train() takes a TrainConfig here (keywords
    elsewhere)."""
    seen = []
    config = TrainConfig(data=data_yaml, epochs=2, batch_size=8, max_batches=2, close_mosaic=1,
                         project=tmp_path, name="run", **{**TINY, "plots": True})
    h = T.train(config, callbacks={"on_epoch_end": lambda hist: seen.append(len(hist))})
    assert seen == [1, 2] and len(h) == 2
    assert {"train/box", "train/cls", "train/dfl", "lr/bias", "metrics/AP50", "fitness"} <= set(h[-1])
    assert h[0]["mosaic"] == 1 and h[1]["mosaic"] == 0  # close_mosaic=1: last epoch without
    # workers=0: the loop builds every batch itself, so its wait for data is part of the epoch
    assert all(0 < r["data_wait_s"] < r["epoch_time_s"] for r in h)
    for f in ("weights/last.pt", "weights/best.pt", "results.csv", "results.png", "args.yaml",
              "hyp.yaml", "labels.jpg", "train_batch0.jpg", "PR_curve.png", "F1_curve.png",
              "confusion_matrix.png"):  # the plots: plots.save_run_plots, final validation's
        assert (h.save_dir / f).is_file(), f
    ckpt = torch.load(h.last, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["train_config"]["epochs"] == 2
    saved = TrainConfig.from_dict(ckpt["train_config"])
    assert saved.schedule.lr0 == 0.01 and saved.close_mosaic == 1 and saved.to_dict() == ckpt["train_config"]
    import yaml
    assert yaml.safe_load((h.save_dir / "args.yaml").read_text()) == ckpt["train_config"]
    hyp = yaml.safe_load((h.save_dir / "hyp.yaml").read_text())
    assert hyp["lr0"] == 0.01 and hyp["mosaic"] == 1.0 and hyp["weight_decay"] == 5e-4
    from yolov9lite.weights.checkpoint import load_model
    model = load_model(h.best)
    assert model(torch.zeros(1, 3, 64, 64)).shape[1] == 4 + model.nc


class _Stop(Exception):
    pass


def _stop_after(n):
    def callback(history):
        if len(history) == n:
            raise _Stop  # a "kill" right after the epoch's checkpoint was written
    return {"on_epoch_end": callback}


def test_resume_is_exact(data_yaml, tmp_path):
    """3 epochs straight == 1 epoch, killed, resumed for 2 more: same weights, EMA, optimizer
    state, bit for bit (CPU, deterministic, workers=0). With 3 batches per epoch and 2 batches
    per step (batch 4, nominal 8, no warm-up), the first epoch ends with a gradient accumulated
    but not applied; the next epoch drops it (official loop), in both runs; mosaic closes in the
    last epoch."""
    kw = {"data": data_yaml, "epochs": 3, "batch_size": 4, "max_batches": 3,
          "nominal_batch": 8, "warmup_epochs": 0, "close_mosaic": 1, "val_interval": 0,
          "deterministic": True, "project": tmp_path, **TINY}
    straight = T.train(name="straight", **kw)
    with pytest.raises(_Stop):
        T.train(name="killed", callbacks=_stop_after(1), **kw)
    last = tmp_path / "killed" / "weights" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["train_state"]["pending_grads"] is not None
    # resume what an older version wrote: a flat config dict (schedule keys at the top level)
    # and the schedule settings repeated in train_state["scheduler"]
    nested = ckpt["train_config"]
    ckpt["train_config"] = {**{k: v for k, v in nested.items() if k != "schedule"},
                            **nested["schedule"]}
    ckpt["train_state"]["scheduler"] = dict(nested["schedule"], epochs=nested["epochs"])
    torch.save(ckpt, last)
    resumed = T.train(resume=last, **TINY)
    assert resumed.save_dir == tmp_path / "killed" and len(resumed) == 3

    a = torch.load(straight.last, weights_only=True)
    b = torch.load(resumed.last, weights_only=True)
    for key in ("state_dict",):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    ta, tb = a["train_state"], b["train_state"]
    assert all(torch.equal(ta["model"][k], tb["model"][k]) for k in ta["model"])
    for sa, sb in zip(ta["optimizer"]["state"].values(), tb["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert ta["ema"]["updates"] == tb["ema"]["updates"] > 0
    assert [r["train/loss"] for r in straight] == [r["train/loss"] for r in resumed]


def test_baseline_model_trains_saves_and_resumes(data_yaml, tmp_path):
    """Table 6's yolov7-af (no ModelConfig) through the whole loop: checkpoint, resume, load."""
    kw = {"data": data_yaml, "epochs": 2, "batch_size": 2, "max_batches": 1,
          "warmup_epochs": 0, "val_interval": 0, "project": tmp_path,
          **TINY, "model": "yolov7-af"}
    with pytest.raises(_Stop):
        T.train(name="y7", callbacks=_stop_after(1), **kw)
    machine = {k: v for k, v in TINY.items() if k != "model"}
    resumed = T.train(resume=tmp_path / "y7" / "weights" / "last.pt", **machine)
    assert len(resumed) == 2 and all(np.isfinite(r["train/loss"]) for r in resumed)
    model = load_model(resumed.last)
    assert model.name == "yolov7-af" and model.nc == 6


def test_batches_and_resume_do_not_depend_on_workers(data_yaml, tmp_path):
    """The data of an epoch is a function of (seed, epoch, index) (`data.EpochSampler`): 3 epochs
    with 2 persistent worker processes == 1 epoch in this process, killed, resumed with 1
    worker: the same losses and weights, bit for bit (CPU, deterministic)."""
    kw = {"data": data_yaml, "epochs": 3, "batch_size": 4, "max_batches": 3,
          "warmup_epochs": 0, "close_mosaic": 1, "val_interval": 0, "deterministic": True,
          "project": tmp_path, **TINY}
    straight = T.train(name="two_workers", **{**kw, "workers": 2})
    with pytest.raises(_Stop):
        T.train(name="killed", callbacks=_stop_after(1), **kw)
    resumed = T.train(resume=tmp_path / "killed" / "weights" / "last.pt", **{**TINY, "workers": 1})
    assert [r["train/loss"] for r in straight] == [r["train/loss"] for r in resumed]
    a = torch.load(straight.last, weights_only=True)["state_dict"]
    b = torch.load(resumed.last, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, data_yaml, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    h = T.train(data=data_yaml, epochs=1, batch_size=8, max_batches=3, nominal_batch=8,
                close_mosaic=0, project=out_dir, name="ddp", **TINY)
    # parameters only: BatchNorm running statistics are broadcast from rank 0 at the start of
    # every forward (DDP broadcast_buffers), so after the last forward each rank has its own
    torch.save({k: v.detach().clone() for k, v in h.model.named_parameters()},
               os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_two_cpu_processes_stay_in_sync(data_yaml, tmp_path):
    """torchrun-style environment, gloo on the loopback: after a few steps both ranks hold
    identical weights (and they did change)."""
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, data_yaml, str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    torch.manual_seed(0)  # train() seeds the model init with seed=0 on every rank
    init = dict(build_model("gelan-nano", 6).named_parameters())
    assert any(not torch.equal(w0[k], init[k]) for k in w0)
    assert (tmp_path / "ddp" / "weights" / "last.pt").is_file()  # rank 0 wrote it
    assert not (tmp_path / "ddp2").exists()  # and only rank 0 made a run folder


# --------------------------------------------------------------------------- NaN guard
@pytest.fixture
def nan_loss(monkeypatch):
    """Replace the loss of the trainer by the real one whose value is NaN on the listed calls."""
    def install(bad_calls):
        real_cls, calls = T.DetectionLoss, []

        def factory(model, **kw):
            real = real_cls(model, **kw)

            def loss_fn(preds, targets):
                loss, items = real(preds, targets)
                calls.append(1)
                if bad_calls == "all" or len(calls) in bad_calls:
                    loss = loss * float("nan")
                return loss, items
            return loss_fn
        monkeypatch.setattr(T, "DetectionLoss", factory)
    return install


def test_nonfinite_loss_skips_batch(data_yaml, tmp_path, nan_loss):
    nan_loss({2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = T.train(data=data_yaml, epochs=1, batch_size=4, max_batches=3, close_mosaic=0,
                    project=tmp_path, name="nan1", **TINY)
    msgs = [str(w.message) for w in caught if "non-finite loss" in str(w.message)]
    assert len(msgs) == 1 and "epoch 1, batch 1" in msgs[0]
    assert math.isfinite(h[0]["train/loss"])
    assert all(torch.isfinite(p).all() for p in h.model.parameters())


def test_repeated_nonfinite_stops_with_message(data_yaml, tmp_path, nan_loss):
    nan_loss("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
            T.train(data=data_yaml, epochs=2, batch_size=4, max_batches=3, close_mosaic=0,
                    max_nonfinite=3, project=tmp_path, name="nan2", **TINY)


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_fail_at_start_with_named_problem(data_yaml, tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("path: /nonexistent/dir\ntrain: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(TrainError, match="'train' path not found"):
        T.train(data=str(bad_yaml), project=tmp_path, **TINY)
    with pytest.raises(TrainError, match=r"batch size 64 is larger than the training set \(32"):
        T.train(data=data_yaml, batch_size=64, project=tmp_path, **TINY)
    with pytest.raises(TrainError, match="unknown model 'yolov9-xxl'"):
        T.train(data=data_yaml, **{**TINY, "model": "yolov9-xxl"}, project=tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(TrainError, match="cannot read resume checkpoint .*junk.pt"):
        T.train(resume=junk, **TINY)
    with pytest.raises(TrainError, match="does not exist"):
        T.train(resume=tmp_path / "missing.pt", **TINY)
    assert not list(tmp_path.glob("exp*"))  # nothing was started

    # the CLI prints one line naming the problem and exits with status 2, no traceback
    assert train_cli.main(["--data", str(bad_yaml), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolov9lite train: error:") and "not found" in err
    assert "Traceback" not in err


def test_cli_help(capsys):
    from yolov9lite.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--data", "--epochs", "--batch", "--amp", "--resume", "--sync-bn",
                 "--close-mosaic", "--cos-lr", "--max-batches"):
        assert flag in out


def test_cli_passes_ablation_knobs_as_model_kwargs(monkeypatch):
    """`yolov9lite train --pgi ds --depth-csp 2` reaches train() as model_kwargs (unset knobs are
    left to the preset), and the knobs build the intended model."""
    seen = []
    monkeypatch.setattr(train_cli, "train", lambda config: seen.append(config))
    assert train_cli.main(["--model", "gelan-nano", "--pgi", "ds", "--depth-csp", "2"]) == 0
    assert seen[-1].model_kwargs == {"pgi": "ds", "depth_csp": 2}
    assert train_cli.main(["--model", "gelan-nano"]) == 0 and seen[-1].model_kwargs is None
    model = build_model("gelan-nano", 3, pgi="ds", depth_csp=2)
    assert model.has_aux and model.cfg.depth_csp == 2


def test_cli_passes_the_neck_pgi_knob(monkeypatch, capsys):
    """`--pgi-neck icn` (Table 4's G_neck column) reaches train() as model_kwargs and round-trips
    through config_to_args; its choices are the models' PGI_NECK_VARIANTS."""
    from yolov9lite.cli.train import config_to_args
    from yolov9lite.nn.pgi import PGI_NECK_VARIANTS

    seen = []
    monkeypatch.setattr(train_cli, "train", lambda config: seen.append(config))
    assert train_cli.main(["--model", "gelan-nano", "--pgi", "fpn", "--pgi-neck", "icn"]) == 0
    assert seen[-1].model_kwargs == {"pgi": "fpn", "pgi_neck": "icn"}
    assert train_cli.config_from_args(config_to_args(seen[-1])) == seen[-1]
    with pytest.raises(SystemExit) as exit_info:  # argparse: a usage line and exit code 2
        train_cli.main(["--pgi-neck", "bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--pgi-neck" in err and all(repr(v) in err for v in PGI_NECK_VARIANTS)


def test_cli_is_generated_from_the_config(tmp_path, monkeypatch, capsys):
    """Every TrainConfig field has a flag; old and official names both work; defaults are the
    config's; a flag beats the --hyp file, which beats the defaults."""
    assert train_cli.config_from_args([]) == TrainConfig()
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text("lr0: 0.5\nlrf: 0.2\nmosaic: 0.5\nbox: 5.0\nobj: 0.7\n")  # obj: official, unused
    cfg = train_cli.config_from_args(["--batch-size", "8", "--img-size", "96", "--lr0", "0.02", "--no-ema",
                              "--cos-lr", "--hyp", str(hyp), "--quiet", "--no-plots"])
    assert (cfg.batch_size, cfg.imgsz, cfg.ema, cfg.verbose, cfg.plots) == (8, 96, False, False, False)
    assert (cfg.schedule.lr0, cfg.schedule.lrf, cfg.schedule.cos_lr) == (0.02, 0.2, True)
    assert cfg.hyp == {"mosaic": 0.5, "box": 5.0, "obj": 0.7}
    assert train_cli.config_from_args(["--batch", "4", "--img", "64"]).imgsz == 64
    from yolov9lite.cli.train import config_to_args  # the inverse, e.g. to launch under torchrun
    cfg = TrainConfig.from_options(epochs=3, cos_lr=True, ema=False, channels_last=True,
                                   model_kwargs={"pgi": "ds"}, resume=True, max_batches=2)
    assert train_cli.config_from_args(config_to_args(cfg)) == cfg
    train_cli.build_parser().print_help()
    out = capsys.readouterr().out
    assert "--lr0 LR0" in out and "(default: 0.01)" in out and "--batch-size" in out

    hyp.write_text("mosiac: 0.5\n")
    monkeypatch.setattr(train_cli, "train", lambda config: pytest.fail("must not train"))
    assert train_cli.main(["--hyp", str(hyp)]) == 2
    err = capsys.readouterr().err
    assert "yolov9lite train: error:" in err and "'mosiac'" in err and "mosaic" in err


def test_config_rejects_unknown_keys_and_accepts_both_forms():
    with pytest.raises(TrainError, match=r"unknown hyperparameter\(s\) \['mosiac'\].*mosaic"):
        T.train(hyp={"mosiac": 1.0})
    with pytest.raises(TrainError, match="unknown training option.*'epoch'"):
        T.train(epoch=3)
    cfg = TrainConfig.from_options(epochs=3, lr0=0.02, hyp={"lr0": 0.5, "mixup": 0.0})
    assert cfg.schedule.lr0 == 0.02 and cfg.hyp == {"mixup": 0.0}  # the keyword wins
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TrainError, match="schedule keys belong"):
        TrainConfig(hyp={"lr0": 0.1})
