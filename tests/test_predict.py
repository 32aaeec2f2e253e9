"""``predict`` API, its :class:`Results` object, and the ``yolov9lite predict`` CLI.

Most tests plant a model whose output is controlled: it finds the bright rectangle in whatever
letterboxed input it receives and reports it as a detection. predict must then return that
rectangle in the *original* image's pixels, whatever the image size (boxes are rescaled to the
original image, minus pad, divided by the gain, clipped, as in the official ``detect.py``). The
CLI tests swap it in for the checkpoint loader, so they exercise every source kind in seconds.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from yolov9lite import build_model
from yolov9lite.cli.predict import main
from yolov9lite.inference import predictor
from yolov9lite.inference.predictor import predict
from yolov9lite.inference.results import Results
from yolov9lite.weights.checkpoint import save_checkpoint

RECT = (100, 50, 300, 200)  # x1, y1, x2, y2 in the original image


class BrightBoxModel(torch.nn.Module):
    """Outputs one box per image: the bounding box of the bright pixels, score 0.9, class 1.

    The output has the model format (B, 4 + nc, A) with centre-xywh pixel boxes.
    """

    names = ("dark", "bright")

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], 6, 2)
        for i, img in enumerate(x):
            ys, xs = torch.nonzero(img.mean(0) > 0.5, as_tuple=True)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            out[i, :4, 0] = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]).float()
            out[i, 5, 0] = 0.9
        return out


def bright_image(h=383, w=517, rect=RECT):
    img = np.full((h, w, 3), 30, np.uint8)
    x1, y1, x2, y2 = rect
    img[y1:y2, x1:x2] = 230
    return img


def write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


@pytest.fixture
def planted(monkeypatch):
    """The CLI loads BrightBoxModel whatever --weights says."""
    monkeypatch.setattr(predictor, "_resolve_model", lambda weights, device: BrightBoxModel())


def run(args, tmp_path, capsys):
    code = main(["--weights", "w.pt", "--img", "160", "--project", str(tmp_path / "runs"), *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out


# ------------------------------------------------------------------------------------ API
@pytest.mark.parametrize("imgsz", [640, 320, 96])
def test_odd_size_image_boxes_in_original_coordinates(imgsz):
    img = bright_image()  # 517 x 383: odd, not a multiple of 32, landscape
    (res,) = predict(BrightBoxModel(), [img], imgsz=imgsz)
    assert res.shape == (383, 517)
    assert res.classes.tolist() == [1] and res.names == ["bright"]
    assert res.scores.tolist() == pytest.approx([0.9])
    gain = imgsz / 517  # one letterboxed pixel is 1/gain original pixels
    np.testing.assert_allclose(res.boxes[0].numpy(), RECT, atol=1.0 / gain + 0.5)


def test_mixed_sizes_paths_and_pil(tmp_path):
    """A list of images of different sizes and kinds: each result in its own image's pixels."""
    portrait_rect = (10, 200, 50, 420)
    write(tmp_path / "p.png", bright_image(451, 77, portrait_rect))
    images = [bright_image(), str(tmp_path / "p.png"), Image.fromarray(bright_image())]
    results = predict(BrightBoxModel(), images, imgsz=320)
    assert [r.shape for r in results] == [(383, 517), (451, 77), (383, 517)]
    assert results[1].path == str(tmp_path / "p.png")
    for res, rect in zip(results, (RECT, portrait_rect, RECT)):
        np.testing.assert_allclose(res.boxes[0].numpy(), rect, atol=2.5)


def test_real_model_boxes_within_image():
    model = build_model("gelan-nano", 3).eval()
    model.names = ["a", "b", "c"]
    (res,) = predict(model, bright_image(), imgsz=128, conf=0.0)
    n = len(res)
    assert n > 0 and res.boxes.shape == (n, 4) and res.boxes.dtype == torch.float32
    assert res.scores.shape == (n,) and res.classes.dtype == torch.int64
    assert (res.boxes >= 0).all() and (res.boxes[:, [0, 2]] <= 517).all()
    assert (res.boxes[:, [1, 3]] <= 383).all() and set(res.names) <= {"a", "b", "c"}
    # --classes keeps the anchors whose best class is listed; agnostic NMS never adds boxes
    (only,) = predict(model, bright_image(), imgsz=128, conf=0.0, classes=[2])
    assert set(only.classes.tolist()) <= {2}
    assert len(predict(model, bright_image(), imgsz=128, conf=0.0, agnostic_nms=True)[0]) <= n


