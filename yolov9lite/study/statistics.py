"""The statistics policy of the claims ledger, one for every evidence notebook (01-05).

:mod:`yolov9lite.study.claims` turns measurements into verdicts with the functions here. The policy:

1. **The independent unit is the seed.** Images, batches or steps measured within one seed share
   its initialisation and data order, so they are clustered, not independent: reduce them to one
   value per seed (:func:`seed_means`) before any interval. ``n`` in the ledger counts seeds.
2. **Student's t interval** (:func:`t_interval`) for the mean of the per-seed values (paired
   differences for a comparison). A bootstrap only with at least :data:`MIN_BOOTSTRAP_UNITS`
   units, and then the bias-corrected and accelerated (BCa) one of ``scipy.stats.bootstrap``
   (:func:`bca_interval`); with fewer units a bootstrap interval comes out too narrow, and
   :func:`mean_interval` refuses it. A rank correlation over independent units (runs of their
   own seeds) has no t interval: :func:`spearman_bca`, again from 20 units, with its minimum
   detectable correlation (:func:`minimum_detectable_correlation`). The percentile bootstrap (:func:`paired_bootstrap`) stays only
   so that the committed ledgers that used it recompute to the same numbers.
3. **Margins fixed in code**, per experiment, before the data: the smallest effect of interest
   with the reason for it (:class:`Margin`), the same on both sides of 0.
4. **Insensitivity is tested for equivalence**: a claim that a result does not depend on a setting
   (Table 3: "not sensitive to the depth") supports only when two one-sided tests reject effects
   beyond the margin (:func:`tost_p`: statsmodels ``ttost_paired`` / ``ttost_ind``), which is the
   90 % t interval lying inside the margin.
5. **Power is reported**: every claim carries its minimum detectable effect at 80 % power
   (:func:`minimum_detectable_effect`, statsmodels' ``TTestPower``) from the observed spread and
   n, beside its margin; :func:`seeds_needed` says how many seeds bring it under the margin. An
   "inconclusive" whose mde exceeds its margin means "too few seeds", not "no effect".
6. **Controls gate verdicts** and the summary states the family size (see ``claims.py``).

Quantiles come from ``scipy.stats`` (t, beta); the exact binomial interval is Clopper-Pearson.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

BOOTSTRAP_METHOD = "paired bootstrap (percentile), {n:,} resamples"
BCA_METHOD = "bootstrap (BCa), {n:,} resamples"
SPEARMAN_BCA_METHOD = "bootstrap over units (BCa), {n:,} resamples"
T_METHOD = "t interval"
BINOMIAL_METHOD = "exact binomial (Clopper-Pearson)"
MIN_BOOTSTRAP_UNITS = 20  # below this a bootstrap interval is too narrow: use t
POWER = 0.8  # the power at which the minimum detectable effect is reported
ALPHA = 0.05  # two-sided; 95 % intervals


@dataclass(frozen=True)
class Margin:
    """The smallest effect of interest of one experiment, fixed in code before the data, with the
    reason for its size; symmetric (the same on the paper's side and the other)."""

    value: float
    reason: str

    def __post_init__(self):
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"Margin must be a positive number, got {self.value!r}")
        if not self.reason.strip():
            raise ValueError("Margin needs its reason (why this is the smallest effect of interest)")


# --- distributions ------------------------------------------------------------------------------

def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom."""
    return float(stats.t.ppf(q, df))


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom."""
    return float(stats.t.cdf(t, df))


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of the Beta(a, b) distribution."""
    return float(stats.beta.ppf(q, a, b))


# --- the unit: seeds --------------------------------------------------------------------------------

def seed_means(values, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, per-seed means): values measured on images / batches within a seed, reduced to one
    value per seed (the independent unit), in ascending seed order."""
    v = np.asarray(values, dtype=np.float64).ravel()
    s = np.asarray(seeds).ravel()
    if v.shape != s.shape:
        raise ValueError(f"seed_means: {v.size} values but {s.size} seeds")
    if v.size == 0:
        raise ValueError("seed_means: no values")
    unique, inverse = np.unique(s, return_inverse=True)
    means = np.bincount(inverse, weights=v) / np.bincount(inverse)
    return unique, means


# --- intervals --------------------------------------------------------------------------------------

