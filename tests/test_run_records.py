"""The committed run records reproduce: CI reruns a sample of them on an emulated other CPU.

Notebooks 03 and 05 render their figures and verdicts from run records committed under
``figures/runs/`` (a full recompute takes longer than CI allows; ``yolov9lite figures --recompute``
does it). This test checks the records three ways:

* they are complete: every arm of the experiment (:func:`recorded_arms`) at every recorded seed,
  with the held-out loss at the end and at initialisation;
* a sample reruns to the same numbers: every arm at seed 0, and the controls with their reference
  also at seed 1, each alone (:func:`yolov9lite.study.paired.recompute_sample`), in a fresh
  process computing like a CPU without vector units (:func:`yolov9lite.report.viz.no_simd_env`),
  so the sums run in other orders than on the machine that wrote the records;
* the rule, fixed before the test first ran: the held-out loss at initialisation (no training,
  only rounding) agrees within 1e-3 relative; the held-out loss after training agrees within
  4 x the standard deviation of the committed null control's per-seed differences (the reference
  against its rounding-jittered copy, over every recorded seed). Training amplifies rounding; the
  null control measures by how much, so another CPU's rerun of the same seed is a draw from that
  spread, and 4 standard deviations leave room for the ~25 draws of one test run.

The verdicts themselves are checked by ``tests/test_claims_stable.py`` (rendered from the records
at both seed bases).
"""
from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from yolov9lite.report.viz import no_simd_env
from yolov9lite.study.runs import paired_differences, read_runs

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "figures" / "runs"
EXPERIMENTS = {"03_gelan": "yolov9lite.study.gelan_study",
               "05_ablations": "yolov9lite.study.ablation"}
NULL_SDS = 4.0
INIT_RELATIVE = 1e-3
SAMPLE_TIMEOUT_S = 900


def module(stem: str):
    return importlib.import_module(EXPERIMENTS[stem])


def sample_pairs(stem: str) -> list[tuple[str, int]]:
    """Every arm at seed 0; the controls and their references also at seed 1."""
    m = module(stem)
    pairs = [(label, 0) for label in m.recorded_arms()]
    extra = {label for _, control, reference in m.control_pairs() for label in (control, reference)}
    return pairs + [(label, 1) for label in sorted(extra)]


SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from pathlib import Path
import importlib
from yolov9lite.report.viz import simd_paths
from yolov9lite.study.paired import recompute_sample
m = importlib.import_module(sys.argv[1])
pairs = [tuple(p) for p in json.loads(sys.argv[2])]
records = recompute_sample(m.recorded_arms(), pairs, Path(sys.argv[3]))
print(json.dumps({"simd": simd_paths(), "rows": [[r.variant, r.seed, r.metric, r.value]
                                                 for r in records]}))
"""


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, dict]:
    """Both experiments' samples, rerun at once (two processes, one thread each)."""
    base = tmp_path_factory.mktemp("records")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **no_simd_env())
    procs = {stem: subprocess.Popen(
        [sys.executable, "-c", SCRIPT, EXPERIMENTS[stem], json.dumps(sample_pairs(stem)),
         str(base / stem)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for stem in EXPERIMENTS}
    out = {}
    for stem, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=SAMPLE_TIMEOUT_S)
        assert proc.returncode == 0, f"{stem}: the sample failed:\n{stderr[-3000:]}"
        out[stem] = json.loads(stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("stem", EXPERIMENTS)
def test_records_are_complete(stem):
    m = module(stem)
    path = RUNS / m.RECORDS
    assert path.exists(), f"{path} is missing: run `yolov9lite figures --only {stem[:2]} --recompute`"
    have = {(r.variant, r.seed, r.metric) for r in read_runs(path)}
    missing = [(label, seed, metric) for label in m.recorded_arms() for seed in m.RECORDED_SEEDS
               for metric in ("held-out loss", "held-out loss at init")
               if (label, seed, metric) not in have]
    assert not missing, f"{path} lacks {len(missing)} runs, e.g. {missing[:3]}"


@pytest.mark.timeout(SAMPLE_TIMEOUT_S + 60)
@pytest.mark.parametrize("stem", EXPERIMENTS)
def test_a_sample_reproduces_on_another_cpu(stem, samples):
    m = module(stem)
    records = read_runs(RUNS / m.RECORDS)
    committed = {(r.variant, r.seed, r.metric): r.value for r in records}
    got = samples[stem]
    assert got["simd"] == {"torch": "DEFAULT", "numpy": []}, got["simd"]  # emulation took effect
    null_sd = {}  # per reference label: SD of (jittered - reference) over every recorded seed
    for role, control, reference in m.control_pairs():
        if role == "null":
            _, d = paired_differences(records, "held-out loss", control, reference)
            null_sd[reference] = statistics.stdev(d.tolist())
    recorded = m.recorded_arms()
    references = {label: next(ref for _, _, ref in m.control_pairs()
                              if recorded[ref][0] == recorded[label][0]) for label in recorded}
    far = []
    for variant, seed, metric, value in got["rows"]:
        want = committed[(variant, seed, metric)]
        if metric == "held-out loss at init":
            if abs(value - want) > INIT_RELATIVE * abs(want):
                far.append((variant, seed, metric, value, want, "init"))
        elif metric == "held-out loss":
            bound = NULL_SDS * null_sd[references[variant]]
            if abs(value - want) > bound:
                far.append((variant, seed, metric, value, want, round(bound, 4)))
    assert not far, f"reruns outside the null control's spread: {far}"
    assert {(v, s) for v, s, *_ in got["rows"]} == set(map(tuple, sample_pairs(stem)))
