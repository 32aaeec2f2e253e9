"""Ablations (paper Tables 4 and 5): does an auxiliary branch make the main branch learn better?

Two ways to ask, both used by notebook ``05_ablations.ipynb``:

* **The paired experiment** (the default scale; the scaffold is :mod:`yolov9lite.study.paired`,
  this notebook's arms, design, controls and margin are below, fixed before any data): for each
  seed, on the seed's own data, every arm starts from identical main-branch weights and sees
  identical batches in identical order; the outcome is the main head's held-out loss where the
  learning curve has flattened, compared per seed and turned into ledger claims
  (:mod:`yolov9lite.study.claims`); :func:`~yolov9lite.study.paired.width_knobs` makes a thinner
  main branch for the "lightweight models" question.
* **The AP grid** (:func:`run_grid`, GPU scales): train a grid of variants x seeds with the full
  recipe, summarise, and print each table in the paper's layout with the paper's numbers beside
  ours (:func:`format_ablation_table`; the paper's own inconsistencies are flagged in a note).

A *variant* is a dict of model knobs (fields of :class:`yolov9lite.nn.models.ModelConfig`, e.g.
``pgi="ds"``) plus, optionally, training options (e.g. ``lead_head_guided=True``, Table 4's LHG).
:data:`VARIANTS` (defined in :mod:`yolov9lite.study.paired`) holds the PGI variants under their paper
names. In the AP grid every (variant, seed) pair is one call of :func:`yolov9lite.training.trainer.train`;
the metrics of its last (validated) epoch form one row.

How a variant reaches ``train``: its model knobs go to ``train(model=base, model_kwargs=knobs)``,
the same keywords :func:`yolov9lite.build_model` takes; its training options are passed as they are.

Reading the result at small scale: two runs that differ only in the seed already differ in mAP.
:func:`summarise` gives mean, standard deviation and range over seeds, and
:func:`compare_to_baseline` calls a difference "beyond the seed spread" only when the ranges of
the two variants do not overlap at all (a deliberately plain rule; with 2-3 seeds a t-test would
pretend to a precision the data do not have).

The paper's numbers are typed in from the paper's Tables 2-5 (arXiv:2402.13616v2);
they are always labelled ``paper`` and never mixed with ours.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

from ..training.trainer import train
from .paired import (
    METRICS,
    VARIANTS,
    Arm,
    Design,
    percent_or_nan,
    split_variant,
    width_knobs,
)

__all__ = [
    "DESIGN",
    "FROZEN_LABEL",
    "JITTER_LABEL",
    "MARGIN_FRACTION",
    "MARGIN_REASON",
    "PAPER_LABEL",
    "PAPER_NOTES_4",
    "PAPER_NOTES_5",
    "PAPER_SOURCE_4",
    "PAPER_SOURCE_5",
    "TABLE4_COLUMNS",
    "TABLE5_METRICS",
    "UNTESTABLE_AT_DEFAULT",
    "WIDTHS",
    "arm_label",
    "compare_to_baseline",
    "design_for",
    "experiment_arms",
    "format_ablation_table",
    "markdown",
    "noise_sentence",
    "paper_table_4",
    "paper_table_5",
    "run_grid",
    "scope_markdown",
    "summarise",
]

# --------------------------------------------------------------------------- notebook 05's experiment
# Fixed in code before any data was seen: the arms, the design, the controls and the margin. The
# experiment: :func:`yolov9lite.study.paired.paired_experiment` with :func:`design_for` each width
# over :func:`experiment_arms`. Every arm of a seed starts from the same main-branch weights.
# AdamW, not the recipe's SGD: 20 SGD steps from scratch left 18 of 30 earlier runs with a HIGHER
# held-out loss than at initialisation (the plateau of an untrained detector, see
# :mod:`yolov9lite.study.gelan_study`); 60 AdamW steps decaying to zero measure on the plateau.
DESIGN = Design(model="gelan-nano", share="main", steps=60, lr=3e-3)
WIDTHS = {1.0: "nano", 0.5: "0.5x nano"}  # main-branch width factor -> label ("lightweight": 0.5)
BASELINE = "none"
FROZEN_LABEL = "none, backbone frozen"  # positive control: a backbone that never trains
JITTER = 1e-6
JITTER_LABEL = f"none, init jittered {JITTER:g}"  # null control: float32 rounding of the init
MARGIN_FRACTION = 0.02
MARGIN_REASON = ("2 % of plain GELAN's mean held-out main loss: the paper's PGI gains are +0.1 to "
                 "+0.6 AP on 45-53 AP (about 1 %) and deep supervision's -0.2 to +0.3; a smaller "
                 "effect on the loss is not one of interest at this scale (the earlier design's "
                 "margin, unchanged)")


def experiment_arms(variants=("none", "PFH", "ICN")) -> dict[str, Arm]:
    """Notebook 05's arms: each PGI variant (:data:`VARIANTS`) and two controls of plain GELAN, a
    positive one (:data:`FROZEN_LABEL`) and a null one (:data:`JITTER_LABEL`)."""
    arms = {}
    for label in variants:
        knobs, opts = split_variant(VARIANTS[label])
        arms[label] = Arm(knobs, lead_head_guided=bool(opts.get("lead_head_guided", False)))
    arms[FROZEN_LABEL] = Arm({"pgi": "none"}, freeze=("backbone.",))
    arms[JITTER_LABEL] = Arm({"pgi": "none"}, init_jitter=JITTER)
    return arms


def design_for(width: float, design: Design = DESIGN) -> Design:
    """:data:`DESIGN` with the main branch's widths scaled by ``width``."""
    return dataclasses.replace(design, knobs=width_knobs(design.model, width))


