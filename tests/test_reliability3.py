"""Reliability and security III: a crafted dataset, an output flag or a shared folder
never crashes, hangs or loses a file. Every bad input is generated here."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cli_cases, write_yolo_split

from yolov9lite.data.cache import encode_cache
from yolov9lite.data.labels import scan_yolo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def yolo_split(tmp_path, monkeypatch):
    """Four 32x40 images with one box each, YOLO layout."""
    monkeypatch.setenv("YOLOV9LITE_CACHE_DIR", str(tmp_path / "cache"))
    write_yolo_split(tmp_path / "ds")
    return tmp_path / "ds"


def rewrite_cache(cache: Path, **changes) -> None:
    """The cache with some arrays replaced, its header (and so its fingerprint) kept: what a
    dataset's author can ship, since the fingerprint is computed from public stat()s."""
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with open(cache, "wb") as f:
        np.savez(f, **arrays)


def scan_in_subprocess(source: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """scan_yolo in a fresh process (a crash or a hang cannot take pytest with it)."""
    code = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from yolov9lite.data.labels import scan_yolo
        records, report, from_cache = scan_yolo({str(source)!r}, 2)
        print(len(records), from_cache)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          check=False)


# ------------------------------------------------------------------------------- row 1, 2, 7, 11
def test_row1_cache_counts_that_wrap_an_int64_sum_are_refused_not_a_segfault(yolo_split):
    source = yolo_split / "images" / "train"
    scan_yolo(str(source), 2)
    cache = yolo_split / "labels" / "train.yolov9lite-cache.npz"
    empty = {"cls": np.zeros(0, np.int64), "boxes": np.zeros((0, 4), np.float32),
             "n_points": np.zeros(0, np.int64), "points": np.zeros((0, 2), np.float32)}
    rewrite_cache(cache, n_objects=np.array([2**62] * 4, np.int64), **empty)
    out = scan_in_subprocess(source)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["4", "False"]  # rescanned
    assert "label cache ignored" in out.stderr and "count of objects" in out.stderr


def test_row2_cache_naming_a_fifo_is_refused_not_a_hang(yolo_split):
    source = yolo_split / "images" / "train"
    records, report, _ = scan_yolo(str(source), 2)
    cache = yolo_split / "labels" / "train.yolov9lite-cache.npz"
    fifo = yolo_split / "pipe.jpg"  # outside the listed images
    os.mkfifo(fifo)
    for r in records[:1]:
        r.path = str(fifo)
    with np.load(cache) as npz:
        header = npz["header"]
    rewrite_cache(cache, header=header, meta=encode_cache("x", records, report)["meta"])
    out = scan_in_subprocess(source, timeout=60)
    assert out.stdout.split() == ["4", "False"], out.stderr[-2000:]
    assert "not one of the dataset's images" in out.stderr
    # a FIFO that *is* listed (named like an image inside the folder) is refused as well
    listed_fifo = source / "zz.jpg"
    os.mkfifo(listed_fifo)
    records, report, _ = scan_yolo(str(source), 2)  # the honest scan skips it ("not a file")
    assert len(records) == 4
    records[0].path = str(listed_fifo)
    with np.load(cache) as npz:
        header = npz["header"]
    rewrite_cache(cache, header=header, meta=encode_cache("x", records, report)["meta"])
    out = scan_in_subprocess(source, timeout=60)
    assert out.stdout.split() == ["4", "False"], out.stderr[-2000:]
    assert "not a regular file" in out.stderr


