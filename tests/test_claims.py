"""The claims ledger: interval methods on known cases, verdict rules, JSON round trip, summary."""
from __future__ import annotations

import json

import numpy as np
import pytest

from yolov9lite.study import claims as C
from yolov9lite.study import statistics as S


def test_t_quantiles_match_tables():
    # two-sided 95 % critical values of Student's t (any statistics table)
    for df, expected in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)]:
        assert S.t_ppf(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_interval_known_case():
    est, lo, hi = S.t_interval([1, 2, 3, 4, 5])  # mean 3, sd sqrt(2.5), n 5
    half = 2.7764451 * np.sqrt(2.5) / np.sqrt(5)
    assert est == 3 and lo == pytest.approx(3 - half, abs=1e-6) and hi == pytest.approx(3 + half)


def test_clopper_pearson_known_cases():
    assert S.clopper_pearson(0, 10)[1:] == (0.0, pytest.approx(0.308497, abs=1e-6))
    assert S.clopper_pearson(10, 10)[1:] == (pytest.approx(0.691503, abs=1e-6), 1.0)
    _, lo, hi = S.clopper_pearson(5, 10)
    assert (lo, hi) == (pytest.approx(0.187086, abs=1e-6), pytest.approx(0.812914, abs=1e-6))


def test_bootstrap_is_deterministic_and_covers_the_mean():
    d = np.random.default_rng(0).normal(1.0, 1.0, 50)
    a, b = S.paired_bootstrap(d, seed=3), S.paired_bootstrap(d, seed=3)
    assert a == b and a[1] < d.mean() < a[2]
    # a large sample: the percentile interval is close to the normal-theory one
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert a[2] - a[1] == pytest.approx(2 * half, rel=0.15)
    assert S.paired_bootstrap([2.0]) == (2.0, 2.0, 2.0)


def test_verdict_rules():
    assert C.verdict_sign(0.1, 0.5, "positive") == "supports"
    assert C.verdict_sign(-0.5, -0.1, "positive") == "contradicts"
    assert C.verdict_sign(-0.1, 0.5, "positive") == "inconclusive"
    assert C.verdict_sign(0.1, 0.5, "positive", margin=0.2) == "inconclusive"
    assert C.verdict_sign(-0.5, -0.1, "negative") == "supports"
    assert C.verdict_sign(0.1, 0.5, "negative") == "contradicts"
    assert C.verdict_threshold(0.6, 0.9, 0.5, "above") == "supports"
    assert C.verdict_threshold(0.1, 0.4, 0.5, "above") == "contradicts"
    assert C.verdict_threshold(0.4, 0.6, 0.5, "below") == "inconclusive"
    with pytest.raises(ValueError):
        C.verdict_sign(0, 1, "up")


def test_margin_against_the_paper_keeps_small_reversals_inconclusive():
    assert C.verdict_sign(-0.5, -0.1, "positive", margin=0.2, against=0.2) == "inconclusive"
    assert C.verdict_sign(-0.5, -0.3, "positive", margin=0.2, against=0.2) == "contradicts"
    assert C.verdict_sign(0.1, 0.5, "negative", margin=0.2, against=0.2) == "inconclusive"
    assert C.verdict_sign(0.3, 0.5, "negative", margin=0.2, against=0.2) == "contradicts"
    assert C.rule_sign("positive", 0.2, 0.2) == ("supports if the interval lies above +0.2; "
                                                 "contradicts if it lies below -0.2; "
                                                 "inconclusive otherwise")
    # without margins the rule reads as before (committed ledgers keep their text)
    assert C.rule_sign("positive") == ("supports if the interval lies above 0; contradicts if "
                                       "it lies below 0; inconclusive otherwise")


def test_constructors_compute_the_verdict():
    c = C.paired_claim("05.x", "PGI helps", "Table 4", "loss diff", [0.2, 0.3, 0.25, 0.31],
                       "positive", "seeds", "default")
    assert c.verdict == "supports" and c.n == 4 and "bootstrap" in c.ci_method
    p = C.proportion_claim("05.y", "p", "w", "m", 1, 20, 0.5, "below", "images", "default")
    assert p.verdict == "supports" and p.ci_method.startswith("exact binomial")
    t = C.threshold_claim("05.z", "p", "w", "m", [0.9, 1.0, 0.95], 0.5, "above", "seeds",
                          "default", method="t")
    assert t.verdict == "supports" and t.ci_method == "t interval"
    pt = C.paired_claim("03.x", "p", "w", "m", [0.2, 0.3, 0.25, 0.31], "positive", "seeds",
                        "default", method="t", margin=0.1, against=0.1)
    assert pt.ci_method == "t interval" and pt.verdict == "supports"
    assert (pt.estimate, *pt.ci) == pytest.approx(S.t_interval([0.2, 0.3, 0.25, 0.31]), abs=1e-6)
    with pytest.raises(ValueError, match="method"):
        C.paired_claim("03.y", "p", "w", "m", [0.2, 0.3], "positive", "seeds", "default",
                       method="jackknife")
    with pytest.raises(ValueError):
        C.Claim("05.q", "p", "w", "m", 0, (0, 1), "t", 3, "seeds", "r", "maybe", "default")


def test_ledger_json_round_trip_and_summary(tmp_path):
    ledger = C.Ledger("05_ablations", fig_dir=tmp_path)
    claim = ledger.add(C.paired_claim("05.a", "x | y", "Sec. 5", "diff", [1.0, 2.0, 3.0],
                                      "positive", "seeds", "default"))
    with pytest.raises(ValueError):
        ledger.add(C.paired_claim("04.a", "x", "w", "m", [1.0], "positive", "seeds", "d"))
    path = ledger.save()
    assert path == tmp_path / "claims" / "05_ablations.json"
    data = json.loads(path.read_text())
    assert "cpu" in data["machine"] and data["claims"][0]["verdict"] == claim.verdict
    back = C.Ledger.load(path)
    assert back.verdicts() == ledger.verdicts() and back["05.a"].ci == pytest.approx(claim.ci)
    assert "**supports**" in ledger.markdown() and "x / y" in ledger.markdown()
    assert "supports" in ledger.sentence("05.a")
    summary = C.write_summary(tmp_path / "claims")
    assert summary == tmp_path / "claims.md" and "`05.a`" in summary.read_text()