def arm_label(label: str, width: float) -> str:
    """``"ICN, 0.5x nano"``: an arm at one width, as run records name it."""
    return f"{label}, {WIDTHS.get(width, f'{width:g}x')}"


RECORDS = "05_ablations.csv"  # the committed run records, under figures/runs/
RECORDED_SEEDS = (*range(10), *range(100, 110))  # two seed bases of 10 seeds


def recorded_arms() -> dict[str, tuple[Design, Arm]]:
    """label -> (design, arm) of every arm in :data:`RECORDS` (each at both widths)."""
    return {arm_label(label, w): (design_for(w), arm)
            for w in WIDTHS for label, arm in experiment_arms().items()}


def control_pairs() -> list[tuple[str, str, str]]:
    """(role, control label, reference label) of the controls in :data:`RECORDS`."""
    return [(role, arm_label(control, w), arm_label(BASELINE, w)) for w in WIDTHS
            for role, control in (("positive", FROZEN_LABEL), ("null", JITTER_LABEL))]

PAPER_LABEL = "paper (COCO val2017, 500 epochs)"


# --------------------------------------------------------------------------- paper numbers
def paper_table_4() -> list[dict]:
    """Table 4 of the paper (PGI on backbone / neck), rows as dicts; source ``paper``."""
    rows = [("GELAN-C", "–", "–", 52.5, 35.8, 57.6, 69.4),
            ("GELAN-C", "PFH", "–", 52.5, 35.3, 58.1, 68.9),
            ("GELAN-C", "FPN", "–", 52.6, 35.3, 58.1, 68.9),
            ("GELAN-C", "–", "ICN", 52.7, 35.3, 58.4, 68.9),
            ("GELAN-C", "FPN", "ICN", 52.8, 35.8, 58.2, 69.1),
            ("GELAN-C", "ICN", "–", 52.9, 35.2, 58.7, 68.6),
            ("GELAN-C", "LHG-ICN", "–", 53.0, 36.3, 58.5, 69.1),
            ("GELAN-E", "–", "–", 55.0, 38.0, 60.6, 70.9),
            ("GELAN-E", "PFH", "–", 55.3, 38.3, 60.3, 71.6),
            ("GELAN-E", "FPN", "–", 55.6, 40.2, 61.0, 71.4),
            ("GELAN-E", "PAN", "–", 55.5, 39.0, 61.1, 71.5),
            ("GELAN-E", "FPN", "ICN", 55.6, 39.8, 60.9, 71.9)]
    keys = ("model", "G_backbone", "G_neck", "AP", "APS", "APM", "APL")
    return [dict(zip(keys, r), source="paper") for r in rows]


