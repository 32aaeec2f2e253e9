"""The claims ledger: one record per paper claim a notebook tests, with a computed verdict.

A notebook states what the paper says, measures it, and hands the measurements to a constructor
here, which computes the estimate, a 95 % interval (method named) and the verdict by a rule written
in code. The notebook's prose is rendered from the ledger (``display(Markdown(ledger.markdown()))``,
``ledger.sentence(id)``), so no number in the prose can drift from what ran::

    from yolov9lite.study.claims import Ledger, paired_claim
    from yolov9lite.study.statistics import Margin
    MARGIN = Margin(0.2, "why 0.2 is the smallest effect of interest")  # in code, before data
    ledger = Ledger("05_ablations", fig_dir=fig_dir)     # fig_dir: the notebook parameter
    ledger.add(paired_claim("05.control_frozen", "a frozen backbone learns less", "control",
                            "held-out loss, frozen - trained", frozen_diffs, "positive", "seeds",
                            SCALE, MARGIN, method="t", kind="control", role="positive",
                            gates=["05.pgi_lowers_loss"]))          # one value per seed
    ledger.add(paired_claim("05.pgi_lowers_loss", "PGI improves ...", "Sec. 5.4, Table 4",
                            "held-out loss, none - icn", diffs, "positive", "seeds", SCALE,
                            MARGIN, method="t"))
    display(Markdown(ledger.markdown())); ledger.save()  # -> fig_dir/claims/05_ablations.json

Where files go: ``<fig_dir>/claims/<name>.json``, ``fig_dir`` as for the figures of
:mod:`yolov9lite.report.viz` (``figures/`` from ``yolov9lite figures``, else the git-ignored
``runs/figures_ci``); :func:`write_summary` gathers every ledger into ``figures/claims.md``.

Machines: the JSON records the machine (:func:`yolov9lite.report.viz.machine_info`; ``simd``: the
vector paths used). Numbers may differ in the last digits between machines, verdicts must not:
``tests/test_claims_stable.py`` reruns the notebooks at another ``seed_offset`` and on an emulated
CPU without AVX; small runs amplify rounding, so a rule needs a margin, or an interval far from its
boundary, to pass (the test lists the known exceptions).

Statistics: one policy, :mod:`yolov9lite.study.statistics` (the seed is the unit, t intervals, BCa
only from 20 units, symmetric margins in code, equivalence for insensitivity, mde beside margin).

Kinds: ``claim`` (of the paper; the family whose size the summary states), ``sanity`` (a check
such as "trained beats untrained", not a paper claim) and ``control`` (of a method). A control
with ``role="positive"`` (an effect of known sign, declared in code before the data) or
``role="null"`` (no effect) may gate claims (``gates=[...]``): when a positive control does not
read "supports", or a null control reads "contradicts", each gated claim reads ``control failed``
(:func:`apply_controls`), the rule's verdict kept in ``ungated_verdict``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from ..report.viz import machine_info, repo_root
from . import statistics as st
from .statistics import Margin

CONTROL_FAILED = "control failed"
VERDICTS = ("supports", "contradicts", "inconclusive", CONTROL_FAILED)
KINDS = ("claim", "control", "sanity")
ROLES = ("", "positive", "null")  # of a control
CLAIMS_SUBDIR = "claims"  # under the figure folder
SUMMARY_NAME = "claims.md"  # next to the claims folder
# fields added after the first ledgers were committed: written to JSON only when set, so a
# ledger that uses none of them saves as it did
OPTIONAL_FIELDS = {"role": "", "gates": (), "margin": None, "margin_reason": "", "mde": None,
                   "ungated_verdict": "", "gated_by": ()}


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
    verdict: str  # supports | contradicts | inconclusive | control failed
    scale: str  # "default (tiny preset, synthetic data, CPU)"
    kind: str = "claim"  # claim (of the paper) | sanity (a check) | control (of a method)
    role: str = ""  # of a control: positive | null
    gates: tuple[str, ...] = ()  # of a control: the ids of the claims it gates
    margin: float | None = None  # the smallest effect of interest (symmetric), metric units
    margin_reason: str = ""  # why that margin
    mde: float | None = None  # minimum detectable effect at 80 % power (observed sd, n)
    ungated_verdict: str = ""  # the rule's verdict, when a failed control replaced it
    gated_by: tuple[str, ...] = ()  # the failed controls

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"{self.id}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.role not in ROLES or (self.role and self.kind != "control"):
            raise ValueError(f"{self.id}: role {self.role!r} needs kind 'control' and one of "
                             f"{ROLES[1:]}")
        if self.gates and not self.role:
            raise ValueError(f"{self.id}: a control that gates claims needs role 'positive' or "
                             "'null'")
        if self.verdict == CONTROL_FAILED and (self.kind == "control" or not self.ungated_verdict):
            raise ValueError(f"{self.id}: {CONTROL_FAILED!r} is set by apply_controls, on claims")
        if len(self.ci) != 2:
            raise ValueError(f"{self.id}: ci must be (lo, hi)")
        # plain floats and tuples, whatever came in (numpy scalars, lists from JSON)
        object.__setattr__(self, "estimate", float(self.estimate))
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "gates", tuple(self.gates))
        object.__setattr__(self, "gated_by", tuple(self.gated_by))
        for name in ("margin", "mde"):
            value = getattr(self, name)  # an mde needs a spread: none (None) from one value
            object.__setattr__(self, name, float(value) if value is not None
                               and math.isfinite(value) else None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["estimate"] = _round(self.estimate)
        d["ci"] = [_round(v) for v in self.ci]
        for name, default in OPTIONAL_FIELDS.items():
            if d[name] == default or (isinstance(default, tuple) and not d[name]):
                del d[name]
            elif isinstance(default, tuple):
                d[name] = list(d[name])
            elif name in ("margin", "mde"):
                d[name] = _round(d[name])
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

def _margins(margin: float | Margin, against: float | None) -> tuple[float, float, float | None,
                                                                     str]:
    """(paper-side margin, other-side margin, margin to record, its reason): a :class:`Margin`
    is symmetric; a bare number keeps the committed notebooks' one-sided default."""
    if isinstance(margin, Margin):
        if against is not None and against != margin.value:
            raise ValueError("a Margin is symmetric: leave `against` out")
        return margin.value, margin.value, margin.value, margin.reason
    against = 0.0 if against is None else against
    return margin, against, (margin if margin or against else None), ""


