"""Check a notebook's injected parameters: unknown names and wrong types fail, naming the key.

Usage (the cell right after the ``parameters`` cell of every notebook)::

    from yolov9lite.report.nbparams import check_parameters
    check_parameters()  # fails on `-p epoch 10` (unknown), `-p epochs ten` (type), a YAML typo

Why: papermill only *warns* about a parameter the notebook does not declare and then runs with
the default, so ``-p epoch 10`` or ``mosiac: 0.5`` in a ``-f params.yaml`` silently gives a
default-scale run; and ``-p epochs ten`` injects the string ``"ten"``, which fails much later or
not at all.

How: IPython keeps the source of every executed cell in the list ``In`` (the same under
papermill, nbval and JupyterLab, all of which run an IPython kernel). When ``check_parameters()``
runs, the previous cell is either papermill's injected cell (tagged ``injected-parameters``, its
source begins with ``# Parameters``), preceded by the ``parameters`` cell, or the ``parameters``
cell itself (nothing injected). Both are parsed with :mod:`ast`, never executed again: the
parameters cell gives the declared names and their annotated types (``epochs: int = 10``), the
injected cell the overrides. So run the parameters cell and this cell in order (in JupyterLab:
"Run All", or run the two cells one after the other).
"""
from __future__ import annotations

import ast
import difflib

INJECTED_HEADER = "# Parameters"  # papermill's first line of the injected cell
TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict,
         "tuple": tuple}


class ParameterError(ValueError):
    """An injected parameter that the notebook does not declare, or of the wrong type."""


def declared_parameters(source: str) -> dict[str, str | None]:
    """{name: annotated type name or None} of every assignment in a ``parameters`` cell."""
    out: dict[str, str | None] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            ann = node.annotation
            out[node.target.id] = ann.id if isinstance(ann, ast.Name) else None
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = None
    return out


def injected_parameters(source: str) -> dict[str, object]:
    """{name: value} of papermill's injected cell (its values are Python literals)."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # not a literal: cannot be type-checked, still name-checked
                out[node.targets[0].id] = node.value
    return out


def type_ok(value, type_name: str | None) -> bool:
    """``value`` fits the annotation (an int is a valid float; unknown annotations pass)."""
    want = TYPES.get(type_name or "")
    if want is None or isinstance(value, ast.AST):
        return True
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if want in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, want)


def problems(params_source: str, injected_source: str) -> list[str]:
    """One line per bad injected parameter (empty when all are fine)."""
    declared = declared_parameters(params_source)
    out = []
    for name, value in injected_parameters(injected_source).items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(f"unknown parameter {name!r}{hint} (declared: {', '.join(declared)})")
        elif not type_ok(value, declared[name]):
            out.append(f"parameter {name!r} must be {declared[name]}, got {value!r} "
                       f"({type(value).__name__})")
    return out


def _cell_history() -> list[str]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("check_parameters() runs inside a notebook (an IPython kernel)")
    return list(shell.user_ns.get("In", []))


def check_parameters(history: list[str] | None = None) -> dict[str, object]:
    """Fail with :class:`ParameterError` naming every unknown or mistyped injected parameter;
    return the injected {name: value} (empty without papermill). ``history`` = the sources of the
    executed cells, the current one last (default: IPython's ``In``)."""
    cells = [c for c in (_cell_history() if history is None else history) if c.strip()]
    if len(cells) < 2:
        return {}
    previous = cells[-2]
    if not previous.lstrip().startswith(INJECTED_HEADER):
        return {}  # nothing injected: the previous cell is the parameters cell itself
    if len(cells) < 3:
        raise ParameterError("found papermill's injected parameters but no parameters cell "
                             "before them")
    bad = problems(cells[-3], previous)
    if bad:
        raise ParameterError("bad notebook parameter: " + "; ".join(bad))
    return injected_parameters(previous)
