"""Every kind of bad input is skipped or repaired with a counted, file-naming warning."""

import codecs
import json
import logging
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov9lite.data import (
    DataConfigError,
    build_dataloader,
    build_dataset,
    load_data_config,
    make_synthetic,
)
from yolov9lite.data.labels import scan_yolo

BOX = "0 0.5 0.5 0.4 0.4\n"


def noisy(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A YOLO-layout split with one file per problem, plus good images."""
    root = tmp_path_factory.mktemp("messy")
    img, lab = root / "images" / "train", root / "labels" / "train"
    img.mkdir(parents=True)
    lab.mkdir(parents=True)

    def good(name, seed, label=BOX):
        cv2.imwrite(str(img / f"{name}.jpg"), noisy(seed=seed))
        (lab / f"{name}.txt").write_text(label)

    for k in range(3):
        good(f"good{k}", k)
    (img / "corrupt.jpg").write_bytes(b"this is not a jpeg" * 10)
    (lab / "corrupt.txt").write_text(BOX)
    full = cv2.imencode(".jpg", noisy(96, 128, 7))[1].tobytes()
    (img / "truncated.jpg").write_bytes(full[: int(len(full) * 0.6)])
    (lab / "truncated.txt").write_text(BOX)
    cv2.imwrite(str(img / "nolabel.jpg"), noisy(seed=8))
    good("empty", 9, "")
    good("outside", 10, "0 0.9 0.5 0.4 0.4\n")  # right edge at 1.1
    good("badclass", 11, "0 0.5 0.5 0.2 0.2\n5 0.3 0.3 0.1 0.1\n")
    good("zeroarea", 12, "0 0.5 0.5 0.0 0.3\n0 0.4 0.4 0.2 0.2\n")
    good("duplabels", 13, BOX + BOX)
    Image.fromarray(noisy(seed=14)[..., 0]).save(img / "gray.png")
    (lab / "gray.txt").write_text(BOX)
    Image.fromarray(np.dstack([noisy(seed=15), np.full((48, 64), 255, np.uint8)])).save(
        img / "rgba.png")
    (lab / "rgba.txt").write_text(BOX)
    Image.fromarray(noisy(seed=16)[..., 0].astype(np.uint16) * 257).save(img / "deep16.png")
    (lab / "deep16.txt").write_text(BOX)
    # EXIF orientation 6: stored 64 wide x 48 high, displayed rotated, 48 wide x 64 high
    stored = Image.fromarray(noisy(seed=17)[..., ::-1])
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(img / "exif.jpg", exif=exif)
    (lab / "exif.txt").write_text("0 0.25 0.5 0.2 0.2\n")
    shutil.copy(img / "good0.jpg", img / "copy_of_good0.jpg")  # a copy: kept (oversampling)
    (lab / "copy_of_good0.txt").write_text(BOX)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                    "names: [thing, other]\n")
    return root


EXPECTED = {  # kind of problem -> file it must name
    "corrupt image": "corrupt.jpg",
    "truncated JPEG": "truncated.jpg",
    "missing label file": "nolabel.jpg",
    "empty label file": "empty.jpg",
    "coordinates outside [0, 1]": "outside.jpg",
    "class id out of range": "badclass.jpg",
    "zero-area box": "zeroarea.jpg",
    "duplicate labels": "duplabels.jpg",
    "converted image mode": "gray.png",
    "EXIF rotation": "exif.jpg",
}


def test_each_problem_is_warned_counted_and_summarised(messy, caplog):
    with caplog.at_level(logging.INFO, logger="yolov9lite.data"):
        ds = build_dataset(messy / "data.yaml", "train", use_cache=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for kind, file in EXPECTED.items():
        assert any(m.startswith(kind) and file in m for m in warnings), (kind, warnings)
    for file in ("rgba.png", "deep16.png"):
        assert any("converted image mode" in m and file in m for m in warnings)
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # 16 files: corrupt skipped -> 15 images; the byte-identical copy is kept, with one warning
    assert len(summary) == 1 and "train: 15 images" in summary[0]
    assert "1 skipped" in summary[0] and "backgrounds" in summary[0]
    copies = [m for m in warnings if "byte-identical" in m]
    assert len(copies) == 1 and "1 files" in copies[0] and "kept (oversampling)" in copies[0]
    by_name = {r.path.rsplit("/", 1)[1]: r for r in ds.records}
    assert "corrupt.jpg" not in by_name
    assert "copy_of_good0.jpg" in by_name and "good0.jpg" in by_name
    assert len(by_name["nolabel.jpg"].cls) == 0 and len(by_name["empty.jpg"].cls) == 0
    assert np.allclose(by_name["outside.jpg"].boxes, [[0.85, 0.5, 0.3, 0.4]])
    assert by_name["badclass.jpg"].cls.tolist() == [0]
    assert len(by_name["zeroarea.jpg"].cls) == 1 and len(by_name["duplabels.jpg"].cls) == 1
    assert by_name["exif.jpg"].shape == (64, 48)  # displayed orientation


def test_whole_epoch_runs_through_every_file(messy):
    for augment in (True, False):
        loader = build_dataloader(messy / "data.yaml", "train", imgsz=64, batch_size=4,
                                  workers=0, augment=augment, use_cache=False)
        seen = 0
        for images, targets, metas in loader:
            assert images.dtype.is_floating_point is False and images.shape[1] == 3
            assert targets.shape[1] == 6
            seen += len(images)
        assert seen == 15


def test_special_modes_decode_to_three_channel_uint8(messy):
    ds = build_dataset(messy / "data.yaml", "train", imgsz=64, augment=False, rect=False)
    for i, rec in enumerate(ds.records):
        image, _ = ds.load_image(i)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if rec.path.endswith("exif.jpg"):
            assert image.shape[:2] == (64, 48)  # rotated as displayed, like its labels
        if rec.path.endswith("truncated.jpg"):
            assert image.shape[:2] == (48, 64)  # 96x128 resized so the longest side is 64


@pytest.mark.parametrize("augment", [True, False])
def test_file_vanishing_mid_epoch_is_not_fatal(messy, tmp_path, caplog, augment):
    """Training replaces the lost image by another one; evaluation keeps the lost image's id
    (a blank placeholder without labels), so no other image is scored twice."""
    root = tmp_path / "copy"
    shutil.copytree(messy, root)
    ds = build_dataset(root / "data.yaml", "train", imgsz=64, augment=augment, rect=False,
                       use_cache=False)
    victim = next(i for i, r in enumerate(ds.records) if r.path.endswith("good1.jpg"))
    (root / "images" / "train" / "good1.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        image, labels, meta = ds[victim]
    assert "good1.jpg" in caplog.text and ds.failures >= 1
    if augment:
        assert meta["path"] != ds.records[victim].path
    else:
        assert meta["image_id"] == ds.records[victim].image_id and len(labels) == 0
        assert image.shape == (3, 64, 64) and (image == 114).all()


def test_nothing_usable_is_a_clear_error(tmp_path):
    img = tmp_path / "images" / "train"
    img.mkdir(parents=True)
    (img / "a.jpg").write_bytes(b"garbage")
    (img / "b.jpg").write_bytes(b"")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                        "names: [x]\n")
    with pytest.raises(ValueError, match=r"no usable images in .*images/train.*2 skipped"):
        build_dataset(tmp_path / "data.yaml", "train", use_cache=False)


def test_scan_without_cache_dir_write_access_still_works(messy, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    records, report, _ = scan_yolo(str(messy / "images" / "train"), 2, use_cache=False)
    assert report.images == len(records) == 15


def write_split(root, labels: dict[str, bytes]):
    """A YOLO split with one small image per label file (name -> raw label bytes)."""
    img, lab = root / "images" / "train", root / "labels" / "train"
    img.mkdir(parents=True)
    lab.mkdir(parents=True)
    for k, (name, data) in enumerate(labels.items()):
        cv2.imwrite(str(img / f"{name}.jpg"), noisy(seed=k))
        (lab / f"{name}.txt").write_bytes(data)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                    "names: [thing, other]\n")
    return root / "data.yaml"


def test_label_encodings_and_non_finite_values(tmp_path, caplog):
    two = "0 0.5 0.5 0.4 0.4\n1 0.3 0.3 0.2 0.2\n"
    yaml_path = write_split(tmp_path, {
        "utf16": two.encode("utf-16"),  # with its byte-order mark: decoded
        "bom": codecs.BOM_UTF8 + two.encode(),  # the mark must not eat the first line
        "latin1": "0 0.5 0.5 0.4 0.4 # caf\xe9\n".encode("latin-1"),  # not UTF-8: skipped
        "nan": b"0 nan 0.5 0.4 0.4\n1 0.3 0.3 0.2 0.2\n0 0.5 inf 0.1 0.1\n1 0.5 0.5 1e999 0.1\n",
        "garbage": b"0 0.5 0.5 0.4 0.4\nnot a label\n1 2 3\n",
    })
    with caplog.at_level(logging.INFO, logger="yolov9lite.data"):
        ds = build_dataset(yaml_path, "train", use_cache=False)
    by_name = {r.path.rsplit("/", 1)[1]: r for r in ds.records}
    assert by_name["utf16.jpg"].cls.tolist() == [0, 1]
    assert by_name["bom.jpg"].cls.tolist() == [0, 1]
    assert by_name["nan.jpg"].cls.tolist() == [1] and np.isfinite(by_name["nan.jpg"].boxes).all()
    assert by_name["garbage.jpg"].cls.tolist() == [0]
    assert "latin1.jpg" not in by_name
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    def warned(kind, *words):
        return any(m.startswith(kind) and all(w in m for w in words) for m in warnings)

    assert warned("label file encoding", "utf16.txt", "UTF-16")
    assert warned("label file encoding", "bom.txt", "byte-order mark")
    assert warned("unreadable label file", "latin1.txt", "not UTF-8")
    assert warned("non-finite label values", "nan.txt", "3 lines", "line 1, 3, 4")
    assert warned("bad label line", "garbage.txt", "2 unparsable", "line 2, 3")
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][-1]
    assert "train: 4 images" in summary and "1 skipped" in summary
    assert "non-finite label values: 1" in summary and "unreadable label file: 1" in summary


@pytest.mark.parametrize("text, where", [
    ("path: .\ntrain: [images\nval: images\n", "line 3"),  # unclosed flow sequence
    ("path: .\ntrain: images\n  val: images: x\n", "line 3"),
    ("names: [a]\n\tval: x\n", "line 2"),  # a tab where YAML forbids one
])
def test_yaml_syntax_error_is_one_clear_error(tmp_path, text, where):
    (tmp_path / "images").mkdir()
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(DataConfigError, match=rf"data\.yaml: not valid YAML at {where}") as err:
        load_data_config(path)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_yaml_that_is_not_utf8_or_has_bad_types(tmp_path):
    (tmp_path / "images").mkdir()
    path = tmp_path / "data.yaml"
    path.write_bytes("train: images\nval: images\nnames: [caf\xe9]\n".encode("utf-16"))
    with pytest.raises(DataConfigError, match=r"data\.yaml: not UTF-8"):
        load_data_config(path)
    path.write_text("train: images\nval: images\nnames: [a, b]\nnc: two\n")
    with pytest.raises(DataConfigError, match=r"data\.yaml: 'nc' is 'two'"):
        load_data_config(path)
    path.write_text("train: images\nval: images\nnames: [a]\ncategory_ids: [x]\n")
    with pytest.raises(DataConfigError, match=r"data\.yaml: 'category_ids' must be"):
        load_data_config(path)
    path.write_text("train: images\nval: images\nnames: {0: a, x: b}\n")
    with pytest.raises(DataConfigError, match=r"data\.yaml: 'names' keys"):
        load_data_config(path)


@pytest.fixture
def coco_copy(tmp_path):
    root = make_synthetic(tmp_path / "syn", num_train=3, num_val=4, imgsz=64, seed=2).parent
    return root, root / "annotations" / "instances_val.json"


def test_malformed_coco_entries_are_skipped_and_named(coco_copy, caplog):
    root, json_path = coco_copy
    coco = json.loads(json_path.read_text())
    anns = coco["annotations"]
    first_image = coco["images"][0]["id"]
    for a in anns:
        a["image_id"] = first_image  # every annotation on one image: counts are easy
    anns[0]["bbox"] = anns[0]["bbox"][:3]
    anns[1]["bbox"] = None
    anns[2]["category_id"] = 1000
    anns[3]["bbox"] = [float("nan"), 1.0, 2.0, 3.0]  # Python's json writes NaN
    anns[4]["segmentation"] = [[1, 2, 3]]  # too short for a polygon: no segment, box kept
    anns.append({"id": 999, "bbox": [1, 1, 2, 2], "category_id": 1})  # no image_id
    del coco["images"][1]["file_name"]
    coco["images"][2]["id"] = "three"
    json_path.write_text(json.dumps(coco))
    with caplog.at_level(logging.INFO, logger="yolov9lite.data"):
        ds = build_dataset(root / "data.yaml", "val", use_cache=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    def warned(kind, *words):
        return any(m.startswith(kind) and all(w in m for w in words) for m in warnings)

    name = "instances_val.json"
    assert warned("bad annotation", name, f"annotation id {anns[0]['id']}", "4 finite numbers")
    assert warned("bad annotation", name, f"annotation id {anns[1]['id']}", "bbox None")
    assert warned("bad annotation", name, f"annotation id {anns[3]['id']}", "nan")
    assert warned("unknown category", name, f"annotation id {anns[2]['id']}", "1000")
    assert warned("bad annotation", "annotations[", "image_id")
    assert warned("bad image entry", "images[1]", "no 'file_name'")
    assert warned("bad image entry", "images[2]", "integer 'id'")
    assert not any(m.startswith("class id out of range") for m in warnings)  # not "class -1"
    assert len(ds) == 2
    kept = next(r for r in ds.records if r.image_id == first_image)
    assert len(kept.cls) == len(anns) - 5 and (kept.cls >= 0).all()
    assert np.isfinite(kept.boxes).all()


def test_coco_json_that_does_not_parse_is_one_clear_error(coco_copy):
    root, json_path = coco_copy
    json_path.write_text('{"images": [1, 2,\n "oops" "x"]}')
    with pytest.raises(DataConfigError, match=r"instances_val\.json: not valid JSON at line 2"):
        build_dataset(root / "data.yaml", "val", use_cache=False)
    json_path.write_text('{"images": {}, "annotations": [], "categories": []}')
    with pytest.raises(DataConfigError, match=r"instances_val\.json: 'images' must be a list"):
        build_dataset(root / "data.yaml", "val", use_cache=False)