def paired_claim(id: str, paper: str, where: str, metric: str, diffs, expect: str, n_unit: str,
                 scale: str, margin: float | Margin = 0.0, seed: int = 0, kind: str = "claim",
                 n_boot: int = 10_000, method: str = "bootstrap", against: float | None = None,
                 role: str = "", gates=()) -> Claim:
    """A claim about the mean of paired differences (``expect`` = the paper's sign): interval by
    :func:`~yolov9lite.study.statistics.mean_interval` (``method``: ``"t"`` is the policy; the
    default ``"bootstrap"`` keeps the committed notebooks' numbers), verdict by
    :func:`verdict_sign` with ``margin`` on the paper's side and ``against`` on the other (a
    :class:`~yolov9lite.study.statistics.Margin` on both). Records the margin and the minimum
    detectable effect at 80 % power."""
    d = np.asarray(diffs, dtype=np.float64).ravel()
    m, other, recorded, reason = _margins(margin, against)
    (est, lo, hi), how = st.mean_interval(d, method, n_boot, seed)
    return Claim(id, paper, where, metric, est, (lo, hi), how, int(d.size), n_unit,
                 rule_sign(expect, m, other), verdict_sign(lo, hi, expect, m, other),
                 scale, kind, role, tuple(gates), recorded, reason, st.observed_mde(d))