def paper_table_5() -> list[dict]:
    """Table 5 of the paper (baseline / + DS / + PGI), AP, AP50, AP75 in %; source ``paper``.
    (GELAN-C + PGI AP50 is 70.3 here but 70.2 in Table 1: an inconsistency of the paper.)"""
    rows = {"GELAN-S": ((46.7, 63.0, 50.7), (46.5, 62.9, 50.5), (46.8, 63.4, 50.7)),
            "GELAN-M": ((51.1, 67.9, 55.7), (51.2, 68.2, 55.7), (51.4, 68.1, 56.1)),
            "GELAN-C": ((52.5, 69.5, 57.3), (52.5, 69.9, 57.1), (53.0, 70.3, 57.8)),
            "GELAN-E": ((55.0, 71.9, 60.0), (55.3, 72.3, 60.2), (55.6, 72.8, 60.6))}
    out = []
    for model, cells in rows.items():
        for setting, (ap, ap50, ap75) in zip(("baseline", "+ DS", "+ PGI"), cells):
            out.append({"model": model, "setting": setting, "AP": ap, "AP50": ap50,
                        "AP75": ap75, "source": "paper"})
    return out


# --------------------------------------------------------------------------- running the grid
def _finished_record(run_dir: Path, epochs: int) -> dict | None:
    """The last row of a finished run's results.csv (reused at full scale), else None."""
    path = run_dir / "results.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < epochs or not rows[-1].get("metrics/AP"):
        return None
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", None)}


def run_grid(variants: dict[str, dict], seeds, train_kwargs: dict,
             train_fn: Callable | None = None, reuse: bool = True,
             log: Callable[[str], None] | None = print) -> list[dict]:
    """Train every variant with every seed; one row per run.

    ``variants``: {label: spec} (see :data:`VARIANTS`); ``train_kwargs``: arguments of
    :func:`yolov9lite.training.trainer.train` shared by all runs (``model`` is the base preset, e.g.
    ``gelan-c``; ``project`` the folder of the runs). Run ``label, seed`` is named
    ``<label>_s<seed>``; with ``reuse`` a finished run of that name under ``project`` is read back
    instead of trained again (so a full-scale grid can be trained elsewhere, e.g. with torchrun,
    and tabulated here). Rows: ``variant``, ``seed``, the :data:`METRICS` (in %), ``epochs``,
    ``train_s`` (wall time; 0 for reused runs).
    """
    train_fn = train if train_fn is None else train_fn
    kw = dict(train_kwargs)
    base = kw.pop("model", "gelan-nano")
    kw.pop("seed", None), kw.pop("name", None)  # set per run
    project = Path(kw.get("project", "runs/ablation"))
    rows = []
    for label, spec in variants.items():
        knobs, opts = split_variant(spec)
        for seed in seeds:
            run_name = f"{label}_s{seed}"
            t0 = time.perf_counter()
            record = _finished_record(project / run_name, kw.get("epochs", 1)) if reuse else None
            if record is None:
                history = train_fn(model=base, model_kwargs=knobs or None, **{**kw, **opts},
                                   seed=seed, name=run_name)
                record = history[-1]
            row = {"variant": label, "seed": seed}
            # COCO reports -1 for an area bucket without ground truth: not a number
            row.update({m: percent_or_nan(record.get(f"metrics/{m}")) for m in METRICS})
            row["epochs"] = int(record.get("epoch", 0))
            row["train_s"] = time.perf_counter() - t0
            rows.append(row)
            if log:
                log(f"{label:8s} seed {seed}: AP {row['AP']:.2f}  AP50 {row['AP50']:.2f}  "
                    f"({row['train_s']:.1f} s)")
    return rows


