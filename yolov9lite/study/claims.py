"""The claims ledger: one record per paper claim a notebook tests, with a computed verdict.

A notebook states what the paper says, measures it, and hands the measurements to a constructor
here, which computes the estimate, a 95 % interval (method named) and the verdict by a rule written
in code. The notebook's prose is rendered from the ledger (``display(Markdown(ledger.markdown()))``,
``ledger.sentence(id)``), so no number in the prose can drift from what ran::

    from yolov9lite.study.claims import Ledger, paired_claim
    ledger = Ledger("05_ablations", fig_dir=fig_dir)     # fig_dir: the notebook parameter
    ledger.add(paired_claim("05.pgi_lowers_loss", "PGI improves ...", "Sec. 5.4, Table 4",
                            "held-out loss, none - icn", diffs, expect="positive",
                            n_unit="seeds", scale=SCALE))
    display(Markdown(ledger.markdown())); ledger.save()  # -> fig_dir/claims/05_ablations.json

Where files go: the same ``fig_dir`` as the figures of :mod:`yolov9lite.report.viz` (``figures/`` when
``yolov9lite figures`` runs the notebook, the git-ignored ``runs/figures_ci`` otherwise); the ledger
adds ``claims/`` under it. :func:`write_summary` gathers every ``claims/*.json`` into one table,
``figures/claims.md``.

Machines: the JSON records the machine it ran on (:func:`yolov9lite.report.viz.machine_info`), and its numbers may differ
in the last digits between machines (CPU floating point: other vector units sum in other orders;
``machine.simd`` records the paths used). Verdicts must not: ``tests/test_claims_stable.py`` reruns
the notebooks with another ``seed_offset``, and at the committed seeds on an emulated CPU without
AVX, and asserts identical verdicts. Small runs amplify rounding (notebook 03's noise control), so a
rule needs a margin, or an interval far from its boundary, to pass; the test lists the known
exceptions.

Statistics are plain numpy (no scipy): the percentile bootstrap, Student's t interval and the
exact (Clopper-Pearson) binomial interval; the last two need quantiles of the t and beta
distributions, computed from the regularised incomplete beta function by bisection.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..report.viz import machine_info, repo_root

VERDICTS = ("supports", "contradicts", "inconclusive")
KINDS = ("claim", "control")
CLAIMS_SUBDIR = "claims"  # under the figure folder
SUMMARY_NAME = "claims.md"  # next to the claims folder
BOOTSTRAP_METHOD = "paired bootstrap (percentile), {n:,} resamples"
T_METHOD = "t interval"
BINOMIAL_METHOD = "exact binomial (Clopper-Pearson)"


@dataclass(frozen=True)
class Claim:
    """One tested claim. ``verdict`` is computed by a rule function, never typed."""

    id: str  # "NN.short_name", NN = notebook number
    paper: str  # the paper's words (short quote or close paraphrase)
    where: str  # "Sec. 4.1, Table 4"
    metric: str  # what was measured, with units / direction
    estimate: float
    ci: tuple[float, float]  # 95 % interval
    ci_method: str
    n: int
    n_unit: str  # "seeds", "images", ...
    rule: str  # the verdict rule in words
    verdict: str  # supports | contradicts | inconclusive
    scale: str  # "default (tiny preset, synthetic data, CPU)"
    kind: str = "claim"  # claim (of the paper) | control (of a method)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"{self.id}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if len(self.ci) != 2:
            raise ValueError(f"{self.id}: ci must be (lo, hi)")
        # plain floats and a tuple, whatever came in (numpy scalars, lists from JSON)
        object.__setattr__(self, "estimate", float(self.estimate))
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "n", int(self.n))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["estimate"] = _round(self.estimate)
        d["ci"] = [_round(v) for v in self.ci]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Claim:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _round(x: float, digits: int = 6) -> float:
    """Six significant digits in the JSON: the last bits of a float differ between CPUs anyway."""
    if not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{digits}g}")


def fmt(x: float) -> str:
    """A number for prose and tables: 3 significant digits, scientific when tiny or huge."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.2e}"
    return f"{x:.3g}"


