"""``bash benchmarks/gpu_round.sh --smoke``: the whole GPU round at tiny sizes on the CPU, as CI
runs it. Checks that every stage that can run on a CPU runs, and that the table it writes has
every row of the round (benchmarks/round_table.py ``ROUND``), measured or with the reason it was
not (no official code here, CUDA-only rows, torch.compile skipped on CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import precision_curve  # benchmarks/ scripts, not part of the package
import round_table

sys.path.remove(str(ROOT / "benchmarks"))

# rows a CPU can measure: they must carry a number, not a reason
MEASURED_ON_CPU = {("train", "ours plain"), ("train", "ours fast"), ("train", "ours graph"),
                   ("infer", "ours eager nchw"), ("precision", "bf16 vs fp32"),
                   ("precision", "fp16+scaler vs fp32"), ("e2e", "ours"),
                   ("e2e", "ours + image cache")}


def table_rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| section")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_gpu_round_smoke_writes_every_row(tmp_path):
    out = tmp_path / "round"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_round.sh"), "--smoke",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stages = [json.loads(ln) for ln in (out / "stages.jsonl").read_text().splitlines()]
    ran = {s["stage"]: s["rc"] for s in stages if "skipped" not in s}
    assert ran == {"train": 0, "infer": 0, "precision": 0, "e2e": 0}, stages
    text = (out / "table.md").read_text()
    assert round_table.BEGIN in text and round_table.END in text and "SMOKE" in text
    rows = {(r[0], r[1], int(r[2]), r[3]): r for r in table_rows(text)}
    for key in round_table.expected_rows("smoke"):
        assert key in rows, f"row {key} missing from the table"
        section, _, _, variant = key
        img_s, notes = rows[key][4], rows[key][10]
        if (section, variant) in MEASURED_ON_CPU:
            assert img_s != "-" or section == "precision", (key, notes)
            assert "not run" not in notes and "failed" not in notes, (key, notes)
        else:
            assert notes, key  # a reason for every row without a measurement
    assert "cosine" in rows[("precision", "yolov9-nano", 2, "bf16 vs fp32")][10]


def test_round_plans_list_the_same_rows_for_smoke_and_full():
    """The smoke plan checks the same variants the GPU round measures (only sizes differ)."""
    def variants(plan):
        return sorted({(s, v) for s, _, _, v in round_table.expected_rows(plan)})

    assert variants("smoke") == variants("full")


def test_table_goes_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nintro\n")
    round_table.write_between_markers(readme, "first\n")
    round_table.write_between_markers(readme, "second\n")
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and text.count(round_table.BEGIN) == 1
    assert "second" in text and "first" not in text


def test_precision_curve_smoke_pairs_runs_and_measures_seed_noise(tmp_path):
    """The paired design: the low-precision run shares weights and batches with the reference
    (its loss curve stays close), the control does not (another seed), and the verdict is the
    rule applied to the two distances."""
    result = precision_curve.main(["--smoke", "--out", str(tmp_path), "--json",
                                   str(tmp_path / "r.json")])
    ref, low, control = result["runs"]
    assert (ref["amp"], low["amp"], control["amp"]) == ("off", "bf16", "off")
    assert len(ref["loss"]) == len(low["loss"]) == len(control["loss"]) == 2
    assert result["distance_bf16"] < result["distance_control"]
    assert result["verdict"].startswith("bf16 reproduces")
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == result["verdict"]
    assert precision_curve.verdict(0.2, 0.1).startswith("differs")
