"""``yolov9lite val``: its run folder, its table, one line for every bad input; and the plots.

The dataset is a tiny YOLO-text set written here (6 images, classes a and b; class c has no
boxes), the model an untrained gelan-nano at 64 pixels: the numbers are meaningless, the files
and messages are what is tested. The plot functions are checked on hand-made COCO data where the
answer is known.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from yolov9lite import build_model
from yolov9lite.cli.val import main as val_main
from yolov9lite.report.plots import confusion_matrix, curves, match_detections, save_run_plots
from yolov9lite.weights.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    for sub in ("images/val", "labels/val"):
        (root / "ds" / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(6):
        img = np.full((96, 128, 3), 40, np.uint8)
        lines = []
        for c in (0, 1):
            x1, y1 = int(rng.integers(0, 60)), int(rng.integers(0, 40))
            img[y1:y1 + 30, x1:x1 + 40] = 200 if c else 120
            lines.append(f"{c} {(x1 + 20) / 128} {(y1 + 15) / 96} {40 / 128} {30 / 96}")
        cv2.imwrite(str(root / "ds" / "images" / "val" / f"{k}.png"), img)
        (root / "ds" / "labels" / "val" / f"{k}.txt").write_text("\n".join(lines))
    yaml_path = root / "ds" / "data.yaml"
    yaml_path.write_text("path: .\ntrain: images/val\nval: images/val\nnames: [a, b, c]\n")
    torch.manual_seed(0)
    weights = save_checkpoint(root / "w.pt", build_model("gelan-nano", 3), names=["a", "b", "c"])
    five = save_checkpoint(root / "w5.pt", build_model("gelan-nano", 5))
    return root, yaml_path, weights, five


def test_val_writes_a_run_folder(dataset, tmp_path, capsys):
    _, data, weights, _ = dataset
    args = ["--weights", str(weights), "--data", str(data), "--img", "64", "--batch", "4",
            "--device", "cpu", "--workers", "0", "--project", str(tmp_path)]
    assert val_main(args) == 0
    out = capsys.readouterr()
    assert sum(line.startswith(" Average") for line in out.out.splitlines()) == 12
    assert "-1.000" not in out.out.split("mAP50-95")[1]  # no AP row for the absent class c
    assert "1 classes have no boxes in this data and no AP: c" in out.out
    assert (out.out + out.err).count("val: 6 images") == 1  # the data scan is reported once
    assert "batch/s" in out.err or "it/s" in out.err  # progress bar
    run = tmp_path / "exp"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_images"] == 6 and [r["class"] for r in metrics["per_class"]] == ["a", "b"]
    assert (run / "per_class.csv").read_text().splitlines()[0] == "class,images,instances,P,R,AP50,AP"
    for name in ("PR_curve.png", "F1_curve.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 0
    assert not (run / "predictions.json").exists()  # kept only with --save-json
    assert val_main(args + ["--save-json", "--no-plots"]) == 0
    assert (tmp_path / "exp2" / "predictions.json").is_file()
    assert not (tmp_path / "exp2" / "PR_curve.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--weights", "missing.pt"], "--weights missing.pt: no such file"),
    (["--weights", "{five}"], "predicts 5 classes but --data"),
    (["--weights", "{weights}", "--device", "banana"], "device 'banana' not understood"),
    (["--weights", "{weights}", "--data", "nope.yaml"], "nope.yaml"),
    (["--weights", "{data}"], "cannot read this file as a PyTorch checkpoint"),
])
def test_val_bad_input_is_one_line(dataset, tmp_path, capsys, extra, message):
    _, data, weights, five = dataset
    extra = [e.format(weights=weights, five=five, data=data) for e in extra]
    base = ["--data", str(data), "--img", "64", "--device", "cpu", "--project", str(tmp_path)]
    args = base + extra  # a later --data/--device overrides the base one
    assert val_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolov9lite val: error:") and message in err and "Traceback" not in err


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--img", "-64"], ["--conf", "nan"],
                                 ["--iou", "2"], ["--max-det", "0"]])
def test_val_usage_errors(dataset, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        val_main(["--weights", str(dataset[2]), *bad])
    assert exc.value.code == 2 and "yolov9lite val: error:" in capsys.readouterr().err


def test_val_console_script_one_line(dataset):
    """Through the real console entry point: exit 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "yolov9lite", "val", "--weights", "missing.pt"],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "yolov9lite val: error: --weights missing.pt: no such file"


# ------------------------------------------------------------------------------------ plots
def coco(boxes_per_image):
    """gt dict from {image_id: [(cat, x, y, w, h), ...]} (100x100 images)."""
    images = [{"id": i, "width": 100, "height": 100} for i in boxes_per_image]
    anns = [{"id": n, "image_id": i, "category_id": c, "bbox": [x, y, w, h], "iscrowd": 0}
            for n, (i, c, x, y, w, h) in enumerate(
                (i, *b) for i, bs in boxes_per_image.items() for b in bs)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def test_curves_and_confusion_matrix_on_known_data(tmp_path):
    gt = coco({1: [(1, 10, 10, 20, 20), (2, 50, 50, 30, 30)], 2: [(1, 0, 0, 40, 40)]})
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [11, 10, 20, 20], "score": 0.8},  # duplicate
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.7},  # wrong cls
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.6}]
    scores, _cats, tp, n_gt = match_detections(gt, dets)
    assert n_gt == {1: 2, 2: 1}
    assert sorted(zip(scores.tolist(), tp.tolist())) == [(0.6, True), (0.7, False),
                                                         (0.8, False), (0.9, True)]
    c = curves(gt, dets, [1, 2])
    assert c["precision"][0, 0] == 1.0 and c["precision"][0, -1] == pytest.approx(0.5)
    assert c["ap50"][1] == 0.0  # class b: never detected
    # class a at conf 0.9: P 1, R 1/2; at 0.6: P 2/4, R 1: F1 2/3 at both, less in between
    assert c["f1_conf"][0].max() == pytest.approx(2 / 3)
    assert c["f1_conf"][0, 900] == pytest.approx(2 / 3) and c["f1_conf"][0, 650] == pytest.approx(0.4)
    m = confusion_matrix(gt, dets, [1, 2])
    # rows predicted, columns true: a->a twice, b predicted as a once, one duplicate = background
    assert m.tolist() == [[2, 1, 1], [0, 0, 0], [0, 0, 0]]

    class Writer:  # records what TensorBoard's SummaryWriter.add_image would get
        def __init__(self):
            self.images = []

        def add_image(self, tag, image, step, dataformats):
            self.images.append((tag, image.shape, step, dataformats))

    batch = (torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8),
             torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3], [1, 0, 0.2, 0.3, 0.1, 0.2]]), [{}, {}])
    writer = Writer()
    files = save_run_plots(tmp_path, ["a", "b"], gt=gt, dets=dets, cat_ids=[1, 2],
                           train_loader=[batch, batch, batch, batch], tb_writer=writer, step=3,
                           history=[{"epoch": 1, "train/box": 1.0}, {"epoch": 2, "train/box": 0.8}])
    assert {f.name for f in files} >= {"labels.jpg", "PR_curve.png", "F1_curve.png",
                                       "confusion_matrix.png", "results.png", "train_batch0.jpg",
                                       "train_batch2.jpg"}
    assert not (tmp_path / "train_batch3.jpg").exists()  # a few mosaics, not every batch
    assert all(f.stat().st_size > 0 for f in files)
    assert {tag for tag, *_ in writer.images} == {f.stem for f in files}
    assert all(shape[2] == 3 and step == 3 for _, shape, step, _ in writer.images)
