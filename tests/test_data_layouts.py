"""COCO-JSON and YOLO layouts load to the same records; label cache; config; COCO export."""

import json
import logging
import os
import shutil
from pathlib import Path

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
    assert not from_cache and (tmp_path / "y" / "labels" / "train.yolov9lite-cache.npz").is_file()
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


def small_jpeg(path, seed):
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 32, 3), np.uint8))


def test_same_file_name_in_two_subfolders_keeps_every_image(tmp_path):
    """4 names x 2 subfolders: all 8 images, 8 distinct ids; a name unique in the split keeps
    its COCO-style number as id."""
    for k in range(8):
        folder = "a" if k < 4 else "b"
        small_jpeg(tmp_path / "images" / "train" / folder / f"{k % 4:012d}.jpg", k)
        (tmp_path / "labels" / "train" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "train" / folder / f"{k % 4:012d}.txt").write_text(
            f"0 0.5 0.5 0.{k + 1} 0.5\n")
    small_jpeg(tmp_path / "images" / "train" / "b" / "000000000139.jpg", 9)
    records, report, _ = scan_yolo(str(tmp_path / "images" / "train"), 1, use_cache=False)
    assert report.images == len(records) == 9 and report.skipped == 0
    assert len({r.image_id for r in records}) == 9
    assert next(r for r in records if r.path.endswith("139.jpg")).image_id == 139
    widths = sorted(round(float(r.boxes[0, 2]), 1) for r in records if len(r.boxes))
    assert widths == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]  # each image kept its own labels


def test_scan_keeps_copies_and_symlinks_and_skips_a_path_listed_twice(tmp_path, caplog):
    """The official policy: byte-identical files under other names are how users oversample;
    they are kept with one summary warning. Only the same listing twice is a duplicate."""
    images = tmp_path / "images" / "train"
    small_jpeg(images / "orig.jpg", 0)
    small_jpeg(images / "other.jpg", 1)
    for k in range(3):
        shutil.copy(images / "orig.jpg", images / f"copy{k}.jpg")
    os.symlink(images / "orig.jpg", images / "link.jpg")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    for p in images.iterdir():
        (tmp_path / "labels" / "train" / f"{p.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with caplog.at_level(logging.INFO, logger="yolov9lite.data"):
        records, report, _ = scan_yolo(str(images), 1, use_cache=False)
        report.log()
    assert sorted(Path(r.path).name for r in records) == [
        "copy0.jpg", "copy1.jpg", "copy2.jpg", "link.jpg", "orig.jpg", "other.jpg"]
    copies = [r.getMessage() for r in caplog.records if "byte-identical" in r.getMessage()]
    assert len(copies) == 1 and "4 files" in copies[0] and "kept (oversampling)" in copies[0]
    assert report.skipped == 0 and len({r.image_id for r in records}) == 6
    listing = tmp_path / "train.txt"
    listing.write_text("images/train/orig.jpg\n./images/train/orig.jpg\nimages/train/link.jpg\n"
                       f"{images / 'other.jpg'}\n")
    records, report, _ = scan_yolo(str(listing), 1, use_cache=False)
    assert sorted(Path(r.path).name for r in records) == ["link.jpg", "orig.jpg", "other.jpg"]
    assert report.counts() == {"duplicate file": 1} and report.skipped == 1
    assert "listed twice" in report.issues[0][2]


def test_copy_detection_samples_only_the_ends_of_large_files(tmp_path):
    """No full read at COCO scale: size + first and last 4 KiB decide. Two 1 MiB files that
    differ only in the middle count as copies; that only changes the warning's count, never
    which files are kept (all are)."""
    from yolov9lite.data.labels import count_copies
    middle = 512 * 1024
    a, b, c = (tmp_path / n for n in ("a.bin", "b.bin", "c.bin"))
    data = bytearray(1 << 20)
    a.write_bytes(bytes(data))
    data[middle] = 1
    b.write_bytes(bytes(data))
    data[-1] = 1
    c.write_bytes(bytes(data))
    n, example = count_copies([str(a), str(b), str(c)], [1 << 20] * 3)
    assert n == 1 and example == f"{b} = {a}"


def test_image_list_that_is_not_utf8_is_one_clear_error(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_bytes("images/a.jpg\n".encode("utf-16"))
    with pytest.raises(DataConfigError, match=r"train\.txt: cannot read the image list"):
        scan_yolo(str(listing), 1, use_cache=False)
