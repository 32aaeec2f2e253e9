"""yolov9lite.study.retention: layer counting, deep stacks, invertibility, estimators, renderings."""
import math

import pytest
import torch

from yolov9lite.study import retention as R
from yolov9lite.study import retention_measures, stacks


@pytest.mark.parametrize("arch, layers", [("plain", 1), ("resnet", 3), ("cspnet", 12),
                                          ("gelan", 12), ("revnet", 2), ("preact", 2)])
def test_layers_per_unit(arch, layers):
    assert stacks.conv_depth(stacks.make_unit(arch, 16), 16) == layers


def test_conv_depth_ignores_parallel_branches():
    from yolov9lite.nn.blocks import Conv, RepConvN
    assert stacks.conv_depth(RepConvN(8, 8), 8) == 1  # 3x3 and 1x1 side by side
    assert stacks.conv_depth(torch.nn.Sequential(Conv(8, 8, 3), Conv(8, 8, 1)), 8) == 2


@pytest.mark.parametrize("arch", stacks.ARCHS)
def test_stacks_reach_200_layers_and_tap_nearest(arch):
    net = stacks.build_stack(arch, seed=0, min_depth=200, width=8)
    assert net.depth >= 200
    per_unit = stacks.conv_depth(net.units[0], 8)
    assert net.depth - 200 < per_unit  # no more units than needed
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        taps = net.taps(x, [1, 50, 200])
    for want, got in zip([1, 50, 200], sorted(taps)):
        assert abs(got - want) <= per_unit / 2 + 1e-9
        assert taps[got].shape == (2, 8, 8, 8)


def test_stacks_are_seeded():
    a = stacks.build_stack("gelan", seed=3, min_depth=30, width=8)
    b = stacks.build_stack("gelan", seed=3, min_depth=30, width=8)
    c = stacks.build_stack("gelan", seed=4, min_depth=30, width=8)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q)
    assert not all(torch.equal(p, r) for p, r in zip(a.parameters(), c.parameters()))


def test_additive_coupling_inverse():
    unit = stacks.AdditiveCoupling(8).double().eval()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(unit.inverse(unit(x)), x, rtol=0, atol=1e-12)
    with pytest.raises(AssertionError):
        unit.train().inverse(x)


def test_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert math.isclose(retention_measures.linear_cka(x, x), 1, abs_tol=1e-12)
    assert math.isclose(retention_measures.linear_cka(x, 5 * x @ q + 2), 1, abs_tol=1e-12)
    assert retention_measures.linear_cka(x, torch.randn(300, 4, generator=g, dtype=torch.float64)) < 0.1


def test_ridge_recovers_linear_maps_and_rejects_noise():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64)
    mix = torch.randn(6, 3, generator=g, dtype=torch.float64)
    feats = torch.einsum("bchw,kc->bkhw", images, mix)  # features = a linear map of the input
    assert min(retention_measures.ridge_r2(feats, images, lam=1e-8)) > 0.999
    noise = torch.randn(3, 6, 8, 8, generator=g, dtype=torch.float64)
    assert max(retention_measures.ridge_r2(noise, images, lam=1e-3)) < 0.2
    assert retention_measures.ridge_r2(feats[:1], images[:1], lam=1e-8)[0] > 0.999  # single image: half split


def test_estimators_are_scale_free():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    feats = torch.randn(2, 5, 8, 8, generator=g, dtype=torch.float64) + images.mean(1, True)
    for scale in (1e-100, 1e50):
        assert retention_measures.cka_to_input(scale * feats, images) == pytest.approx(
            retention_measures.cka_to_input(feats, images), rel=1e-9)
        assert retention_measures.ridge_r2(scale * feats, images) == pytest.approx(
            retention_measures.ridge_r2(feats, images), rel=1e-6)


def test_renderings_handle_tiny_maps():
    f = torch.randn(8, 6, 6, dtype=torch.float64)
    for scale in (1.0, 1e-100):
        m, p = R.render_mean_abs(scale * f), R.render_pca(scale * f)
        assert m.shape == (6, 6) and m.min() == 0 and m.max() == 1
        assert p.shape == (6, 6, 3) and p.min() >= 0 and p.max() <= 1 and p.std() > 0.1


def test_retention_curves_shallow_vs_plain():
    images = R.image_batch(3, 24)
    rows = retention_measures.retention_curves(["plain", "resnet"], [1, 40], images, seeds=[0], width=8)
    assert len(rows) == 2 * 2 * 3
    s = retention_measures.summarise(rows, "cka")
    assert s["plain"]["mean"][0] > 0.5  # the stem still sees the image
    assert s["plain"]["mean"][1] < s["resnet"]["mean"][1]  # plain forgets faster


