"""yolov9lite.study.gradients: the gradient-information measurements of notebook 04 (paper Sec. 4.1)."""
from __future__ import annotations

import pytest
import torch

from yolov9lite import build_model
from yolov9lite.study import gradients as G
from yolov9lite.training.loss import DetectionLoss

NC = 3


def _batch(seed: int, n: int = 2, size: int = 64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    t = torch.tensor([[i, i % NC, 0.5, 0.5, 0.4, 0.3] for i in range(n)], dtype=torch.float32)
    return x, t


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    base = build_model("gelan-nano", num_classes=NC)
    out = {"none": base}
    for pgi in ("ds", "fpn", "icn"):
        out[pgi] = G.copy_main_branch(base, build_model("gelan-nano", num_classes=NC, pgi=pgi))
    return out


def test_stages_cover_the_backbone(models):
    stages = G.backbone_stages(models["none"])
    assert list(stages) == list(G.STAGES)
    n = sum(p.numel() for ps in stages.values() for p in ps)
    assert n == sum(p.numel() for p in models["none"].backbone.parameters())


def test_split_is_exact_and_matches_the_training_loss(models):
    m = models["icn"]
    x, t = _batch(0)
    g = G.backbone_gradients(m, x, t)
    # total = gradient of the official combined loss (main + 0.25 aux)
    params = [p for ps in G.backbone_stages(m).values() for p in ps]
    m.train()
    with G.preserved_buffers(m):
        loss, _ = DetectionLoss(m)(m(x), t)
        ref = torch.cat([q.reshape(-1) for q in torch.autograd.grad(loss, params)])
    ours = torch.cat([g[s]["total"] for s in G.STAGES])
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    assert all(float(g[s]["aux"].norm()) > 0 for s in G.STAGES)


def test_main_gradient_does_not_depend_on_the_aux_branch(models):
    x, t = _batch(1)
    ref = G.backbone_gradient_norms(models["none"], x, t)
    for pgi in ("ds", "fpn", "icn"):
        n = G.backbone_gradient_norms(models[pgi], x, t)
        for s in G.STAGES:
            assert n[s]["main"] == pytest.approx(ref[s]["main"], rel=1e-4)
    assert all(ref[s]["aux"] == 0 for s in G.STAGES)
    assert all(ref[s]["main"] == ref[s]["total"] for s in G.STAGES)


def test_measurements_leave_the_model_unchanged(models):
    m = models["fpn"].eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    G.gradient_agreement(m, [_batch(2), _batch(3)])
    assert not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters())


def test_agreement_of_identical_batches_is_one(models):
    b = _batch(4)
    a = G.gradient_agreement(models["none"], [b, b])
    assert a["all"]["main"] == pytest.approx(1.0, abs=1e-9)  # float64 cosine: any CPU meets it
    assert set(a) == set(G.STAGES) | {"all"}


def test_mean_pairwise_cosine():
    e = torch.eye(3)
    assert G.mean_pairwise_cosine([e[0], e[0], -e[0]]) == pytest.approx(-1 / 3)
    assert G.mean_pairwise_cosine([e[0], e[1]]) == 0
    with pytest.raises(ValueError):
        G.mean_pairwise_cosine([e[0]])


def test_copy_main_branch_rejects_different_main_branches():
    with pytest.raises(ValueError, match="main branches differ"):
        G.copy_main_branch(build_model("gelan-nano", num_classes=NC),
                           build_model("gelan-nano", num_classes=NC, pgi="fpn", depth_elan=1))


def test_leave_one_out_cosine_and_snr():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(50, generator=g, dtype=torch.float64)
    noise = torch.randn(6, 50, generator=g, dtype=torch.float64)
    clean, noisy = signal + 0.01 * noise, signal + 3.0 * noise
    assert G.leave_one_out_cosines(clean).min() > 0.99
    assert G.leave_one_out_cosines(noisy).mean() < 0.5
    assert G.gradient_snr(clean) > 100
    assert G.gradient_snr(noisy) < 1
    assert G.reliability_snr({"main": noisy, "total": clean}) == {
        "snr_main": G.gradient_snr(noisy), "snr_total": G.gradient_snr(clean)}
    with pytest.raises(ValueError):
        G.leave_one_out_cosines(clean[:1])


def test_reliability_rows_and_lookahead_restore_the_weights(models):
    m = models["ds"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    score = lambda net: float(sum(p.double().sum() for p in net.backbone.parameters()))
    rows, g = G.gradient_reliability(m, [_batch(5), _batch(6), _batch(7)], None, score, lr=0.1)
    assert len(rows) == 3 and g["main"].shape == g["total"].shape
    # a step of the same length along different directions: both move the score, then undo
    assert all(r["look_main"] != r["look_before"] for r in rows)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    # the controls: a gradient from part of each batch's losses and the uphill step
    rows, g = G.gradient_reliability(m, [_batch(5, 4), _batch(6, 4), _batch(7, 4)], None, score,
                                     lr=0.1, control_fraction=0.25)
    assert g["part"].shape == g["main"].shape and not torch.equal(g["part"], g["main"])
    assert all(-1 <= r["cos_part"] <= 1 and r["look_uphill"] != r["look_main"] for r in rows)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_gradient_of_the_first_images_is_their_loss_alone(models):
    # the loss of images 0..k-1 of a batch, the forward unchanged: with the other images'
    # targets removed and their predictions dropped, the gradient changes; with k = B it is the
    # full batch's
    m = models["none"]
    x, t = _batch(3, 4)
    full = G.backbone_gradients(m, x, t)["B3"]["main"]
    assert "part" not in G.backbone_gradients(m, x, t)["B3"]
    both = G.backbone_gradients(m, x, t, first=4)["B3"]
    assert torch.equal(both["main"], full) and torch.allclose(both["part"], full, rtol=1e-6)
    one = G.backbone_gradients(m, x, t, first=1)["B3"]
    assert torch.equal(one["main"], full)  # the full batch's gradient is unchanged beside it
    assert one["part"].shape == full.shape and not torch.allclose(one["part"], full)


def test_object_focus_separates_objects_from_its_null():
    feat = torch.zeros(1, 2, 16, 16)
    feat[0, :, 4:8, 4:8] = 1.0  # all energy inside the one box
    targets = torch.tensor([[0, 0, 6 / 16, 6 / 16, 4 / 16, 4 / 16]])
    (row,) = G.object_focus(feat, targets, null_draws=50)
    assert row["focus"] == pytest.approx(16.0)  # share 1 / area share 1/16
    assert row["null"] < 8
    uniform = G.object_focus(torch.ones(1, 2, 16, 16), targets)[0]
    assert uniform["focus"] == pytest.approx(1.0) and uniform["null"] == pytest.approx(1.0)
