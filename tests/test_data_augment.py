"""Augmentations (shapes, bounds, determinism), rect batch shapes, collate layout, loader."""

import math

import cv2
import numpy as np
import pytest
import torch

from yolov9lite.data import (
    HYP_SCRATCH_HIGH,
    Hyp,
    augment_hsv,
    build_dataloader,
    build_dataset,
    collate,
    copy_paste,
    flip_lr,
    letterbox,
    make_synthetic,
    mixup,
    mosaic4,
    random_affine,
    rect_batch_shapes,
)
from yolov9lite.data.instances import Instances, resample_segments


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=24, num_val=11, imgsz=160,
                          seed=2)


def square_instances(boxes, cls=None):
    boxes = np.asarray(boxes, np.float32)
    polys = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
             for x0, y0, x1, y1 in boxes]
    cls = np.zeros(len(boxes), np.int64) if cls is None else np.asarray(cls)
    return Instances(cls, boxes, resample_segments(polys))


def test_letterbox_maps_back_exactly():
    image = np.zeros((50, 100, 3), np.uint8)
    out, (gh, gw), (pw, ph) = letterbox(image, (128, 128))
    assert out.shape == (128, 128, 3) and (gh, gw) == (64 / 50, 128 / 100) and pw == 0
    assert ph == 32 and (out[:32] == 114).all()
    small, gains, pad = letterbox(image, (224, 224), scaleup=False)
    assert gains == (1.0, 1.0) and small.shape == (224, 224, 3) and pad == (62.0, 87.0)


def test_mosaic_affine_keep_boxes_inside_and_are_seeded():
    images = [np.full((80, 120, 3), 40 * k, np.uint8) for k in range(4)]
    labels = [square_instances([[10, 10, 60, 50], [70, 20, 110, 70]], [k, k]) for k in range(4)]

    def run(seed):
        rng = np.random.default_rng(seed)
        canvas, inst = mosaic4(images, labels, 120, rng)
        assert canvas.shape == (240, 240, 3) and len(inst) == 8
        assert (inst.boxes >= 0).all() and (inst.boxes <= 240).all()
        canvas, inst = copy_paste(canvas, inst, 0.5, rng)
        out, inst = random_affine(canvas, inst, HYP_SCRATCH_HIGH, rng, out_hw=(120, 120))
        return out, inst

    a_img, a = run(0)
    b_img, b = run(0)
    assert np.array_equal(a_img, b_img) and np.array_equal(a.boxes, b.boxes)
    assert a_img.shape == (120, 120, 3)
    for seed in range(20):
        _, inst = run(seed)
        w = inst.boxes[:, 2] - inst.boxes[:, 0]
        h = inst.boxes[:, 3] - inst.boxes[:, 1]
        assert (inst.boxes >= 0).all() and (inst.boxes <= 120).all()
        assert (w > 2).all() and (h > 2).all() and len(inst.segments) == len(inst)


def test_copy_paste_mirrors_free_objects_only():
    image = np.zeros((100, 200, 3), np.uint8)
    image[10:30, 20:60] = 200
    inst = square_instances([[20, 10, 60, 30], [130, 60, 190, 95]])
    out, res = copy_paste(image, inst, 1.0, np.random.default_rng(0))
    # the first object's mirror [140, 10, 180, 30] is free; the second's overlaps nothing too
    assert len(res) == 4 and np.allclose(res.boxes[2:], [[140, 10, 180, 30], [10, 60, 70, 95]])
    assert (out[10:30, 140:180] == 200).all() and image[10:30, 140:180].max() == 0
    blocked = square_instances([[20, 10, 60, 30], [135, 5, 185, 35]])
    _, res = copy_paste(image, blocked, 1.0, np.random.default_rng(0))
    assert len(res) == 2  # each mirror lands on the other object: IoA >= 0.3, nothing pasted
    no_segments = Instances(inst.cls, inst.boxes, None)
    same, res = copy_paste(image, no_segments, 1.0, np.random.default_rng(0))
    assert same is image and len(res) == 2


