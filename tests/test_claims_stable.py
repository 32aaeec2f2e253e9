"""Verdicts do not depend on the seed base: rerun a notebook's claims with another
``seed_offset`` and compare every verdict with the committed ledger
``figures/claims/NN_name.json``.

Bytes of figures and numbers may differ between machines and seeds; verdicts must not. Each entry
of ``NOTEBOOKS`` is (notebook stem, extra papermill parameters); add a notebook by adding a line.
The notebooks compute in one thread (their first cell calls ``torch.set_num_threads(1)``), so
the reruns go two at a time, each in its own papermill process with ``OMP_NUM_THREADS=1``: two
cores stay busy and CI waits about half as long. Outputs go to pytest's tmp folder, never to
tracked files.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

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
]


def verdicts(path: Path) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in json.loads(path.read_text())["claims"]}


def rerun(stem: str, extra: dict, out: Path) -> subprocess.CompletedProcess:
    """One notebook through papermill at the other seed base (one thread: the notebooks' own
    setting, also for the libraries imported before their first cell sets it)."""
    out.mkdir(parents=True, exist_ok=True)
    params = {"seed_offset": OTHER_SEED_OFFSET, "fig_dir": str(out), **extra}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "papermill", "--kernel", "python3", "--cwd", str(NB_DIR),
         "--no-progress-bar", "--parameters_yaml", json.dumps(params),
         str(NB_DIR / f"{stem}.ipynb"), str(out / f"{stem}.ipynb")],
        env=env, capture_output=True, text=True, timeout=RERUN_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def reruns(request, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every selected notebook (``-k 02`` selects one) rerun once, two at a time:
    stem -> (its output folder, the process)."""
    selected = {item.callspec.params["stem"] for item in request.session.items
                if getattr(item, "module", None) is request.module and hasattr(item, "callspec")}
    base = tmp_path_factory.mktemp("claims_stable")
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = {stem: (base / stem, pool.submit(rerun, stem, extra, base / stem))
                   for stem, extra in NOTEBOOKS if stem in selected}
        return {stem: (out, future.result()) for stem, (out, future) in futures.items()}


@pytest.mark.timeout(3 * RERUN_TIMEOUT_S)  # the first test waits for all the reruns
@pytest.mark.parametrize(("stem", "extra"), NOTEBOOKS, ids=[n for n, _ in NOTEBOOKS])
def test_verdicts_survive_another_seed_base(stem, extra, reruns):
    committed = COMMITTED / f"{stem}.json"
    assert committed.exists(), f"run `yolov9lite figures --only {stem[:2]}` and commit {committed}"
    out, proc = reruns[stem]
    assert proc.returncode == 0, (f"{stem} failed at seed_offset={OTHER_SEED_OFFSET}:\n"
                                  f"{proc.stderr[-3000:]}")
    again, before = verdicts(out / "claims" / f"{stem}.json"), verdicts(committed)
    assert again.keys() == before.keys()
    changed = {k: (before[k], again[k]) for k in before if before[k] != again[k]}
    assert not changed, f"verdicts changed with seed_offset={OTHER_SEED_OFFSET}: {changed}"