def test_row7_cache_temp_file_never_follows_a_planted_symlink(yolo_split, tmp_path,
                                                               monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    labels = yolo_split / "labels"
    for pid in (os.getpid(), 12345):  # the old predictable names
        (labels / f".train.yolov9lite-cache.npz.{pid}.tmp").symlink_to(victim)
    monkeypatch.setattr(os, "getpid", lambda: 12345)
    _, _, from_cache = scan_yolo(str(yolo_split / "images" / "train"), 2)
    assert not from_cache and victim.read_text() == "precious"
    assert (labels / "train.yolov9lite-cache.npz").is_file()
    assert scan_yolo(str(yolo_split / "images" / "train"), 2)[2]


def test_row11_same_size_relabel_with_the_old_mtime_is_rescanned(yolo_split):
    source = str(yolo_split / "images" / "train")
    records, _, _ = scan_yolo(source, 2)
    assert scan_yolo(source, 2)[2]
    label = yolo_split / "labels" / "train" / "000000.txt"
    st = label.stat()
    label.write_text("1 0.5 0.5 0.25 0.5\n")  # class 0 -> 1, same size
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -t / tar do
    assert label.stat().st_size == st.st_size and label.stat().st_mtime_ns == st.st_mtime_ns
    again, _, from_cache = scan_yolo(source, 2)
    assert not from_cache and again[0].cls.tolist() == [1] and records[0].cls.tolist() == [0]


def overrun_member(cache: Path, member: str = "boxes.npy", rows: int = 1000) -> None:
    """Rewrite `member` so that its .npy header and the zip's central directory both claim
    `rows` rows that the file does not hold (the consistency checks pass; reading hits EOF)."""
    import io
    import struct
    import zipfile
    with zipfile.ZipFile(cache) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                                "shape": (rows, 4)})
    members[member] = head.getvalue() + bytes(16)
    with zipfile.ZipFile(cache, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = bytearray(cache.read_bytes())
    claimed = len(head.getvalue()) + rows * 16
    i = data.find(b"PK\x01\x02")
    while i >= 0:  # central directory entries: sizes at offset 20 (compressed, uncompressed)
        name_len = struct.unpack("<H", data[i + 28:i + 30])[0]
        if data[i + 46:i + 46 + name_len] == member.encode():
            data[i + 20:i + 28] = struct.pack("<II", claimed, claimed)
        i = data.find(b"PK\x01\x02", i + 1)
    cache.write_bytes(bytes(data))


def test_message_cache_ignored_for_a_size_overrun_names_a_reason(yolo_split, caplog):
    source = str(yolo_split / "images" / "train")
    scan_yolo(source, 2)
    cache = yolo_split / "labels" / "train.yolov9lite-cache.npz"
    overrun_member(cache)
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        assert not scan_yolo(source, 2)[2]
    line = next(r.getMessage() for r in caplog.records if "cache ignored" in r.getMessage())
    reason = line.split(f"{cache}: ", 1)[1].split("; rescanning")[0]
    assert "EOFError" in reason and "cut off" in reason, line


# ------------------------------------------------------------------------------------- row 3
@pytest.fixture(scope="module")
def nano_weights(tmp_path_factory):
    import torch

    from yolov9lite import build_model
    from yolov9lite.weights.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("w") / "nano.pt",
                           build_model("yolov9-nano", 3), names=["a", "b", "c"])


def test_row3_export_never_writes_over_a_checkpoint_or_an_existing_file(nano_weights, tmp_path):
    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    best, last = weights / "best.pt", weights / "last.pt"
    best.write_bytes(nano_weights.read_bytes())
    last.write_bytes(nano_weights.read_bytes() + b"resume state")
    old_onnx = tmp_path / "existing.onnx"
    old_onnx.write_bytes(b"an earlier export")
    common = ["export", "--weights", str(best), "--img", "64", "--device", "cpu"]
    ts = tmp_path / "m.torchscript"
    ts.write_bytes(b"an earlier torchscript export")
    cases = run_cli_cases([
        common + ["--format", "torchscript", "--out", str(last)],
        common + ["--format", "onnx", "--out", str(old_onnx)],
        common + ["--format", "torchscript", "--out", str(ts), "--no-check"],
        common + ["--format", "torchscript", "--out", str(ts), "--exist-ok"],
    ], cwd=tmp_path)
    (_, code1, err1), (_, code2, err2), (_, code4, err4), (_, code5, err5) = cases
    assert code1 == 2 and "last.pt" in err1 and ".torchscript" in err1 and "Traceback" not in err1
    assert last.read_bytes() == nano_weights.read_bytes() + b"resume state"
    assert code2 == 2 and "exists" in err2 and "--exist-ok" in err2
    assert old_onnx.read_bytes() == b"an earlier export"
    assert code4 == 2 and "--exist-ok" in err4  # an earlier export is not replaced
    assert code5 == 0, err5  # asked for: replaced (and checked before the rename)
    assert ts.read_bytes() != b"an earlier torchscript export"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_row3_export_checks_its_file_before_the_rename(nano_weights, tmp_path):
    from yolov9lite.inference.export import ExportError, export

    out = tmp_path / "m.torchscript"
    out.write_bytes(b"previous export")

    def failing_check(path):
        assert path != out and path.parent == out.parent and path.suffix == ".torchscript"
        raise ExportError("check failed")

    with pytest.raises(ExportError, match="check failed"):
        export(nano_weights, "torchscript", 64, out=out, exist_ok=True, check=failing_check)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.torchscript"]  # no temp file left
    with pytest.raises(ExportError, match="unknown|choose one of"):
        export(nano_weights, "tflite", 64, out=tmp_path / "x.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.torchscript"]