def _values(values, who: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{who}: no values")
    return v


def paired_bootstrap(diffs, n_boot: int = 10_000, seed: int = 0, stat=np.mean, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """(estimate, lo, hi): ``stat`` of paired differences and its percentile-bootstrap interval.

    Kept for the committed ledgers that used it (new claims: :func:`t_interval`, or
    :func:`bca_interval` with >= 20 units). Resamples the pairs with replacement; deterministic
    given ``seed``. With a single difference the interval is that value.
    """
    d = _values(diffs, "paired_bootstrap")
    est = float(stat(d))
    if d.size == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    boots = np.asarray([stat(row) for row in d[idx]]) if stat is not np.mean else d[idx].mean(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return est, float(lo), float(hi)


def bca_interval(values, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float, float]:
    """(mean, lo, hi): the BCa bootstrap interval of ``scipy.stats.bootstrap`` for the mean;
    refuses fewer than :data:`MIN_BOOTSTRAP_UNITS` units (use :func:`t_interval`)."""
    v = _values(values, "bca_interval")
    if v.size < MIN_BOOTSTRAP_UNITS:
        raise ValueError(f"bca_interval: {v.size} units; a bootstrap needs at least "
                         f"{MIN_BOOTSTRAP_UNITS} (use the t interval)")
    res = stats.bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=level,
                          method="BCa", random_state=np.random.default_rng(seed))
    return float(v.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def spearman(x, y, axis: int = -1) -> np.ndarray | float:
    """Spearman's rank correlation of paired samples along ``axis`` (ties get their average
    rank), vectorised so that a bootstrap can evaluate all its resamples in one call."""
    rx = stats.rankdata(np.asarray(x, dtype=np.float64), axis=axis)
    ry = stats.rankdata(np.asarray(y, dtype=np.float64), axis=axis)
    rx = rx - rx.mean(axis, keepdims=True)
    ry = ry - ry.mean(axis, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))
    rho = (rx * ry).sum(axis) / np.where(den > 0, den, np.nan)
    return float(rho) if np.ndim(rho) == 0 else rho


def spearman_bca(x, y, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float, float]:
    """(rho, lo, hi): Spearman's rank correlation of paired units (one pair per independent
    unit, e.g. one training run per seed) and its BCa bootstrap interval (``scipy.stats.bootstrap``,
    pairs resampled together); refuses fewer than :data:`MIN_BOOTSTRAP_UNITS` pairs (a rank
    correlation has no t interval, and a bootstrap over fewer units comes out too narrow)."""
    a, b = _values(x, "spearman_bca"), _values(y, "spearman_bca")
    if a.shape != b.shape:
        raise ValueError(f"spearman_bca: {a.size} x values but {b.size} y values")
    if a.size < MIN_BOOTSTRAP_UNITS:
        raise ValueError(f"spearman_bca: {a.size} units; a bootstrap needs at least "
                         f"{MIN_BOOTSTRAP_UNITS}")
    res = stats.bootstrap((a, b), spearman, paired=True, vectorized=True, n_resamples=n_boot,
                          confidence_level=level, method="BCa",
                          random_state=np.random.default_rng(seed))
    return spearman(a, b), float(res.confidence_interval.low), float(res.confidence_interval.high)


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student's t interval for the mean of ``values`` (n >= 2)."""
    v = _values(values, "t_interval")
    if v.size < 2:
        raise ValueError("t_interval needs at least two values")
    mean = float(v.mean())
    half = t_ppf(1 - (1 - level) / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(k/n, lo, hi): the exact binomial interval for a proportion."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n, n >= 1 (got k={k}, n={n})")
    alpha = 1 - level
    lo = 0.0 if k == 0 else beta_ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_ppf(1 - alpha / 2, k + 1, n - k)
    return k / n, lo, hi


def mean_interval(values, method: str = "t", n_boot: int = 10_000, seed: int = 0,
                  level: float = 0.95) -> tuple[tuple[float, float, float], str]:
    """``((estimate, lo, hi), method name)`` for the mean of ``values``: ``"t"`` (the policy),
    ``"bca"`` (>= 20 units only) or ``"bootstrap"`` (percentile; the committed ledgers' method)."""
    if method == "t":
        return t_interval(values, level), T_METHOD
    if method == "bca":
        return bca_interval(values, n_boot, seed, level), BCA_METHOD.format(n=n_boot)
    if method == "bootstrap":
        return paired_bootstrap(values, n_boot=n_boot, seed=seed, level=level), \
            BOOTSTRAP_METHOD.format(n=n_boot)
    raise ValueError(f"method must be 't', 'bca' or 'bootstrap', got {method!r}")


# --- equivalence (claims of insensitivity) ----------------------------------------------------------

def tost_p(a, margin: float, b=None, paired: bool = True) -> float:
    """p-value of the two one-sided tests that the mean difference lies inside (-margin, +margin).

    ``a`` alone: paired differences (or ``a - b`` with ``paired=True``); ``paired=False``: two
    independent groups ``a`` and ``b`` (Welch). Equivalence at level 5 % when p < 0.05, which is
    the same as the 90 % t interval lying inside the margin (paired case).
    """
    a = _values(a, "tost_p")
    if b is None:
        if not paired:
            raise ValueError("tost_p: two independent groups need b")
        b = np.zeros_like(a)
    b = _values(b, "tost_p")
    if paired:
        p, _, _ = ttost_paired(a, b, -margin, margin)
    else:
        p, _, _ = ttost_ind(a, b, -margin, margin, usevar="unequal")
    return float(p)


def verdict_equivalence(lo90: float, hi90: float, lo95: float, hi95: float, margin: float) -> str:
    """supports (no effect that matters): the 90 % interval lies inside (-margin, +margin), i.e.
    TOST at 5 %; contradicts: the 95 % interval lies wholly beyond the margin on one side (an
    effect larger than the margin); inconclusive otherwise."""
    if -margin < lo90 and hi90 < margin:
        return "supports"
    if lo95 > margin or hi95 < -margin:
        return "contradicts"
    return "inconclusive"


# --- power ------------------------------------------------------------------------------------------

def minimum_detectable_effect(sd: float, n: int, power: float = POWER, alpha: float = ALPHA,
                              paired: bool = True) -> float:
    """The smallest true mean difference a two-sided t test at ``alpha`` detects with ``power``,
    in the metric's units, given the spread ``sd`` of the per-seed values and ``n`` seeds
    (``paired=False``: two independent groups of ``n`` each, ``sd`` within a group)."""
    if n < 2:
        return math.inf
    if sd == 0:
        return 0.0
    if paired:
        d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                     alternative="two-sided")
    else:
        d = TTestIndPower().solve_power(effect_size=None, nobs1=n, ratio=1.0, alpha=alpha,
                                        power=power, alternative="two-sided")
    return float(np.asarray(d).item()) * float(sd)


def observed_mde(values, power: float = POWER, alpha: float = ALPHA) -> float:
    """:func:`minimum_detectable_effect` of paired differences ``values`` (their own sd and n)."""
    v = _values(values, "observed_mde")
    if v.size < 2:
        return math.inf
    return minimum_detectable_effect(float(v.std(ddof=1)), v.size, power, alpha)


def minimum_detectable_correlation(n: int, power: float = POWER, alpha: float = ALPHA,
                                   rank: bool = True) -> float:
    """The smallest true correlation a two-sided test at ``alpha`` detects with ``power`` from
    ``n`` independent pairs, by Fisher's z (atanh r has variance 1 / (n - 3)); ``rank``: Spearman's
    rho, whose z has variance 1.06 / (n - 3) (Fieller, Hartley & Pearson 1957)."""
    if n < 4:
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(math.tanh(z * math.sqrt((1.06 if rank else 1.0) / (n - 3))))


def seeds_needed(sd: float, margin: float, power: float = POWER, alpha: float = ALPHA,
                 paired: bool = True, max_seeds: int = 10_000) -> int:
    """The fewest seeds for which :func:`minimum_detectable_effect` <= ``margin``, given the
    spread ``sd`` (e.g. from a pilot run); ``max_seeds`` + 1 if even that many do not suffice."""
    if margin <= 0:
        raise ValueError(f"seeds_needed: margin must be positive, got {margin}")
    lo, hi = 2, max_seeds
    if minimum_detectable_effect(sd, hi, power, alpha, paired) > margin:
        return max_seeds + 1
    while lo < hi:  # the mde falls with n: bisect on the integers
        mid = (lo + hi) // 2
        if minimum_detectable_effect(sd, mid, power, alpha, paired) <= margin:
            hi = mid
        else:
            lo = mid + 1
    return lo
