"""Check a notebook's injected parameters: unknown names, wrong types and values out of range
(``check_parameters(positive=[...], nonnegative=[...], unit=[...])``) fail, naming the key.

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
import math

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


def default_values(source: str) -> dict[str, object]:
    """{name: value} of the literal defaults of a ``parameters`` cell (others are left out)."""
    out = {}
    try:
        body = ast.parse(source).body
    except SyntaxError:  # not a parameters cell (the check cell was run on its own)
        return {}
    for node in body:
        if isinstance(node, (ast.AnnAssign, ast.Assign)) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    return out


def _numbers(value) -> list:
    """The numbers in a value (lists and nested lists entry by entry; bools and text skipped)."""
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def range_problems(values: dict, positive=(), nonnegative=(), unit=()) -> list[str]:
    """One line per parameter outside its range, naming it. ``positive``: counts, sizes, depths,
    steps, rates (> 0, so at least 1 for an integer); ``nonnegative``: >= 0 (0 often means
    "all" or "none"); ``unit``: probabilities and fractions, in [0, 1]. Lists are checked entry
    by entry. Names not in ``values`` are skipped (``check_parameters`` sees every declared one)."""
    rules = ((positive, lambda v: v > 0, lambda v: "at least 1" if isinstance(v, int)
              else "greater than 0"),
             (nonnegative, lambda v: v >= 0, lambda v: "at least 0"),
             (unit, lambda v: 0 <= v <= 1, lambda v: "between 0 and 1"))
    out = []
    for names, ok, what in rules:
        for name in names:
            if name not in values:
                continue
            bad = [v for v in _numbers(values[name]) if math.isnan(v) or not ok(v)]
            if bad:
                each = " (every entry)" if isinstance(values[name], (list, tuple)) else ""
                out.append(f"parameter {name!r} must be {what(bad[0])}{each}, got "
                           f"{values[name]!r}")
    return out


def _cell_history() -> list[str]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("check_parameters() runs inside a notebook (an IPython kernel)")
    return list(shell.user_ns.get("In", []))


def check_parameters(history: list[str] | None = None, *, positive=(), nonnegative=(),
                     unit=()) -> dict[str, object]:
    """Fail with :class:`ParameterError` naming every unknown or mistyped injected parameter,
    and every parameter (injected or default) outside its range (see :func:`range_problems`:
    ``positive`` > 0, ``nonnegative`` >= 0, ``unit`` in [0, 1]); return the injected
    {name: value} (empty without papermill). ``history`` = the sources of the executed cells,
    the current one last (default: IPython's ``In``)."""
    cells = [c for c in (_cell_history() if history is None else history) if c.strip()]
    if len(cells) < 2:
        return {}
    previous = cells[-2]
    injected_source = None
    if previous.lstrip().startswith(INJECTED_HEADER):
        if len(cells) < 3:
            raise ParameterError("found papermill's injected parameters but no parameters cell "
                                 "before them")
        params_source, injected_source = cells[-3], previous
    else:  # nothing injected: the previous cell is the parameters cell itself
        params_source = previous
    bad = problems(params_source, injected_source) if injected_source else []
    injected = injected_parameters(injected_source) if injected_source else {}
    bad += range_problems({**default_values(params_source), **injected}, positive, nonnegative,
                          unit)
    if bad:
        raise ParameterError("bad notebook parameter: " + "; ".join(bad))
    return injected
