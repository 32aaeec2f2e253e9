"""Fine-tuning (yolov9lite/training/finetune.py): ``yolovlite train --weights W --freeze N`` from our
checkpoints and official-layout ones onto a dataset with another class count, through the
console entry point.

Every run is one batch of one epoch at 64 px on a tiny synthetic set (seconds). What is
checked is the mechanism, exactly: which tensors are copied, which start afresh, which stay
frozen through a training step, which model is built, and the one-line refusals.
"""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from fixtures_official import write_official_checkpoint

from yolov9lite import build_model
from yolov9lite.cli import main as cli
from yolov9lite.data import make_synthetic
from yolov9lite.training.config import TrainConfig, TrainError
from yolov9lite.training.finetune import freeze_layers, transfer_weights
from yolov9lite.weights.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
GROUPS = ["round", "boxy", "pointed"]  # the six synthetic shapes, two by two


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """The synthetic shapes relabelled into 3 classes (pairs of shapes): another class set."""
    root = tmp_path_factory.mktemp("three")
    data = make_synthetic(root, num_train=16, num_val=4, imgsz=64, seed=3)
    for split in ("train", "val"):
        path = root / "annotations" / f"instances_{split}.json"
        coco = json.loads(path.read_text())
        coco["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(GROUPS)]
        for ann in coco["annotations"]:
            ann["category_id"] = (ann["category_id"] - 1) // 2 + 1
        path.write_text(json.dumps(coco))
    cfg = yaml.safe_load(data.read_text())
    cfg.update(names=dict(enumerate(GROUPS)), category_ids=[1, 2, 3])
    data.write_text(yaml.safe_dump(cfg))
    return data


def _train(tmp_path, data, *extra) -> list[str]:
    return ["train", "--data", str(data), "--img", "64", "--epochs", "1", "--batch", "16",
            "--max-batches", "1", "--workers", "0", "--device", "cpu", "--project",
            str(tmp_path / "runs"), "--no-tensorboard", "--no-plots", "--warmup-epochs", "0", "--nominal-batch", "16",
            *extra]


def _source(nc: int = 6, name: str = "gelan-nano", seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name, nc)
    for p in model.parameters():  # distinct from any fresh initialisation
        p.data.add_(torch.randn_like(p) * 0.01)
    return model


def test_finetune_our_checkpoint_onto_other_classes_with_freeze(tmp_path, three_classes, capsys):
    source = _source()
    path = save_checkpoint(tmp_path / "six.pt", source, names=[str(i) for i in range(6)])
    assert cli(_train(tmp_path, three_classes, "--weights", str(path), "--freeze", "3")) == 0
    out = capsys.readouterr().out
    # gelan-nano's head: only the last conv of each cv3 branch depends on nc (its width is
    # max(ch, min(nc, 100)) = ch for both 6 and 3 classes): weight + bias at 3 levels
    assert "(gelan-nano, 6 classes -> 3): 829/835 tensors transferred, 6 initialised afresh" in out
    assert "freeze 3:" in out
    ckpt = load_checkpoint(tmp_path / "runs" / "exp" / "weights" / "last.pt")
    assert ckpt["nc"] == 3 and ckpt["names"] == GROUPS
    assert ckpt["train_config"]["weights"] == str(path) and ckpt["train_config"]["freeze"] == 3
    # the training weights (the checkpoint's model is the EMA, which recomputes even frozen
    # tensors as d * v + (1 - d) * v in the official arithmetic, so its last bit may move)
    trained, before = ckpt["train_state"]["model"], source.state_dict()
    # layers 0-2 (conv0, conv1, stem) are frozen: bit-identical after the training step
    for key in [k for k in trained if k.startswith(("backbone.conv0.", "backbone.conv1.",
                                                    "backbone.stem."))
                and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]:
        assert torch.equal(trained[key], before[key]), key
    # a transferred, trainable layer moved away from the source by the step, but only a little
    key = "neck.p5.cv4.conv.weight"
    assert not torch.equal(trained[key], before[key])
    assert (trained[key] - before[key]).abs().max() < 0.05
    assert trained["head.cv3.0.2.weight"].shape[0] == 3


def test_finetune_official_checkpoint_builds_the_model_it_holds(tmp_path, three_classes, capsys):
    path = write_official_checkpoint(tmp_path / "official.pt", _source(6, "yolov9-nano"),
                                     names={i: f"c{i}" for i in range(6)})
    assert cli(_train(tmp_path, three_classes, "--weights", str(path))) == 0  # no --model
    out = capsys.readouterr().out
    assert "(yolov9-nano, 6 classes -> 3)" in out and "head.aux.cv3.0" in out
    ckpt = load_checkpoint(tmp_path / "runs" / "exp" / "weights" / "last.pt")
    assert ckpt["model_name"] == "yolov9-nano" and ckpt["train_config"]["model"] == "yolov9-nano"


def test_yolov9_weights_give_their_main_head_to_gelan():
    source, target = _source(6, "yolov9-nano"), build_model("gelan-nano", 6)
    moved = transfer_weights(target, source)
    assert moved["reinitialised"] == 0
    assert torch.equal(target.state_dict()["head.cv2.0.0.conv.weight"],
                       source.state_dict()["head.main.cv2.0.0.conv.weight"])


def test_freeze_counts_official_layers():
    # official yolov9-c.yaml: layer 0 is Silence, the backbone is layers 1-9 (freeze 10);
    # gelan-c.yaml has no Silence: backbone 0-8 (freeze 9)
    for name, n in (("yolov9-c", 10), ("gelan-c", 9)):
        with torch.device("meta"):
            model = build_model(name, 80)
        frozen = set(freeze_layers(model, n))
        backbone = {k for k, _ in model.named_parameters() if k.startswith("backbone.")}
        assert frozen == backbone, name
        assert all(p.requires_grad == (k not in frozen) for k, p in model.named_parameters()
                   if not k.endswith("dfl.conv.weight"))


def test_bad_weights_are_one_line(tmp_path, three_classes):
    other = save_checkpoint(tmp_path / "t.pt", build_model("gelan-t", 6))
    cases = [(["--weights", str(tmp_path / "missing.pt")], "no such file"),
             (["--weights", str(other), "--model", "gelan-nano"], "pass the matching --model"),
             (["--freeze", "-1"], "--freeze -1: must be an integer >= 0"),
             (["--freeze", "2", "--pgi", "ds"], "no official layer numbering")]
    for extra, message in cases:
        argv = _train(tmp_path, three_classes, *extra)
        code, err = _run(argv)
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)