def rule_equivalence(margin: float) -> str:
    return (f"supports (no effect beyond ±{fmt(margin)}) if the 90 % t interval lies inside "
            f"±{fmt(margin)} (two one-sided tests at 5 %); contradicts if the 95 % interval lies "
            f"beyond ±{fmt(margin)}; inconclusive otherwise")


def equivalence_claim(id: str, paper: str, where: str, metric: str, diffs, margin: Margin,
                      n_unit: str, scale: str, kind: str = "claim", role: str = "",
                      gates=()) -> Claim:
    """A claim of insensitivity ("not sensitive to the depth", or a null control): the mean of
    paired differences lies inside ±``margin``, tested by two one-sided tests (TOST, statsmodels)
    = the 90 % t interval inside the margin (:func:`~yolov9lite.study.statistics.verdict_equivalence`).
    The ledger's interval is the 95 % one; the method names the TOST p-value."""
    if not isinstance(margin, Margin):
        raise TypeError("equivalence_claim needs a Margin (its size and the reason for it)")
    d = np.asarray(diffs, dtype=np.float64).ravel()
    est, lo, hi = st.t_interval(d)
    _, lo90, hi90 = st.t_interval(d, level=0.90)
    how = f"t interval; TOST p = {fmt(st.tost_p(d, margin.value))}"
    return Claim(id, paper, where, metric, est, (lo, hi), how, int(d.size), n_unit,
                 rule_equivalence(margin.value),
                 st.verdict_equivalence(lo90, hi90, lo, hi, margin.value), scale, kind, role,
                 tuple(gates), margin.value, margin.reason, st.observed_mde(d))


def threshold_claim(id: str, paper: str, where: str, metric: str, values, threshold: float,
                    expect: str, n_unit: str, scale: str, seed: int = 0, kind: str = "claim",
                    method: str = "bootstrap", n_boot: int = 10_000,
                    margin: Margin | None = None) -> Claim:
    """The mean of ``values`` above/below ``threshold`` (:func:`verdict_threshold`), interval by
    :func:`~.statistics.mean_interval`; ``margin``: what the threshold stands for, recorded."""
    v = np.asarray(values, dtype=np.float64).ravel()
    (est, lo, hi), how = st.mean_interval(v, method, n_boot, seed)
    how = how.replace("paired ", "")  # the values are not differences
    return Claim(id, paper, where, metric, est, (lo, hi), how, int(v.size), n_unit,
                 rule_threshold(threshold, expect), verdict_threshold(lo, hi, threshold, expect),
                 scale, kind, margin=margin and margin.value,
                 margin_reason=margin.reason if margin else "", mde=st.observed_mde(v))


def correlation_claim(id: str, paper: str, where: str, metric: str, x, y, expect: str,
                      n_unit: str, scale: str, margin: Margin, seed: int = 0,
                      n_boot: int = 10_000, kind: str = "claim") -> Claim:
    """Spearman's rho of pairs, one per independent unit (>= 20): BCa interval, symmetric
    ``margin`` (:func:`verdict_sign`), mde = the minimum detectable correlation at 80 % power."""
    if not isinstance(margin, Margin):
        raise TypeError("correlation_claim needs a Margin (its size and the reason for it)")
    (est, lo, hi), n, m = st.spearman_bca(x, y, n_boot, seed), np.asarray(x).size, margin.value
    return Claim(id, paper, where, metric, est, (lo, hi), st.SPEARMAN_BCA_METHOD.format(n=n_boot),
                 n, n_unit, rule_sign(expect, m, m), verdict_sign(lo, hi, expect, m, m), scale,
                 kind, margin=m, margin_reason=margin.reason, mde=st.minimum_detectable_correlation(n))


def proportion_claim(id: str, paper: str, where: str, metric: str, k: int, n: int,
                     threshold: float, expect: str, n_unit: str, scale: str,
                     kind: str = "claim") -> Claim:
    """A claim about a proportion k/n against ``threshold`` (exact Clopper-Pearson interval)."""
    est, lo, hi = st.clopper_pearson(k, n)
    return Claim(id, paper, where, metric, est, (lo, hi), st.BINOMIAL_METHOD, n, n_unit,
                 rule_threshold(threshold, expect), verdict_threshold(lo, hi, threshold, expect),
                 scale, kind)


