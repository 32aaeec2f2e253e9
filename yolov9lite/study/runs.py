"""Run records: one CSV row per (variant, seed, metric) a training experiment measured.

A ledger keeps a claim's estimate and interval; the records keep what they were computed from, so
anyone can recompute a claim (:func:`paired_claim_from_runs`) or pool runs from several machines::

    from yolov9lite.study.runs import RunRecord, append_runs, read_runs, paired_claim_from_runs
    append_runs(fig_dir / "runs" / "03_gelan.csv",
                [RunRecord("csp (2, 1)", seed, 20, "held-out loss", loss, commit, cpu, wall)])
    claim = paired_claim_from_runs(read_runs(path), "held-out loss", "conv (2, 1)", "csp (2, 1)",
                                   id="03.csp_beats_conv", ...)  # the rest as paired_claim

Files are ``figures/runs/NN_name.csv``. The columns are those of :class:`RunRecord` in order, then
any others a file has (``extra``: e.g. ``seed_offset``, ``epochs``, ``cpu_path`` of
``06_train_coco.csv``), so a reader finds every file in the same shape and a writer loses nothing.
Appending rewrites the file through a temporary one (atomic).
"""
from __future__ import annotations

import csv
import io
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..report.viz import cpu_model, repo_root
from .claims import Claim, paired_claim
from .statistics import seed_means


@dataclass(frozen=True)
class RunRecord:
    """One measured value of one run. ``seed`` and ``steps`` may be unknown (None) in files
    that name them otherwise; ``extra`` holds a file's other columns, as text."""

    variant: str
    seed: int | None
    steps: int | None
    metric: str
    value: float
    commit: str = ""
    machine: str = ""
    wall_s: float = math.nan
    extra: dict[str, str] = field(default_factory=dict)


COLUMNS = tuple(f.name for f in fields(RunRecord) if f.name != "extra")
_INT, _FLOAT = {"seed", "steps"}, {"value", "wall_s"}