# --- special functions (numpy/math only) ------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
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
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) (the beta distribution's CDF)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def _bisect(f, lo: float, hi: float, target: float, iters: int = 200) -> float:
    """x in [lo, hi] with f(x) = target for an increasing f."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of the Beta(a, b) distribution."""
    return _bisect(lambda x: betainc(a, b, x), 0.0, 1.0, q)


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (q in (0, 1))."""
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1 - q, df)
    hi = 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    return _bisect(lambda t: t_cdf(t, df), 0.0, hi, q)


# --- intervals -------------------------------------------------------------------------------------

def paired_bootstrap(diffs, n_boot: int = 10_000, seed: int = 0, stat=np.mean, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """(estimate, lo, hi): ``stat`` of paired differences and its percentile-bootstrap interval.

    Resamples the pairs (seeds, images, ...) with replacement; deterministic given ``seed``.
    With a single difference the interval is that value (no spread can be estimated).
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("paired_bootstrap: no differences")
    est = float(stat(d))
    if d.size == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    boots = np.asarray([stat(row) for row in d[idx]]) if stat is not np.mean else d[idx].mean(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return est, float(lo), float(hi)


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student's t interval for the mean of ``values`` (n >= 2)."""
    v = np.asarray(values, dtype=np.float64).ravel()
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


# --- verdict rules ---------------------------------------------------------------------------------

def verdict_sign(lo: float, hi: float, expect: str = "positive", margin: float = 0.0,
                 against: float = 0.0) -> str:
    """supports: the whole interval lies beyond ``margin`` on the paper's side of 0;
    contradicts: the whole interval lies beyond ``against`` on the other side of 0;
    inconclusive otherwise. A margin on both sides keeps a difference too small to matter (or
    to survive another CPU's rounding, see ``tests/test_claims_stable.py``) inconclusive."""
    if expect == "positive":
        return "supports" if lo > margin else "contradicts" if hi < -against else "inconclusive"
    if expect == "negative":
        return "supports" if hi < -margin else "contradicts" if lo > against else "inconclusive"
    raise ValueError(f"expect must be 'positive' or 'negative', got {expect!r}")


def _signed(value: float, sign: str) -> str:
    return f"{sign}{fmt(value)}" if value else "0"


def rule_sign(expect: str, margin: float = 0.0, against: float = 0.0) -> str:
    paper, other = ("+", "-") if expect == "positive" else ("-", "+")
    side, other_side = ("above", "below") if expect == "positive" else ("below", "above")
    return (f"supports if the interval lies {side} {_signed(margin, paper)}; contradicts if it "
            f"lies {other_side} {_signed(against, other)}; inconclusive otherwise")


def verdict_threshold(lo: float, hi: float, threshold: float, expect: str = "above") -> str:
    """supports: the whole interval is on the ``expect`` side of ``threshold``; contradicts: the
    whole interval is on the other side; inconclusive when it straddles the threshold."""
    if expect == "above":
        return "supports" if lo > threshold else "contradicts" if hi < threshold else "inconclusive"
    if expect == "below":
        return "supports" if hi < threshold else "contradicts" if lo > threshold else "inconclusive"
    raise ValueError(f"expect must be 'above' or 'below', got {expect!r}")


def rule_threshold(threshold: float, expect: str) -> str:
    other = "below" if expect == "above" else "above"
    return (f"supports if the interval lies {expect} {fmt(threshold)}; contradicts if it lies "
            f"{other}; inconclusive otherwise")


# --- constructors: estimate, interval and verdict in one call ---------------------------------------

def mean_interval(values: np.ndarray, method: str = "bootstrap", n_boot: int = 10_000,
                  seed: int = 0) -> tuple[tuple[float, float, float], str]:
    """``((estimate, lo, hi), method name)`` for the mean of ``values``: the percentile bootstrap
    (``"bootstrap"``) or Student's t (``"t"``; for a handful of values, where the bootstrap's
    interval comes out too narrow)."""
    if method == "t":
        return t_interval(values), T_METHOD
    if method == "bootstrap":
        return paired_bootstrap(values, n_boot=n_boot, seed=seed), BOOTSTRAP_METHOD.format(n=n_boot)
    raise ValueError(f"method must be 'bootstrap' or 't', got {method!r}")


def paired_claim(id: str, paper: str, where: str, metric: str, diffs, expect: str, n_unit: str,
                 scale: str, margin: float = 0.0, seed: int = 0, kind: str = "claim",
                 n_boot: int = 10_000, method: str = "bootstrap", against: float = 0.0) -> Claim:
    """A claim about the mean of paired differences (``expect`` = the paper's sign): interval by
    :func:`mean_interval` (``method``), verdict by :func:`verdict_sign` with ``margin`` on the
    paper's side and ``against`` on the other."""
    d = np.asarray(diffs, dtype=np.float64).ravel()
    (est, lo, hi), how = mean_interval(d, method, n_boot, seed)
    return Claim(id, paper, where, metric, est, (lo, hi), how, int(d.size), n_unit,
                 rule_sign(expect, margin, against), verdict_sign(lo, hi, expect, margin, against),
                 scale, kind)


def threshold_claim(id: str, paper: str, where: str, metric: str, values, threshold: float,
                    expect: str, n_unit: str, scale: str, seed: int = 0, kind: str = "claim",
                    method: str = "bootstrap", n_boot: int = 10_000) -> Claim:
    """A claim that the mean of ``values`` lies above/below ``threshold`` (:func:`verdict_threshold`);
    interval by the percentile bootstrap (``method="bootstrap"``) or Student's t (``"t"``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    (est, lo, hi), how = mean_interval(v, method, n_boot, seed)
    how = how.replace("paired ", "")  # the values are not differences
    return Claim(id, paper, where, metric, est, (lo, hi), how, int(v.size), n_unit,
                 rule_threshold(threshold, expect), verdict_threshold(lo, hi, threshold, expect),
                 scale, kind)


def proportion_claim(id: str, paper: str, where: str, metric: str, k: int, n: int,
                     threshold: float, expect: str, n_unit: str, scale: str,
                     kind: str = "claim") -> Claim:
    """A claim about a proportion k/n against ``threshold`` (exact Clopper-Pearson interval)."""
    est, lo, hi = clopper_pearson(k, n)
    return Claim(id, paper, where, metric, est, (lo, hi), BINOMIAL_METHOD, n, n_unit,
                 rule_threshold(threshold, expect), verdict_threshold(lo, hi, threshold, expect),
                 scale, kind)


# --- the ledger of one notebook --------------------------------------------------------------------

def default_fig_dir() -> Path:
    """Where figures and claims go when no ``fig_dir`` is given: the git-ignored CI folder that
    is the default of every notebook's ``fig_dir`` parameter (``runs/figures_ci``)."""
    return repo_root() / "runs" / "figures_ci"


class Ledger:
    """The claims of one notebook (``name`` = the notebook's stem, e.g. ``"05_ablations"``)."""

    def __init__(self, name: str, fig_dir: str | Path | None = None):
        self.name = name
        self.fig_dir = Path(fig_dir) if fig_dir is not None else None
        self.claims: dict[str, Claim] = {}

    def add(self, claim: Claim) -> Claim:
        """Add (or, re-running a cell, replace) a claim; its id must start with the notebook's
        number (``"05."`` for ``05_ablations``)."""
        prefix = self.name.split("_", 1)[0] + "."
        if not claim.id.startswith(prefix):
            raise ValueError(f"claim id {claim.id!r} must start with {prefix!r} in {self.name}")
        self.claims[claim.id] = claim
        return claim

    def __getitem__(self, claim_id: str) -> Claim:
        return self.claims[claim_id]

    def __iter__(self):
        return iter(self.claims.values())

    def __len__(self) -> int:
        return len(self.claims)

    def verdicts(self) -> dict[str, str]:
        return {c.id: c.verdict for c in self}

    def markdown(self) -> str:
        return claims_table(list(self))

    def sentence(self, claim_id: str) -> str:
        """One sentence for prose: what was measured, the interval and the verdict."""
        c = self.claims[claim_id]
        what = "Control" if c.kind == "control" else "Paper"
        return (f"{what} ({c.where}): *{c.paper}* — {c.metric}: **{fmt(c.estimate)}** "
                f"(95 % interval [{fmt(c.ci[0])}, {fmt(c.ci[1])}], {c.ci_method}, n = {c.n} "
                f"{c.n_unit}) → **{c.verdict}** ({c.rule}).")

    def path(self, fig_dir: str | Path | None = None) -> Path:
        base = Path(fig_dir) if fig_dir is not None else self.fig_dir or default_fig_dir()
        return base / CLAIMS_SUBDIR / f"{self.name}.json"

    def to_dict(self) -> dict:
        return {"notebook": self.name, "claims": [c.to_dict() for c in self],
                "machine": machine_info()}

    def save(self, fig_dir: str | Path | None = None) -> Path:
        """Write ``<fig_dir>/claims/<name>.json`` (sorted keys, claims in insertion order)."""
        path = self.path(fig_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if not path.exists() or path.read_text() != text:  # leave identical files untouched
            path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        path = Path(path)
        data = json.loads(path.read_text())
        ledger = cls(data["notebook"], fig_dir=path.parent.parent)
        for d in data["claims"]:
            ledger.add(Claim.from_dict(d))
        return ledger


def claims_table(claims: list[Claim]) -> str:
    """A GitHub Markdown table of claims (the one layout of notebooks and ``claims.md``)."""
    head = ("| claim | paper | metric | estimate [95 % interval] | method | n | verdict |\n"
            "|---|---|---|---|---|---|---|")
    rows = []
    for c in claims:
        tag = " (control)" if c.kind == "control" else ""
        paper = f"{c.paper} ({c.where})".replace("|", "/")
        rows.append(f"| `{c.id}`{tag} | {paper} | {c.metric.replace('|', '/')} | "
                    f"{fmt(c.estimate)} [{fmt(c.ci[0])}, {fmt(c.ci[1])}] | {c.ci_method} | "
                    f"{c.n} {c.n_unit} | **{c.verdict}** |")
    return "\n".join([head, *rows])


def load_claims(claims_dir: str | Path) -> list[Claim]:
    """Every claim of every ``claims_dir/*.json``, in notebook order."""
    out: list[Claim] = []
    for path in sorted(Path(claims_dir).glob("*.json")):
        out.extend(Ledger.load(path))
    return out


def write_summary(claims_dir: str | Path | None = None) -> Path:
    """``claims.md`` next to ``claims_dir`` (default ``figures/claims``): one table of every claim.

    No machine details and no timestamps in it, so it changes only when a claim's numbers or
    verdict do.
    """
    if claims_dir is None:
            claims_dir = repo_root() / "figures" / CLAIMS_SUBDIR
    claims_dir = Path(claims_dir)
    claims = load_claims(claims_dir)
    counts = {v: sum(c.verdict == v for c in claims if c.kind == "claim") for v in VERDICTS}
    lines = [
        "# Claims ledger (generated by `yolov9lite figures`; do not edit)",
        "",
        ("Every claim the notebooks test, at the default scale: the estimate, its 95 % interval "
         "(method named), n, and the verdict computed by the rule in `yolov9lite/study/claims.py` "
         "(recorded in each `claims/NN_name.json` with the machine it ran on). Controls check "
         "a measuring method, not the paper."),
        "",
        "Paper claims: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".",
        "",
        claims_table(claims),
        "",
    ]
    out = claims_dir.parent / SUMMARY_NAME
    text = "\n".join(lines)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out