# ------------------------------------------------------------------------------------ row 4, 9
def test_row4_synthetic_set_is_never_written_into_a_users_dataset(tmp_path, monkeypatch):
    mydata = tmp_path / "mydata"
    (mydata / "images" / "train").mkdir(parents=True)
    for k in range(3):
        (mydata / "images" / "train" / f"{k}.jpg").write_bytes(b"user image %d" % k)
    (mydata / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    linked = tmp_path / "linked"  # a planted symlink mark vouches for nothing
    (linked / "images").mkdir(parents=True)
    (linked / "images" / "x.jpg").write_bytes(b"x")
    (linked / ".yolov9lite-synthetic").symlink_to(mydata / "data.yaml")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    cases = []
    for folder in (mydata, linked):
        monkeypatch.setenv("YOLOV9LITE_SYNTHETIC", str(folder))
        cases += run_cli_cases([["train", "--data", "synthetic", "--model", "gelan-nano",
                                 "--img", "64", "--epochs", "1", "--device", "cpu",
                                 "--project", str(tmp_path / "runs")]], cwd=tmp_path)
    for (_, code, err), folder in zip(cases, (mydata, linked)):
        assert code == 2 and str(folder) in err and "YOLOV9LITE_SYNTHETIC" in err, err
        assert "Traceback" not in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_row4_synthetic_set_is_written_into_a_new_or_empty_folder_and_rewritten_there(tmp_path):
    from yolov9lite.data import make_synthetic

    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (tmp_path / "new", empty):
        yaml_path = make_synthetic(root, num_train=2, num_val=1, imgsz=64)
        assert yaml_path.is_file() and (root / ".yolov9lite-synthetic").is_file()
        make_synthetic(root, num_train=3, num_val=1, imgsz=64)  # other parameters: rewritten
        assert len(list((root / "images" / "train").glob("*.jpg"))) == 3
    legacy = tmp_path / "legacy"  # a set written before the mark existed: its manifest counts
    make_synthetic(legacy, num_train=2, num_val=1, imgsz=64)
    (legacy / ".yolov9lite-synthetic").unlink()
    make_synthetic(legacy, num_train=2, num_val=1, imgsz=64, force=True)


def test_row9_scratch_folder_never_wipes_a_folder_vouched_for_by_a_symlink(tmp_path):
    from yolov9lite.utils.runtime import SCRATCH_MARK, scratch_folder

    real_mark = tmp_path / "real" / SCRATCH_MARK
    real_mark.parent.mkdir()
    real_mark.write_text("x")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    (victim / SCRATCH_MARK).symlink_to(real_mark)
    with pytest.raises(ValueError, match="not a yolov9lite scratch folder"):
        scratch_folder(victim)
    assert (victim / "thesis.tex").read_text() == "years of work"
    link = tmp_path / "link"  # the folder itself a symlink to a marked folder
    link.symlink_to(real_mark.parent)
    with pytest.raises(ValueError):
        scratch_folder(link)
    assert real_mark.is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (scratch_folder(empty) / SCRATCH_MARK).is_file()  # empty: taken
    assert (scratch_folder(empty) / SCRATCH_MARK).is_file()  # marked: replaced


# ------------------------------------------------------------------------------------- row 8
def write_images(folder: Path, names: list[str], size: tuple[int, int] = (48, 64)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (*size, 3), np.uint8))


