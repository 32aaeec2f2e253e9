"""yolov9lite.study.ablation: grid bookkeeping with a stand-in train(), statistics, paper tables, and
one real (very short) training run through the temporary variant presets."""
from __future__ import annotations

import pytest
import torch

from yolov9lite.nn import models
from yolov9lite.study import ablation as A
from yolov9lite.study import paired


def fake_train(calls):
    """A train() stand-in: the AP depends on the PGI knob and a little on the seed."""
    def train(model, seed, name, lead_head_guided=False, **kw):
        net = models.build_model(model, num_classes=6, **(kw.get("model_kwargs") or {}))  # must build
        calls.append(dict(model=model, seed=seed, name=name, lhg=lead_head_guided, **kw))
        ap = {"none": 0.10, "ds": 0.101, "fpn": 0.20, "icn": 0.30}[net.cfg.pgi] + 0.002 * seed
        return [{"epoch": kw["epochs"], **{f"metrics/{m}": ap for m in paired.METRICS}}]
    return train


def test_run_grid_passes_knobs_as_model_kwargs(tmp_path):
    calls = []
    variants = {k: paired.VARIANTS[k] for k in ("none", "PFH", "FPN", "LHG-ICN")}
    before = set(models.PRESETS)
    rows = A.run_grid(variants, [0, 1], {"model": "gelan-nano", "epochs": 2, "project": tmp_path},
                      train_fn=fake_train(calls), log=None)
    assert set(models.PRESETS) == before  # the preset table is never modified
    assert [(r["variant"], r["seed"]) for r in rows] == [
        (v, s) for v in variants for s in (0, 1)]
    assert all(c["model"] == "gelan-nano" for c in calls)
    assert calls[2]["model_kwargs"] == {"pgi": "ds"} and calls[2]["name"] == "PFH_s0"
    assert calls[0]["model_kwargs"] in (None, {"pgi": "none"})  # the base preset itself
    assert [c["lhg"] for c in calls] == [False] * 6 + [True] * 2
    assert rows[-1]["AP"] == pytest.approx(30.2)  # in %
    summary = A.summarise(rows)
    assert summary["FPN"]["AP_mean"] == pytest.approx(20.1)
    assert summary["FPN"]["AP_std"] == pytest.approx(0.2 / 2 ** 0.5)
    verdicts = {c["variant"]: c["beyond_seed_spread"] for c in A.compare_to_baseline(summary)}
    assert verdicts == {"PFH": False, "FPN": True, "LHG-ICN": True}
    sentence = A.noise_sentence(A.compare_to_baseline(summary))
    assert "PFH" in sentence and "within the seed spread" in sentence


def test_finished_runs_are_reused(tmp_path):
    run = tmp_path / "FPN_s0"
    run.mkdir()
    (run / "results.csv").write_text(
        "epoch," + ",".join(f"metrics/{m}" for m in paired.METRICS) + "\n"
        "1,,,,,,\n2," + ",".join(["0.5"] * 6) + "\n")
    calls = []
    rows = A.run_grid({"FPN": paired.VARIANTS["FPN"]}, [0, 1], {"epochs": 2, "project": tmp_path},
                      train_fn=fake_train(calls), log=None)
    assert rows[0]["AP"] == 50.0 and [c["seed"] for c in calls] == [1]


def test_unknown_variant_option_is_named():
    with pytest.raises(ValueError, match="pgii"):
        paired.split_variant({"pgii": "ds"})


def test_paper_tables_match_the_spec():
    t4, t5 = A.paper_table_4(), A.paper_table_5()
    assert len(t4) == 12 and all(r["source"] == "paper" for r in t4 + t5)
    lhg = next(r for r in t4 if r["G_backbone"] == "LHG-ICN")
    assert (lhg["AP"], lhg["APS"], lhg["APM"], lhg["APL"]) == (53.0, 36.3, 58.5, 69.1)
    c_pgi = next(r for r in t5 if r["model"] == "GELAN-C" and r["setting"] == "+ PGI")
    assert (c_pgi["AP"], c_pgi["AP50"], c_pgi["AP75"]) == (53.0, 70.3, 57.8)


def test_tables_keep_paper_and_ours_apart():
    rows = [{"variant": v, "seed": s, **{m: ap + s for m in paired.METRICS}}
            for v, ap in (("none", 10.0), ("PFH", 11.0), ("ICN", 12.0)) for s in (0, 1)]
    summary = A.summarise(rows)
    t4 = A.format_ablation_table(summary, "table4", "gelan-nano", "default scale",
                                 paper_model="GELAN-C")
    assert [r["source"] for r in t4].count(A.PAPER_SOURCE_4) == 7
    ours = [r for r in t4 if r["source"] != A.PAPER_SOURCE_4]
    assert ours[0]["AP"] == "10.5 ± 0.7" and "default scale, 2 seeds" in ours[0]["source"]
    t5 = A.format_ablation_table(summary, "table5", "gelan-nano", "default scale",
                                 paper_model="GELAN-C", pgi_variant="ICN")
    pgi, ds = "+ PGI: AP / AP50 / AP75 (Δ)", "+ DS: AP / AP50 / AP75 (Δ)"  # metric order in the header
    assert t5[0][pgi] == "53.0 (Δ+0.5) / 70.3 (Δ+0.8) / 57.8 (Δ+0.5)"
    assert "70.2" in t5[0]["note"]  # the paper's own Table 1 / Table 5 inconsistency is flagged
    assert t5[1][ds].startswith("11.5 ± 0.7 (Δ+1.0)")
    assert "| model |" in A.markdown(t5)
    flagged = [r for r in t4 if r["source"] == A.PAPER_SOURCE_4 and "identical" in r["note"]]
    assert [r["G_backbone"] for r in flagged] == ["PFH", "FPN"]
    # no AP measured (default scale): one row of ours saying so, in both layouts
    assert "not run" in A.format_ablation_table({}, "table4", "gelan-nano", "s")[-1]["AP"]
    assert A.format_ablation_table({}, "table5", "gelan-nano", "s")[-1][pgi] == "not run"


def test_delta_is_computed_before_rounding():
    assert A._delta(0.04) == "Δ=" and A._delta(0.051) == "Δ+0.1" and A._delta(-0.26) == "Δ-0.3"


def test_width_knobs_make_a_thinner_main_branch():
    thin = models.build_model("gelan-nano", num_classes=6, **paired.width_knobs("gelan-nano", 0.5))
    full = models.build_model("gelan-nano", num_classes=6)
    assert paired.width_knobs("gelan-nano", 1.0) == {}
    assert sum(p.numel() for p in thin.parameters()) < 0.5 * sum(p.numel() for p in full.parameters())


@pytest.mark.timeout(120)
def test_one_real_short_run(tmp_path):
    from yolov9lite.data import make_synthetic

    data = make_synthetic(tmp_path / "data", num_train=16, num_val=8, imgsz=64, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = A.run_grid({"PFH": paired.VARIANTS["PFH"]}, [0], {
            "model": "gelan-nano", "data": str(data), "epochs": 1, "batch_size": 8, "nominal_batch": 8,
            "imgsz": 64, "device": "cpu", "workers": 0, "max_batches": 1, "project": tmp_path / "runs",
            "tensorboard": False, "plots": False, "verbose": False}, log=None)
    finally:
        torch.set_num_threads(threads)
    assert rows[0]["variant"] == "PFH" and 0.0 <= rows[0]["AP50"] <= 100.0
    assert (tmp_path / "runs" / "PFH_s0" / "weights" / "last.pt").is_file()
