"""The metrics table (yolov9lite/evaluation/table.py): ``Class Images Instances P R mAP50
mAP50-95`` with an ``all`` row and per-class rows, P and R at the confidence of maximal mean F1,
the same numbers in ``metrics.json`` and ``per_class.csv``; through ``yolov9lite val`` and
``yolov9lite train`` (the console entry point)."""
from __future__ import annotations

import csv
import json

import pytest

from yolov9lite.cli import main as cli
from yolov9lite.data import make_synthetic
from yolov9lite.evaluation.coco_eval import coco_metrics

pytestmark = pytest.mark.usefixtures("one_thread")
HEADER = ["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]


def _gt():
    images = [{"id": i, "width": 100, "height": 100} for i in range(4)]
    anns = [{"id": k + 1, "image_id": k % 4, "category_id": 1 + k % 2, "bbox": [10, 10, 30, 30],
             "area": 900, "iscrowd": 0} for k in range(8)]
    anns = [a | {"bbox": [10 + 40 * (a["id"] > 4), 10, 30, 30]} for a in anns]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def test_precision_recall_at_best_f1_by_hand():
    """Class 1: 4 boxes, 2 found (scores 0.9, 0.8), 2 false positives at 0.7, 0.6; class 2:
    4 boxes, all found at 0.5. Mean F1 is highest (and flat) for confidences up to 0.5: class 1
    then has R 0.5 and, on COCO's precision envelope, P 1.0 (its hits outrank its misses);
    class 2 has P = R = 1. Ties go to the lowest confidence, as in the official argmax."""
    gt = _gt()
    anns = gt["annotations"]
    dets = []
    ones = [a for a in anns if a["category_id"] == 1]
    for a, s in zip(ones[:2], (0.9, 0.8)):
        dets.append({"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": s})
    for img, s in ((1, 0.7), (3, 0.6)):  # class-1 boxes where only class 2 is
        dets.append({"image_id": img, "category_id": 1, "bbox": [60, 60, 30, 30], "score": s})
    for a in [a for a in anns if a["category_id"] == 2]:
        dets.append({"image_id": a["image_id"], "category_id": 2, "bbox": a["bbox"], "score": 0.5})
    m = coco_metrics(gt, dets)
    # class 1 reaches recall 0.5 with precision 1 (the envelope: the two hits come first)
    assert m["per_class_R"] == {1: 0.5, 2: 1.0}
    assert m["per_class_P"] == {1: 1.0, 2: 1.0}
    assert 0 <= m["conf_best_f1"] <= 0.5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=16, num_val=4, imgsz=64,
                          seed=5)


def _table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line.split() == HEADER)
    rows = []
    for line in lines[start + 1:]:
        parts = line.split()
        if len(parts) != 7:
            break
        rows.append(parts)
    return rows


def test_train_and_val_print_the_table(tmp_path, data, capsys):
    argv = ["train", "--data", str(data), "--img", "64", "--epochs", "2", "--batch", "16",
            "--max-batches", "1", "--workers", "0", "--device", "cpu", "--project",
            str(tmp_path), "--no-tensorboard", "--no-plots", "--close-mosaic", "0"]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert sum(line.split() == HEADER for line in out.splitlines()) == 2  # each validation
    final = _table(out)
    assert final[0][0] == "all" and len(final) > 1  # the per-class rows at the end
    run = tmp_path / "exp"
    summary = json.loads((run / "metrics.json").read_text())
    with open(run / "per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert [r["class"] for r in per_class] == [r[0] for r in final[1:]]
    assert int(final[0][2]) == sum(int(r["instances"]) for r in per_class)
    assert f"{summary['all']['AP50']:.3f}" == final[0][5]
    for printed, row in zip(final[1:], per_class):
        assert printed[1:] == [row["images"], row["instances"]] + [
            f"{float(row[k]):.3f}" for k in ("P", "R", "AP50", "AP")]

    assert cli(["val", "--weights", str(run / "weights" / "last.pt"), "--data", str(data),
                "--img", "64", "--device", "cpu", "--workers", "0", "--project",
                str(tmp_path / "val"), "--no-plots"]) == 0
    val_rows = _table(capsys.readouterr().out)
    assert val_rows[0][0] == "all" and [r[0] for r in val_rows[1:]] == [r[0] for r in final[1:]]
    val_summary = json.loads((tmp_path / "val" / "exp" / "metrics.json").read_text())
    assert set(val_summary["all"]) == {"class", "images", "instances", "P", "R", "AP50", "AP"}
