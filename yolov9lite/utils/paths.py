"""Output folders and files: a new folder per run, and outputs that never replace an input.

* :func:`increment_path` -- a new output folder per run: ``runs/predict/exp``, ``exp2``, ...;
* :func:`refuse_overwrite` -- an output may never be one of the inputs;
* :func:`refuse_inside` -- an output folder may never lie inside a source folder;
* :func:`temp_beside` -- a file written whole or not at all (a new temporary file, then a rename).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import InputError


def increment_path(project: str | os.PathLike, name: str = "exp", exist_ok: bool = False,
                   mkdir: bool = True) -> Path:
    """``project/name`` if free (or ``exist_ok``), else the first free ``name2``, ``name3``, ...

    The folder is created atomically (``mkdir`` without ``exist_ok``), so two runs started at the
    same moment get different folders."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise InputError(f"--name {name!r}: must be a plain folder name (no '/')")
    project = Path(project)
    base = project / name
    if exist_ok:
        if mkdir:
            base.mkdir(parents=True, exist_ok=True)
        return base
    for n in range(1, 10_000):
        path = base if n == 1 else project / f"{name}{n}"
        if path.exists():
            continue
        if not mkdir:
            return path
        try:
            path.mkdir(parents=True)
        except FileExistsError:  # another run took it a moment ago
            continue
        return path
    raise InputError(f"--project {project}: 10,000 runs named {name!r} already; choose another --name")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(output: str | os.PathLike, inputs, flag: str = "--out") -> Path:
    """Raise :class:`InputError` if ``output`` is (or is inside, for folders) one of ``inputs``, or is
    an existing directory when a file is wanted. Returns ``output`` as a Path."""
    out = Path(output)
    if out.is_dir():
        raise InputError(f"{flag} {out} is an existing folder; give a file name")
    for inp in inputs:
        inp = Path(inp)
        if out.resolve() == inp.resolve() or _same_file(out, inp):
            raise InputError(f"{flag} {out} is the input file {inp}; choose another output name "
                           "(inputs are never overwritten)")
    return out


def refuse_inside(folder: str | os.PathLike, sources, flag: str = "--project") -> None:
    """Raise :class:`InputError` if the output ``folder`` is one of the ``sources`` folders or lies
    inside one (annotated copies would land among the originals, or replace them)."""
    out = Path(folder).resolve()
    for src in sources:
        src = Path(src).resolve()
        root = src if src.is_dir() else src.parent
        if out == root or (src.is_dir() and root in out.parents):
            raise InputError(f"{flag} {folder} is inside the source {src}; write the results "
                           "elsewhere (sources are never written to)")


__all__ = ["increment_path", "refuse_inside", "refuse_overwrite"]


@contextlib.contextmanager
def temp_beside(path: Path, mode: str = "wb", **kwargs):
    """A new file (``mkstemp``: O_EXCL, so never a planted symlink) next to ``path``, opened in
    ``mode``; renamed over ``path`` when the block ends without an error, else removed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
