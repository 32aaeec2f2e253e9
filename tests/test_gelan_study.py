"""The paired GELAN experiment (notebook 03, paper Tables 2-3): shared initial weights, paired
differences with the paper's sign, deterministic runs."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from yolov9lite import build_model
from yolov9lite.study import gelan_study as gs


def test_variants_carry_the_paper_knobs():
    assert gs.BLOCK_VARIANTS[gs.REFERENCE] == {"block": "csp", "depth_elan": 2, "depth_csp": 1}
    assert list(gs.BLOCK_VARIANTS) == ["conv (2, 1)", "res (2, 1)", "dark (2, 1)", gs.REFERENCE]
    assert gs.DEPTH_VARIANTS["csp (3, 1)"] == {"block": "csp", "depth_elan": 3, "depth_csp": 1}


def test_shared_weights_are_copied_where_name_and_shape_agree():
    torch.manual_seed(0)
    ref = build_model("gelan-nano", num_classes=3)
    torch.manual_seed(1)
    same = build_model("gelan-nano", num_classes=3)
    assert gs.copy_shared_weights(ref, same) == 1.0  # same architecture: everything
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(),
                                                 same.state_dict().values()))
    torch.manual_seed(1)
    conv = build_model("gelan-nano", num_classes=3, block="conv")
    share = gs.copy_shared_weights(ref, conv)
    assert 0.5 < share < 1.0  # stem, downsamplers, 1x1s around the units, head; not the blocks
    ref_state, conv_state = ref.state_dict(), conv.state_dict()
    shared = [k for k in conv_state if k in ref_state and ref_state[k].shape == conv_state[k].shape]
    assert shared and all(torch.equal(conv_state[k], ref_state[k]) for k in shared)


def test_differences_are_worse_minus_better_per_seed():
    rows = [{"variant": v, "seed": s, "loss": loss}
            for v, s, loss in [("a", 0, 3.0), ("b", 0, 1.0), ("a", 1, 2.0), ("b", 1, 2.5)]]
    assert np.allclose(gs.differences(rows, worse="a", better="b"), [2.0, -0.5])
    with pytest.raises(ValueError, match="no seed"):
        gs.differences(rows, worse="a", better="c")


def test_paired_runs_are_deterministic_and_start_equal(tmp_path):
    from yolov9lite.data import load_data_config, make_synthetic
    from yolov9lite.study.paired import cached_batches

    torch.set_num_threads(1)
    cfg = load_data_config(str(make_synthetic(tmp_path / "d", num_train=8, num_val=4, imgsz=64,
                                              seed=0)))
    train = cached_batches(cfg, "train", 64, 4)
    val = cached_batches(cfg, "val", 64, 4)
    variants = {k: gs.BLOCK_VARIANTS[k] for k in ("conv (2, 1)", gs.REFERENCE)}
    runs = [gs.paired_variant_runs("gelan-nano", variants, [0], train, val, int(cfg["nc"]),
                                   steps=2) for _ in range(2)]
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[1]]
    assert {r["variant"] for r in runs[0]} == set(variants)
    assert runs[0][1]["shared"] == 1.0 and runs[0][0]["shared"] < 1.0


def test_jitter_moves_weights_by_rounding_size_and_leaves_the_global_rng():
    torch.manual_seed(0)
    model = build_model("gelan-nano", num_classes=3)
    twin = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    state = torch.random.get_rng_state()
    gs.jitter_weights(model, gs.JITTER, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    rel = torch.cat([((p.detach() - b) / b).flatten() for p, b in zip(model.parameters(), before)
                     if b.abs().min() > 0.01])  # skip near-zero weights: rounding dominates there
    assert 0.5e-6 < float(rel.std()) < 2e-6
    gs.jitter_weights(twin, gs.JITTER, seed=3)  # the same seed jitters the same way
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_noise_control_is_the_reference_with_jittered_weights(tmp_path):
    from yolov9lite.data import load_data_config, make_synthetic
    from yolov9lite.study.paired import cached_batches

    torch.set_num_threads(1)
    cfg = load_data_config(str(make_synthetic(tmp_path / "d", num_train=8, num_val=4, imgsz=64,
                                              seed=0)))
    train, val = cached_batches(cfg, "train", 64, 4), cached_batches(cfg, "val", 64, 4)
    variants = {gs.REFERENCE: gs.BLOCK_VARIANTS[gs.REFERENCE], **gs.JITTER_CONTROL}
    rows = gs.paired_variant_runs("gelan-nano", variants, [0], train, val, int(cfg["nc"]), steps=1)
    ref, jit = rows
    assert jit["variant"] == gs.JITTER_LABEL and jit["shared"] == 1.0
    assert jit["loss"] != ref["loss"] and jit["loss"] == pytest.approx(ref["loss"], rel=1e-2)
    assert "init_jitter" in gs.JITTER_CONTROL[gs.JITTER_LABEL]  # the caller's dict is not consumed


def test_deployed_counts_are_the_paper_columns():
    counts = gs.deployed_counts("gelan-s", block="csp", depth_elan=2, depth_csp=1)
    assert round(counts["params"] / 1e6, 1) == 5.9 and round(counts["gflops"], 1) == 22.4
