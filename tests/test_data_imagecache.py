"""The image cache (yolov9lite/data/imagecache.py): the same batches as decoding, built once and
reused, rebuilt when an image changes, a damaged or foreign cache never trusted, and a disk
without room refused with one line."""

import os
import pickle
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import run_cli_cases

from yolov9lite.data import build_dataloader, build_dataset, make_synthetic
from yolov9lite.data import dataset as dataset_module
from yolov9lite.data import imagecache as IC
from yolov9lite.data.dataset import load_resized

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    # 256-px images trained at 96: the training path decodes at 1/2 size (IMREAD_REDUCED)
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=12, num_val=5, imgsz=256,
                          seed=4)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(folder))
    return folder / "images"


def batches(data_yaml, split, workers, cached, mosaic=True, epochs=2):
    kw = {"augment": False, "rect": True, "shuffle": False} if split == "val" else {}
    loader = build_dataloader(data_yaml, split, imgsz=96, batch_size=4, workers=workers, seed=2,
                              cache_images=cached, persistent_workers=False, **kw)
    loader.dataset.set_mosaic(mosaic)
    out = []
    for epoch in range(epochs):
        if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        out += [(images, targets) for images, targets, _ in loader]
    return out


def again_record(data_yaml, i):
    return build_dataset(data_yaml, "train", imgsz=96).records[i]


@pytest.mark.parametrize("split,workers,mosaic", [("train", 0, True), ("train", 2, True),
                                                  ("train", 0, False), ("val", 0, False)])
def test_batches_are_bit_identical_with_the_cache(data_yaml, cache_dir, split, workers, mosaic,
                                                  monkeypatch):
    """Mosaic (+ copy-paste, MixUp), the close-mosaic path (letterbox + affine) and validation
    read the cached images as read-only views: none of them writes into its input."""
    plain = batches(data_yaml, split, 0, cached=False, mosaic=mosaic)
    build_dataset(data_yaml, split, imgsz=96, cache_images=True)  # built here, then...

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the image cache holds the image")

    monkeypatch.setattr(dataset_module, "load_resized", no_decoding)  # ...every image from it
    cached = batches(data_yaml, split, workers, cached=True, mosaic=mosaic)
    assert len(list(cache_dir.glob("*.u8"))) == 1  # it was really built and used
    assert len(plain) == len(cached) > 0
    for (ia, ta), (ib, tb) in zip(plain, cached):
        assert torch.equal(ia, ib) and torch.equal(ta, tb)


def test_cache_holds_what_the_loader_decodes(data_yaml):
    train = build_dataset(data_yaml, "train", imgsz=96, cache_images=True)
    val = build_dataset(data_yaml, "val", imgsz=96, cache_images=True)
    assert train.image_cache.index_path != val.image_cache.index_path  # bilinear vs INTER_AREA
    for ds in (train, val):
        for i, record in enumerate(ds.records):
            expected = load_resized(record, 96, training=ds.augment)
            assert np.array_equal(ds.image_cache.get(i), expected)
            assert not ds.image_cache.get(i).flags.writeable  # a view into the shared map
            assert max(expected.shape[:2]) == 96
    assert train.image_cache.nbytes == os.path.getsize(train.image_cache.pixels_path)


