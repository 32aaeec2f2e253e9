"""COCO-JSON and YOLO layouts load to the same records; label cache; config; COCO export."""

import json
import logging
import os
import shutil

import numpy as np
import pytest

from yolov9lite.data import (
    DataConfigError,
    build_dataset,
    dataset_to_coco,
    load_data_config,
    make_synthetic,
)
from yolov9lite.data.labels import scan_yolo


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=10, num_val=6,
                          imgsz=160, seed=1).parent


def write_yolo_copy(coco_root, dst, polygons: bool):
    """Convert the COCO set to YOLO layout (images/ + labels/ + data.yaml) the simple way."""
    for split in ("train", "val"):
        coco = json.loads((coco_root / "annotations" / f"instances_{split}.json").read_text())
        (dst / "labels" / split).mkdir(parents=True)
        shutil.copytree(coco_root / "images" / split, dst / "images" / split)
        by_image = {im["id"]: [] for im in coco["images"]}
        for a in coco["annotations"]:
            by_image[a["image_id"]].append(a)
        for im in coco["images"]:
            w, h = im["width"], im["height"]
            lines = []
            for a in by_image[im["id"]]:
                if polygons:
                    pts = np.concatenate([np.reshape(p, (-1, 2)) for p in a["segmentation"]])
                    pts = pts / [w, h]
                    lines.append(f"{a['category_id'] - 1} " + " ".join(f"{v:.9f}" for v in pts.ravel()))
                else:
                    x, y, bw, bh = a["bbox"]
                    lines.append(f"{a['category_id'] - 1} {(x + bw / 2) / w:.9f} "
                                 f"{(y + bh / 2) / h:.9f} {bw / w:.9f} {bh / h:.9f}")
            stem = im["file_name"].rsplit(".", 1)[0]
            (dst / "labels" / split / f"{stem}.txt").write_text("\n".join(lines))
    (dst / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\n"
                                   "names: [disc, square, triangle, star, hexagon, cross]\n")
    return dst / "data.yaml"


def test_coco_and_yolo_layouts_give_the_same_records(coco_root, tmp_path):
    yolo_boxes = write_yolo_copy(coco_root, tmp_path / "boxes", polygons=False)
    yolo_polys = write_yolo_copy(coco_root, tmp_path / "polys", polygons=True)
    coco_ds = build_dataset(coco_root / "data.yaml", "val", use_cache=False)
    box_ds = build_dataset(yolo_boxes, "val", use_cache=False)
    poly_ds = build_dataset(yolo_polys, "val", use_cache=False)
    assert len(coco_ds) == len(box_ds) == len(poly_ds) == 6
    for c, b, p in zip(coco_ds.records, box_ds.records, poly_ds.records):
        assert c.image_id == b.image_id == p.image_id and c.shape == b.shape == p.shape
        assert np.array_equal(c.cls, b.cls) and np.allclose(c.boxes, b.boxes, atol=1e-6)
        assert c.has_segments and not b.has_segments and p.has_segments
        for sc, sp in zip(c.segments, p.segments):
            assert np.allclose(sc, sp, atol=1e-6)
    coco_items = [coco_ds[i][1] for i in range(len(coco_ds))]
    yolo_items = [box_ds[i][1] for i in range(len(box_ds))]
    for a, b in zip(coco_items, yolo_items):  # same tensors out of the validation pipeline
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_label_cache_hit_and_invalidation(coco_root, tmp_path, caplog):
    yaml_path = write_yolo_copy(coco_root, tmp_path / "y", polygons=False)
    cfg = load_data_config(yaml_path)
    records, _, from_cache = scan_yolo(cfg["train"], 6)
    assert not from_cache and (tmp_path / "y" / "labels" / "train.cache").is_file()
    again, _, from_cache = scan_yolo(cfg["train"], 6)
    assert from_cache and len(again) == len(records)
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(records, again))
    label = min((tmp_path / "y" / "labels" / "train").glob("*.txt"))
    label.write_text("0 0.5 0.5 0.25 0.25\n")
    os.utime(label, ns=(1, 1))  # a different mtime even on coarse clocks
    changed, _, from_cache = scan_yolo(cfg["train"], 6)
    assert not from_cache
    assert np.allclose(changed[0].boxes, [[0.5, 0.5, 0.25, 0.25]])
    with caplog.at_level(logging.INFO, logger="yolov9lite.data"):
        build_dataset(yaml_path, "train")
    assert "[label cache]" in caplog.text and "train: 10 images" in caplog.text


def test_config_names_forms_and_errors(tmp_path):
    (tmp_path / "images").mkdir()
    good = tmp_path / "a.yaml"
    good.write_text("path: .\ntrain: images\nval: images\nnames: {0: cat, 1: dog}\n")
    cfg = load_data_config(good)
    assert cfg["names"] == ["cat", "dog"] and cfg["nc"] == 2 and cfg["category_ids"] == [0, 1]
    assert cfg["format"] == "yolo"
    missing = tmp_path / "b.yaml"
    missing.write_text("path: .\ntrain: nowhere\nval: images\nnames: [a]\n")
    with pytest.raises(DataConfigError, match=r"b\.yaml.*'train'.*nowhere"):
        load_data_config(missing)
    nokey = tmp_path / "c.yaml"
    nokey.write_text("path: .\ntrain: images\nnames: [a]\n")
    with pytest.raises(DataConfigError, match=r"c\.yaml.*missing key 'val'"):
        load_data_config(nokey)
    with pytest.raises(DataConfigError, match="not found"):
        load_data_config(tmp_path / "absent.yaml")


def test_repo_coco_yaml_parses_without_data():
    from pathlib import Path

    import yaml
    raw = yaml.safe_load((Path(__file__).parents[1] / "data" / "coco.yaml").read_text())
    assert len(raw["names"]) == 80 and len(raw["category_ids"]) == 80
    assert raw["category_ids"][:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert raw["category_ids"][-1] == 90


def test_dataset_to_coco_round_trip(coco_root, tmp_path):
    yaml_path = write_yolo_copy(coco_root, tmp_path / "y", polygons=False)
    gt = dataset_to_coco(yaml_path, "val")
    orig = json.loads((coco_root / "annotations" / "instances_val.json").read_text())
    assert [i["id"] for i in gt["images"]] == sorted(i["id"] for i in orig["images"])
    assert len(gt["annotations"]) == len(orig["annotations"])
    ours = np.array(sorted(a["bbox"] for a in gt["annotations"]))
    theirs = np.array(sorted(a["bbox"] for a in orig["annotations"]))
    assert np.allclose(ours, theirs, atol=1e-3)
    assert all(a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3]) for a in gt["annotations"])
    assert [c["id"] for c in gt["categories"]] == list(range(6))
    from pycocotools.coco import COCO
    api = COCO()
    api.dataset = gt
    api.createIndex()
    assert len(api.getAnnIds()) == len(gt["annotations"])
