"""The shape of the package as a reader meets it: folders that are layers, imports that only go
down the layer table, no import cycles, modules of a readable size, the command line only in
``cli/``, one import path per name (no re-exports), every public name real, every module
reachable from ``import yolov9lite``, a module map generated from the folders, and no pointer to
files that do not ship with the project.

Run ``python tests/test_structure.py`` to rewrite the module map in ``yolov9lite/__init__.py``
and README.md after adding a module.

The import graph is read from the source with ``ast`` (nothing is imported to build it), and an
import inside a function counts as much as one at the top: a circle hidden in a function is
still a circle for the reader.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "yolov9lite"
MAX_LINES = 500

# The layers: folder -> (floor, the folders it may import). An import goes down the table or
# stays in its folder; nn/ and data/ never import each other, nor do training/ and inference/;
# only cli/ (and the notebooks) import study/, and nothing imports cli/.
BASE = {"utils"}
LAYERS: dict[str, tuple[int, set[str]]] = {
    "utils": (0, set()),
    "nn": (1, BASE),
    "data": (1, BASE),
    "weights": (2, BASE | {"nn"}),
    "report": (2, BASE | {"data"}),
    "evaluation": (3, BASE | {"nn", "data", "weights"}),
    "training": (4, BASE | {"nn", "data", "weights", "report", "evaluation"}),
    "inference": (4, BASE | {"nn", "data", "weights", "report", "evaluation"}),
    "study": (5, BASE | {"nn", "data", "weights", "report", "evaluation", "training", "inference"}),
    "cli": (6, BASE | {"nn", "data", "weights", "report", "evaluation", "training", "inference",
                       "study"}),
}
# The package's face (`import yolov9lite`: the short public API) and `python -m yolov9lite`.
FACE = {"yolov9lite": set(LAYERS) - {"cli", "study"}, "yolov9lite.__main__": {"cli"}}
# Third-party imports allowed inside functions: optional extras, or heavy and needed by one path.
OPTIONAL_IMPORTS = {"papermill", "pycocotools", "faster_coco_eval", "onnx", "onnxscript",
                    "onnxruntime", "torch.utils.tensorboard", "IPython", "fcntl",
                    "matplotlib.pyplot", "seaborn", "numpy._core", "numpy.core",
                    "torch.utils._foreach_utils",
                    # the book extra (yolov9lite book): Sphinx and the notebook format
                    "nbformat", "sphinx", "myst_nb", "sphinx_book_theme"}

# Modules allowed over MAX_LINES for now, each with the reason; only while its owner is splitting
# it. An entry that is no longer needed fails the test, so the list cannot go stale.
OVER_LIMIT: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in ``source`` (top level or
    inside functions)."""
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb ``level - 1`` packages from this one
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` only the module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import yolov9lite.data.labels as L` etc.
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(path.read_text(), name, path.name == "__init__.py", set(modules))
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


# ------------------------------------------------------------------------------ imports