def test_results_object(tmp_path):
    src = write(tmp_path / "src.jpg", bright_image())
    (res,) = predict(BrightBoxModel(), src, imgsz=320)
    assert isinstance(res, Results) and "1 bright" in repr(res)
    assert res.plot().shape == (383, 517, 3) and res.plot(line_width=5).dtype == np.uint8
    saved = res.save(tmp_path / "out" / "a.jpg")
    assert cv2.imread(str(saved)).shape == (383, 517, 3)
    with pytest.raises(ValueError, match="source image"):
        res.save(src)  # never over the input
    record = json.loads(res.to_json())
    assert record["image"] == str(src) and record["detections"][0]["name"] == "bright"
    (name, crop), = res.crops()
    assert name == "bright" and abs(crop.shape[0] - 150) <= 3 and abs(crop.shape[1] - 200) <= 3
    assert set(res.numpy()) == {"boxes", "scores", "classes", "names"}


# ------------------------------------------------------------------------------------ CLI
def test_cli_real_checkpoint_writes_images_and_json(tmp_path, capsys):
    model = build_model("gelan-nano", 3)
    weights = save_checkpoint(tmp_path / "w.pt", model, names=["a", "b", "c"])
    src = tmp_path / "images"
    write(src / "one.jpg", bright_image())
    write(src / "two.png", bright_image(64, 200, (5, 5, 60, 40)))
    assert main(["--weights", str(weights), "--source", str(src), "--project",
                 str(tmp_path / "runs"), "--img", "128", "--conf", "0.0", "--device", "cpu"]) == 0
    out = tmp_path / "runs" / "exp"
    assert (out / "one.jpg").is_file() and (out / "two.png").is_file()
    assert cv2.imread(str(out / "one.jpg")).shape == (383, 517, 3)
    records = json.loads((out / "detections.json").read_text())
    assert [(r["width"], r["height"]) for r in records] == [(517, 383), (200, 64)]
    det = records[0]["detections"][0]
    assert set(det) == {"box_xyxy", "score", "class", "name"} and det["name"] in "abc"
    (res,) = predict(weights, bright_image(), imgsz=128, conf=0.0)  # same as the API
    assert len(res) == len(records[0]["detections"])


def test_output_folders_increment_and_never_touch_sources(planted, tmp_path, capsys):
    src = tmp_path / "imgs"
    original = write(src / "a.jpg", bright_image()).read_bytes()
    for expected in ("exp", "exp2", "exp3"):
        code, out = run(["--source", str(src)], tmp_path, capsys)
        assert code == 0 and (tmp_path / "runs" / expected / "a.jpg").is_file()
    assert run(["--source", str(src), "--name", "mine"], tmp_path, capsys)[0] == 0
    assert (tmp_path / "runs" / "mine" / "detections.json").is_file()
    # writing into the source folder (the old `--out = --source` accident) is refused
    code, out = run(["--source", str(src), "--out", str(src)], tmp_path, capsys)
    assert code == 2 and "sources are never written to" in out.err
    code, out = run(["--source", str(src), "--project", str(src)], tmp_path, capsys)
    assert code == 2 and out.err.count("\n") == 1
    assert (src / "a.jpg").read_bytes() == original and sorted(src.iterdir()) == [src / "a.jpg"]


def test_glob_and_nested_folder_find_every_image(planted, tmp_path, capsys):
    src = tmp_path / "data"
    for rel in ("a.jpg", "x/b.png", "x/y/c.jpg", "z/a.jpg"):  # a.jpg twice, in two folders
        write(src / rel, bright_image(120, 160, (10, 20, 60, 90)))
    (src / "notes.txt").write_text("not an image")
    assert run(["--source", str(src)], tmp_path, capsys)[0] == 0
    out = tmp_path / "runs" / "exp"
    records = json.loads((out / "detections.json").read_text())
    assert len(records) == 4
    assert (out / "a.jpg").is_file() and (out / "z" / "a.jpg").is_file()  # kept apart
    assert run(["--source", str(src / "x" / "*.png")], tmp_path, capsys)[0] == 0
    assert len(json.loads((tmp_path / "runs" / "exp2" / "detections.json").read_text())) == 1
    assert run(["--source", str(src / "**" / "*.jpg")], tmp_path, capsys)[0] == 0
    assert len(json.loads((tmp_path / "runs" / "exp3" / "detections.json").read_text())) == 3