def test_mosaic_canvas_equals_grey_fill_then_tiles():
    """mosaic4 writes grey only where no tile lands; the canvas must equal the plain recipe:
    fill all of it with 114, then paste the four (clipped) tiles."""
    rng = np.random.default_rng(5)
    s = 64
    for trial in range(30):
        shapes = [(int(h), int(w)) for h, w in rng.integers(1, s + 1, (4, 2))]
        shapes[trial % 4] = (s, s)  # some tiles as large as allowed
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
        labels = [Instances.empty() for _ in images]
        canvas, _ = mosaic4(images, labels, s, np.random.default_rng(trial))
        yc, xc = (int(v) for v in np.random.default_rng(trial).uniform(s / 2, 3 * s / 2, 2))
        expected = np.full((2 * s, 2 * s, 3), 114, np.uint8)
        for k, im in enumerate(images):
            h, w = im.shape[:2]
            x0, y0 = (xc - w if k in (0, 2) else xc), (yc - h if k in (0, 1) else yc)
            for dy in range(h):  # pixel rows one by one: a plain, obviously right reference
                y = y0 + dy
                if 0 <= y < 2 * s:
                    xs = np.arange(x0, x0 + w)
                    keep = (xs >= 0) & (xs < 2 * s)
                    expected[y, xs[keep]] = im[dy, keep]
        assert np.array_equal(canvas, expected), trial


def test_copy_paste_in_place_equals_copy():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)
    inst = square_instances([[20, 10, 60, 30], [130, 60, 190, 95], [90, 40, 120, 80]])
    copied, a = copy_paste(image, inst, 1.0, np.random.default_rng(0))
    own = image.copy()
    in_place, b = copy_paste(own, inst, 1.0, np.random.default_rng(0), inplace=True)
    assert in_place is own and np.array_equal(in_place, copied) and len(a) == len(b) > 3
    assert not np.array_equal(copied, image)  # something was pasted; the input kept


def test_affine_without_segments_and_box_filter():
    image = np.zeros((100, 100, 3), np.uint8)
    inst = Instances(np.array([0, 1]), np.array([[10, 10, 50, 50], [0, 0, 2, 90]], np.float32))
    hyp = Hyp(scale=0.0, translate=0.0)  # identity warp
    out, res = random_affine(image, inst, hyp, np.random.default_rng(0))
    assert out.shape == image.shape and res.cls.tolist() == [0]  # 2 px wide box filtered
    assert np.allclose(res.boxes, [[10, 10, 50, 50]])