def test_reused_then_rebuilt_when_an_image_changes(data_yaml, cache_dir):
    first = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    again = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    assert again.pixels_path == first.pixels_path  # no rebuild
    # rewrite one image with other pixels: a new build, with the new pixels, the old file gone
    record = again_record(data_yaml, 3)
    original = cv2.imread(record.path)
    try:
        cv2.imwrite(record.path, 255 - original)
        stat = os.stat(record.path)
        os.utime(record.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        rebuilt = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
        assert rebuilt.pixels_path != first.pixels_path and not first.pixels_path.exists()
        assert np.array_equal(rebuilt.get(3), load_resized(record, 96, training=True))
        assert not np.array_equal(rebuilt.get(3), first.get(3))  # `first` keeps its own map
    finally:
        cv2.imwrite(record.path, original)


def test_damaged_or_foreign_index_is_rebuilt_never_trusted(data_yaml, cache_dir, caplog):
    cache = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    index, pixels = cache.index_path, cache.pixels_path
    # a pickle-bearing .npz under the index's name: rejected before anything is unpickled
    with open(index, "wb") as f:
        np.savez(f, header=np.array([object()], dtype=object), offsets=np.zeros(1, np.int64),
                 shapes=np.zeros((1, 2), np.int64))
    rebuilt = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    assert "image cache ignored" in caplog.text and "Python objects" in caplog.text
    assert rebuilt.pixels_path != pixels
    # a pixel file cut short: the size check catches it
    caplog.clear()
    with open(rebuilt.pixels_path, "r+b") as f:
        f.truncate(100)
    again = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    assert "wrong size" in caplog.text
    assert np.array_equal(again.get(0), load_resized(again_record(data_yaml, 0), 96, True))


def test_an_image_that_fails_to_decode_is_left_to_the_loader(data_yaml, tmp_path):
    ds = build_dataset(data_yaml, "train", imgsz=96)
    records = list(ds.records)
    broken = tmp_path / "gone.jpg"  # scanned once, deleted before the cache was built
    records[5] = type(records[5])(str(broken), 99, (200, 256), records[5].cls, records[5].boxes)
    cache = IC.open_image_cache(records, 96, training=True, name="broken")
    assert cache.get(5) is None and cache.get(4) is not None
    assert np.array_equal(cache.get(6), load_resized(records[6], 96, training=True))


def test_pickled_cache_carries_no_pixels(data_yaml):
    cache = build_dataset(data_yaml, "train", imgsz=96, cache_images=True).image_cache
    cache.get(0)  # maps the pixel file in this process
    blob = pickle.dumps(cache)
    assert len(blob) < 4096 < cache.nbytes
    assert np.array_equal(pickle.loads(blob).get(2), cache.get(2))


def test_no_room_is_refused_before_writing(data_yaml, cache_dir, monkeypatch):
    usage = IC.shutil.disk_usage(cache_dir.parent.parent)
    monkeypatch.setattr(IC.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with pytest.raises(IC.ImageCacheError, match="YOLOV9LITE_CACHE_DIR"):
        build_dataset(data_yaml, "train", imgsz=96, cache_images=True)
    assert not list(cache_dir.glob("*.u8")) and not list(cache_dir.glob("*.npz"))


def test_cli_unusable_cache_folder_is_one_line_exit_2(data_yaml, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(not_a_folder / "sub"))
    [(_argv, code, err)] = run_cli_cases([[
        "train", "--data", str(data_yaml), "--cache-images", "--device", "cpu", "--epochs", "1",
        "--img", "64", "--workers", "0", "--batch", "4", "--project", str(tmp_path / "runs"),
        "--quiet"]], cwd=tmp_path)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "YOLOV9LITE_CACHE_DIR" in lines[0] and "Traceback" not in err


def test_an_interrupted_build_leaves_nothing_and_stops_decoding(data_yaml, cache_dir,
                                                                monkeypatch):
    """Ctrl-C during the build: no temporary file, no index, and the queued decodes are
    dropped instead of finished (``Executor.map`` cancels them when its iterator raises;
    COCO would otherwise keep decoding for a minute)."""
    records = build_dataset(data_yaml, "train", imgsz=96).records * 5  # 60 entries
    calls = []

    def interrupted(record, imgsz, training):
        calls.append(record)
        if len(calls) == 1:
            raise KeyboardInterrupt
        time.sleep(0.01)
        return load_resized(record, imgsz, training)

    monkeypatch.setattr(IC, "load_resized", interrupted)
    with pytest.raises(KeyboardInterrupt):
        IC.open_image_cache(records, 96, training=True, name="cut")
    assert len(calls) < len(records) // 3
    assert not [p for p in cache_dir.iterdir() if not p.name.endswith(".lock")]