def _cell(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if name in _FLOAT:
        return repr(float(value))  # round-trips exactly
    return str(value)


def _row(record: RunRecord) -> dict[str, str]:
    row = {name: _cell(name, getattr(record, name)) for name in COLUMNS}
    overlap = set(record.extra) & set(COLUMNS)
    if overlap:
        raise ValueError(f"RunRecord.extra repeats the columns {sorted(overlap)}")
    return {**row, **{str(k): str(v) for k, v in record.extra.items()}}


def _parse(row: dict[str, str], path: Path, line: int) -> RunRecord:
    known, extra = {}, {}
    for name, text in row.items():
        if name not in COLUMNS:
            extra[name] = text
            continue
        try:
            if name in _INT:
                known[name] = int(text) if text != "" else None
            elif name in _FLOAT:
                known[name] = float(text) if text != "" else math.nan
            else:
                known[name] = text
        except ValueError:
            raise ValueError(f"{path}:{line}: column {name!r} has {text!r}, not a number") from None
    for name in ("variant", "metric", "value"):
        if name not in known:
            raise ValueError(f"{path}: no column {name!r} (a run record needs variant, metric, "
                             "value)")
    known.setdefault("seed", None)
    known.setdefault("steps", None)
    return RunRecord(**known, extra=extra)


def read_runs(path: str | Path) -> list[RunRecord]:
    """Every row of a run-record CSV, in file order."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return [_parse(row, path, i) for i, row in enumerate(reader, start=2)]


def append_runs(path: str | Path, records: list[RunRecord]) -> Path:
    """Append ``records`` to the CSV at ``path`` (created with :data:`COLUMNS` plus the records'
    extra columns). Into an existing file, every non-empty cell must have a column there."""
    path = Path(path)
    rows = [_row(r) for r in records]
    if path.exists():
        text = path.read_text()
        header = next(csv.reader(io.StringIO(text)), [])
    else:
        text = ""
        header = [*COLUMNS, *sorted({k for row in rows for k in row} - set(COLUMNS))]
    for row in rows:
        lost = [k for k, v in row.items() if v != "" and k not in header]
        if lost:
            raise ValueError(f"{path} has no column for {lost}: write these runs to a new file")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    if not text:
        writer.writeheader()
    elif not text.endswith("\n"):
        out.write("\n")
    writer.writerows({k: row.get(k, "") for k in header} for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + out.getvalue())
    os.replace(tmp, path)
    return path


def per_seed_values(records: list[RunRecord], metric: str, variant: str,
                    steps: int | None = None) -> dict[int, float]:
    """seed -> the mean of ``metric`` over the variant's rows of that seed (several rows per seed
    are images or batches of one run: clustered, so reduced to one value per seed)."""
    rows = [r for r in records if r.metric == metric and r.variant == variant
            and (steps is None or r.steps == steps)]
    if not rows:
        raise ValueError(f"no run records of {variant!r} with metric {metric!r}")
    if any(r.seed is None for r in rows):
        raise ValueError(f"run records of {variant!r} without a seed cannot be paired")
    seeds, means = seed_means([r.value for r in rows], [r.seed for r in rows])
    return dict(zip(seeds.tolist(), means.tolist()))


def paired_differences(records: list[RunRecord], metric: str, worse: str, better: str,
                       steps: int | None = None) -> tuple[list[int], np.ndarray]:
    """(seeds, ``worse - better`` per seed) over the seeds both variants ran; a seed that only one
    of them ran is an error (pairs are the design)."""
    a = per_seed_values(records, metric, worse, steps)
    b = per_seed_values(records, metric, better, steps)
    if a.keys() != b.keys():
        raise ValueError(f"unpaired seeds: {sorted(a.keys() ^ b.keys())} ran only one of "
                         f"{worse!r}, {better!r}")
    seeds = sorted(a)
    return seeds, np.asarray([a[s] - b[s] for s in seeds])


def paired_claim_from_runs(records: list[RunRecord], run_metric: str, worse: str, better: str,
                           *, steps: int | None = None, method: str = "t", **claim) -> Claim:
    """The paired claim "``better`` beats ``worse``" recomputed from run records: per-seed
    differences ``worse - better`` of ``run_metric`` (:func:`paired_differences`) into
    :func:`~yolov9lite.study.claims.paired_claim` (``claim``: its other arguments, by name;
    ``n_unit`` defaults to seeds, ``method`` to t)."""
    _, diffs = paired_differences(records, run_metric, worse, better, steps)
    claim.setdefault("n_unit", "seeds")
    return paired_claim(diffs=diffs, method=method, **claim)



def write_runs(path: str | Path, records: list[RunRecord]) -> Path:
    """Write ``records`` as the whole file at ``path`` (through a temporary file: atomic)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    append_runs(tmp, records)
    os.replace(tmp, path)
    return path


def merge_runs(path: str | Path, records: list[RunRecord]) -> Path:
    """Add ``records`` to the file at ``path``, replacing the rows of every (variant, seed) they
    hold (a recomputed run supersedes its old rows; other runs are kept)."""
    path = Path(path)
    new = {(r.variant, r.seed) for r in records}
    old = [r for r in read_runs(path) if (r.variant, r.seed) not in new] if path.exists() else []
    return write_runs(path, old + list(records))


def covers(records: list[RunRecord], variants, seeds, metric: str = "held-out loss") -> bool:
    """Whether ``records`` hold ``metric`` for every (variant, seed) of ``variants`` x ``seeds``."""
    have = {(r.variant, r.seed) for r in records if r.metric == metric}
    return all((v, s) in have for v in variants for s in seeds)


def provenance() -> tuple[str, str]:
    """(short commit of the checkout, CPU model) for the ``commit`` and ``machine`` columns of
    run records; the commit is empty outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(), text=True,
                              capture_output=True, check=False, timeout=10)
        commit = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit, cpu_model() or platform.machine()
