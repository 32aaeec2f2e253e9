"""``yolov9lite.report.nbparams.check_parameters``: a typo or a wrong type in papermill's injected
parameters fails the notebook, naming the key (papermill itself only warns)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm
import pytest

from yolov9lite.report.nbparams import ParameterError, check_parameters, problems

PARAMS = 'epochs: int = 2  # passes\nmosaic: float = 1.0  # probability\nname: str = "a"  # label'


def injected(**values) -> str:
    return "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())


def test_no_injection_passes():
    assert check_parameters([PARAMS, "check_parameters()"]) == {}


def test_good_injection_passes():
    got = check_parameters([PARAMS, injected(epochs=3, mosaic=1, name="b"), "check"])
    assert got == {"epochs": 3, "mosaic": 1, "name": "b"}  # an int is a valid float


@pytest.mark.parametrize(("values", "needle"), [
    ({"epoch": 10}, "unknown parameter 'epoch'; did you mean 'epochs'?"),
    ({"mosiac": 0.5}, "unknown parameter 'mosiac'; did you mean 'mosaic'?"),
    ({"epochs": "ten"}, "parameter 'epochs' must be int, got 'ten'"),
    ({"epochs": 2.5}, "parameter 'epochs' must be int"),
    ({"mosaic": True}, "parameter 'mosaic' must be float"),
])
def test_bad_injection_is_named(values, needle):
    assert any(needle in p for p in problems(PARAMS, injected(**values)))
    with pytest.raises(ParameterError, match=needle.split(";")[0].replace("'", ".")):
        check_parameters([PARAMS, injected(**values), "check"])


def _tiny_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells += [params,
                 nbformat.v4.new_code_cell("from yolov9lite.report.nbparams import check_parameters\n"
                                           "check_parameters()"),
                 nbformat.v4.new_code_cell("assert epochs == 3")]
    nbformat.write(nb, path)


@pytest.mark.timeout(120)
def test_papermill_run_fails_on_typo_and_passes_when_good(tmp_path):
    # the real thing: papermill's injected cell, then the check in the next cell
    src = tmp_path / "tiny.ipynb"
    _tiny_notebook(src)
    with pytest.raises(pm.PapermillExecutionError, match="unknown parameter 'epoch'"):
        pm.execute_notebook(str(src), str(tmp_path / "bad.ipynb"), parameters={"epoch": 3},
                            kernel_name="python3", progress_bar=False)
    pm.execute_notebook(str(src), str(tmp_path / "good.ipynb"), parameters={"epochs": 3},
                        kernel_name="python3", progress_bar=False)
