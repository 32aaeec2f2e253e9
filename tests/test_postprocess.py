"""Tests of NMS and box scaling (yolov9lite/evaluation/postprocess.py; official utils/general.py)."""
from __future__ import annotations

import pytest
import torch
import torchvision

from yolov9lite.evaluation.postprocess import (
    EndToEnd,
    nms_static,
    non_max_suppression,
    scale_boxes,
)
from yolov9lite.utils.boxes import xywh2xyxy, xyxy2xywh


def raw(boxes_xywh, scores):
    """Build a (1, 4 + nc, A) head output from per-anchor boxes (A, 4) and scores (A, nc)."""
    return torch.cat((torch.as_tensor(boxes_xywh, dtype=torch.float),
                      torch.as_tensor(scores, dtype=torch.float)), 1).T[None]


def random_pred(b=2, nc=5, a=600, seed=0, grid=0.25):
    """Random clustered boxes on a 1/4-px grid (exact in float32 even after the class offset, so
    IoUs are computed identically by every NMS variant) and random class scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(b, 8, 2, generator=g) * 600 + 20
    cxy = centres[:, torch.randint(0, 8, (a,), generator=g)] + torch.randn(b, a, 2, generator=g) * 6
    wh = torch.rand(b, a, 2, generator=g) * 80 + 10
    xywh = torch.round(torch.cat((cxy, wh), -1) / grid) * grid
    scores = torch.rand(b, a, nc, generator=g) ** 3
    return torch.cat((xywh, scores), -1).transpose(1, 2)


def test_box_format_round_trip():
    xywh = torch.tensor([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 2.0, 4.0]])
    xyxy = xywh2xyxy(xywh)
    assert xyxy.tolist() == [[40.0, 35.0, 60.0, 45.0], [-1.0, -2.0, 1.0, 2.0]]
    assert torch.equal(xyxy2xywh(xyxy), xywh)
    batch = torch.rand(3, 7, 4)  # any leading shape
    assert torch.allclose(xyxy2xywh(xywh2xyxy(batch)), batch, atol=1e-6)


def test_multi_label_keeps_every_class_above_conf():
    # one anchor, two classes above conf: two detections with the same box (multi-label)
    pred = raw([[100, 100, 50, 50]], [[0.8, 0.3, 0.0005]])
    (det,) = non_max_suppression(pred)
    assert det.shape == (2, 6)
    assert det[:, 5].tolist() == [0.0, 1.0] and det[:, 4].tolist() == pytest.approx([0.8, 0.3])
    assert det[0, :4].tolist() == [75, 75, 125, 125]
    (det,) = non_max_suppression(pred, multi_label=False)  # best class only
    assert det[:, 5].tolist() == [0.0]


def test_suppression_is_per_class():
    boxes = [[100, 100, 50, 50], [102, 101, 50, 50], [300, 300, 40, 40]]
    # anchors 0 and 1 overlap (IoU ~ 0.9); same class -> one kept; different class -> both kept
    same = raw(boxes, [[0.9, 0], [0.8, 0], [0.7, 0]])
    (det,) = non_max_suppression(same)
    assert det[:, 4].tolist() == pytest.approx([0.9, 0.7])
    diff = raw(boxes, [[0.9, 0], [0, 0.8], [0.7, 0]])
    (det,) = non_max_suppression(diff)
    assert det[:, 4].tolist() == pytest.approx([0.9, 0.8, 0.7])
    (det,) = non_max_suppression(diff, agnostic=True)
    assert det[:, 4].tolist() == pytest.approx([0.9, 0.7])


def test_iou_threshold_is_strict():
    # IoU of [0,0,10,10] and [0,0,10,7] is exactly 0.7 -> kept at iou_thres 0.7 (suppress if >)
    pred = raw([[5, 5, 10, 10], [5, 3.5, 10, 7]], [[0.9], [0.8]])
    assert len(non_max_suppression(pred, iou_thres=0.7)[0]) == 2
    assert len(non_max_suppression(pred, iou_thres=0.69)[0]) == 1


def test_conf_threshold_max_det_and_max_nms():
    pred = random_pred(b=1, a=400, seed=1)
    (det,) = non_max_suppression(pred, conf_thres=0.5, iou_thres=1.0, max_det=10_000)
    scores = pred[0, 4:]
    assert len(det) == int((scores > 0.5).sum())  # iou 1.0: nothing suppressed
    assert bool((det[:, 4] > 0.5).all())
    assert torch.equal(det[:, 4], det[:, 4].sort(descending=True).values)
    (top,) = non_max_suppression(pred, conf_thres=0.5, iou_thres=1.0, max_det=7)
    assert torch.equal(top, det[:7])
    (cut,) = non_max_suppression(pred, conf_thres=0.5, iou_thres=1.0, max_nms=5, max_det=10_000)
    assert torch.equal(cut, det[:5])


def test_empty_and_batch_independence():
    pred = random_pred(b=3, seed=2)
    pred[1, 4:] = 0.0  # image 1: no score above conf
    out = non_max_suppression(pred)
    assert len(out) == 3 and out[1].shape == (0, 6)
    for i in (0, 2):  # each image is processed as if alone
        assert torch.equal(out[i], non_max_suppression(pred[i:i + 1])[0])
        assert 0 < len(out[i]) <= 300


def test_matches_torchvision_batched_nms_and_per_class_loop():
    """The class-offset trick gives exactly what per-class NMS gives (boxes on a 1/4-px grid, so
    no IoU is within float rounding of the threshold). Rows are compared as sets because the
    order of equal scores is arbitrary."""
    pred = random_pred(b=2, nc=5, a=800, seed=3)
    for x, det in zip(pred.transpose(1, 2), non_max_suppression(pred, max_det=10_000)):
        boxes, scores = xywh2xyxy(x[:, :4]), x[:, 4:]
        i, c = (scores > 0.001).nonzero(as_tuple=True)
        b, s = boxes[i], scores[i, c]
        keep = torchvision.ops.batched_nms(b, s, c, 0.7)
        ref = torch.cat((b[keep], s[keep, None], c[keep, None].float()), 1)
        assert sorted(det.tolist()) == sorted(ref.tolist())
        loop = torch.cat([torch.cat((b[c == k][j], s[c == k][j, None],
                                     torch.full((len(j), 1), float(k))), 1)
                          for k in range(5)
                          for j in [torchvision.ops.nms(b[c == k], s[c == k], 0.7)]])
        assert sorted(loop.tolist()) == sorted(det.tolist())
        assert bool((det[1:, 4] <= det[:-1, 4]).all())  # sorted by score


def test_bad_shapes_and_thresholds():
    with pytest.raises(ValueError):
        non_max_suppression(torch.zeros(1, 4, 10))  # no class column
    with pytest.raises(ValueError):
        non_max_suppression(torch.zeros(1, 6, 10), conf_thres=1.5)


def test_scale_boxes_inverts_the_letterbox():
    h0, w0, size = 375, 500, 640
    r = min(size / h0, size / w0)
    nh, nw = round(h0 * r), round(w0 * r)
    ratio_pad = ((nh / h0, nw / w0), ((size - nw) / 2, (size - nh) / 2))
    orig = torch.tensor([[10.0, 20.0, 110.0, 220.0, 0.9, 3.0], [0.0, 0.0, 500.0, 375.0, 0.5, 0.0]])
    (gh, gw), (pw, ph) = ratio_pad
    boxed = orig.clone()
    boxed[:, [0, 2]] = orig[:, [0, 2]] * gw + pw  # forward letterbox
    boxed[:, [1, 3]] = orig[:, [1, 3]] * gh + ph
    back = scale_boxes(boxed, ratio_pad, (h0, w0))
    assert torch.allclose(back, orig, atol=1e-4)
    assert torch.equal(back[:, 4:], orig[:, 4:]) and not torch.equal(boxed, back)  # no in-place
    # without ratio_pad it is derived from the letterboxed shape (single gain, centred)
    assert torch.allclose(scale_boxes(boxed, None, (h0, w0), img_shape=(size, size)), orig,
                          atol=0.2)
    # 0-d tensors as the default collate may produce
    rp_t = tuple(tuple(torch.tensor(v) for v in pair) for pair in ratio_pad)
    assert torch.allclose(scale_boxes(boxed, rp_t, (h0, w0)), back)


def test_scale_boxes_clips_to_the_original_image():
    boxes = torch.tensor([[-30.0, -5.0, 700.0, 500.0]])
    out = scale_boxes(boxes, ((1.0, 1.0), (0.0, 0.0)), (480, 640))
    assert out.tolist() == [[0.0, 0.0, 640.0, 480.0]]
    assert scale_boxes(torch.zeros(0, 6), ((1.0, 1.0), (0.0, 0.0)), (480, 640)).shape == (0, 6)


@pytest.mark.parametrize("multi_label,agnostic,conf,iou", [
    (True, False, 0.25, 0.7), (False, False, 0.25, 0.45), (True, True, 0.5, 0.45),
    (False, True, 0.001, 0.7)])
def test_nms_static_equals_the_list_version(multi_label, agnostic, conf, iou):
    """The fixed-shape, sync-free NMS (for the GPU) keeps exactly the boxes, scores, classes and
    order of non_max_suppression when its budgets suffice, and says so in ``exact``."""
    pred = random_pred(b=3, nc=5, a=160, seed=4)
    pred[1, 4:] = 0.0  # an image without detections
    kwargs = {"conf_thres": conf, "iou_thres": iou, "max_det": 300, "multi_label": multi_label,
              "agnostic": agnostic}
    want = non_max_suppression(pred, **kwargs)
    got = nms_static(pred, **kwargs, max_candidates=400)
    assert got.boxes.shape == (3, 300, 6) and bool(got.exact.all())
    for w, g in zip(want, got.as_list()):
        assert torch.equal(w, g)
    assert got.boxes[1].abs().sum() == 0 and got.count[1] == 0


def test_nms_static_flags_a_too_small_budget():
    pred = random_pred(b=1, nc=5, a=240, seed=5)
    small = nms_static(pred, conf_thres=0.25, multi_label=True, max_candidates=64)
    assert not bool(small.exact[0])
    assert small.count[0] <= 64


def test_end_to_end_module_runs_model_and_nms():
    from yolov9lite import build_model, deploy

    torch.manual_seed(0)
    model = deploy(build_model("gelan-nano", 3)).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        got = EndToEnd(model, conf_thres=0.001, iou_thres=0.7, max_det=50)(x)
        want = nms_static(model(x), 0.001, 0.7, max_det=50)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert got.boxes.shape == (2, 50, 6)