@pytest.fixture(scope="module")
def predict_runs(nano_weights, tmp_path_factory):
    """Every `predict` case of this module, in order, in one process (torch imported once):
    (root folder, {case: (exit code, stderr)})."""
    root = tmp_path_factory.mktemp("predict")
    for k in range(3):
        write_images(root / f"src{k}", [f"img{k}.jpg"])
    write_images(root / "bomb", ["ok.jpg"])
    jpeg_declaring(root / "bomb" / "huge.jpg", 30000, 30000)  # row 5
    write_images(root / "mixed", ["a.jpg"])
    for k in range(2):
        cv2.imwrite(str(root / "mixed" / f"anim{k}.png"), np.zeros((8, 8, 3), np.uint8))
        (root / "mixed" / f"anim{k}.png").rename(root / "mixed" / f"anim{k}.gif")
    os.mkfifo(root / "mixed" / "stream.jpg")  # named like an image; reading it would block
    (root / "empty").mkdir()
    (root / "claimed").mkdir()
    (root / "claimed" / "detections.json").write_text("[]")
    common = ["predict", "--weights", str(nano_weights), "--img", "64", "--device", "cpu"]
    out = ["--out", str(root / "out")]
    cases = {
        "first": common + ["--source", str(root / "src0")] + out,
        "second": common + ["--source", str(root / "src1")] + out,
        "third": common + ["--source", str(root / "src2")] + out,
        "exist_ok": common + ["--source", str(root / "src2"), "--exist-ok"] + out,
        "empty": common + ["--source", str(root / "src0"), "--out", str(root / "empty")],
        "claimed": common + ["--source", str(root / "src0"), "--out", str(root / "claimed")],
        "bomb": common + ["--source", str(root / "bomb"), "--out", str(root / "bomb_out")],
        "mixed": common + ["--source", str(root / "mixed"), "--out", str(root / "mixed_out")],
    }
    results = run_cli_cases(list(cases.values()), cwd=root)
    return root, {name: (code, err) for name, (_, code, err) in zip(cases, results)}


def test_row8_predict_runs_never_replace_each_others_results(predict_runs):
    root, runs = predict_runs
    out = root / "out"
    assert [runs[k][0] for k in ("first", "second", "third", "exist_ok")] == [0, 2, 2, 0], runs
    for k in ("second", "third"):
        err = runs[k][1]
        assert "--exist-ok" in err and str(out) in err and "Traceback" not in err
    records = json.loads((out / "detections.json").read_text())
    assert [Path(r["image"]).name for r in records] == ["img2.jpg"]  # asked for: replaced
    # an empty folder made beforehand is fine; a run that claimed a folder keeps it
    assert runs["empty"][0] == 0 and runs["claimed"][0] == 2
    assert json.loads((root / "claimed" / "detections.json").read_text()) == []
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_row8_predict_output_folder_is_claimed_exclusively(tmp_path):
    from yolov9lite.inference.predictor import claim_output_folder
    from yolov9lite.utils.errors import InputError

    folder = tmp_path / "out"
    folder.mkdir()
    assert claim_output_folder(folder, exist_ok=False) == folder  # the first run: claimed
    with pytest.raises(InputError, match="not empty|another run"):
        claim_output_folder(folder, exist_ok=False)  # a run started a moment later
    assert claim_output_folder(folder, exist_ok=True) == folder


