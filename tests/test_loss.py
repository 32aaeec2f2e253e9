"""IoU / CIoU / DFL on hand-computed cases, target padding, and DetectionLoss behaviour."""
import math

import pytest
import torch
from helpers import count_host_syncs

from yolov9lite.nn.head import DDetect, DualDDetect
from yolov9lite.training.loss import DetectionLoss, dfl_loss, pad_targets
from yolov9lite.utils.boxes import bbox2dist, box_ciou, box_iou, xywh2xyxy

NC = 3
CH = (8, 16, 16)


# --- boxes ----------------------------------------------------------------------------------------


def test_iou_hand_cases():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    assert box_iou(a, a).item() == pytest.approx(1.0, abs=1e-6)
    assert box_iou(a, torch.tensor([1.0, 0.0, 3.0, 2.0])).item() == pytest.approx(2 / 6, abs=1e-6)
    assert box_iou(a, torch.tensor([5.0, 5.0, 6.0, 6.0])).item() == 0.0
    assert box_iou(a, torch.tensor([0.0, 0.0, 1.0, 1.0])).item() == pytest.approx(1 / 4, abs=1e-6)
    # broadcasting: (2, 1, 4) x (1, 3, 4) -> (2, 3)
    assert box_iou(torch.rand(2, 1, 4), torch.rand(1, 3, 4)).shape == (2, 3)


def test_ciou_hand_cases():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    assert box_ciou(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # same shape, shifted by 1: v = 0, CIoU = IoU - rho^2 / c^2 = 1/3 - 1 / (3^2 + 2^2)
    b = torch.tensor([1.0, 0.0, 3.0, 2.0])
    assert box_ciou(a, b).item() == pytest.approx(1 / 3 - 1 / 13, abs=1e-6)
    # concentric 2x1 and 1x2: IoU 1/3, rho = 0, v = 4/pi^2 (atan 2 - atan 1/2)^2
    wide, tall = torch.tensor([-1.0, -0.5, 1.0, 0.5]), torch.tensor([-0.5, -1.0, 0.5, 1.0])
    iou = 1 / 3
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(0.5)) ** 2
    alpha = v / (1 - iou + v)
    assert box_ciou(wide, tall).item() == pytest.approx(iou - alpha * v, abs=1e-6)
    # disjoint boxes: negative (distance penalty), symmetric
    c = torch.tensor([4.0, 0.0, 6.0, 2.0])
    assert box_ciou(a, c).item() == pytest.approx(0 - 16 / 40, abs=1e-6)
    assert box_ciou(c, a).item() == pytest.approx(box_ciou(a, c).item(), abs=1e-7)


def test_ciou_alpha_has_no_gradient():
    """alpha is a constant for the gradient (DIoU paper); d(1 - CIoU) pushes boxes together."""
    a = torch.tensor([0.0, 0.0, 2.0, 1.0], requires_grad=True)
    b = torch.tensor([1.0, 0.0, 3.0, 2.0])
    (1 - box_ciou(a, b)).backward()
    assert a.grad[0] < 0 and a.grad[2] < 0  # moving right (toward b) lowers the loss


def test_xywh2xyxy_and_bbox2dist_clamp():
    assert xywh2xyxy(torch.tensor([5.0, 4.0, 2.0, 6.0])).tolist() == [4.0, 1.0, 6.0, 7.0]
    anchor = torch.tensor([10.0, 10.0])
    d = bbox2dist(anchor, torch.tensor([7.5, -20.0, 12.0, 11.0]), 14.99)
    assert d.tolist() == pytest.approx([2.5, 14.99, 2.0, 1.0])
    assert bbox2dist(anchor, torch.tensor([11.0, 0.0, 12.0, 11.0]), 14.99)[0] == 0  # anchor outside


