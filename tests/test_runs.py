"""Run records (``study/runs.py``): CSV round trip, files with other columns, and a paired claim
recomputed from records equals the one computed from the differences."""
from __future__ import annotations

import math

import numpy as np
import pytest

from yolov9lite.study import claims as C
from yolov9lite.study import runs as R

TRAIN_COCO_HEADER = "variant,seed_offset,epochs,metric,value,cpu_path,commit,machine,wall_s\n"


def records(values_a, values_b, metric="held-out loss") -> list[R.RunRecord]:
    out = []
    for seed, (a, b) in enumerate(zip(values_a, values_b)):
        out.append(R.RunRecord("conv", seed, 20, metric, a, "abc1234", "test cpu", 1.5))
        out.append(R.RunRecord("csp", seed, 20, metric, b, "abc1234", "test cpu", 1.25))
    return out


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "runs" / "03_gelan.csv"
    first = records([10.1, 10.4], [10.0, 10.2])
    R.append_runs(path, first)
    second = [R.RunRecord("csp", 2, 20, "held-out loss", 1 / 3, wall_s=math.nan)]
    R.append_runs(path, second)
    assert path.read_text().splitlines()[0] == ",".join(R.COLUMNS)
    back = R.read_runs(path)
    assert back[:4] == first
    assert back[4].value == 1 / 3 and math.isnan(back[4].wall_s) and back[4].commit == ""
    assert not list(path.parent.glob("*.tmp"))


def test_a_file_with_other_columns_reads_and_appends(tmp_path):
    path = tmp_path / "06_train_coco.csv"
    path.write_text(TRAIN_COCO_HEADER + "notebook defaults,0,20,AP50,0.225875,AVX2,2a54ba0,"
                    "AMD EPYC,125.4\n")
    (row,) = R.read_runs(path)
    assert (row.variant, row.metric, row.value, row.wall_s) == ("notebook defaults", "AP50",
                                                                 0.225875, 125.4)
    assert row.seed is None and row.steps is None
    assert row.extra == {"seed_offset": "0", "epochs": "20", "cpu_path": "AVX2"}
    R.append_runs(path, [R.RunRecord("notebook defaults", None, None, "AP50", 0.25, "b20fbe9",
                                     "AMD EPYC", 130.0,
                                     {"seed_offset": "1", "epochs": "20", "cpu_path": "AVX2"})])
    lines = path.read_text().splitlines()
    assert lines[0] + "\n" == TRAIN_COCO_HEADER and len(lines) == 3
    assert lines[2] == "notebook defaults,1,20,AP50,0.25,AVX2,b20fbe9,AMD EPYC,130.0"
    before = path.read_text()
    with pytest.raises(ValueError, match="no column"):  # a seed the file has no column for
        R.append_runs(path, [R.RunRecord("x", 3, None, "AP50", 0.2)])
    assert path.read_text() == before  # nothing written


def test_bad_cells_and_missing_columns_name_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("variant,seed,metric,value\nconv,one,loss,1.0\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: column 'seed'"):
        R.read_runs(path)
    path.write_text("variant,seed\nconv,1\n")
    with pytest.raises(ValueError, match="no column 'metric'"):
        R.read_runs(path)


def test_paired_claim_from_records_equals_the_claim_from_differences(tmp_path):
    a = [10.1, 10.4, 10.3, 10.8, 10.2]
    b = [10.0, 10.2, 10.25, 10.5, 10.1]
    path = R.append_runs(tmp_path / "03.csv", records(a, b))
    kw = {"id": "03.csp_beats_conv", "paper": "CSP beats conv", "where": "Table 2",
          "metric": "held-out loss, conv - csp", "expect": "positive", "scale": "test"}
    from_runs = R.paired_claim_from_runs(R.read_runs(path), "held-out loss", "conv", "csp", **kw)
    direct = C.paired_claim(diffs=np.subtract(a, b), n_unit="seeds", method="t", **kw)
    assert from_runs == direct and from_runs.n == 5


def test_rows_within_a_seed_are_averaged_and_seeds_must_pair():
    rows = [R.RunRecord("conv", s, 1, "focus", v) for s, v in [(0, 1.0), (0, 3.0), (1, 5.0)]]
    rows += [R.RunRecord("csp", s, 1, "focus", v) for s, v in [(0, 1.0), (1, 1.0), (1, 2.0)]]
    seeds, diffs = R.paired_differences(rows, "focus", "conv", "csp")
    assert seeds == [0, 1] and diffs.tolist() == [1.0, 3.5]
    with pytest.raises(ValueError, match="unpaired seeds"):
        R.paired_differences(rows + [R.RunRecord("conv", 2, 1, "focus", 0.0)], "focus", "conv",
                             "csp")
