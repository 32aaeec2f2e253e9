"""Verdicts do not depend on the seed base: rerun a notebook's claims with another ``seed_offset``
and compare every verdict with the committed ledger ``figures/claims/NN_name.json``.

Bytes of figures and numbers may differ between machines and seeds; verdicts must not. Each entry
of ``NOTEBOOKS`` is (notebook stem, extra papermill parameters); add a notebook by adding a line.
Outputs go to pytest's tmp folder, never to tracked files.
"""
from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COMMITTED = ROOT / "figures" / "claims"
OTHER_SEED_OFFSET = 100

NOTEBOOKS = [
    ("01_information_bottleneck", {}),
    ("02_reversible_functions", {}),
    ("03_gelan", {}),
    ("04_pgi", {}),
    ("05_ablations", {}),
]


def verdicts(path: Path) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in json.loads(path.read_text())["claims"]}


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("stem", "extra"), NOTEBOOKS, ids=[n for n, _ in NOTEBOOKS])
def test_verdicts_survive_another_seed_base(stem, extra, tmp_path):
    committed = COMMITTED / f"{stem}.json"
    assert committed.exists(), f"run `yolov9lite figures --only {stem[:2]}` and commit {committed}"
    pm.execute_notebook(str(NB_DIR / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"),
                        parameters={"seed_offset": OTHER_SEED_OFFSET, "fig_dir": str(tmp_path),
                                    **extra},
                        kernel_name="python3", cwd=str(NB_DIR), progress_bar=False)
    again, before = verdicts(tmp_path / "claims" / f"{stem}.json"), verdicts(committed)
    assert again.keys() == before.keys()
    changed = {k: (before[k], again[k]) for k in before if before[k] != again[k]}
    assert not changed, f"verdicts changed with seed_offset={OTHER_SEED_OFFSET}: {changed}"