def test_video_gives_annotated_video_and_per_frame_detections(planted, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    rects = [(10 + 8 * k, 20, 60 + 8 * k, 80) for k in range(6)]  # the box moves right
    for rect in rects:
        writer.write(np.ascontiguousarray(bright_image(120, 160, rect)[..., ::-1]))
    writer.release()
    code, out = run(["--source", str(video), "--save-txt"], tmp_path, capsys)
    assert code == 0 and "6 frames" in out.out
    run_dir = tmp_path / "runs" / "exp"
    capture = cv2.VideoCapture(str(run_dir / "clip.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    records = json.loads((run_dir / "detections.json").read_text())
    assert [r["frame"] for r in records] == list(range(6))
    for record, rect in zip(records, rects):  # mp4v is lossy: a pixel or two of tolerance
        np.testing.assert_allclose(record["detections"][0]["box_xyxy"], rect, atol=3)
    assert len(list((run_dir / "labels").glob("clip_*.txt"))) == 6
    # the API gives the same frames
    assert len(predict(BrightBoxModel(), str(video), imgsz=160)) == 6


def test_save_txt_round_trips_through_the_dataset_reader(planted, tmp_path, capsys):
    from yolov9lite.data import dataset_to_coco, load_data_config

    rects = {"im1": (12, 30, 90, 70), "im2": (100, 8, 150, 110)}
    src = tmp_path / "ds" / "images" / "val"
    for stem, rect in rects.items():
        write(src / f"{stem}.png", bright_image(120, 160, rect))
    code, _ = run(["--source", str(src), "--save-txt", "--save-crop"], tmp_path, capsys)
    assert code == 0
    run_dir = tmp_path / "runs" / "exp"
    assert len(list((run_dir / "crops" / "bright").glob("*.jpg"))) == 2
    # the label files next to the images, as a YOLO dataset: our reader must see the same boxes
    labels = tmp_path / "ds" / "labels" / "val"
    labels.mkdir(parents=True)
    for txt in (run_dir / "labels").glob("*.txt"):
        (labels / txt.name).write_text(txt.read_text())
    cfg = load_data_config({"path": str(tmp_path / "ds"), "train": "images/val",
                            "val": "images/val", "names": ["dark", "bright"]})
    coco = dataset_to_coco(cfg, "val")
    detections = json.loads((run_dir / "detections.json").read_text())
    by_file = {img["file_name"]: img["id"] for img in coco["images"]}
    for record in detections:
        name = record["image"].rsplit("/", 1)[-1]
        (ann,) = [a for a in coco["annotations"] if a["image_id"] == by_file[name]]
        x1, y1, x2, y2 = record["detections"][0]["box_xyxy"]
        assert ann["category_id"] == 1
        np.testing.assert_allclose(ann["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.01)


def test_unreadable_file_is_skipped_and_json_still_written(planted, tmp_path, capsys):
    src = tmp_path / "imgs"
    write(src / "good.jpg", bright_image())
    (src / "broken.jpg").write_bytes(b"not a jpeg at all")
    code, out = run(["--source", str(src)], tmp_path, capsys)
    assert code == 0 and "broken.jpg" in out.err and "skipped" in out.err
    records = json.loads((tmp_path / "runs" / "exp" / "detections.json").read_text())
    assert [r["image"].rsplit("/", 1)[-1] for r in records] == ["good.jpg"]


@pytest.mark.parametrize("source, message", [
    ("https://example.com/bus.jpg", "network streams and URLs are not supported"),
    ("rtsp://camera.local/stream", "network streams and URLs are not supported"),
    ("7", "no webcam 7"),
    ("does/not/exist.jpg", "no such file or folder"),
])
def test_unavailable_sources_give_one_line(planted, tmp_path, capsys, source, message):
    code, out = run(["--source", source], tmp_path, capsys)
    assert code == 2 and message in out.err
    assert out.err.startswith("yolov9lite predict: error:") and out.err.count("\n") == 1


def test_cli_without_weights_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--source", str(tmp_path)])
    assert exc.value.code == 2 and "--weights" in capsys.readouterr().err
    assert main(["--weights", str(tmp_path / "nope.pt"), "--source", str(tmp_path),
                 "--project", str(tmp_path / "runs")]) == 2