def test_dfl_hand_cases():
    uniform = torch.zeros(16)
    for t in (0.0, 3.25, 14.99):
        assert dfl_loss(uniform, torch.tensor(t)).item() == pytest.approx(math.log(16), abs=1e-5)
    logits = torch.arange(16.0) * 0.1
    logp = logits.log_softmax(0)
    # integer target: all weight on that bin
    assert dfl_loss(logits, torch.tensor(3.0)).item() == pytest.approx(-logp[3].item(), abs=1e-6)
    # 3.25: 0.75 on bin 3, 0.25 on bin 4
    want = -(0.75 * logp[3] + 0.25 * logp[4]).item()
    assert dfl_loss(logits, torch.tensor(3.25)).item() == pytest.approx(want, abs=1e-6)
    # a distribution sharp on bins 3 and 4 (in the right ratio) beats a flat one
    sharp = torch.full((16,), -20.0)
    sharp[3], sharp[4] = math.log(0.75), math.log(0.25)
    assert dfl_loss(sharp, torch.tensor(3.25)) < dfl_loss(uniform, torch.tensor(3.25))


def test_pad_targets_layout():
    t = torch.tensor([[1, 2, 0.5, 0.5, 0.5, 0.25],
                      [0, 1, 0.25, 0.5, 0.5, 0.5],
                      [1, 0, 0.75, 0.25, 0.25, 0.25]])
    labels, boxes, mask = pad_targets(t, batch_size=3, image_wh=(64, 32), num_classes=3)
    assert labels.tolist() == [[1, 0], [2, 0], [0, 0]]
    assert mask.tolist() == [[True, False], [True, True], [False, False]]
    # image 1 keeps its row order; pixels: x * 64, y * 32
    assert boxes[1, 0].tolist() == [16.0, 12.0, 48.0, 20.0]
    assert boxes[0, 0].tolist() == [0.0, 8.0, 32.0, 24.0]
    assert boxes[2].abs().sum() == 0
    labels, boxes, mask = pad_targets(t[:0], batch_size=2, image_wh=(64, 64), num_classes=3)
    assert boxes.shape == (2, 0, 4) and mask.shape == (2, 0)


# --- DetectionLoss --------------------------------------------------------------------------------


def feats(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // s, size // s, generator=g) for c, s in zip(CH, (8, 16, 32))]


def targets():
    return torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.3],
                         [0, 2, 0.3, 0.3, 0.2, 0.2],
                         [1, 0, 0.7, 0.6, 0.5, 0.5],
                         [1, 2, 0.6, 0.6, 0.05, 0.05]])


@pytest.fixture
def dual():
    torch.manual_seed(0)
    return DualDDetect(NC, CH, CH).train()


def test_single_and_dual_head_shapes_and_scaling(dual):
    head = DDetect(NC, CH).train()
    preds = head(feats())
    loss, items = DetectionLoss(head)(preds, targets())
    assert loss.ndim == 0 and items.shape == (3,) and not items.requires_grad
    assert torch.allclose(loss, items.sum() * 2)  # x batch_size
    loss4, _ = DetectionLoss(head, world_size=4)(preds, targets())
    assert torch.allclose(loss4, 4 * loss)
    loss, items = DetectionLoss(dual)(dual(feats(), feats(seed=1)), targets())
    assert torch.isfinite(loss) and (items > 0).all()


def test_aux_weight_and_gains(dual):
    preds = dual(feats(), feats(seed=1))
    t = targets()
    aux_only = DetectionLoss(dual.aux)(preds[0], t)[1]
    main_only = DetectionLoss(dual.main)(preds[1], t)[1]
    for w in (0.0, 0.25, 1.0):
        items = DetectionLoss(dual, aux_weight=w)(preds, t)[1]
        assert torch.allclose(items, w * aux_only + main_only, atol=1e-5)
    gains = DetectionLoss(dual, box_gain=1, cls_gain=1, dfl_gain=1)(preds, t)[1]
    default = DetectionLoss(dual)(preds, t)[1]
    assert torch.allclose(default, gains * torch.tensor([7.5, 0.5, 1.5]), atol=1e-5)


