"""yolov9lite.study.gradients: the gradient-information measurements of notebook 04 (paper Sec. 4.1)."""
from __future__ import annotations

import math

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


def _held_out_loss(net, batches):
    from yolov9lite.study.paired import held_out_loss
    return held_out_loss(net, batches)["loss"]


def test_reliability_rows_leave_the_model_unchanged(models):
    m = models["ds"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    val = [_batch(8, 2)]
    score = lambda net: _held_out_loss(net, val)
    rows, g = G.gradient_reliability(m, [_batch(5), _batch(6), _batch(7)], val, score)
    assert len(rows) == 3 and g["main"].shape == g["total"].shape
    assert all(r["held_out_loss"] == pytest.approx(score(m)) for r in rows)
    # the cosines are those of the stacked gradients: leave-one-out and against g_held-out
    loo = G.leave_one_out_cosines(g["main"])
    g_val = G.held_out_gradient(m, val)
    for b, r in enumerate(rows):
        assert r["cos_main"] == pytest.approx(float(loo[b]), abs=1e-12)
        assert r["val_main"] == pytest.approx(G._cos(g["main"][b], g_val), abs=1e-9)
        # deep supervision adds an auxiliary term: the two directions differ
        assert r["val_total"] != r["val_main"] and -1 <= r["val_total"] <= 1
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    # the control: the gradient with the boxes swapped between images, against the same g_full
    # and g_held-out as the images' own
    rows, g = G.gradient_reliability(m, [_batch(5, 4), _batch(6, 4), _batch(7, 4)], val, score,
                                     controls=True)
    assert g["wrong"].shape == g["main"].shape and not torch.equal(g["wrong"], g["main"])
    others = (g["main"].sum(0) - g["main"][0]) / 2
    assert rows[0]["cos_wrong"] == pytest.approx(G._cos(g["wrong"][0], others), abs=1e-9)
    assert all(-1 <= r["cos_wrong"] <= 1 and -1 <= r["val_wrong"] <= 1 for r in rows)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_mismatched_targets_give_each_image_another_images_boxes(models):
    x, t = _batch(3, 4)
    w = G.mismatched_targets(t, 4)
    assert w[:, 0].tolist() == [3.0, 0.0, 1.0, 2.0] and torch.equal(w[:, 1:], t[:, 1:])
    m = models["none"]
    full = G.backbone_gradients(m, x, t)["B3"]["main"]
    both = G.backbone_gradients(m, x, t, mismatched=True)["B3"]
    assert torch.equal(both["main"], full)  # the images' own gradient is unchanged beside it
    assert not torch.allclose(both["wrong"], full)
    # every image with the same boxes and class: swapping them changes nothing
    same = t.clone()
    same[:, 1] = 0
    g = G.backbone_gradients(m, x, same, mismatched=True)["B3"]
    assert torch.allclose(g["wrong"], g["main"], rtol=1e-5, atol=1e-9)


def test_held_out_gradient_is_the_training_gradient_of_the_held_out_loss(models):
    m = models["icn"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    val = [_batch(11, 2), _batch(12, 3)]
    g = G.held_out_gradient(m, val)
    # by hand: each batch's main-head loss (official loss / batch size), averaged over batches
    params = [p for ps in G.backbone_stages(m).values() for p in ps]
    want = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    saved = {k: b.clone() for k, b in m.named_buffers()}
    for x, t in val:
        _, main_maps = m.train()(x)
        loss = DetectionLoss(m.head.main)(main_maps, t)[0] / x.shape[0]
        for w, gp in zip(want, torch.autograd.grad(loss, params, allow_unused=True)):
            if gp is not None:
                w.add_(gp.double())
    with torch.no_grad():
        for k, b in m.named_buffers():
            b.copy_(saved[k])
    want = torch.cat([w.reshape(-1) for w in want]) / len(val)
    assert g.shape == want.shape
    # float32 backward, the division by the batch size before or after it: rounding only
    assert float((g - want).abs().max()) <= 1e-5 * float(want.abs().max())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_object_focus_separates_objects_from_its_null():
    feat = torch.zeros(1, 2, 16, 16)
    feat[0, :, 4:8, 4:8] = 1.0  # all energy inside the one box
    targets = torch.tensor([[0, 0, 6 / 16, 6 / 16, 4 / 16, 4 / 16]])
    (row,) = G.object_focus(feat, targets, null_draws=50)
    assert row["focus"] == pytest.approx(16.0)  # share 1 / area share 1/16
    assert row["null"] < 8
    uniform = G.object_focus(torch.ones(1, 2, 16, 16), targets)[0]
    assert uniform["focus"] == pytest.approx(1.0) and uniform["null"] == pytest.approx(1.0)


def test_snr_over_floor_is_one_for_pure_noise_and_counts_a_shared_direction():
    g = torch.Generator().manual_seed(0)
    n, dims = 32, 20_000
    noise = torch.randn(n, dims, generator=g, dtype=torch.float64)
    assert G.snr_over_floor(noise) == pytest.approx(1.0, abs=0.05)  # no shared direction
    # a shared direction with 0.1 of a batch's noise energy: n x 0.1 above the floor
    shared = torch.full((dims,), math.sqrt(0.1), dtype=torch.float64)
    assert G.snr_over_floor(noise + shared) == pytest.approx(1 + n * 0.1, rel=0.05)
