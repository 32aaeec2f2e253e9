"""Notebooks are committed without outputs (nbstripout), and running one never breaks
``make test``: what is checked is the version git holds (the index, ``git show :path``), not the
working file, which JupyterLab's Run All fills with outputs. Outside a git checkout the files
themselves are checked."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def committed_text(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    out = subprocess.run(["git", "show", f":{rel}"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    return out.stdout if out.returncode == 0 else path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = json.loads(committed_text(path))
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name} cell {k} holds outputs; strip them: python -m nbstripout {path}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_saved_as_markdown(path):
    """A code cell saved as markdown renders as one run-together paragraph (04's old cell 4)."""
    nb = json.loads(path.read_text())
    for k, cell in enumerate(nb["cells"]):
        text = "".join(cell["source"]).lstrip()
        if cell["cell_type"] == "markdown":
            assert not text.startswith(("import ", "from ", "def ", "for ")), (
                f"{path.name} cell {k} is code saved as markdown")


def test_pgi_notebook_sections_are_numbered_from_one():
    nb = json.loads((ROOT / "notebooks" / "04_pgi.ipynb").read_text())
    numbers = [int(line.split(".")[0][3:]) for c in nb["cells"] if c["cell_type"] == "markdown"
               for line in "".join(c["source"]).splitlines()
               if line.startswith("## ") and line[3:4].isdigit()]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert any("PGI's anatomy in the released models" in "".join(c["source"])
               for c in nb["cells"])
