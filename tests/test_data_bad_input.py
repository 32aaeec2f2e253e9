"""Every kind of bad input is skipped or repaired with a counted, file-naming warning."""

import logging
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov9lite.data import build_dataloader, build_dataset
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
    shutil.copy(img / "good0.jpg", img / "copy_of_good0.jpg")  # a duplicate file
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
    "duplicate file": "good0.jpg",  # names both copies; the first in path order is kept
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
    # 16 files: corrupt + duplicate skipped -> 14 images
    assert len(summary) == 1 and "train: 14 images" in summary[0]
    assert "2 skipped" in summary[0] and "backgrounds" in summary[0]
    by_name = {r.path.rsplit("/", 1)[1]: r for r in ds.records}
    assert "corrupt.jpg" not in by_name
    assert ("copy_of_good0.jpg" in by_name) != ("good0.jpg" in by_name)
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
        assert seen == 14


def test_special_modes_decode_to_three_channel_uint8(messy):
    ds = build_dataset(messy / "data.yaml", "train", imgsz=64, augment=False, rect=False)
    for i, rec in enumerate(ds.records):
        image, _ = ds.load_image(i)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if rec.path.endswith("exif.jpg"):
            assert image.shape[:2] == (64, 48)  # rotated as displayed, like its labels
        if rec.path.endswith("truncated.jpg"):
            assert image.shape[:2] == (48, 64)  # 96x128 resized so the longest side is 64


def test_file_vanishing_mid_epoch_is_replaced_not_fatal(messy, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(messy, root)
    ds = build_dataset(root / "data.yaml", "train", imgsz=64, augment=False, rect=False,
                       use_cache=False)
    victim = next(i for i, r in enumerate(ds.records) if r.path.endswith("good1.jpg"))
    (root / "images" / "train" / "good1.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        _, _, meta = ds[victim]
    assert "good1.jpg" in caplog.text and ds.failures == 1
    assert meta["path"] != ds.records[victim].path


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
    assert report.images == len(records) == 14
