"""Outputs that tell the truth: the confusion matrix draws every class present, ``labels.jpg``
shows the training labels with names and the number of classes present, a run whose
close-mosaic covers every epoch says so, and an exported ONNX file carries the metadata a
runtime needs (names, stride, input size, task, model, version)."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

from yolov9lite import build_model
from yolov9lite.cli import main as cli
from yolov9lite.data import make_synthetic
from yolov9lite.report.plots import plot_confusion_matrix, plot_labels
from yolov9lite.weights.checkpoint import save_checkpoint

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_confusion_matrix_draws_every_class_present():
    k = 80
    rng = np.random.default_rng(0)
    present = sorted(rng.choice(k, 73, replace=False).tolist())
    matrix = np.zeros((k + 1, k + 1))
    for i in present:
        matrix[i, i] = 1 + i % 5  # a few instances each, some far fewer than others
    names = [f"c{i}" for i in range(k)]
    fig = plot_confusion_matrix(matrix, names)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [names[i] for i in present] + ["background"]
    assert "the 73 of 80 classes present" in fig.axes[0].get_title()


def test_labels_plot_counts_the_classes_present():
    fig = plot_labels(np.array([0, 0, 2]), np.full((3, 4), 0.3), ["a", "b", "c", "d"])
    assert fig.axes[0].get_title() == "3 boxes, 2 of 4 classes present"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c", "d"]


def test_short_run_says_mosaic_is_off_and_plots_training_labels(tmp_path, capsys):
    data = make_synthetic(tmp_path / "syn", num_train=16, num_val=4, imgsz=64, seed=4)
    assert cli(["train", "--data", str(data), "--img", "64", "--epochs", "2", "--batch", "16",
                "--max-batches", "1", "--workers", "0", "--device", "cpu", "--project",
                str(tmp_path / "runs"), "--no-tensorboard", "--warmup-epochs", "0"]) == 0
    out = capsys.readouterr().out
    assert "close-mosaic 15 >= 2 epochs: mosaic is off for the whole run" in out
    assert (tmp_path / "runs" / "exp" / "labels.jpg").stat().st_size > 0


def test_onnx_export_carries_metadata(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    torch.manual_seed(0)
    weights = save_checkpoint(tmp_path / "nano.pt", build_model("gelan-nano", 3),
                              names=["cat", "dog", "bird"])
    assert cli(["export", "--weights", str(weights), "--format", "onnx", "--img", "64",
                "--project", str(tmp_path), "--name", "run", "--no-check"]) == 0
    path = tmp_path / "run" / "nano.onnx"
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]
                                ).get_modelmeta().custom_metadata_map
    assert json.loads(meta["names"]) == {"0": "cat", "1": "dog", "2": "bird"}
    assert (meta["stride"], meta["task"], meta["model"], meta["batch"]) == (
        "32", "detect", "gelan-nano", "1")
    assert json.loads(meta["imgsz"]) == [64, 64] and meta["version"]