# ------------------------------------------------------------------------------------- row 5
def jpeg_declaring(path: Path, width: int, height: int) -> Path:
    """A 16x16 JPEG whose frame header (SOF0) is patched to declare width x height."""
    _, data = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))
    data = bytearray(data.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grey PNG of width x height zeros: tiny file, huge when decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


BOMB_PROBE = """
import json, resource, sys, time
from yolov9lite.data.checks import ImageTooLarge, inspect_image
from yolov9lite.data.dataset import read_image_bgr
from yolov9lite.inference.sources import _to_rgb_array
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = {}
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    shape, problems = inspect_image(path)
    refused = []
    for read in (_to_rgb_array, read_image_bgr):
        try:
            read(path)
        except ImageTooLarge as e:
            refused.append(str(e))
    report[path] = {"scan": [shape, problems], "refused": refused,
                    "seconds": time.perf_counter() - t0}
report["rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(report))
"""


def test_row5_image_bombs_are_refused_from_their_header_in_little_time_and_memory(tmp_path):
    bombs = [jpeg_declaring(tmp_path / "huge.jpg", 30000, 30000),
             png_bomb(tmp_path / "bomb.png", 30000, 30000),
             png_bomb(tmp_path / "big.png", 13000, 13000)]  # passed the scan before: 169 Mpx
    assert bombs[1].stat().st_size < 200_000
    out = subprocess.run([sys.executable, "-c", BOMB_PROBE, *map(str, bombs)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.splitlines()[-1])
    for path in map(str, bombs):
        shape, problems = report[path]["scan"]
        assert shape is None and problems[0][0] == "image too large", problems
        assert len(report[path]["refused"]) == 2 and "Mpx" in report[path]["refused"][0]
        assert report[path]["seconds"] < 2.0, report  # a bound, not a timing claim: decoding
    assert report["rss_mb"] < 300, report  # the 30000^2 JPEG took 8.68 GB and 155 s


def test_row5_predict_skips_a_bomb_with_a_warning_and_goes_on(predict_runs):
    root, runs = predict_runs
    code, err = runs["bomb"]
    assert code == 0 and "huge.jpg" in err and "900 Mpx" in err and "skipped" in err, err
    records = json.loads((root / "bomb_out" / "detections.json").read_text())
    assert [Path(r["image"]).name for r in records] == ["ok.jpg"]


def test_row5_scan_skips_images_above_the_pixel_bound(yolo_split):
    png_bomb(yolo_split / "images" / "train" / "big.png", 13000, 13000)
    records, report, _ = scan_yolo(str(yolo_split / "images" / "train"), 2)
    assert len(records) == 4 and report.counts()["image too large"] == 1
    assert any("13000x13000" in action for _, _, action in report.issues)


# ------------------------------------------------------------------------------------- row 6
def alias_bomb(key: str, levels: int = 9) -> str:
    """~500 bytes of YAML whose `key` expands to 9**9 (387 million) strings."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        p = f"*a{k - 1}"
        lines.append(f"a{k}: &a{k} [{', '.join([p] * 9)}]")
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\n"


ALIAS_PROBE = """
import json, resource, sys, time
from yolov9lite.data.config import DataConfigError, load_data_config
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = {}
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    try:
        load_data_config(path)
        report[path] = ["accepted", 0]
    except DataConfigError as e:
        report[path] = [str(e), time.perf_counter() - t0]
report["rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(report))
"""


def test_row6_yaml_alias_bombs_are_refused_without_expanding(yolo_split, tmp_path):
    files = []
    for key in ("names", "train", "path", "nc", "val_json", "category_ids"):
        text = alias_bomb(key)
        assert len(text) < 700
        if key != "train":
            text += "train: images/train\n"
        if key not in ("names",):
            text += "names: [a, b]\n"
        text += "val: images/train\n"
        path = yolo_split / f"bomb_{key}.yaml"
        path.write_text(text)
        files.append(path)
    out = subprocess.run([sys.executable, "-c", ALIAS_PROBE, *map(str, files)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.splitlines()[-1])
    for key, path in zip(("names", "train", "path", "nc", "val_json", "category_ids"), files):
        message, seconds = report[str(path)]
        assert f"'{key}'" in message and len(message) < 300, message
        assert seconds < 2.0, report
    assert report["rss_mb"] < 300, report
    ((_, code, err),) = run_cli_cases([["train", "--data", str(files[0]), "--epochs", "1",
                                        "--device", "cpu", "--project", str(tmp_path / "r")]],
                                      cwd=tmp_path)
    assert code == 2 and "'names'" in err and "Traceback" not in err, err


def test_row6_names_must_be_scalars(tmp_path):
    from yolov9lite.data.config import DataConfigError, load_data_config

    (tmp_path / "images").mkdir()
    for names in ("[[a, b], c]", "{0: [x], 1: y}", "[{a: 1}]"):
        (tmp_path / "d.yaml").write_text(f"train: images\nval: images\nnames: {names}\n")
        with pytest.raises(DataConfigError, match="'names' must hold plain names"):
            load_data_config(tmp_path / "d.yaml")
    (tmp_path / "d.yaml").write_text("train: images\nval: images\nnames: {0: cat, 1: 7}\n")
    assert load_data_config(tmp_path / "d.yaml")["names"] == ["cat", "7"]


# ------------------------------------------------------------------------- row 10, class 1.5
def test_row10_many_boxes_in_one_image_are_warned_about(yolo_split, caplog):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.2, 0.8, (1500, 2))
    lines = [f"0 {x:.5f} {y:.5f} 0.01 0.01" for x, y in xy]
    (yolo_split / "labels" / "train" / "000001.txt").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        from yolov9lite.data.labels import load_records

        records, report = load_records({"images": str(yolo_split / "images" / "train")}, 2,
                                       "train", use_cache=False)
    assert max(len(r.cls) for r in records) == 1500  # kept: only a warning
    assert report.counts()["many boxes"] == 1
    assert any("many boxes" in m and "000001.jpg" in m and "1500 boxes" in m and "1,000" in m
               for m in caplog.messages)
    assert report.counts()["many boxes"] == 1 and sum(report.counts().values()) == 1


def test_message_a_fractional_class_id_is_not_called_out_of_range(yolo_split):
    (yolo_split / "labels" / "train" / "000001.txt").write_text(
        "1.5 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.3 0.3\n1 0.4 0.4 0.2 0.2\n")
    records, report, _ = scan_yolo(str(yolo_split / "images" / "train"), 2, use_cache=False)
    issues = {kind: action for kind, _, action in report.issues}
    assert issues["non-integer class id"].startswith("dropped 1 boxes with class [1.5]")
    assert issues["class id out of range"].startswith("dropped 1 boxes with class [7]")
    assert [len(r.cls) for r in records] == [1, 1, 1, 1]


# ------------------------------------------------------------------------------------ row 12
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def parameter_cells(notebook: Path) -> tuple[str, str]:
    """(source of the `parameters` cell, source of the cell after it: the check)."""
    cells = json.loads(notebook.read_text())["cells"]
    i = next(k for k, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    return "".join(cells[i]["source"]), "".join(cells[i + 1]["source"])


def run_check_cell(notebook: Path, injected: str, monkeypatch) -> None:
    """Execute the notebook's own check cell as papermill would see it: after the parameters
    cell and (if any) an injected cell."""
    from yolov9lite.report import nbparams

    params, check = parameter_cells(notebook)
    history = [params] + ([f"# Parameters\n{injected}"] if injected else []) + [check]
    monkeypatch.setattr(nbparams, "_cell_history", lambda: history)
    namespace: dict = {}  # as in the kernel: the parameters, then the injected values, then the check
    for cell in history:
        exec(compile(cell, str(notebook), "exec"), namespace)  # noqa: S102 - the notebook's own cells


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_row12_every_notebook_checks_ranges_of_declared_parameters(notebook, monkeypatch):
    import ast

    from yolov9lite.report.nbparams import ParameterError, declared_parameters

    params, check = parameter_cells(notebook)
    call = next(n for n in ast.walk(ast.parse(check)) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "check_parameters")
    ranged = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    names = [n for v in ranged.values() for n in v]
    assert names and set(names) <= set(declared_parameters(params)), notebook
    run_check_cell(notebook, "", monkeypatch)  # the defaults are in range
    first = ranged["positive"][0]
    with pytest.raises(ParameterError, match=f"'{first}' must be"):
        run_check_cell(notebook, f"{first} = 0\n", monkeypatch)


def test_row12_notebook_02_refuses_the_reported_values_naming_them(monkeypatch):
    from yolov9lite.report.nbparams import ParameterError

    nb = ROOT / "notebooks" / "02_reversible_functions.ipynb"
    for injected, needle in (("max_depth = -3", "'max_depth' must be at least 1"),
                             ("toy_steps = 0", "'toy_steps' must be at least 1"),
                             ("mask_ratio = 1.5", "'mask_ratio' must be between 0 and 1"),
                             ("seeds = [0, -1]", "'seeds' must be at least 0 (every entry)")):
        with pytest.raises(ParameterError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            run_check_cell(nb, injected + "\n", monkeypatch)
    run_check_cell(nb, "max_depth = 3\ntoy_steps = 1\nmask_ratio = 1.0\n", monkeypatch)


# ------------------------------------------------------------------------ messages: full disk
def fake_run(folder: Path):
    from types import SimpleNamespace

    weights = folder / "weights"
    weights.mkdir(parents=True)
    state = SimpleNamespace(ema=None, model=None, state_dict=dict)
    return SimpleNamespace(state=state, names=[], cfg=SimpleNamespace(to_dict=dict),
                           last=weights / "last.pt", best=weights / "best.pt")


@pytest.mark.parametrize("failure", ["enospc", "torch"])
def test_message_full_disk_names_the_cause_and_the_best_pt_that_was_written(tmp_path,
                                                                             monkeypatch,
                                                                             failure):
    import errno
    import shutil
    from collections import namedtuple

    import yolov9lite.training.runfolder as C  # save_checkpoint as the run folder calls it
    from yolov9lite.training.config import TrainError
    from yolov9lite.training.runfolder import save_training_checkpoint

    run = fake_run(tmp_path / "exp")
    run.best.write_bytes(b"best of epoch 1")  # best.pt went through, then the disk filled

    def full(path, *args, **kwargs):
        if failure == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 3392")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(C, "save_checkpoint", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(TrainError) as info:
        save_training_checkpoint(run, run.last)
    message = str(info.value)
    assert "no space left on device" in message.lower(), message
    assert "no checkpoint was written" not in message
    assert str(run.best) in message and "was written" in message
    # with the previous epoch's last.pt on disk, the message says how to resume
    run.last.write_bytes(b"epoch 1")
    with pytest.raises(TrainError, match="resume with --resume"):
        save_training_checkpoint(run, run.last)


# ------------------------------------------------------------------------- messages: SIGTERM
def test_message_sigterm_is_handled_like_ctrl_c(tmp_path):
    import signal
    import time

    from yolov9lite.data import make_synthetic

    data = make_synthetic(tmp_path / "d", num_train=8, num_val=4, imgsz=64, seed=1)
    argv = [sys.executable, "-m", "yolov9lite", "train", "--data", str(data), "--project",
            str(tmp_path / "runs"), "--epochs", "200", "--quiet", "--no-tensorboard",
            "--no-plots", "--img", "64", "--batch", "4", "--max-batches", "1", "--workers", "0",
            "--device", "cpu", "--warmup-epochs", "0", "--close-mosaic", "0",
            "--model", "gelan-nano"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert err.strip().endswith(f"yolov9lite train: terminated (SIGTERM); interrupted; resume "
                                f"with yolov9lite train --resume {last}"), err[-2000:]
    assert "Traceback" not in err
    assert not (tmp_path / "runs" / "exp" / "train.lock").exists()


# ------------------------------------------------------------------ messages: --name, at once
def test_message_run_folder_name_is_refused_before_the_dataset_scan(tmp_path, monkeypatch):
    from yolov9lite.data import labels

    scanned = []
    monkeypatch.setattr(labels, "check_images", lambda *a: scanned.append(a) or {})
    from yolov9lite.training.config import TrainConfig, TrainError

    for bad in ("../../escape", "a/b", "..", ""):
        with pytest.raises(TrainError, match="--name .*plain folder name"):
            TrainConfig(name=bad)
    cases = run_cli_cases([
        ["train", "--data", "synthetic", "--name", "../../escape", "--device", "cpu"],
        ["val", "--weights", "missing.pt", "--data", "synthetic", "--name", "../../escape"],
    ], cwd=tmp_path)
    for argv, code, err in cases:
        assert code == 2 and "--name '../../escape'" in err and "plain folder name" in err, err
    assert not (tmp_path / "runs").exists() and not scanned  # nothing generated or scanned


# --------------------------------------------------------- messages: .gif and FIFOs, counted
def test_message_predict_counts_what_it_skips_in_a_source_folder(predict_runs):
    _, runs = predict_runs
    code, err = runs["mixed"]
    assert code == 0, err
    assert "skipped 2 files that are not images or videos (.gif: 2" in err, err
    assert "skipped 1 entries that are not regular files" in err and "stream.jpg" in err, err


def test_message_dataset_scan_counts_files_that_are_not_images(yolo_split, caplog):
    from PIL import Image

    folder = yolo_split / "images" / "train"
    Image.new("RGB", (8, 8)).save(folder / "anim.gif")
    os.mkfifo(folder / "pipe")
    os.mkfifo(folder / "pipe.jpg")
    with caplog.at_level(logging.WARNING, logger="yolov9lite.data"):
        records, report, _ = scan_yolo(str(folder), 2, use_cache=False)
        report.log()
    assert len(records) == 4
    assert any("2 files are not images" in m and ".gif: 1" in m and "(no suffix): 1" in m
               for m in caplog.messages), caplog.messages
    assert report.counts()["missing image"] == 1  # pipe.jpg: "skipped (not a file)"
