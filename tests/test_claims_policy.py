"""The claims ledger's statistics policy (``study/statistics.py``) and its controls: scipy's
quantiles equal the hand-written ones they replaced, the committed ledgers load, recompute and
render as before, controls gate verdicts, equivalence, power, seeds as units, BCa from 20 units,
and the family size in the summary."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from yolov9lite.study import claims as C
from yolov9lite.study import statistics as S

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "figures" / "claims"


# --- the hand-written quantiles this project used before scipy (the reference, test-only) -------

def _old_betacf(a: float, b: float, x: float) -> float:
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):  # modified Lentz continued fraction
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _old_betainc(a: float, b: float, x: float) -> float:
    if x <= 0 or x >= 1:
        return float(x >= 1)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _old_betacf(a, b, x) / a
    return 1.0 - front * _old_betacf(b, a, 1 - x) / b


def _old_bisect(f, lo: float, hi: float, target: float) -> float:
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def _old_t_ppf(q: float, df: float) -> float:
    def cdf(t):
        tail = 0.5 * _old_betainc(df / 2, 0.5, df / (df + t * t))
        return 1 - tail if t > 0 else tail
    hi = 1.0
    while cdf(hi) < q:
        hi *= 2
    return _old_bisect(cdf, 0.0, hi, q)


def committed_claims() -> list[C.Claim]:
    return C.load_claims(COMMITTED)


def test_scipy_t_quantile_equals_the_old_bisection_on_the_committed_ns():
    ns = {c.n for c in committed_claims()} | set(range(2, 31))
    for n in sorted(ns):
        for q in (0.95, 0.975):
            assert S.t_ppf(q, n - 1) == pytest.approx(_old_t_ppf(q, n - 1), rel=1e-9, abs=1e-9)


def test_scipy_beta_quantile_equals_the_old_bisection():
    for q, a, b in [(0.025, 1, 10), (0.975, 5, 6), (0.025, 5, 6), (0.975, 11, 1), (0.5, 3, 20)]:
        old = _old_bisect(lambda x, a=a, b=b: _old_betainc(a, b, x), 0.0, 1.0, q)
        assert S.beta_ppf(q, a, b) == pytest.approx(old, abs=1e-9)


def test_committed_t_intervals_recompute_equal():
    """Each committed t interval, recomputed by today's t_interval from a sample with its mean,
    n and standard deviation (read back through the old quantile), gives the committed numbers,
    up to the rounding of the six significant digits the JSON keeps of each end."""
    t_claims = [c for c in committed_claims() if c.ci_method == S.T_METHOD]
    assert len(t_claims) >= 5
    for c in t_claims:
        half = (c.ci[1] - c.ci[0]) / 2
        sd = half * math.sqrt(c.n) / _old_t_ppf(0.975, c.n - 1)
        z = np.random.default_rng(0).normal(size=c.n)
        sample = c.estimate + sd * (z - z.mean()) / z.std(ddof=1)
        est, lo, hi = S.t_interval(sample)
        digits = 1e-5 * max(abs(c.estimate), *map(abs, c.ci))  # 6 significant digits, twice
        assert (est, lo, hi) == pytest.approx((c.estimate, *c.ci), abs=digits), c.id


def test_committed_ledgers_load_unchanged_and_their_gating_is_applied():
    for path in sorted(COMMITTED.glob("*.json")):
        data = json.loads(path.read_text())
        ledger = C.Ledger.load(path)
        assert [c.to_dict() for c in ledger] == data["claims"], path.name  # same JSON back
        assert C.apply_controls(list(ledger)) == list(ledger)
    # notebooks 03, 05 and 08 record margins and minimum detectable effects: the table shows them
    assert "margin / mde" in C.claims_table(committed_claims())


def test_rerendering_the_committed_ledgers_gives_the_committed_summary(tmp_path):
    shutil.copytree(COMMITTED, tmp_path / "claims")
    fresh = C.write_summary(tmp_path / "claims").read_bytes()
    assert fresh == (ROOT / "figures" / "claims.md").read_bytes()
    assert C.claims_table(committed_claims()) in fresh.decode()


# --- controls gate verdicts -------------------------------------------------------------------------

GOOD = [0.5, 0.6, 0.55, 0.7, 0.65]  # clearly positive
FLAT = [0.01, -0.01, 0.02, -0.02, 0.0]  # no effect


def gated_ledger(tmp_path, positive_diffs, null_diffs=FLAT) -> C.Ledger:
    margin = S.Margin(0.2, "test: a fifth of a loss unit")
    ledger = C.Ledger("03_gelan", fig_dir=tmp_path)
    ledger.add(C.paired_claim("03.control_frozen_backbone", "a frozen backbone learns less",
                              "control", "loss, frozen - trained", positive_diffs, "positive",
                              "seeds", "test", margin=margin, method="t", kind="control",
                              role="positive", gates=["03.gated"]))
    ledger.add(C.equivalence_claim("03.control_same_model", "the same model twice", "control",
                                   "loss, run 1 - run 2", null_diffs, margin, "seeds", "test",
                                   kind="control", role="null", gates=["03.gated"]))
    ledger.add(C.paired_claim("03.gated", "CSP beats conv", "Table 2", "loss, conv - csp", GOOD,
                              "positive", "seeds", "test", margin=margin, method="t"))
    ledger.add(C.paired_claim("03.free", "another claim", "Table 2", "loss", GOOD, "positive",
                              "seeds", "test", margin=margin, method="t"))
    return ledger


def test_controls_that_pass_leave_the_verdicts(tmp_path):
    ledger = gated_ledger(tmp_path, GOOD)
    assert ledger.verdicts() == {"03.control_frozen_backbone": "supports",
                                 "03.control_same_model": "supports",
                                 "03.gated": "supports", "03.free": "supports"}
    null = ledger["03.control_same_model"]
    assert (null.role, null.gates, null.margin) == ("null", ("03.gated",), 0.2)


def test_a_failed_positive_control_gates_its_claims_only(tmp_path):
    ledger = gated_ledger(tmp_path, [-0.1, 0.3, 0.05, -0.2, 0.1])  # the control cannot see
    v = ledger.verdicts()
    assert v["03.control_frozen_backbone"] == "inconclusive"
    assert v["03.gated"] == C.CONTROL_FAILED and v["03.free"] == "supports"
    gated = ledger["03.gated"]
    assert gated.ungated_verdict == "supports"
    assert gated.gated_by == ("03.control_frozen_backbone",)
    assert "control 03.control_frozen_backbone failed" in ledger.sentence("03.gated")
    # the JSON keeps both verdicts and the null control; loading it reads the same
    back = C.Ledger.load(ledger.save())
    assert back.verdicts() == v and back["03.control_same_model"].role == "null"
    summary = C.write_summary(tmp_path / "claims").read_text()
    assert "**control failed**" in summary and "1 control failed" in summary
    assert "(positive control, gates `03.gated`)" in summary


def test_a_null_control_that_finds_an_effect_gates_too(tmp_path):
    ledger = gated_ledger(tmp_path, GOOD, null_diffs=[0.5, 0.6, 0.7, 0.55, 0.65])
    assert ledger["03.control_same_model"].verdict == "contradicts"
    assert ledger["03.gated"].gated_by == ("03.control_same_model",)
    assert ledger["03.free"].verdict == "supports"


def test_controls_are_checked():
    with pytest.raises(ValueError, match="gates"):
        C.apply_controls([C.paired_claim("03.c", "p", "w", "m", GOOD, "positive", "seeds", "t",
                                         kind="control", role="positive", gates=["03.typo"])])
    with pytest.raises(ValueError, match="role"):
        C.paired_claim("03.c", "p", "w", "m", GOOD, "positive", "seeds", "t", kind="control",
                       gates=["03.x"])
    with pytest.raises(ValueError, match="apply_controls"):  # nobody types "control failed"
        C.Claim("03.q", "p", "w", "m", 0, (0, 1), "t", 3, "seeds", "r", C.CONTROL_FAILED, "d")


# --- equivalence, power, units, bootstrap -----------------------------------------------------------

def test_equivalence_inside_and_outside_the_margin():
    margin = S.Margin(0.1, "test")
    rng = np.random.default_rng(1)
    inside = C.equivalence_claim("03.eq", "not sensitive to depth", "Table 3", "loss", FLAT,
                                 margin, "seeds", "t")
    assert inside.verdict == "supports" and "TOST p" in inside.ci_method
    outside = C.equivalence_claim("03.eq", "p", "w", "m", [0.5, 0.6, 0.7, 0.55], margin, "seeds",
                                  "t")
    assert outside.verdict == "contradicts"
    noisy = C.equivalence_claim("03.eq", "p", "w", "m", rng.normal(0, 0.3, 6), margin, "seeds",
                                "t")
    assert noisy.verdict == "inconclusive" and noisy.mde > margin.value
    # TOST at 5 % is the 90 % interval inside the margin, case by case
    for _ in range(50):
        d = rng.normal(rng.uniform(-0.15, 0.15), rng.uniform(0.02, 0.2), rng.integers(3, 12))
        _, lo, hi = S.t_interval(d, level=0.90)
        assert (S.tost_p(d, 0.1) < 0.05) == (-0.1 < lo and hi < 0.1)
    with pytest.raises(TypeError):
        C.equivalence_claim("03.eq", "p", "w", "m", FLAT, 0.1, "seeds", "t")


def test_tost_for_independent_groups():
    a = np.array([10.0, 10.1, 9.9, 10.05, 9.95, 10.02])
    assert S.tost_p(a, 0.5, a + 0.02, paired=False) < 0.05
    assert S.tost_p(a, 0.5, a + 1.0, paired=False) > 0.5


def test_minimum_detectable_effect_against_the_noncentral_t():
    sd, n = 0.8, 8
    mde = S.minimum_detectable_effect(sd, n)
    ncp, crit = mde / sd * math.sqrt(n), stats.t.ppf(0.975, n - 1)
    power = stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp)
    assert power == pytest.approx(0.8, abs=1e-6)
    mdes = [S.minimum_detectable_effect(1.0, n) for n in (3, 5, 8, 16, 32)]
    assert mdes == sorted(mdes, reverse=True) and len(set(mdes)) == len(mdes)
    assert S.observed_mde([1.0, 2.0, 3.0]) == pytest.approx(S.minimum_detectable_effect(1.0, 3))
    assert S.observed_mde([1.0]) == math.inf


def test_seeds_needed_is_the_fewest_that_bring_the_mde_under_the_margin():
    n = S.seeds_needed(1.0, 0.5)
    assert S.minimum_detectable_effect(1.0, n) <= 0.5 < S.minimum_detectable_effect(1.0, n - 1)
    assert S.seeds_needed(1.0, 1e-6, max_seeds=100) == 101


def test_claims_record_mde_beside_the_margin(tmp_path):
    c = C.paired_claim("03.x", "p", "w", "m", GOOD, "positive", "seeds", "t", method="t",
                       margin=S.Margin(0.2, "a fifth of a loss unit"))
    assert c.mde == pytest.approx(S.observed_mde(GOOD)) and c.margin == 0.2
    assert c.rule == C.rule_sign("positive", 0.2, 0.2)  # symmetric
    d = c.to_dict()
    assert d["margin_reason"] == "a fifth of a loss unit" and "mde" in d
    assert "margin / mde" in C.claims_table([c])
    with pytest.raises(ValueError, match="symmetric"):
        C.paired_claim("03.x", "p", "w", "m", GOOD, "positive", "seeds", "t",
                       margin=S.Margin(0.2, "r"), against=0.1)
    with pytest.raises(ValueError, match="reason"):
        S.Margin(0.2, " ")


def test_values_within_a_seed_are_reduced_to_one_per_seed():
    seeds = np.repeat([7, 3, 5], 8)  # 3 seeds x 8 images
    values = np.concatenate([np.full(8, 1.0), np.arange(8.0), np.full(8, -2.0)])
    unique, means = S.seed_means(values, seeds)
    assert unique.tolist() == [3, 5, 7] and means.tolist() == [3.5, -2.0, 1.0]
    c = C.paired_claim("01.x", "p", "w", "m", means, "positive", "seeds", "t", method="t")
    assert c.n == 3
    with pytest.raises(ValueError):
        S.seed_means([1.0, 2.0], [0])


def test_bca_only_from_twenty_units():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least 20"):
        S.mean_interval(rng.normal(size=19), "bca")
    v = rng.normal(1.0, 1.0, 20)
    (est, lo, hi), how = S.mean_interval(v, "bca", n_boot=2000, seed=4)
    ref = stats.bootstrap((v,), np.mean, n_resamples=2000, method="BCa",
                          random_state=np.random.default_rng(4)).confidence_interval
    assert (lo, hi) == (ref.low, ref.high) and lo < est < hi and how.startswith("bootstrap (BCa)")
    assert S.mean_interval(v[:5], "t")[1] == S.T_METHOD


def test_the_summary_states_the_family_size_and_the_sanity_checks(tmp_path):
    ledger = C.Ledger("05_ablations", fig_dir=tmp_path)
    ledger.add(C.paired_claim("05.a", "PGI helps", "Table 4", "m", GOOD, "positive", "seeds",
                              "t", method="t"))
    ledger.add(C.paired_claim("05.b", "ICN helps", "Table 4", "m", FLAT, "positive", "seeds",
                              "t", method="t"))
    ledger.add(C.paired_claim("05.trained_beats_untrained", "training lowers the loss", "-", "m",
                              GOOD, "positive", "seeds", "t", method="t", kind="sanity"))
    ledger.save()
    text = C.write_summary(tmp_path / "claims").read_text()
    assert "Family size: 2 paper claims tested" in text
    assert "0 controls and 1 sanity checks are not in the family" in text
    assert "Sanity checks (not paper claims): `05.trained_beats_untrained` (supports)." in text
    assert "`05.trained_beats_untrained` (sanity)" in text
    assert "Paper claims: 1 supports, 0 contradicts, 1 inconclusive." in text


def test_a_ledger_shows_before_its_gated_claims_ran_but_saves_only_when_they_did(tmp_path):
    ledger = C.Ledger("03_gelan", fig_dir=tmp_path)
    ledger.add(C.paired_claim("03.control", "p", "w", "m", [-0.1, 0.1, 0.0], "positive", "seeds",
                              "t", method="t", kind="control", role="positive",
                              gates=["03.later"]))
    assert "03.control" in ledger.markdown()  # shown midway: the gated claim has not run yet
    with pytest.raises(ValueError, match="03.later"):
        ledger.save()
    ledger.add(C.paired_claim("03.later", "p", "w", "m", GOOD, "positive", "seeds", "t",
                              method="t"))
    assert C.Ledger.load(ledger.save())["03.later"].verdict == C.CONTROL_FAILED


def test_one_value_has_no_mde():
    c = C.paired_claim("05.one", "p", "w", "m", [0.3], "positive", "seeds", "t")
    assert c.mde is None and "mde" not in c.to_dict()


# --- notebooks 01-02: a rank correlation over runs, thresholds with their margin ----------------

def test_spearman_bca_over_independent_runs():
    rng = np.random.default_rng(5)
    x = rng.normal(size=24)
    y = np.round(x + rng.normal(size=24), 1)  # ties get their average rank
    rho, lo, hi = S.spearman_bca(x, y, n_boot=2000, seed=3)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    ref = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
                          vectorized=False, n_resamples=2000, method="BCa",
                          random_state=np.random.default_rng(3)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12) and lo < rho < hi
    with pytest.raises(ValueError, match="at least 20"):
        S.spearman_bca(x[:19], y[:19])


def test_minimum_detectable_correlation_by_fisher_z():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert S.minimum_detectable_correlation(24) == pytest.approx(math.tanh(z * math.sqrt(1.06 / 21)))
    assert S.minimum_detectable_correlation(24, rank=False) == pytest.approx(math.tanh(z / math.sqrt(21)))
    assert S.minimum_detectable_correlation(200) < S.minimum_detectable_correlation(24) < 1
    assert S.minimum_detectable_correlation(3) == math.inf


def test_correlation_claim_uses_a_symmetric_margin():
    rng = np.random.default_rng(6)
    x = rng.normal(size=30)
    margin = S.Margin(0.3, "a medium correlation")
    up = C.correlation_claim("01.c", "p", "w", "rho", x, x + 0.1 * rng.normal(size=30),
                             "positive", "runs", "test", margin)
    down = C.correlation_claim("01.d", "p", "w", "rho", x, 0.1 * rng.normal(size=30) - x,
                               "positive", "runs", "test", margin)
    assert (up.verdict, down.verdict) == ("supports", "contradicts")
    assert up.margin == 0.3 and up.margin_reason == "a medium correlation" and up.n == 30
    assert up.mde == pytest.approx(S.minimum_detectable_correlation(30))
    assert "below -0.3" in up.rule and up.ci_method.startswith("bootstrap over units (BCa)")
    with pytest.raises(TypeError, match="Margin"):
        C.correlation_claim("01.e", "p", "w", "rho", x, x, "positive", "runs", "test", 0.3)


def test_threshold_claim_records_the_margin_its_threshold_stands_for():
    margin = S.Margin(0.1, "full marks less a tenth")
    c = C.threshold_claim("02.x", "p", "w", "m", [0.97, 0.99, 0.98, 0.985], 1 - margin.value,
                          "above", "seeds", "test", method="t", margin=margin)
    assert c.verdict == "supports" and c.ci_method == S.T_METHOD and c.n == 4
    assert (c.margin, c.margin_reason) == (0.1, "full marks less a tenth") and c.mde > 0
    bare = C.threshold_claim("02.y", "p", "w", "m", [0.97, 0.99], 0.9, "above", "seeds", "test",
                             method="t")
    assert bare.margin is None and "margin" not in bare.to_dict()  # as the older ledgers saved
