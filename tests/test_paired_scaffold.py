"""The paired scaffold (:mod:`yolov9lite.study.paired`) that notebooks 03 and 05 share: arms of a
seed start from the same weights where the design says so, controls do what their names say, and
one (arm, seed) rerun alone gives the same records as the whole grid (what CI's sample relies on)."""
from __future__ import annotations

import pytest
import torch

from yolov9lite.study import ablation, gelan_study
from yolov9lite.study.paired import (
    Arm,
    Design,
    batch_order,
    build_arm,
    paired_experiment,
    recompute_sample,
    seed_batches,
    train_arm,
)

TINY = {"steps": 2, "num_train": 8, "num_val": 4, "imgsz": 64, "batch_size": 4, "curve_every": 1}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def by(records, metric):
    return {(r.variant, r.seed): r.value for r in records if r.metric == metric}


def test_main_sharing_starts_every_arm_from_the_same_main_branch(tmp_path):
    design = Design(share="main", **TINY)
    arms = {"none": Arm({"pgi": "none"}), "PFH": Arm({"pgi": "ds"}),
            "frozen": Arm({"pgi": "none"}, freeze=("backbone.",)),
            "jittered": Arm({"pgi": "none"}, init_jitter=1e-6)}
    records = paired_experiment(design, arms, [3], tmp_path, curve_arm="none")
    init = by(records, "held-out loss at init")
    assert init[("PFH", 3)] == pytest.approx(init[("none", 3)], rel=1e-6)
    assert init[("frozen", 3)] == init[("none", 3)]
    assert init[("jittered", 3)] != init[("none", 3)]
    assert init[("jittered", 3)] == pytest.approx(init[("none", 3)], rel=1e-3)
    end = by(records, "held-out loss")
    parts = sum(by(records, f"held-out {p}")[("none", 3)] for p in ("box", "cls", "dfl"))
    assert end[("none", 3)] == pytest.approx(parts)
    curve = sorted((r.steps, r.value) for r in records if r.metric == "held-out loss curve")
    assert [s for s, _ in curve] == [1, 2] and curve[-1][1] == end[("none", 3)]


def test_one_arm_rerun_alone_equals_its_row_in_the_grid(tmp_path):
    design = Design(share="shapes", reference=dict(gelan_study.REFERENCE_KNOBS), **TINY)
    arms = {"csp": Arm(dict(gelan_study.REFERENCE_KNOBS)),
            "conv": Arm({"block": "conv", "depth_elan": 2, "depth_csp": 1})}
    grid = by(paired_experiment(design, arms, [0], tmp_path / "a"), "held-out loss")
    alone = by(recompute_sample({k: (design, a) for k, a in arms.items()}, [("conv", 0)],
                                tmp_path / "b"), "held-out loss")
    assert alone == {("conv", 0): grid[("conv", 0)]}


def test_shapes_sharing_copies_every_tensor_the_architectures_have_in_common(tmp_path):
    design = Design(share="shapes", reference=dict(gelan_study.REFERENCE_KNOBS), **TINY)
    ref = build_arm(design, Arm(dict(gelan_study.REFERENCE_KNOBS)), 0, 6)
    conv = build_arm(design, Arm({"block": "conv", "depth_elan": 2, "depth_csp": 1}), 0, 6)
    ref_state = ref.state_dict()
    same = [k for k, v in conv.state_dict().items()
            if k in ref_state and ref_state[k].shape == v.shape]
    assert same and all(torch.equal(conv.state_dict()[k], ref_state[k]) for k in same)
    assert any(k not in ref_state for k in conv.state_dict())  # the blocks differ


def test_a_frozen_backbone_never_changes_and_the_rest_trains(tmp_path):
    design = Design(share="main", **TINY)
    train, _, nc = seed_batches(design, 0, tmp_path)
    net = build_arm(design, Arm({"pgi": "none"}, freeze=("backbone.",)), 0, nc)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    train_arm(design, Arm(freeze=("backbone.",)), net, train, batch_order(len(train), 2, 0))
    after = dict(net.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("backbone."))
    assert any(not torch.equal(after[k], v) for k, v in before.items()
               if not k.startswith("backbone."))


def test_the_learning_rate_decays_linearly_to_zero_at_the_last_step(tmp_path):
    design = Design(share="main", **{**TINY, "steps": 4})
    train, _, nc = seed_batches(design, 0, tmp_path)
    net = build_arm(design, Arm({"pgi": "none"}), 0, nc)
    seen = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        train_arm(design, Arm(), net, train, batch_order(len(train), 4, 0))
    finally:
        torch.optim.AdamW.step = original
    assert seen == pytest.approx([design.lr * f for f in (1.0, 0.75, 0.5, 0.25)])


def test_the_experiments_name_their_controls_and_fix_their_margins():
    for m in (gelan_study, ablation):
        arms = m.recorded_arms()
        roles = {role for role, control, ref in m.control_pairs() if control in arms and ref in arms}
        assert roles == {"positive", "null"}
        assert 0 < m.MARGIN_FRACTION < 0.1 and m.MARGIN_REASON
        assert len(m.RECORDED_SEEDS) == len(set(m.RECORDED_SEEDS)) >= 20