# --------------------------------------------------------------------------- statistics
def _std(xs: list[float]) -> float:
    """Sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def summarise(rows: list[dict], metrics=METRICS) -> dict[str, dict]:
    """{variant: {"n", "<m>_mean", "<m>_std", "<m>_min", "<m>_max" for every metric}}, in the
    order the variants first appear."""
    out: dict[str, dict] = {}
    for label in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == label]
        s = {"n": len(mine)}
        for m in metrics:
            xs = [float(r[m]) for r in mine]
            s.update({f"{m}_mean": sum(xs) / len(xs), f"{m}_std": _std(xs),
                      f"{m}_min": min(xs), f"{m}_max": max(xs)})
        out[label] = s
    return out


def compare_to_baseline(summary: dict[str, dict], baseline: str = "none",
                        metric: str = "AP") -> list[dict]:
    """For every other variant: the difference of means to ``baseline`` and whether it is
    *beyond the seed spread* (the seed ranges of the two do not overlap; needs n >= 2 each)."""
    b = summary[baseline]
    out = []
    for label, s in summary.items():
        if label == baseline:
            continue
        delta = s[f"{metric}_mean"] - b[f"{metric}_mean"]
        separated = (s["n"] >= 2 and b["n"] >= 2 and
                     (s[f"{metric}_min"] > b[f"{metric}_max"]
                      or s[f"{metric}_max"] < b[f"{metric}_min"]))
        out.append({"variant": label, "metric": metric, "delta": delta,
                    "spread": max(s[f"{metric}_std"], b[f"{metric}_std"]),
                    "beyond_seed_spread": separated})
    return out


def noise_sentence(comparisons: list[dict], baseline: str = "none") -> str:
    """One plain sentence saying which differences to the baseline exceed the seed spread."""
    if not comparisons:
        return "Only the baseline was run."
    metric = comparisons[0]["metric"]
    beyond = [c["variant"] for c in comparisons if c["beyond_seed_spread"]]
    within = [c["variant"] for c in comparisons if not c["beyond_seed_spread"]]
    parts = []
    if within:
        parts.append(f"the {metric} differences of {', '.join(within)} to '{baseline}' are "
                     "within the seed spread (their seed ranges overlap): noise at this scale")
    if beyond:
        parts.append(f"{', '.join(beyond)} differ from '{baseline}' by more than the seed "
                     "spread (no overlap of the seed ranges)")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------- tables
TABLE4_COLUMNS = {  # our variant label -> (G_backbone, G_neck) as printed in Table 4
    "none": ("–", "–"), "PFH": ("PFH", "–"), "FPN": ("FPN", "–"), "PAN": ("PAN", "–"),
    "ICN": ("ICN", "–"), "LHG-ICN": ("LHG-ICN", "–"), "neck-ICN": ("–", "ICN"),
    "FPN+neck-ICN": ("FPN", "ICN")}
PAPER_SOURCE_4 = "paper (Table 4, arXiv:2402.13616v2)"
PAPER_SOURCE_5 = "paper (Table 5, arXiv:2402.13616v2)"
# Inconsistencies inside the paper, flagged where its rows are printed.
PAPER_NOTES_4 = {
    ("GELAN-C", "PFH", "–"): "APS/APM/APL identical to the FPN row (35.3/58.1/68.9): "
                             "a likely copy error in the paper",
    ("GELAN-C", "FPN", "–"): "APS/APM/APL identical to the PFH row (35.3/58.1/68.9): "
                             "a likely copy error in the paper",
}
PAPER_NOTES_5 = {"GELAN-C": "+ PGI AP50 is 70.3 here but 70.2 in the paper's Table 1"}
TABLE5_METRICS = ("AP", "AP50", "AP75")


def _cell(s: dict, m: str, with_std: bool) -> str:
    mean = s[f"{m}_mean"]
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.1f} ± {s[f'{m}_std']:.1f}" if with_std else f"{mean:.1f}"


def format_ablation_table(summary: dict[str, dict], layout: str, model_label: str,
                          scale_label: str, paper_model: str | None = None,
                          pgi_variant: str = "ICN", baseline: str = "none",
                          ds_variant: str = "PFH") -> list[dict]:
    """Rows of Table 4 (``layout="table4"``) or Table 5 (``"table5"``) in the paper's layout:
    the paper's rows for ``paper_model`` (all models if None) first, then ours, every row with a
    ``source`` column (which table of the paper, or ``ours: <scale_label>``) and a ``note`` column
    (the paper's own inconsistencies). Our cells are "mean ± std" over seeds when more than one
    seed ran, else the single value; values are in %. An empty ``summary`` gives one row of ours
    saying that no AP was measured at this scale.

    Table 5's column headers carry the metric order (``AP / AP50 / AP75``); its deltas are
    differences of unrounded means, marked ``Δ`` (``Δ=`` when below 0.05 in magnitude).
    """
    ours_src = f"ours: {scale_label}"
    if layout == "table4":
        paper = [r for r in paper_table_4() if paper_model in (None, r["model"])]
        rows = [{**{k: r[k] for k in ("model", "G_backbone", "G_neck")},
                 **{m: f"{r[m]:.1f}" for m in ("AP", "APS", "APM", "APL")},
                 "source": PAPER_SOURCE_4,
                 "note": PAPER_NOTES_4.get((r["model"], r["G_backbone"], r["G_neck"]), "")}
                for r in paper]
        if not summary:
            rows.append({"model": model_label, "G_backbone": "…", "G_neck": "…",
                         **{m: "not run" for m in ("AP", "APS", "APM", "APL")},
                         "source": ours_src, "note": "no AP at this scale (see the paired "
                                                     "loss experiment)"})
        for label, s in summary.items():
            gb, gn = TABLE4_COLUMNS.get(label, (label, "–"))
            multi = s["n"] > 1
            rows.append({"model": model_label, "G_backbone": gb, "G_neck": gn,
                         **{m: _cell(s, m, multi) for m in ("AP", "APS", "APM", "APL")},
                         "source": ours_src + (f", {s['n']} seeds" if multi else ""), "note": ""})
        return rows
    if layout == "table5":
        head = " / ".join(TABLE5_METRICS)
        cols = {"baseline": f"baseline: {head}", "+ DS": f"+ DS: {head} (Δ)",
                "+ PGI": f"+ PGI: {head} (Δ)"}
        rows = []
        by_model: dict[str, dict] = {}
        for r in paper_table_5():
            if paper_model in (None, r["model"]):
                by_model.setdefault(r["model"], {})[r["setting"]] = r
        for model, cells in by_model.items():
            row = {"model": model}
            for setting in ("baseline", "+ DS", "+ PGI"):
                c, b = cells[setting], cells["baseline"]
                row[cols[setting]] = " / ".join(
                    f"{c[m]:.1f}" + ("" if setting == "baseline" else f" ({_delta(c[m] - b[m])})")
                    for m in TABLE5_METRICS)
            rows.append({**row, "source": PAPER_SOURCE_5, "note": PAPER_NOTES_5.get(model, "")})
        row = {"model": model_label}
        if not summary or baseline not in summary:
            row.update({c: "not run" for c in cols.values()})
            rows.append({**row, "source": ours_src, "note": "no AP at this scale (see the paired "
                                                            "loss experiment)"})
            return rows
        n = summary[baseline]["n"]
        for setting, label in (("baseline", baseline), ("+ DS", ds_variant),
                               ("+ PGI", pgi_variant)):
            if label not in summary:
                row[cols[setting]] = "not run"
                continue
            s, b = summary[label], summary[baseline]
            row[cols[setting]] = " / ".join(
                _cell(s, m, n > 1) + ("" if setting == "baseline"
                                      else f" ({_delta(s[f'{m}_mean'] - b[f'{m}_mean'])})")
                for m in TABLE5_METRICS)
        rows.append({**row, "source": ours_src + (f", {n} seeds" if n > 1 else "")
                     + f"; + PGI = {pgi_variant}", "note": ""})
        return rows
    raise ValueError(f"layout must be 'table4' or 'table5', got {layout!r}")


def _delta(d: float) -> str:
    """A difference of (unrounded) means, marked: ``Δ+0.5``, ``Δ-0.2``, ``Δ=`` when < 0.05."""
    return "Δ=" if abs(d) < 0.05 else f"Δ{d:+.1f}"


# What each scale can test, for the notebook's closing section (rendered, never typed).
UNTESTABLE_AT_DEFAULT = (
    ("Table 4-5 AP differences (+0.1 to +0.6 AP)", ("AP stays at its floor after minutes of CPU "
     "training; the held-out main-head loss is the measured proxy (GPU-hour/full scale: AP)")),
    ("GELAN-E rows of Tables 4-5 (dual backbone)", "model too large for a CPU notebook"),
    ("Table 5 across sizes S/M/C/E", "the default scale varies width on gelan-nano instead"),
    ("Table 4 neck rows (G_neck = ICN)", ("run them with the variants 'neck-ICN' and "
     "'FPN+neck-ICN' where the library builds them (models.PGI_VARIANTS)")),
    ("500-epoch recipe (warm-up, EMA, mosaic)", ("the paired loop is plain SGD for a few dozen "
     "steps; it isolates the auxiliary supervision, not the recipe")),
)


def scope_markdown(ledger, ap_measured: bool = False) -> str:
    """A Markdown table: every claim of ``ledger`` with its verdict, then what this scale cannot
    test and why. Nothing in it is typed by hand except the reasons."""
    lines = ["| paper claim | at this scale | verdict |", "|---|---|---|"]
    for c in ledger:
        lines.append(f"| {c.paper} ({c.where}) | tested: {c.metric} | **{c.verdict}** |")
    for what, why in UNTESTABLE_AT_DEFAULT:
        if ap_measured and what.startswith("Table 4-5 AP"):
            continue
        lines.append(f"| {what} | cannot test: {why} | – |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """A GitHub Markdown table of ``rows`` (all values already formatted or plain)."""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
