"""yolov9lite.report.viz: fixed style, byte-identical PNGs, sidecar JSON without volatile fields."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from yolov9lite.report import viz


def _figure(seed=0):
    viz.paper_style()
    rng = np.random.default_rng(seed)
    fig, (a, b) = plt.subplots(1, 2, figsize=(4, 2), layout="constrained")
    a.plot(rng.normal(size=20), label="curve")
    a.legend()
    b.imshow(rng.random((8, 8)))
    b.set_title("image")
    return fig


def test_paper_style_fixes_the_font():
    viz.paper_style()
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]
    assert matplotlib.rcParams["svg.hashsalt"] == "yolov9lite"


def test_save_figure_is_byte_identical(tmp_path):
    p1 = viz.save_figure(_figure(), "f", tmp_path / "a", params={"x": (1, 2)}, seed=3)
    p2 = viz.save_figure(_figure(), "f", tmp_path / "b", params={"x": (1, 2)}, seed=3)
    data = p1.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data == p2.read_bytes()
    assert b"Matplotlib" not in data and b"Software" not in data
    assert p1.with_suffix(".json").read_bytes() == p2.with_suffix(".json").read_bytes()
    plt.close("all")


def test_different_inputs_give_different_files(tmp_path):
    p1 = viz.save_figure(_figure(0), "f", tmp_path / "a")
    p2 = viz.save_figure(_figure(1), "f", tmp_path / "b")
    assert p1.read_bytes() != p2.read_bytes()
    plt.close("all")


def test_sidecar_has_params_seed_versions_and_no_time(tmp_path):
    viz.save_figure(_figure(), "f", tmp_path, params={"depth": 200, "seeds": (0, 1)}, seed=7,
                    source="notebooks/xx.ipynb")
    meta = json.loads((tmp_path / "f.json").read_text())
    assert meta["params"] == {"depth": 200, "seeds": [0, 1]} and meta["seed"] == 7
    assert {"torch", "numpy", "matplotlib", "yolov9lite"} <= set(meta["versions"])
    text = (tmp_path / "f.json").read_text().lower()
    assert "time" not in text and "date" not in text and "sha" not in text
    plt.close("all")


def test_unchanged_png_is_not_rewritten(tmp_path):
    p = viz.save_figure(_figure(), "f", tmp_path)
    mtime = p.stat().st_mtime_ns
    viz.save_figure(_figure(), "f", tmp_path)
    assert p.stat().st_mtime_ns == mtime
    plt.close("all")


def test_save_table_markdown_and_csv(tmp_path):
    rows = [{"arch": "GELAN", "layer": 205, "cka": 0.8123}, {"arch": "PlainNet", "layer": 200, "cka": 0.0}]
    md, csv = viz.save_table(rows, "t", tmp_path, seed=0)
    assert md.read_text().splitlines() == [
        "| arch | layer | cka |", "|---|---|---|", "| GELAN | 205 | 0.812 |",
        "| PlainNet | 200 | 0.000 |"]
    assert csv.read_text() == "arch,layer,cka\nGELAN,205,0.812\nPlainNet,200,0.000\n"
    assert (tmp_path / "t.json").exists()
