"""yolov9lite.study.pgi_study: notebook 04's design (paper Sec. 4.1, Figs. 3 and 7): seeds as the
unit, margins with reasons, and controls that gate their claims."""
from __future__ import annotations

import math

import numpy as np
import pytest

from yolov9lite.study import pgi_study as S
from yolov9lite.study.claims import CONTROL_FAILED, Ledger

SEEDS = [0, 1, 2, 3, 4]


def _values(**over) -> dict[str, np.ndarray]:
    """Per-seed values of every measure: controls that work and claims far beyond the margins."""
    big = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    zero = np.array([1e-4, -1e-4, 2e-4, -2e-4, 0.0])
    v = {k: big.copy() for k in ("agree", "agree_wrong", "snr", "snr_wrong", "step", "step_wrong",
                                  "fig7", "focus_control")}
    v.update({k: zero.copy() for k in ("agree_jitter", "snr_jitter", "step_jitter",
                                       "focus_jitter")})
    v.update(over)
    return v


def test_margins_are_fixed_with_their_reasons():
    for m in (S.COS_MARGIN, S.SNR_MARGIN, S.HELD_OUT_MARGIN, S.FOCUS_MARGIN):
        assert m.value > 0 and len(m.reason) > 40
    assert S.SNR_MARGIN.value == pytest.approx(math.log(1.25))


def test_ledger_has_a_positive_and_a_null_control_gating_each_claim():
    claims = S.ledger_claims(_values(), "icn", 50, "test")
    paper = [c for c in claims if c.kind == "claim"]
    assert len(paper) == 4 and all(c.n == len(SEEDS) and c.n_unit == "seeds" for c in paper)
    for c in paper:
        roles = sorted(k.role for k in claims if c.id in k.gates)
        assert roles == ["null", "positive"], (c.id, roles)
        assert c.margin is not None and c.mde is not None and c.ci_method == "t interval"
        assert c.verdict == "supports"
    assert "04.focus_measure_detects_objects" in {c.id for c in claims if c.role == "positive"}


def test_a_failed_positive_control_gates_only_its_claim():
    ledger = Ledger("04_pgi")
    weak = np.array([0.001, -0.001, 0.002, 0.0, -0.002])  # the known-worse variant not seen
    for c in S.ledger_claims(_values(agree_wrong=weak), "icn", 50, "test"):
        ledger.add(c)
    v = ledger.verdicts()
    assert v["04.pgi_gradient_agrees_with_full_data"] == CONTROL_FAILED
    assert v["04.pgi_gradient_snr"] == "supports" and v["04.fig7_pgi_focuses_on_objects"] == "supports"


def test_only_the_measures_given_are_claimed():
    focus = {k: v for k, v in _values().items() if k in ("fig7", "focus_control", "focus_jitter")}
    ids = [c.id for c in S.ledger_claims(focus, "icn", 50, "test")]
    assert ids == ["04.focus_measure_detects_objects", "04.control_jitter_focus",
                   "04.fig7_pgi_focuses_on_objects"]


def test_values_are_one_per_seed_from_rows():
    P = S.pgi_name("icn")
    rel, snr = [], []
    for seed in (0, 1):
        for model in (S.GELAN, P, S.JITTER_NAME):
            for b in range(3):
                row = {"seed": seed, "model": model, "batch": b, "cos_main": 0.2 + 0.01 * b,
                       "cos_total": 0.3, "val_main": 0.1, "val_total": 0.2, "held_out_loss": 9.0,
                       "cos_wrong": math.nan, "val_wrong": math.nan}
                if model == P:
                    row.update(cos_wrong=0.1, val_wrong=-0.2)
                rel.append(row)
            snr.append({"seed": seed, "model": model, "snr_main": 0.2, "snr_total": 0.4,
                        "snr_wrong": 0.1 if model == P else math.nan})
    v = S.reliability_values(rel, snr, "icn", [0, 1])
    assert v["agree"] == pytest.approx([0.09, 0.09]) and v["agree_wrong"] == pytest.approx([0.11] * 2)
    assert v["snr"] == pytest.approx([math.log(2)] * 2) and v["agree_jitter"] == pytest.approx([0, 0])
    assert v["step_wrong"] == pytest.approx([0.3, 0.3]) and v["step"] == pytest.approx([0.1, 0.1])


def test_measuring_during_training_changes_nothing_and_is_recorded(tmp_path):
    """Gradients measured inside the training (``measure_step``) leave every arm's training bit
    for bit as without it, and each record names the step it was measured at."""
    import torch

    from yolov9lite.data import load_data_config, make_synthetic
    from yolov9lite.study import paired

    torch.set_num_threads(1)
    cfg = load_data_config(make_synthetic(tmp_path / "d", num_train=8, num_val=4, imgsz=64, seed=0))
    batches = paired.cached_batches(cfg, "train", 32, 4)
    val = paired.cached_batches(cfg, "val", 32, 4)
    nc = int(cfg["nc"])
    runs = {at: S.run_seed("gelan-nano", nc, "icn", batches, val, 3, 3e-3, 7, measure_step=at,
                           along_every=2 if at else 0)
            for at in (0, 2)}
    for name, net in runs[0]["models"].items():
        a, b = net.state_dict(), runs[2]["models"][name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    steps = {r.variant: r.steps for r in runs[2]["records"] if r.metric == S.VALUE_METRIC}
    assert {k: v for k, v in steps.items() if k in S.FOCUS_KEYS} == dict.fromkeys(S.FOCUS_KEYS, 3)
    assert {v for k, v in steps.items() if k not in S.FOCUS_KEYS} == {2}
    assert [r["step"] for r in runs[2]["along"]] == [2, 3] and not runs[0]["along"]
    assert runs[2]["rel"][0]["held_out_loss"] != runs[0]["rel"][0]["held_out_loss"]
    with pytest.raises(ValueError, match="measure_step"):
        S.run_seed("gelan-nano", nc, "icn", batches, val, 3, 3e-3, 7, measure_step=4)
