"""yolov9lite.gradients: the gradient-information measurements of notebook 04 (paper Sec. 4.1)."""
from __future__ import annotations

import pytest
import torch

from yolov9lite import build_model
from yolov9lite import gradients as G
from yolov9lite.loss import DetectionLoss

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
    assert a["all"]["main"] == pytest.approx(1.0, abs=1e-5)
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