def test_lead_head_guided(dual):
    t = targets()
    same = dual.main.forward_maps(feats())
    preds = [same, same]  # identical heads: one assignment or two give the same loss
    assert torch.allclose(DetectionLoss(dual, lead_head_guided=True)(preds, t)[0],
                          DetectionLoss(dual)(preds, t)[0])
    preds = dual(feats(), feats(seed=1))
    lhg = DetectionLoss(dual, lead_head_guided=True)(preds, t)[1]
    assert not torch.allclose(lhg, DetectionLoss(dual)(preds, t)[1])
    # the main head's part is the same either way; only the auxiliary head's targets change
    main_only = DetectionLoss(dual, aux_weight=0.0, lead_head_guided=True)(preds, t)[1]
    assert torch.allclose(main_only, DetectionLoss(dual, aux_weight=0.0)(preds, t)[1])


def test_empty_images_and_crowds(dual):
    preds = dual(feats(), feats(seed=1))
    loss_fn = DetectionLoss(dual)
    loss, items = loss_fn(preds, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    grads = torch.autograd.grad(loss, [m for ms in preds for m in ms])
    assert all(torch.isfinite(g).all() for g in grads)
    # 300 objects in image 0, image 1 empty
    g = torch.Generator().manual_seed(0)
    wh = torch.rand(300, 2, generator=g) * 0.3 + 0.01
    xy = torch.rand(300, 2, generator=g) * (1 - wh) + wh / 2
    crowd = torch.cat((torch.zeros(300, 1), torch.randint(0, NC, (300, 1), generator=g), xy, wh), 1)
    loss, items = loss_fn(preds, crowd)
    assert torch.isfinite(loss) and (items > 0).all()


def test_gradients_match_finite_differences():
    """Gradient checks in float64.

    The loss is *not* differentiated through the assignment (soft targets, norm) nor through
    CIoU's alpha: both are constants by design (official code). So we check DFL and CIoU on their
    own, and the whole head loss with the assignment frozen.
    """
    logits = torch.randn(5, 4, 16, dtype=torch.float64, requires_grad=True)
    target = torch.rand(5, 4, dtype=torch.float64) * 14.99
    assert torch.autograd.gradcheck(lambda x: dfl_loss(x, target), (logits,))
    # CIoU: exact where the aspect ratios match (v = 0, so the dropped alpha term vanishes)
    box = torch.tensor([0.0, 0.0, 2.0, 1.0], dtype=torch.float64, requires_grad=True)
    other = torch.tensor([1.0, 0.5, 5.0, 2.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda b: box_ciou(b, other), (box,))

    from yolov9lite.nn.head import make_anchors
    from yolov9lite.training.loss import decode_boxes, head_loss, split_maps
    head = DDetect(NC, CH).double().train()
    maps = [p.detach().requires_grad_() for p in head([f.double() for f in feats(batch=1)])]
    points, stride = make_anchors(maps, head.strides)
    loss_fn = DetectionLoss(head)
    gt = pad_targets(targets()[:2].double(), 1, (64, 64), NC)

    def cls_dfl(ms, frozen=None):
        dist, logits = split_maps(ms, 16, NC)
        boxes = decode_boxes(dist, points, 16)
        frozen = frozen or loss_fn._assign(logits, boxes, points * stride, stride, gt)
        return head_loss(dist, logits, boxes, points, stride, frozen, 16, 10 * gt[1].shape[1])[1:].sum(), frozen

    value, frozen = cls_dfl(maps)
    assert frozen.fg.any()
    grads = torch.autograd.grad(value, maps)
    g = torch.Generator().manual_seed(3)
    d = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in maps]
    h = 1e-6
    plus = cls_dfl([p + h * di for p, di in zip(maps, d)], frozen)[0]
    minus = cls_dfl([p - h * di for p, di in zip(maps, d)], frozen)[0]
    numeric = ((plus - minus) / (2 * h)).item()
    analytic = sum((gi * di).sum() for gi, di in zip(grads, d)).item()
    assert numeric == pytest.approx(analytic, rel=1e-4)


def test_loss_decreases_as_predictions_move_toward_targets():
    """Plain gradient descent on the raw maps lowers every part of the loss."""
    torch.manual_seed(0)
    head = DDetect(NC, CH).train()
    preds = [p.detach().requires_grad_() for p in head(feats(batch=2))]
    loss_fn = DetectionLoss(head)
    t = targets()
    opt = torch.optim.SGD(preds, lr=0.5)
    history = []
    for _ in range(30):
        loss, items = loss_fn(preds, t)
        history.append(items)
        opt.zero_grad()
        loss.backward()
        opt.step()
    first, last = history[0], history[-1]
    assert (last < 0.85 * first).all(), (first, last)
    totals = torch.stack(history).sum(1)
    assert (totals[1:] < totals[:-1]).float().mean() > 0.9  # (almost) every step lowers it
    # a step along the negative gradient lowers the loss (first-order check)
    loss, _ = loss_fn(preds, t)
    grads = torch.autograd.grad(loss, preds)
    with torch.no_grad():
        stepped = [p - 1e-3 * g for p, g in zip(preds, grads)]
    assert loss_fn(stepped, t)[0] < loss


@pytest.mark.parametrize("bad, message", [
    ([0, 3, 0.5, 0.5, 0.1, 0.1], "class id"),
    ([0, 1.5, 0.5, 0.5, 0.1, 0.1], "class id"),
    ([0, 1, float("nan"), 0.5, 0.1, 0.1], "non-finite"),
    ([0, 1, 0.5, 0.5, -0.1, 0.1], "negative width or height"),
    ([2, 1, 0.5, 0.5, 0.1, 0.1], "image index"),
])
def test_bad_targets_fail_with_a_message(dual, bad, message):
    preds = dual(feats(), feats(seed=1))
    t = torch.cat((targets(), torch.tensor([bad])))
    with pytest.raises(ValueError, match=message) as err:
        DetectionLoss(dual)(preds, t)
    assert "row 4" in str(err.value)


def test_bad_shapes(dual):
    preds = dual(feats(), feats(seed=1))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        DetectionLoss(dual)(preds, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="aux_maps, main_maps"):
        DetectionLoss(dual)(preds[1], targets())
    with pytest.raises(ValueError, match="4\\*reg_max"):
        DetectionLoss(DDetect(NC + 1, CH))(preds[1], targets())


def test_validate_off_skips_checks(dual):
    preds = dual(feats(), feats(seed=1))
    a = DetectionLoss(dual, validate=False)(preds, targets())[0]
    assert torch.allclose(a, DetectionLoss(dual)(preds, targets())[0])


def test_with_built_model():
    yolov9lite = pytest.importorskip("yolov9lite")
    try:
        model = yolov9lite.build_model("yolov9-nano", num_classes=NC).train()
    except (ValueError, ImportError, AttributeError) as e:  # preset not available in this build
        pytest.skip(f"yolov9-nano: {e}")
    loss_fn = yolov9lite.DetectionLoss(model)
    assert loss_fn.dual
    loss, _ = loss_fn(model(torch.rand(2, 3, 64, 64)), targets())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_one_host_sync_per_call(dual, monkeypatch):
    """CPU proxy for GPU host syncs: count the Tensor -> Python conversions during one call.

    The only one should be the ``tolist`` that reads the padded box count M (with the
    validation flags fused into it)."""
    preds = [[m.detach().requires_grad_() for m in ms] for ms in dual(feats(), feats(seed=1))]
    calls = count_host_syncs(monkeypatch)
    bool(torch.ones(()))  # the spy sees conversions
    assert calls == ["__bool__"]
    for lead_head_guided in (False, True):
        calls.clear()
        loss, _ = DetectionLoss(dual, lead_head_guided=lead_head_guided)(preds, targets())
        loss.backward()
        assert calls == ["tolist"]