def _run(argv):
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def test_config_and_api_take_weights_and_freeze():
    cfg = TrainConfig(weights="w.pt", freeze=10)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TrainError, match="--freeze"):
        TrainConfig(freeze=-2)


class _Stop(Exception):
    pass


def _stop_after_first_epoch(history):
    if len(history) == 1:
        raise _Stop  # a "kill" right after the first epoch's checkpoint was written


def test_finetune_with_freeze_resumes_exactly(tmp_path, three_classes):
    """2 epochs straight == 1 epoch, killed, resumed (the weights file is gone by then: a resume
    reads only its last.pt): same weights bit for bit, frozen layers untouched."""
    from yolov9lite.training.trainer import train

    path = save_checkpoint(tmp_path / "six.pt", _source(), names=[str(i) for i in range(6)])
    kw = {"data": str(three_classes), "weights": str(path), "freeze": 3, "epochs": 2,
          "batch_size": 8, "nominal_batch": 8, "max_batches": 1, "imgsz": 64, "workers": 0,
          "warmup_epochs": 0, "close_mosaic": 1, "val_interval": 0, "deterministic": True,
          "device": "cpu", "tensorboard": False, "plots": False, "verbose": False,
          "project": str(tmp_path)}
    straight = train(name="straight", **kw)
    with pytest.raises(_Stop):
        train(name="killed", callbacks={"on_epoch_end": _stop_after_first_epoch}, **kw)
    path.unlink()
    resumed = train(resume=tmp_path / "killed" / "weights" / "last.pt", device="cpu",
                    verbose=False)
    a = load_checkpoint(straight.last)["state_dict"]
    b = load_checkpoint(resumed.last)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = load_checkpoint(resumed.last)["train_state"]["model"]  # not the EMA (see above)
    assert torch.equal(weights["backbone.conv0.conv.weight"],
                       _source().state_dict()["backbone.conv0.conv.weight"])