def test_images_ship_with_matplotlib():
    assert R.sample_image_path().exists()
    x = R.image_batch(6, 32)
    assert x.shape == (6, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert len({round(float(v), 4) for v in x.mean((1, 2, 3))}) == 6  # six different images


def test_conv_depth_has_no_side_effects():
    unit = stacks.make_unit("gelan", 8)
    state = {k: v.clone() for k, v in unit.state_dict().items()}
    rng = torch.get_rng_state()
    stacks.conv_depth(unit, 8)
    assert all(torch.equal(state[k], v) for k, v in unit.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and unit.training


# --- shortest path, probe images, the Jacobian measure -----------------------------------------


@pytest.mark.parametrize(("arch", "short"), [("plain", 1), ("resnet", 0), ("cspnet", 2),
                                             ("gelan", 2), ("revnet", 0), ("preact", 0)])
def test_shortest_path_per_unit(arch, short):
    assert stacks.conv_depth(stacks.make_unit(arch, 16), 16, shortest=True) == short


def test_probe_images_are_distinct():
    imgs, names = R.probe_images(8, 12)
    assert imgs.shape == (8, 3, 12, 12) and len(set(names)) == 8
    flat = imgs.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(8) * 1e9).min() > 0.5  # no two alike


def test_input_jacobians_match_autograd():
    net = stacks.build_stack("gelan", 0, 13, 12, "eval")
    x = R.probe_images(2, 6)[0].double()
    fd = retention_measures.input_jacobians(net, x, [13])[net.depths[-1]]
    exact = torch.autograd.functional.jacobian(lambda v: net(v[None]).flatten(), x[1])
    torch.testing.assert_close(fd[1], exact.reshape(exact.shape[0], -1), rtol=1e-4, atol=1e-8)


def test_frozen_batch_statistics_equal_a_training_step():
    net = stacks.build_stack("resnet", 0, 10, 12, "eval")
    x = R.probe_images(4, 8)[0].double()
    with torch.no_grad():
        want = net.train()(x)
    retention_measures.freeze_batch_statistics(net, x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), want)


def test_jacobian_measure_passes_its_controls():
    # the notebook's assertion at a smaller depth: invertible stack keeps rank, PlainNet loses it
    x = R.probe_images(2, 6)[0]
    rows = retention_measures.jacobian_curves(("revnet", "plain"), [1, 60], x, [0], width=12, min_depth=60)
    keep = {(r["arch"], r["target_depth"]): r["retained"] for r in rows if r["image"] == 0}
    assert keep[("revnet", 60)] >= 0.9 * keep[("revnet", 1)]
    assert keep[("plain", 60)] <= 0.5 * keep[("plain", 1)]
    assert all(-6 <= r["logvol"] <= 0 for r in rows)


def test_scale_does_not_change_the_measure():
    j = torch.randn(2, 40, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (frac, vol), (frac_small, vol_small) = (retention_measures.jacobian_spectrum_stats(j),
                                            retention_measures.jacobian_spectrum_stats(j * 1e-100))
    assert frac == frac_small and vol == pytest.approx(vol_small, abs=1e-12)


def test_shape_crops_are_labelled():
    x, y = R.shape_crops(24, 12, seed=0)
    assert x.shape == (24, 3, 12, 12) and y.min() >= 0 and y.max() <= 5


def test_paired_values_pair_up_per_seed_and_image():
    """The ledgers of notebooks 01-02 pair two stacks entry by entry and average per seed: rows
    come back in (seed, image) order whatever their order in, with the seed of each entry."""
    rows = [{"arch": a, "seed": s, "image": i, "target_depth": 5, "retained": 10 * s + i + off}
            for a, off in (("plain", 0.0), ("gelan", 0.5)) for s in (2, 1) for i in (1, 0)]
    seeds, plain = retention_measures.paired_values(rows, "plain", 5)
    _, gelan = retention_measures.paired_values(rows, "gelan", 5)
    assert seeds.tolist() == [1, 1, 2, 2] and plain.tolist() == [10, 11, 20, 21]
    assert (gelan - plain).tolist() == [0.5] * 4
    assert retention_measures.paired_values(rows, "plain", 5, floor=15)[1].tolist() == [15, 15, 20, 21]
    with pytest.raises(ValueError, match="no rows"):
        retention_measures.paired_values(rows, "resnet", 5)


def test_the_ledger_design_of_notebooks_01_and_02_is_fixed_with_reasons():
    for margin in (R.RETAINED_MARGIN, R.FULL_MARKS_MARGIN, R.COLLAPSE_MARGIN, R.KEEPS_MARGIN,
                   R.CORRELATION_MARGIN):
        assert margin.value > 0 and len(margin.reason) > 40
    assert R.RETAINED_MARGIN.value == 0.05  # the first ledger's margin, kept
    assert 0 < R.RECONSTRUCTION_FRACTION < 1 and R.RECONSTRUCTION_REASON