def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_reader_sees_relative_absolute_and_function_level_imports():
    source = ("from . import a\nfrom .b import x\nimport numpy\n"
              "def f():\n    from ..c import y\n    import yolov9lite.d.e as E\n")
    known = {"yolov9lite", "yolov9lite.p", "yolov9lite.p.a", "yolov9lite.p.b", "yolov9lite.p.m",
             "yolov9lite.c", "yolov9lite.d", "yolov9lite.d.e"}
    assert imported_modules(source, "yolov9lite.p.m", False, known) == {
        "yolov9lite.p.a", "yolov9lite.p.b", "yolov9lite.c", "yolov9lite.d.e"}
    graph = import_graph()
    assert "yolov9lite.nn.models" in graph["yolov9lite.weights.checkpoint"]
    assert "yolov9lite.data.augment" in graph["yolov9lite.data"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def layer_of(module: str) -> str | None:
    """``yolov9lite.training.loss`` -> ``training``; the package face and ``__main__`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            if dst == "yolov9lite":  # `yolov9lite.__version__`: the package is loaded first anyway
                continue
            a, b = layer_of(src), layer_of(dst)
            allowed = FACE.get(src) if a is None else LAYERS[a][1] | {a}
            if b not in allowed:
                bad.append(f"{src} -> {dst} ({a or src} may not import {b})")
    return bad


def test_every_module_lives_in_a_layer_folder():
    loose = [n for n in package_modules() if layer_of(n) is None and n not in FACE]
    assert not loose, f"put these modules into one of the folders {sorted(LAYERS)}: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        LAYERS), "a new folder needs a row in LAYERS"


def test_imports_follow_the_layer_table():
    """Module- and function-level imports alike (:func:`import_graph` reads both)."""
    bad = layer_violations(import_graph())
    assert not bad, "imports against the layer table:\n" + "\n".join(bad)


def test_layer_check_catches_a_wrong_import():
    graph = {"yolov9lite.nn.models": {"yolov9lite.data.augment"},
             "yolov9lite.training.loss": {"yolov9lite.inference.results"},
             "yolov9lite.weights.checkpoint": {"yolov9lite.cli.args"},
             "yolov9lite.study.claims": {"yolov9lite.report.viz", "yolov9lite.study.stacks"}}
    assert len(layer_violations(graph)) == 3


def function_level_imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, level) of every import inside a function or class body."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    out += [(inner.lineno, a.name, 0) for a in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    out.append((inner.lineno, inner.module or "", inner.level))
    return sorted(set(out))


def test_imports_inside_functions_are_only_for_optional_dependencies():
    """A dependency hidden in a function is one the reader does not see at the top; only optional
    extras (ONNX, papermill, pycocotools, TensorBoard ...) and platform modules may hide."""
    hidden = [f"{path.relative_to(ROOT)}:{line}: {'.' * level}{module}"
              for path in package_modules().values()
              for line, module, level in function_level_imports(path)
              if level or not ({module, module.partition(".")[0]} & OPTIONAL_IMPORTS)]
    assert not hidden, "move these imports to the top of their module:\n" + "\n".join(hidden)


def test_argparse_only_in_the_command_line():
    users = sorted(name for name, path in package_modules().items()
                   if layer_of(name) != "cli" and re.search(r"^\s*(import argparse|from argparse)",
                                                            path.read_text(), re.MULTILINE))
    assert not users, f"argparse outside yolov9lite/cli/: {users}"


def test_one_import_path_per_name():
    """``__all__`` lists only what the module itself defines (no re-export shims), except the two
    faces: the package (its short public API) and ``yolov9lite.data``."""
    faces = {"yolov9lite", "yolov9lite.data", "yolov9lite.data.labels"}
    shims = {}
    for name, path in package_modules().items():
        tree = ast.parse(path.read_text())
        imported = {a.asname or a.name.split(".")[0] for node in tree.body
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
        listed = next((ast.literal_eval(node.value) for node in tree.body
                       if isinstance(node, ast.Assign)
                       and any(getattr(t, "id", None) == "__all__" for t in node.targets)), [])
        reexported = sorted(set(listed) & imported)
        if reexported and name not in faces:
            shims[name] = reexported
        if "re-export" in path.read_text() and name not in faces:
            shims.setdefault(name, []).append("(says it re-exports)")
    assert not shims, f"import these names from their home module instead: {shims}"


# ------------------------------------------------------------------------------ module map

def folder_summary(folder: str) -> str:
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def module_map() -> str:
    """The folders in layer order, with their one-line summary and their modules."""
    lines = []
    for folder, (floor, _) in sorted(LAYERS.items(), key=lambda kv: (kv[1][0], kv[0])):
        modules = sorted(p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem != "__init__")
        lines.append(f"{floor}  {folder + '/':<12}{folder_summary(folder)}")
        text, row = ", ".join(modules), ""
        for word in text.split(" "):
            if len(row) + len(word) + 1 > 80:
                lines.append(" " * 15 + row.rstrip())
                row = ""
            row += word + " "
        lines.append(" " * 15 + row.rstrip())
    return "\n".join(lines)


MAP_START, MAP_END = "Module map (floor, folder, modules):", "(end of the module map)"


def with_module_map(text: str, indent: str = "") -> str:
    start = text.index(MAP_START) + len(MAP_START)
    end = text.index(MAP_END)
    block = "\n".join(indent + line if line else line for line in module_map().splitlines())
    return text[:start] + "\n\n" + block + "\n\n" + text[end:]


def test_module_map_in_the_docstring_and_readme_is_generated_from_the_folders():
    init, readme = PACKAGE / "__init__.py", ROOT / "README.md"
    assert with_module_map(init.read_text(), "    ") == init.read_text(), (
        "module map out of date: run python tests/test_structure.py")
    assert with_module_map(readme.read_text(), "    ") == readme.read_text(), (
        "module map out of date: run python tests/test_structure.py")


# ------------------------------------------------------------------------------ sizes

def test_no_module_over_the_line_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in package_modules().items()}
    too_long = {n: s for n, s in sizes.items() if s > MAX_LINES and n not in OVER_LIMIT}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concern): {too_long}"
    stale = [n for n in OVER_LIMIT if sizes.get(n, 0) <= MAX_LINES]
    assert not stale, f"remove from OVER_LIMIT, now within {MAX_LINES} lines: {stale}"


# ------------------------------------------------------------------------------ public names

@pytest.mark.parametrize("name", sorted(n for n in package_modules() if not n.endswith("__main__")))
def test_every_name_in_all_resolves(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not define: {missing}"


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_module_is_an_attribute_of_the_package_and_functions_stay_functions():
    """In a fresh interpreter: ``import yolov9lite`` then ``yolov9lite.<module>`` for every module,
    and every public function is still the same function after its module was imported (the bug
    this guards against: ``yolov9lite.train`` turning into the module that defines it).

    No module shares a name with a public function (``yolov9lite.deploy`` is the function; its
    module is ``yolov9lite.nn.deployment``), so ``import yolov9lite.<name> as m`` never surprises.
    """
    names = sorted(n.split(".")[1] for n in package_modules()
                   if n.count(".") == 1 and not n.endswith("__main__"))
    code = f"""
import importlib, json, yolov9lite
names = {names!r}
before = {{n: repr(getattr(yolov9lite, n)) for n in yolov9lite.__all__}}
kinds = {{n: type(getattr(yolov9lite, n)).__name__ for n in names}}
for n in names:
    importlib.import_module("yolov9lite." + n)
after = {{n: repr(getattr(yolov9lite, n)) for n in yolov9lite.__all__}}
print(json.dumps([kinds, before, after, sorted(dir(yolov9lite))]))
"""
    kinds, before, after, listed = json.loads(run_python(code))
    public = set(before)
    assert not set(names) & public, set(names) & public
    assert kinds == {n: "module" for n in names}
    assert before == after
    assert not any(v.startswith("<module") for v in after.values()), after
    assert set(names) <= set(listed)


def test_package_docstring_maps_every_folder():
    """The module map in ``yolov9lite/__init__.py`` is where a reader starts: it names them all."""
    import yolov9lite

    missing = sorted(f for f in LAYERS if f"{f}/" not in yolov9lite.__doc__)
    assert not missing, f"add these folders to the module map in yolov9lite/__init__.py: {missing}"


def test_train_is_callable_twice_in_one_process(tmp_path):
    """The README's ``yolov9lite.train(...)``: twice in a row, as a notebook would call it."""
    import yolov9lite
    from yolov9lite.data import make_synthetic

    data = str(make_synthetic(tmp_path / "data", num_train=4, num_val=2, imgsz=64, seed=0))
    tiny = {"model": "gelan-nano", "data": data, "epochs": 1, "batch_size": 2, "max_batches": 1,
            "imgsz": 64, "workers": 0, "device": "cpu", "project": tmp_path / "runs",
            "tensorboard": False, "plots": False, "verbose": False}
    first = yolov9lite.train(name="first", **tiny)
    importlib.import_module("yolov9lite.training.trainer")  # importing the module changes nothing
    second = yolov9lite.train(name="second", **tiny)
    assert len(first) == len(second) == 1


# ------------------------------------------------------------------------------ shipping

SEARCHED = ("yolov9lite", "tests", "benchmarks", "notebooks")
SUFFIXES = {".py", ".ipynb", ".md", ".yaml", ".yml", ".txt", ".sh", ".toml", ".cfg"}
SKIPPED_DIRS = {"runs", "__pycache__", ".ipynb_checkpoints"}
# Spelled in two pieces so that this file does not match itself.
NOT_SHIPPED = re.compile("shar" + r"ed/|\b[Ii]ssue \d")


def shipped_text_files():
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in SUFFIXES and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
                yield path


def test_no_reference_to_files_that_do_not_ship():
    """Code, tests, benchmarks and notebooks cite the paper or the official files, never notes
    kept outside the repository or tracker issue numbers."""
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}"
            for path in shipped_text_files()
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if NOT_SHIPPED.search(line)]
    assert not hits, "\n".join(hits)


if __name__ == "__main__":  # rewrite the module map in the package docstring and the README
    for target in (PACKAGE / "__init__.py", ROOT / "README.md"):
        target.write_text(with_module_map(target.read_text(), "    "))