# --- controls gate verdicts ------------------------------------------------------------------------

def control_failed(control: Claim) -> bool:
    """A positive control fails unless it supports; a null control fails when it contradicts
    (it found an effect where there is none)."""
    if control.role == "positive":
        return control.verdict != "supports"
    return control.role == "null" and control.verdict == "contradicts"


def apply_controls(claims: list[Claim], strict: bool = True) -> list[Claim]:
    """The claims with each one gated by a failed control reading ``control failed`` (the rule's
    verdict kept in ``ungated_verdict``); a claim whose controls pass reads its own verdict.
    Idempotent. A control gating another control, or (``strict``) an id not among ``claims``, is
    an error; not strict, such an id is skipped (a ledger shown before all its claims ran)."""
    by_id = {c.id: c for c in claims}
    failed: dict[str, list[str]] = {}
    for ctl in claims:
        for target in ctl.gates:
            if target not in by_id and not strict:
                continue
            if target not in by_id or by_id[target].kind == "control":
                raise ValueError(f"control {ctl.id} gates {target!r}, which is not a claim of "
                                 "this ledger")
            if control_failed(ctl):
                failed.setdefault(target, []).append(ctl.id)
    out = []
    for c in claims:
        own = c.ungated_verdict or c.verdict
        if c.id in failed:
            c = replace(c, verdict=CONTROL_FAILED, ungated_verdict=own,
                        gated_by=tuple(failed[c.id]))
        elif c.verdict == CONTROL_FAILED:
            c = replace(c, verdict=own, ungated_verdict="", gated_by=())
        out.append(c)
    return out


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

    def resolved(self, strict: bool = False) -> list[Claim]:
        """The claims as the ledger reports them: gated by their controls (:func:`apply_controls`;
        ``strict``: every gated id must be here, as when saving)."""
        return apply_controls(list(self.claims.values()), strict)

    def __getitem__(self, claim_id: str) -> Claim:
        return {c.id: c for c in self.resolved()}[claim_id]

    def __iter__(self):
        return iter(self.resolved())

    def __len__(self) -> int:
        return len(self.claims)

    def verdicts(self) -> dict[str, str]:
        return {c.id: c.verdict for c in self}

    def markdown(self) -> str:
        return claims_table(list(self))

    def sentence(self, claim_id: str) -> str:
        """One sentence for prose: what was measured, the interval and the verdict."""
        c = self[claim_id]
        what = {"control": "Control", "sanity": "Sanity check"}.get(c.kind, "Paper")
        power = "" if c.mde is None else f", minimum detectable effect {fmt(c.mde)}"
        power += "" if c.margin is None else f", margin {fmt(c.margin)}"
        gate = ("" if not c.gated_by else f"; the rule said {c.ungated_verdict}, but control "
                f"{', '.join(c.gated_by)} failed")
        return (f"{what} ({c.where}): *{c.paper}* — {c.metric}: **{fmt(c.estimate)}** "
                f"(95 % interval [{fmt(c.ci[0])}, {fmt(c.ci[1])}], {c.ci_method}, n = {c.n} "
                f"{c.n_unit}{power}) → **{c.verdict}** ({c.rule}{gate}).")

    def path(self, fig_dir: str | Path | None = None) -> Path:
        base = Path(fig_dir) if fig_dir is not None else self.fig_dir or default_fig_dir()
        return base / CLAIMS_SUBDIR / f"{self.name}.json"

    def to_dict(self) -> dict:
        return {"notebook": self.name, "claims": [c.to_dict() for c in self.resolved(True)],
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


def _tag(c: Claim) -> str:
    if c.kind == "control":
        gates = f", gates {', '.join(f'`{g}`' for g in c.gates)}" if c.gates else ""
        return f" ({c.role + ' ' if c.role else ''}control{gates})"
    return " (sanity)" if c.kind == "sanity" else ""


def _power_cell(c: Claim) -> str:
    margin = "–" if c.margin is None else f"±{fmt(c.margin)}"
    return f"{margin} / {'–' if c.mde is None else fmt(c.mde)}"


def claims_table(claims: list[Claim]) -> str:
    """A GitHub Markdown table of claims (the one layout of notebooks and ``claims.md``). The
    column "margin / mde" appears when a claim records either (ledgers built on the statistics
    policy); a gated claim's verdict reads ``control failed``."""
    power = any(c.margin is not None or c.mde is not None for c in claims)
    head = ("| claim | paper | metric | estimate [95 % interval] | method | n | "
            + ("margin / mde | " if power else "") + "verdict |\n"
            + "|---|---|---|---|---|---|" + ("---|" if power else "") + "---|")
    rows = []
    for c in claims:
        paper = f"{c.paper} ({c.where})".replace("|", "/")
        rows.append(f"| `{c.id}`{_tag(c)} | {paper} | {c.metric.replace('|', '/')} | "
                    f"{fmt(c.estimate)} [{fmt(c.ci[0])}, {fmt(c.ci[1])}] | {c.ci_method} | "
                    f"{c.n} {c.n_unit} | " + (f"{_power_cell(c)} | " if power else "")
                    + f"**{c.verdict}** |")
    return "\n".join([head, *rows])


def load_claims(claims_dir: str | Path) -> list[Claim]:
    """Every claim of every ``claims_dir/*.json``, in notebook order."""
    out: list[Claim] = []
    for path in sorted(Path(claims_dir).glob("*.json")):
        out.extend(Ledger.load(path))
    return out


def family_lines(claims: list[Claim]) -> list[str]:
    """The summary's account of what was tested: verdict counts of the paper claims, the family
    size (each interval is 95 % on its own, with no correction for multiplicity) and the sanity
    checks, which are not in the family."""
    paper = [c for c in claims if c.kind == "claim"]
    counts = {v: sum(c.verdict == v for c in paper) for v in VERDICTS}
    shown = [v for v in VERDICTS if v != CONTROL_FAILED or counts[v]]
    sanity = [c for c in claims if c.kind == "sanity"]
    n_controls = sum(c.kind == "control" for c in claims)
    return [
        "Paper claims: " + ", ".join(f"{counts[v]} {v}" for v in shown) + ".",
        "",
        (f"Family size: {len(paper)} paper claims tested, each with its own 95 % interval and no "
         "correction for multiplicity (if none of the effects were real, about 1 in 20 intervals "
         f"would still exclude zero); the {n_controls} controls and {len(sanity)} sanity checks "
         "are not in the family."),
        "",
        "Sanity checks (not paper claims): " + (", ".join(f"`{c.id}` ({c.verdict})"
                                                          for c in sanity) or "none") + ".",
    ]


def write_summary(claims_dir: str | Path | None = None) -> Path:
    """``claims.md`` next to ``claims_dir`` (default ``figures/claims``): one table of every claim.

    No machine details and no timestamps in it, so it changes only when a claim's numbers or
    verdict do.
    """
    if claims_dir is None:
        claims_dir = repo_root() / "figures" / CLAIMS_SUBDIR
    claims_dir = Path(claims_dir)
    claims = load_claims(claims_dir)
    lines = [
        "# Claims ledger (generated by `yolov9lite figures`; do not edit)",
        "",
        ("Every claim the notebooks test, at the default scale: the estimate, its 95 % interval "
         "(method named), n, and the verdict computed by the rule in `yolov9lite/study/claims.py` "
         "(recorded in each `claims/NN_name.json` with the machine it ran on). Controls check "
         "a measuring method, not the paper."),
        "",
        *family_lines(claims),
        "",
        claims_table(claims),
        "",
    ]
    out = claims_dir.parent / SUMMARY_NAME
    text = "\n".join(lines)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out
