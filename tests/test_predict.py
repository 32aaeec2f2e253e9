"""``predict`` API and ``yolov9lite predict`` CLI (issue 6).

The coordinate test plants a model whose output is controlled: it finds the bright rectangle in
whatever letterboxed input it receives and reports it as a detection. predict must then return
that rectangle in the *original* image's pixels, whatever the image size (spec Section 5: boxes are
rescaled to the original image, minus pad, divided by the gain, clipped).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from yolov9lite import build_model
from yolov9lite.checkpoint import save_checkpoint
from yolov9lite.predict import main, predict

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


@pytest.mark.parametrize("imgsz", [640, 320, 96])
def test_odd_size_image_boxes_in_original_coordinates(imgsz):
    img = bright_image()  # 517 x 383: odd, not a multiple of 32, landscape
    (res,) = predict(BrightBoxModel(), [img], imgsz=imgsz)
    assert res["shape"] == (383, 517)
    assert res["classes"].tolist() == [1] and res["names"] == ["bright"]
    assert res["scores"] == pytest.approx([0.9])
    gain = imgsz / 517  # one letterboxed pixel is 1/gain original pixels
    np.testing.assert_allclose(res["boxes"][0], RECT, atol=1.0 / gain + 0.5)


def test_mixed_sizes_paths_and_pil(tmp_path):
    """A list of images of different sizes and kinds: each result in its own image's pixels."""
    portrait_rect = (10, 200, 50, 420)
    portrait = bright_image(451, 77, portrait_rect)
    cv2.imwrite(str(tmp_path / "p.png"), portrait[..., ::-1])
    images = [bright_image(), str(tmp_path / "p.png"), Image.fromarray(bright_image())]
    results = predict(BrightBoxModel(), images, imgsz=320)
    assert [r["shape"] for r in results] == [(383, 517), (451, 77), (383, 517)]
    assert results[1]["path"] == str(tmp_path / "p.png")
    for res, rect in zip(results, (RECT, portrait_rect, RECT)):
        np.testing.assert_allclose(res["boxes"][0], rect, atol=2.5)


def test_real_model_boxes_within_image():
    model = build_model("gelan-nano", 3).eval()
    model.names = ["a", "b", "c"]
    (res,) = predict(model, bright_image(), imgsz=128, conf=0.0)
    n = len(res["boxes"])
    assert n > 0 and res["boxes"].shape == (n, 4) and res["boxes"].dtype == np.float32
    assert res["scores"].shape == (n,) and res["classes"].dtype == np.int64
    assert (res["boxes"] >= 0).all() and (res["boxes"][:, [0, 2]] <= 517).all()
    assert (res["boxes"][:, [1, 3]] <= 383).all() and set(res["names"]) <= {"a", "b", "c"}


def test_cli_writes_images_and_json(tmp_path, capsys):
    model = build_model("yolov9-nano", 3)  # with aux branch: predict deploys it on load
    weights = save_checkpoint(tmp_path / "w.pt", model, names=["a", "b", "c"])
    src = tmp_path / "images"
    src.mkdir()
    cv2.imwrite(str(src / "one.jpg"), bright_image())
    cv2.imwrite(str(src / "two.png"), bright_image(64, 200, (5, 5, 60, 40)))
    out = tmp_path / "out"
    assert main(["--weights", str(weights), "--source", str(src), "--out", str(out),
                 "--img", "128", "--conf", "0.0"]) == 0
    assert (out / "one.jpg").is_file() and (out / "two.png").is_file()
    assert cv2.imread(str(out / "one.jpg")).shape == (383, 517, 3)
    records = json.loads((out / "detections.json").read_text())
    assert [(r["width"], r["height"]) for r in records] == [(517, 383), (200, 64)]
    det = records[0]["detections"][0]
    assert set(det) == {"box_xyxy", "score", "class", "name"} and det["name"] in "abc"
    # same detections as the API on the in-memory model
    (res,) = predict(weights, bright_image(), imgsz=128, conf=0.0)
    assert len(res["boxes"]) == len(records[0]["detections"])


def test_cli_without_weights_explains(tmp_path, capsys):
    assert main(["--source", str(tmp_path)]) == 2
    assert "--weights is required" in capsys.readouterr().err
    assert main(["--weights", str(tmp_path / "nope.pt"), "--source", str(tmp_path)]) == 1
