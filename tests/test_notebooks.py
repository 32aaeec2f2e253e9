"""Notebook hygiene: one parameters cell, a kernelspec, no committed outputs, and every
key of ``notebooks/params/*.full.yaml`` is a real parameter of its notebook.

papermill only *warns* about an unknown parameter and then runs with the default, so a typo in a
full-scale YAML would silently produce a laptop-scale "full" run; :func:`check_params_file` turns
that into a test failure that names the bad key. Executing the notebooks is nbval's job
(``pytest --nbval-lax --nbval-current-env notebooks/``); ``test_figures_command_end_to_end`` runs
the ``yolov9lite figures`` machinery on a tiny throwaway notebook.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

from yolov9lite.cli import figures

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = figures.discover(NB_DIR)
PARAM_FILES = sorted((NB_DIR / "params").glob("*.full.yaml"))


def check_params_file(yaml_path: Path, nb_dir: Path = NB_DIR) -> list[str]:
    """Problems with one ``<notebook>.full.yaml``: missing notebook or unknown keys (named)."""
    nb = nb_dir / (yaml_path.name.removesuffix(".full.yaml") + ".ipynb")
    if not nb.exists():
        return [f"{yaml_path.name}: no notebook {nb.name}"]
    values = yaml.safe_load(yaml_path.read_text()) or {}
    if not isinstance(values, dict):
        return [f"{yaml_path.name}: expected a mapping of parameter: value"]
    declared = pm.inspect_notebook(str(nb))
    return [f"{yaml_path.name}: unknown parameter {key!r} (not in the parameters cell of "
            f"{nb.name}; known: {', '.join(sorted(declared))})"
            for key in values if key not in declared]


def test_notebooks_are_found():
    names = [p.name for p in NOTEBOOKS]
    assert "01_information_bottleneck.ipynb" in names
    assert "02_reversible_functions.ipynb" in names


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: {len(tagged)} cells tagged 'parameters', need 1"
    assert tagged[0].cell_type == "code"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{nb_path.name}: kernelspec must be the generic 'python3'"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{nb_path.name} cell {i} has outputs: strip it (nbstripout)"
            assert cell.execution_count is None, f"{nb_path.name} cell {i} has an execution count"
            assert "papermill" not in cell.metadata, f"{nb_path.name} cell {i}: papermill metadata"
    assert "papermill" not in nb.metadata, f"{nb_path.name} is a papermill output, not a source"
    # every parameter has a type annotation and a comment (papermill --help-notebook shows them)
    for name, info in pm.inspect_notebook(str(nb_path)).items():
        assert info["inferred_type_name"] != "None", f"{nb_path.name}: {name} has no type"
        assert info["help"], f"{nb_path.name}: parameter {name} has no comment"
    assert "fig_dir" in pm.inspect_notebook(str(nb_path)), "figures command passes fig_dir"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in text and "## Exercises" in text, f"{nb_path.name}: Summary/Exercises"
    assert "sys.path" not in "\n".join(c.source for c in nb.cells), "import the installed package"


@pytest.mark.parametrize("yaml_path", PARAM_FILES, ids=lambda p: p.name)
def test_full_params_are_real_parameters(yaml_path):
    problems = check_params_file(yaml_path)
    assert not problems, "\n".join(problems)


def test_every_notebook_has_a_full_yaml():
    have = {p.name.removesuffix(".full.yaml") for p in PARAM_FILES}
    missing = [nb.stem for nb in NOTEBOOKS if nb.stem not in have]
    assert not missing, f"add notebooks/params/<name>.full.yaml for {missing}"


def test_typo_in_params_file_is_caught_and_named(tmp_path):
    # the mechanism itself: a YAML with a misspelt key must fail, naming the key
    nb = NOTEBOOKS[0]
    (tmp_path / nb.name).write_bytes(nb.read_bytes())
    bad = tmp_path / f"{nb.stem}.full.yaml"
    bad.write_text("seed: 1\nsedes: [0, 1]\n")
    problems = check_params_file(bad, tmp_path)
    assert len(problems) == 1 and "'sedes'" in problems[0], problems


def test_full_yaml_parameterises_cleanly(tmp_path):
    # papermill's own dry run: inject the full parameters without executing anything
    for yaml_path in PARAM_FILES:
        nb = NB_DIR / (yaml_path.name.removesuffix(".full.yaml") + ".ipynb")
        params = yaml.safe_load(yaml_path.read_text())
        out = tmp_path / nb.name
        pm.execute_notebook(str(nb), str(out), parameters=params, prepare_only=True,
                            kernel_name="python3", progress_bar=False)
        injected = [c for c in nbformat.read(out, as_version=4).cells
                    if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1
        for key in params:
            assert f"{key} = " in injected[0].source


TINY_NOTEBOOK = [
    ("code", 'fig_dir: str = "unused"  # where figures go', ["parameters"]),
    ("code", ("import matplotlib.pyplot as plt\nfrom yolov9lite.report.viz import paper_style, save_figure\n"
              "paper_style()\nfig, ax = plt.subplots()\nax.plot([0, 1], [1, 0])\n"
              "save_figure(fig, 'tiny', fig_dir, params={'a': 1}, seed=0)"), []),
]


def _write_tiny(path: Path, cells=TINY_NOTEBOOK) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for kind, src, tags in cells:
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


@pytest.mark.timeout(300)
def test_figures_command_end_to_end(tmp_path, capsys):
    nb_dir, out, runs = tmp_path / "notebooks", tmp_path / "figs", tmp_path / "runs"
    nb_dir.mkdir()
    _write_tiny(nb_dir / "01_tiny.ipynb")
    (nb_dir / "notes.ipynb").write_text("not a numbered notebook: ignored")
    argv = ["--notebooks", str(nb_dir), "--out", str(out), "--runs", str(runs)]
    assert figures.main(argv) == 0
    first = (out / "tiny.png").read_bytes()
    log = capsys.readouterr().out
    assert "[1/1] 01_tiny.ipynb ok (" in log and "new      tiny.png" in log
    assert json.loads((out / "tiny.json").read_text())["params"] == {"a": 1}
    assert (runs / "01_tiny.ipynb").exists()
    assert figures.main(argv) == 0  # again: byte-identical figure
    assert (out / "tiny.png").read_bytes() == first
    assert "0 new, 0 changed" in capsys.readouterr().out


FAILING_NOTEBOOK = [
    *TINY_NOTEBOOK,
    ("code", "from pathlib import Path\nPath(fig_dir, 'tiny.md').write_text('half a table')", []),
    ("code", "raise AssertionError('a check failed after the figures were written')", []),
]


@pytest.mark.timeout(300)
def test_failed_notebook_leaves_figures_untouched(tmp_path, capsys):
    nb_dir, out, runs = tmp_path / "notebooks", tmp_path / "figs", tmp_path / "runs"
    nb_dir.mkdir()
    out.mkdir()
    (out / "tiny.png").write_bytes(b"committed figure")
    (out / "other.csv").write_text("a,b\n1,2\n")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    _write_tiny(nb_dir / "01_tiny.ipynb", FAILING_NOTEBOOK)
    argv = ["--notebooks", str(nb_dir), "--out", str(out), "--runs", str(runs)]
    assert figures.main(argv) == 1
    assert "FAILED" in capsys.readouterr().out
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    assert not list(runs.glob(".stage-*"))  # the staging copy is removed too


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_check_follows_the_parameters_cell(nb_path):
    # yolov9lite.report.nbparams.check_parameters() reads the cell executed just before it: it must sit
    # in the cell right after the parameters cell (papermill injects its cell in between)
    cells = nbformat.read(nb_path, as_version=4).cells
    where = [i for i, c in enumerate(cells) if "check_parameters(" in c.source]
    if nb_path.stem[:2] in ("01", "02"):
        assert where, f"{nb_path.name}: call yolov9lite.report.nbparams.check_parameters()"
    params = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert all(i == params + 1 for i in where), \
        f"{nb_path.name}: check_parameters() must be in the cell right after the parameters cell"


@pytest.mark.timeout(300)
def test_notebook06_refuses_a_run_too_short_to_learn(tmp_path):
    """``-p epochs 1`` stops in the parameter check with the reason and an epoch count that
    works, before any data is generated or any training starts."""
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(NB_DIR / "06_train_coco.ipynb"), str(tmp_path / "06.ipynb"),
                            parameters={"epochs": 1, "fig_dir": str(tmp_path / "figs")},
                            kernel_name="python3", cwd=str(NB_DIR), progress_bar=False)
    err = info.value
    assert err.ename == "ParameterError"
    assert "epochs=1" in err.evalue and "-p epochs 14" in err.evalue
    assert not (tmp_path / "figs").exists()  # refused before anything was written
