"""Synthetic dataset: COCO structure, determinism, reuse, size buckets."""

import json

import numpy as np

from yolov9lite.data import SYNTHETIC_NAMES, load_data_config, make_synthetic


def test_synthetic_is_deterministic_and_coco_shaped(tmp_path):
    a = make_synthetic(tmp_path / "a", num_train=12, num_val=4, imgsz=160, seed=3)
    b = make_synthetic(tmp_path / "b", num_train=12, num_val=4, imgsz=160, seed=3)
    for split in ("train", "val"):
        files_a = sorted((a.parent / "images" / split).glob("*.jpg"))
        files_b = sorted((b.parent / "images" / split).glob("*.jpg"))
        assert [f.name for f in files_a] == [f.name for f in files_b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(files_a, files_b))
        ja = (a.parent / "annotations" / f"instances_{split}.json").read_text()
        assert ja == (b.parent / "annotations" / f"instances_{split}.json").read_text()
    coco = json.loads((a.parent / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(SYNTHETIC_NAMES) + 1))
    assert len(coco["images"]) == 12 and coco["annotations"]
    ids = {im["id"] for im in coco["images"]}
    for ann in coco["annotations"]:
        assert ann["image_id"] in ids and isinstance(ann["image_id"], int)
        assert ann["segmentation"] and all(len(p) >= 6 for p in ann["segmentation"])
        _, _, w, h = ann["bbox"]
        assert w > 0 and h > 0 and 0 < ann["area"] <= w * h
    cfg = load_data_config(a)
    assert cfg["names"] == SYNTHETIC_NAMES and cfg["nc"] == 6 and cfg["format"] == "coco"
    assert cfg["category_ids"] == [1, 2, 3, 4, 5, 6] and cfg["val_json"].endswith(".json")


def test_synthetic_seed_changes_data_and_reuse_skips_work(tmp_path):
    a = make_synthetic(tmp_path / "a", num_train=4, num_val=2, imgsz=128, seed=0)
    first = min((a.parent / "images" / "train").glob("*.jpg"))
    mtime = first.stat().st_mtime_ns
    make_synthetic(tmp_path / "a", num_train=4, num_val=2, imgsz=128, seed=0)
    assert first.stat().st_mtime_ns == mtime  # same parameters: reused, not rewritten
    make_synthetic(tmp_path / "a", num_train=4, num_val=2, imgsz=128, seed=1)
    assert first.read_bytes() != b"" and first.stat().st_mtime_ns != mtime


def test_synthetic_default_covers_coco_size_buckets(tmp_path):
    yaml_path = make_synthetic(tmp_path / "s", num_train=40, num_val=1, imgsz=320)
    coco = json.loads((yaml_path.parent / "annotations" / "instances_train.json").read_text())
    area = np.array([a["area"] for a in coco["annotations"]])
    assert (area < 32**2).any() and ((area >= 32**2) & (area < 96**2)).any()
    assert (area >= 96**2).any()


def test_synthetic_class_subset(tmp_path):
    """``classes=`` draws only those shapes, numbered 0..k-1 in the order given (two disjoint
    class sets for fine-tuning experiments); unknown or repeated names are refused."""
    import pytest

    data = make_synthetic(tmp_path / "b", num_train=6, num_val=2, imgsz=96, seed=1,
                          classes=["hexagon", "cross"])
    cfg = load_data_config(data)
    assert cfg["names"] == ["hexagon", "cross"] and cfg["nc"] == 2
    assert cfg["category_ids"] == [1, 2]
    coco = json.loads((data.parent / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["hexagon", "cross"]
    assert {a["category_id"] for a in coco["annotations"]} <= {1, 2} and coco["annotations"]
    for bad in (["hexagon", "hexagon"], ["circle"], []):
        with pytest.raises(ValueError, match="distinct shape names"):
            make_synthetic(tmp_path / "c", num_train=2, num_val=1, imgsz=96, classes=bad)


def test_synthetic_default_bytes_unchanged_by_class_option(tmp_path):
    """Naming all six shapes in their own order writes the same images as the default."""
    a = make_synthetic(tmp_path / "a", num_train=3, num_val=1, imgsz=96, seed=2)
    b = make_synthetic(tmp_path / "b", num_train=3, num_val=1, imgsz=96, seed=2,
                       classes=SYNTHETIC_NAMES)
    for x, y in zip(sorted(a.parent.glob("images/*/*.jpg")), sorted(b.parent.glob("images/*/*.jpg"))):
        assert x.read_bytes() == y.read_bytes()
    for split in ("train", "val"):
        name = f"annotations/instances_{split}.json"
        assert (a.parent / name).read_text() == (b.parent / name).read_text()
