"""Runs at other scales stay apart and keep their figures: ``yolov9lite figures --scale NAME``
(``notebooks/params/NN_name.NAME.yaml``, ``-p key=value``), executed notebooks that hold what
``plt.show()`` showed (the kernel's inline backend, even when ``MPLBACKEND=Agg`` is set around it),
and ``yolov9lite claims compare A B``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from yolov9lite.cli import claims, figures

SHOWING_NOTEBOOK = [
    (('fig_dir: str = "unused"  # where figures go\nwidth: int = 1  # line width\n'
     'steps: int = 2  # points'), ["parameters"]),
    (("import matplotlib.pyplot as plt\nfrom yolov9lite.report.viz import paper_style, save_figure\n"
     "paper_style()\nfig, ax = plt.subplots()\nax.plot(range(steps), lw=width)\n"
     "save_figure(fig, 'tiny', fig_dir, params={'a': 1}, seed=0)\nplt.show()"), []),
]


def _write(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for src, tags in SHOWING_NOTEBOOK:
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


@pytest.mark.timeout(300)
def test_scale_params_overrides_and_inline_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as `make test` sets it; the kernel must not see it
    nb_dir, out, runs = tmp_path / "notebooks", tmp_path / "figs", tmp_path / "runs"
    (nb_dir / "params").mkdir(parents=True)
    _write(nb_dir / "01_tiny.ipynb")
    (nb_dir / "params" / "01_tiny.small.yaml").write_text("# a test scale\nwidth: 3\nsteps: 4\n")
    argv = ["--notebooks", str(nb_dir), "--out", str(out), "--runs", str(runs),
            "--scale", "small", "-p", "steps=5"]
    assert figures.main(argv) == 0
    log = capsys.readouterr()
    assert "(scale small: notebooks/params/01_tiny.small.yaml)" in log.out
    # the progress bar: cells done / cells, and the running cell's first line
    assert "01_tiny" in log.err and "3/3" in log.err and "import matplotlib.pyplot" in log.err
    executed = nbformat.read(runs / "01_tiny.ipynb", as_version=4)
    injected = executed.metadata["papermill"]["parameters"]
    assert injected["width"] == 3 and injected["steps"] == 5  # the file, then -p on top
    images = [o for c in executed.cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 1, "plt.show() left no figure in the executed notebook"
    assert os.environ["MPLBACKEND"] == "Agg"  # restored for this process
    # the PNG that save_figure writes does not depend on the backend: the same run under Agg
    import papermill as pm

    agg_dir = tmp_path / "agg"
    pm.execute_notebook(str(nb_dir / "01_tiny.ipynb"), str(tmp_path / "agg.ipynb"),
                        parameters={**injected, "fig_dir": str(agg_dir)}, kernel_name="python3",
                        progress_bar=False)
    assert (agg_dir / "tiny.png").read_bytes() == (out / "tiny.png").read_bytes()
    agg_run = nbformat.read(tmp_path / "agg.ipynb", as_version=4)
    assert not [o for c in agg_run.cells for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})], "Agg stores no figure (the reason for this)"


def test_bad_scale_and_parameter_are_one_clear_line(tmp_path, capsys):
    nb_dir = tmp_path / "notebooks"
    (nb_dir / "params").mkdir(parents=True)
    _write(nb_dir / "01_tiny.ipynb")
    base = ["--notebooks", str(nb_dir), "--out", str(tmp_path / "o"), "--runs", str(tmp_path / "r")]
    assert figures.main([*base, "--scale", "huge"]) == 2
    assert "no notebooks/params/*.huge.yaml" in capsys.readouterr().err
    assert figures.main([*base, "-p", "stpes=3"]) == 2
    assert "-p stpes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        figures.main([*base, "-p", "steps"])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_each_scale_has_its_own_folders():
    assert figures.scale_folders("default") == ("figures", "runs/figures")
    assert figures.scale_folders("gpu-hour") == ("runs/gpu-hour/figures", "runs/gpu-hour")
    assert figures.scale_folders("full") == ("runs/full/figures", "runs/full")


def _ledger(path: Path, verdict: str, estimate: float) -> None:
    c = {"id": "05.x", "paper": "p", "where": "w", "metric": "m", "estimate": estimate,
         "ci": [estimate - 1, estimate + 1], "ci_method": "t interval", "n": 3, "n_unit": "seeds",
         "rule": "r", "verdict": verdict, "scale": "s", "kind": "claim"}
    path.mkdir(parents=True, exist_ok=True)
    (path / "05_ablations.json").write_text(json.dumps({"notebook": "05_ablations",
                                                        "claims": [c], "machine": {}}))


def test_claims_compare_two_scales(tmp_path, capsys):
    _ledger(tmp_path / "figures" / "claims", "inconclusive", 0.3)
    _ledger(tmp_path / "gpu" / "figures" / "claims", "supports", 2.5)
    (tmp_path / "figures" / "sidecar.json").write_text("{}")  # figure sidecars are not ledgers
    assert claims.main(["compare", str(tmp_path / "figures"), str(tmp_path / "gpu")]) == 0
    out = capsys.readouterr().out
    assert "| `05.x` | 0.3 [-0.7, 1.3] | inconclusive | 2.5 [1.5, 3.5] | supports | NO |" in out
    assert "1 of 1 claims differ" in out
    one_file = tmp_path / "figures" / "claims" / "05_ablations.json"
    assert claims.main(["compare", str(one_file), str(one_file)]) == 0
    assert "| yes |" in capsys.readouterr().out
    assert claims.main(["compare", str(tmp_path / "nothing"), str(one_file)]) == 2
    assert "no claims ledger" in capsys.readouterr().err
