"""The paired GELAN experiment (notebook 03, paper Tables 2-3): shared initial weights, paired
differences with the paper's sign, deterministic runs."""
from __future__ import annotations

import copy

import torch

from yolov9lite import build_model
from yolov9lite.study import gelan_study as gs
from yolov9lite.study import paired


def test_variants_carry_the_paper_knobs():
    assert gs.BLOCK_VARIANTS[gs.REFERENCE] == {"block": "csp", "depth_elan": 2, "depth_csp": 1}
    assert list(gs.BLOCK_VARIANTS) == ["conv (2, 1)", "res (2, 1)", "dark (2, 1)", gs.REFERENCE]
    assert gs.DEPTH_VARIANTS["csp (3, 1)"] == {"block": "csp", "depth_elan": 3, "depth_csp": 1}


def test_shared_weights_are_copied_where_name_and_shape_agree():
    torch.manual_seed(0)
    ref = build_model("gelan-nano", num_classes=3)
    torch.manual_seed(1)
    same = build_model("gelan-nano", num_classes=3)
    assert paired.copy_shared_weights(ref, same) == 1.0  # same architecture: everything
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(),
                                                 same.state_dict().values()))
    torch.manual_seed(1)
    conv = build_model("gelan-nano", num_classes=3, block="conv")
    share = paired.copy_shared_weights(ref, conv)
    assert 0.5 < share < 1.0  # stem, downsamplers, 1x1s around the units, head; not the blocks
    ref_state, conv_state = ref.state_dict(), conv.state_dict()
    shared = [k for k in conv_state if k in ref_state and ref_state[k].shape == conv_state[k].shape]
    assert shared and all(torch.equal(conv_state[k], ref_state[k]) for k in shared)


def test_jitter_moves_weights_by_rounding_size_and_leaves_the_global_rng():
    torch.manual_seed(0)
    model = build_model("gelan-nano", num_classes=3)
    twin = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    state = torch.random.get_rng_state()
    paired.jitter_weights(model, gs.JITTER, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    rel = torch.cat([((p.detach() - b) / b).flatten() for p, b in zip(model.parameters(), before)
                     if b.abs().min() > 0.01])  # skip near-zero weights: rounding dominates there
    assert 0.5e-6 < float(rel.std()) < 2e-6
    paired.jitter_weights(twin, gs.JITTER, seed=3)  # the same seed jitters the same way
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_deployed_counts_are_the_paper_columns():
    counts = gs.deployed_counts("gelan-s", block="csp", depth_elan=2, depth_csp=1)
    assert round(counts["params"] / 1e6, 1) == 5.9 and round(counts["gflops"], 1) == 22.4