def test_hsv_flip_mixup():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    a = augment_hsv(image, np.random.default_rng(5))
    b = augment_hsv(image, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == image.shape and np.array_equal(a, b)
    assert not np.array_equal(a, image)
    # the official recipe spelled out: per-channel LUTs in OpenCV's HSV, then back to BGR
    r = np.random.default_rng(5).uniform(-1, 1, 3) * [0.015, 0.7, 0.4] + 1
    x = np.arange(256, dtype=np.float32)
    luts = [((x * r[0]) % 180).astype(np.uint8), np.clip(x * r[1], 0, 255).astype(np.uint8),
            np.clip(x * r[2], 0, 255).astype(np.uint8)]
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    channels = [cv2.LUT(hsv[..., k].copy(), luts[k]) for k in range(3)]
    assert np.array_equal(a, cv2.cvtColor(cv2.merge(channels), cv2.COLOR_HSV2BGR))
    inst = Instances(np.array([3]), np.array([[0, 4, 10, 20]], np.float32))
    flipped, fi = flip_lr(image, inst)
    assert np.array_equal(flipped, image[:, ::-1]) and np.allclose(fi.boxes, [[38, 4, 48, 20]])
    mixed, mi = mixup(image, inst, flipped, fi, np.random.default_rng(0))
    assert mixed.shape == image.shape and len(mi) == 2


def test_rect_batch_shape_rule():
    shapes = np.array([[480, 640], [427, 640], [640, 480], [500, 500]], float)
    order = np.argsort(shapes[:, 0] / shapes[:, 1])
    got = rect_batch_shapes(shapes[order], batch_size=2, imgsz=640, pad=0.5)
    # batch 0: ratios 0.667, 0.75 (wide): h = ceil(0.75*20 + .5)*32, w = ceil(20.5)*32
    assert got[0].tolist() == [math.ceil(0.75 * 20 + 0.5) * 32, 672]
    # batch 1: ratios 1.0, 1.333 -> mixed -> square
    assert got[1].tolist() == [672, 672]


def test_val_loader_rect_batches_and_ratio_pad(data_yaml):
    loader = build_dataloader(data_yaml, "val", imgsz=160, batch_size=4, workers=0)
    ds = loader.dataset
    assert not ds.augment and ds.rect and len(ds) == 11
    n = 0
    for b, (images, targets, metas) in enumerate(loader):
        assert images.dtype == torch.uint8 and tuple(images.shape[2:]) == tuple(ds.batch_shapes[b])
        assert images.shape[2] % 32 == 0 and images.shape[3] % 32 == 0
        for k, meta in enumerate(metas):
            rec = ds.records[n + k]
            (gh, gw), (pw, ph) = meta["ratio_pad"]
            t = targets[targets[:, 0] == k][:, 2:].numpy()
            h, w = images.shape[2:]
            x_orig = (t[:, 0] * w - pw) / gw / rec.shape[1]  # normalised cx in the original
            y_orig = (t[:, 1] * h - ph) / gh / rec.shape[0]
            assert np.allclose(x_orig, rec.boxes[:, 0], atol=1e-4)
            assert np.allclose(y_orig, rec.boxes[:, 1], atol=1e-4)
            assert meta["image_id"] == rec.image_id and meta["orig_shape"] == rec.shape
        n += len(images)
    assert n == 11


def test_collate_layout():
    items = [(torch.zeros(3, 8, 8, dtype=torch.uint8), torch.tensor([[1.0, .5, .5, .2, .2]]), {}),
             (torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(0, 5), {}),
             (torch.zeros(3, 8, 8, dtype=torch.uint8), torch.tensor([[2.0, .1, .1, .1, .1]] * 2),
              {})]
    images, targets, metas = collate(items)
    assert images.shape == (3, 3, 8, 8) and len(metas) == 3
    assert targets.shape == (3, 6) and targets[:, 0].tolist() == [0, 2, 2]
    assert targets[:, 1].tolist() == [1, 2, 2]


def test_train_loader_is_seeded_and_in_bounds(data_yaml):
    def first_batches(seed, workers):
        loader = build_dataloader(data_yaml, "train", imgsz=128, batch_size=4,
                                  workers=workers, seed=seed, persistent_workers=False)
        return [b for _, b in zip(range(2), loader)]

    a, b = first_batches(0, 0), first_batches(0, 0)
    for (ia, ta, _), (ib, tb, _) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ta, tb)
        assert ia.shape == (4, 3, 128, 128) and ia.dtype == torch.uint8
        assert ((ta[:, 2:] >= 0) & (ta[:, 2:] <= 1)).all() and (ta[:, 1] < 6).all()
    c = first_batches(1, 0)
    assert not torch.equal(a[0][0], c[0][0])
    w1, w2 = first_batches(0, 1), first_batches(0, 1)  # one worker process
    assert torch.equal(w1[0][0], w2[0][0]) and torch.equal(w1[1][1], w2[1][1])


def test_set_mosaic_reaches_persistent_workers(data_yaml):
    loader = build_dataloader(data_yaml, "train", imgsz=96, batch_size=2, workers=1,
                              hyp={"mixup": 0.0, "translate": 0.0, "scale": 0.0,
                                   "lr0": 0.01})
    ds = loader.dataset
    assert ds.mosaic and loader.persistent_workers
    next(iter(loader))
    ds.set_mosaic(False)
    _, _, metas = next(iter(loader))  # a new epoch on the same worker process
    # without mosaic each sample is its own letterboxed image: ratio_pad is that image's gain
    gains = [m["ratio_pad"][0] for m in metas]
    assert all(g != (1.0, 1.0) for g in gains) and not ds.mosaic
    assert build_dataset(data_yaml, "val").mosaic is False
