"""Task-aligned assigner on crafted scenes (yolov9lite.training.assign)."""
import torch

from yolov9lite.nn.head import make_anchors
from yolov9lite.training.assign import assign, candidates_inside, one_box_per_anchor, topk_mask

STRIDES = (8, 16, 32)


def anchors(size=64):
    """Anchor centres in pixels for a size x size image: (A, 2), A = 64 + 16 + 4 at 64."""
    feats = [torch.zeros(1, 1, size // s, size // s) for s in STRIDES]
    points, stride = make_anchors(feats, STRIDES)
    return points * stride


def scene(gt_boxes, gt_labels, pd_boxes=None, nc=3, size=64, score=0.5):
    """One image; predictions default to each anchor predicting a 16x16 box around itself."""
    anc = anchors(size)
    a = anc.shape[0]
    if pd_boxes is None:
        pd_boxes = torch.cat((anc - 8, anc + 8), 1)
    gt = torch.tensor(gt_boxes, dtype=torch.float).view(1, -1, 4)
    labels = torch.tensor(gt_labels).view(1, -1)
    scores = torch.full((1, a, nc), score)
    mask = torch.ones_like(labels, dtype=torch.bool)
    return assign(scores, pd_boxes[None], anc, labels, gt, mask), anc


def test_candidates_strictly_inside():
    anc = torch.tensor([[4.0, 4.0], [12.0, 12.0], [20.0, 4.0], [16.0, 8.0]])
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    # (16, 8) lies on the right edge: r = 0, not > 1e-9
    assert candidates_inside(anc, gt).tolist() == [[[True, True, False, False]]]


def test_topk_mask_picks_largest():
    metric = torch.tensor([[[0.1, 0.9, 0.3, 0.8, 0.0]]])
    assert topk_mask(metric, 2).tolist() == [[[False, True, False, True, False]]]
    assert topk_mask(metric, 10).all()  # k larger than A is clamped


def test_one_box_per_anchor_keeps_highest_overlap():
    mask = torch.tensor([[[True, True, False], [True, False, True]]])  # anchor 0 claimed twice
    overlaps = torch.tensor([[[0.2, 0.5, 0.0], [0.7, 0.0, 0.4]]])
    resolved, gt_index, fg = one_box_per_anchor(mask, overlaps)
    assert resolved.tolist() == [[[False, True, False], [True, False, True]]]
    assert gt_index.tolist() == [[1, 0, 1]]
    assert fg.all()


def test_box_with_no_anchor_inside_gets_nothing():
    # a 3x3 px box between the stride-8 centres (4, 4), (12, 12), ...: no candidate anywhere
    out, _ = scene([[5.0, 5.0, 8.0, 8.0]], [1])
    assert not out.fg.any()
    assert out.scores.abs().sum() == 0


def test_tiny_box_gets_its_single_anchor():
    # 2x2 px box around the anchor centre (12, 4): exactly one candidate, so one positive
    out, anc = scene([[11.0, 3.0, 13.0, 5.0]], [2])
    assert out.fg.sum() == 1
    a = out.fg[0].nonzero().item()
    assert anc[a].tolist() == [12.0, 4.0]
    assert out.labels[0, a] == 2
    assert out.scores[0, a, 2] > 0 and out.scores[0, a, [0, 1]].abs().sum() == 0


def test_huge_box_gets_topk_best_aligned_anchors():
    anc = anchors()
    # every anchor predicts the whole image except for a jitter that makes the CIoU differ
    jitter = torch.linspace(0, 20, anc.shape[0])[:, None]
    pd = torch.tensor([[0.0, 0.0, 64.0, 64.0]]) + torch.cat((jitter, jitter, -jitter, -jitter), 1) * 0.5
    out, _ = scene([[0.0, 0.0, 64.0, 64.0]], [0], pd_boxes=pd)
    assert out.fg.sum() == 10  # top-k = 10 of 84 candidates
    assert out.fg[0, :10].all()  # smallest jitter = best CIoU = best metric
    # normalised soft target: the best anchor gets max CIoU of the box over its positives
    best_iou = out.scores[0, 0, 0]
    assert torch.isclose(best_iou, out.scores[0].amax())
    assert 0.95 < best_iou <= 1.0


def test_overlapping_boxes_one_box_per_anchor():
    anc = anchors()
    # two overlapping boxes with 7 candidates each (< top-k, so all are positives), 4 shared
    box0, box1 = [0.0, 0.0, 24.0, 16.0], [8.0, 0.0, 32.0, 16.0]
    inside = candidates_inside(anc, torch.tensor([[box0, box1]]))[0]
    assert inside.sum(1).tolist() == [7, 7]
    shared = inside.all(0)
    assert shared.sum() == 4
    for winner, pred in ((1, box1), (0, box0)):  # predictions equal to one box: it wins the CIoU
        out, _ = scene([box0, box1], [0, 1], pd_boxes=torch.tensor(pred).expand(anc.shape[0], 4))
        assert out.fg[0].sum() == 10  # 7 + 7 - 4 shared
        assert (out.gt_index[0][shared] == winner).all()
        assert (out.labels[0][shared] == winner).all()
        # every positive has exactly one non-zero class target, negatives none
        assert ((out.scores[0][out.fg[0]] > 0).sum(-1) == 1).all()
        assert out.scores[0][~out.fg[0]].abs().sum() == 0


def test_soft_targets_normalised_per_box():
    torch.manual_seed(0)
    anc = anchors()
    a = anc.shape[0]
    gt = torch.tensor([[[2.0, 2.0, 30.0, 30.0], [20.0, 20.0, 60.0, 50.0], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, 2, 0]])
    mask = torch.tensor([[True, True, False]])  # third row is padding
    wh = torch.rand(a, 2) * 30 + 4
    pd = torch.cat((anc - wh / 2, anc + wh / 2), 1)[None]
    scores = torch.rand(1, a, 3)
    out = assign(scores, pd, anc, labels, gt, mask)
    assert not (out.gt_index[out.fg] == 2).any()  # padding never assigned
    for g, cls in ((0, 0), (1, 2)):
        pos = out.fg[0] & (out.gt_index[0] == g)
        assert 0 < pos.sum() <= 10
        t = out.scores[0, pos, cls]
        from yolov9lite.utils.boxes import box_ciou
        iou = box_ciou(gt[0, g], pd[0, pos]).clamp(0)
        # the largest soft target of a box equals its largest CIoU over its positives
        assert torch.isclose(t.max(), iou.max(), atol=1e-5)


def test_empty_and_crowded_batches():
    anc = anchors(128)
    a = anc.shape[0]
    # no boxes at all: M = 0
    out = assign(torch.rand(2, a, 4), torch.rand(2, a, 4) * 10, anc, torch.zeros(2, 0, dtype=torch.long),
                 torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert not out.fg.any() and out.scores.shape == (2, a, 4)
    # 300 boxes in image 0, none in image 1
    torch.manual_seed(1)
    xy = torch.rand(2, 300, 2) * 100
    gt = torch.cat((xy, xy + torch.rand(2, 300, 2) * 28 + 2), -1)
    mask = torch.zeros(2, 300, dtype=torch.bool)
    mask[0] = True
    pd = torch.cat((anc - 8, anc + 8), 1).expand(2, a, 4)
    out = assign(torch.rand(2, a, 4), pd, anc, torch.randint(0, 4, (2, 300)), gt, mask)
    assert out.fg[0].sum() > 0 and not out.fg[1].any()
    assert torch.isfinite(out.scores).all()
