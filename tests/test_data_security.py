"""Label caches are data, never code: a crafted cache runs nothing, foreign caches are left alone,
and a read-only dataset reads its cache back from the fallback folder."""

import io
import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import write_yolo_split

from yolov9lite.data import make_synthetic
from yolov9lite.data.labels import (
    cache_dir,
    encode_cache,
    fallback_cache_path,
    scan_coco,
    scan_yolo,
)


class Payload:
    """Unpickling this creates `marker`: proof that a cache file was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def official_style_cache(path: Path, marker: Path) -> bytes:
    """What the official loader writes (np.save of a dict, a pickle inside .npy), armed."""
    with open(path, "wb") as f:
        np.save(f, np.array({"hash": "x", "payload": Payload(marker)}, dtype=object),
                allow_pickle=True)
    return path.read_bytes()


def plain_pickle(path: Path, marker: Path) -> bytes:
    path.write_bytes(pickle.dumps({"version": 1, "records": Payload(marker)}))
    return path.read_bytes()


@pytest.fixture
def yolo_split(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(tmp_path / "cache"))
    write_yolo_split(tmp_path / "ds")
    (tmp_path / "ds" / "train.txt").write_text(
        "\n".join(f"./images/train/{k:06d}.jpg" for k in range(4)) + "\n")
    return tmp_path / "ds"


def test_malicious_caches_run_nothing_and_foreign_ones_are_not_overwritten(yolo_split, tmp_path,
                                                                           caplog):
    marker = tmp_path / "EXECUTED"
    labels = yolo_split / "labels"
    ours = [labels / "train.yolov9lite-cache.npz", yolo_split / "train.yolov9lite-cache.npz"]
    ours += [fallback_cache_path(p) for p in ours]
    foreign = {}  # the official cache path for both sources, and our former pickle names
    for path in (labels / "train.cache", yolo_split / "train.cache"):
        foreign[path] = official_style_cache(path, marker)
    for path in ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        plain_pickle(path, marker)
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        for source in (yolo_split / "images" / "train", yolo_split / "train.txt"):
            records, _, from_cache = scan_yolo(str(source), 2)
            assert len(records) == 4 and not from_cache
            again, _, from_cache = scan_yolo(str(source), 2)  # our rewritten cache is used
            assert from_cache and [r.image_id for r in again] == [r.image_id for r in records]
    assert not marker.exists()
    assert all(path.read_bytes() == data for path, data in foreign.items())
    ignored = [r.getMessage() for r in caplog.records if "label cache ignored" in r.getMessage()]
    assert any(str(ours[0]) in m for m in ignored) and any(str(ours[1]) in m for m in ignored)


def test_malicious_coco_caches_run_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_synthetic(tmp_path / "syn", num_train=3, num_val=2, imgsz=64, seed=0).parent
    json_path = root / "annotations" / "instances_val.json"
    marker = tmp_path / "EXECUTED"
    official = official_style_cache(json_path.with_suffix(".cache"), marker)
    ours = json_path.with_name("instances_val.yolov9lite-cache.npz")
    plain_pickle(ours, marker)
    fallback = fallback_cache_path(ours)
    fallback.parent.mkdir(parents=True)
    official_style_cache(fallback, marker)  # a pickle inside .npy with our name
    records, _, from_cache = scan_coco(json_path, root / "images" / "val")
    assert len(records) == 2 and not from_cache and not marker.exists()
    assert json_path.with_suffix(".cache").read_bytes() == official
    assert scan_coco(json_path, root / "images" / "val")[2]  # cache hit on our rewritten file


def write_npz(path: Path, arrays: dict, compression=zipfile.ZIP_STORED, lie: str = "") -> None:
    """An .npz by hand; `lie` names a member whose header claims 10^11 rows it does not have."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            if name == lie:
                np.lib.format.write_array_header_1_0(buf, {
                    "descr": "<f4", "fortran_order": False, "shape": (10**11, 4)})
            else:
                np.save(buf, array, allow_pickle=True)
            zf.writestr(f"{name}.npy", buf.getvalue())


def test_malformed_caches_of_our_format_are_ignored_with_a_warning(yolo_split, caplog):
    source = str(yolo_split / "images" / "train")
    records, report, _ = scan_yolo(source, 2)
    cache = yolo_split / "labels" / "train.yolov9lite-cache.npz"
    fingerprint = __import__("json").loads(np.load(cache)["header"].tobytes())["fingerprint"]
    good = encode_cache(fingerprint, records, report)
    broken = {
        "counts": {**good, "n_objects": good["n_objects"] + 1},
        "dtype": {**good, "boxes": good["boxes"].astype(np.float64)},
        "object array": {**good, "meta": np.array([Payload(yolo_split / "X")], dtype=object)},
        "format": {**good, "header": np.frombuffer(b'{"format": "other"}', np.uint8)},
        "extra member": {**good, "code": np.zeros(1)},
        "compressed": good,
        "size bomb": good,
    }
    for why, arrays in broken.items():
        write_npz(cache, arrays, zipfile.ZIP_DEFLATED if why == "compressed" else
                  zipfile.ZIP_STORED, lie="boxes" if why == "size bomb" else "")
        os.utime(cache)
        with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
            caplog.clear()
            again, _, from_cache = scan_yolo(source, 2)
        assert not from_cache, why
        assert "label cache ignored" in caplog.text and str(cache) in caplog.text, why
        assert [r.image_id for r in again] == [r.image_id for r in records]
    write_npz(cache, good)  # the same writer, honest: accepted, so the cases above failed
    assert scan_yolo(source, 2)[2]  # for the reason they name
    cache.write_bytes(cache.read_bytes()[:100])  # truncated
    assert not scan_yolo(source, 2)[2] and scan_yolo(source, 2)[2]
    assert not (yolo_split / "X").exists()


def test_read_only_dataset_reads_its_cache_back_from_the_fallback(yolo_split, tmp_path,
                                                                  monkeypatch):
    """chmod makes the dataset read-only for normal users; root ignores file modes, so the
    write into the dataset is also refused by a patched os.replace."""
    real_replace = os.replace

    def refuse_inside_dataset(src, dst, *args, **kwargs):
        if str(dst).startswith(str(yolo_split)):
            raise PermissionError(13, "Read-only file system", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse_inside_dataset)
    folders = [p for p in yolo_split.rglob("*") if p.is_dir()] + [yolo_split]
    before = sorted(yolo_split.rglob("*"))
    for d in folders:
        d.chmod(0o555)
    try:
        source = str(yolo_split / "images" / "train")
        _, _, from_cache = scan_yolo(source, 2)
        assert not from_cache
        assert sorted(yolo_split.rglob("*")) == before  # nothing written into the dataset
        assert list((tmp_path / "cache").glob("train-*.yolov9lite-cache.npz"))
        _, _, from_cache = scan_yolo(source, 2)
        assert from_cache
    finally:
        for d in folders:
            d.chmod(0o755)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("YOLOV9LITE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "yolov9lite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "yolov9lite"
