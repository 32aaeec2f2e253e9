"""``yolov9lite figures``: regenerate every figure and table by running the notebooks.

Every notebook ``notebooks/NN_name.ipynb`` (two digits, then a name) is executed with papermill at
its default (laptop) scale, or with ``notebooks/params/NN_name.full.yaml`` when ``--full`` is given.
The executed copy goes to ``runs/figures/`` (git-ignored); the figures and tables go to
``figures/`` because the command passes the notebook parameter ``fig_dir``. Notebooks added later
are picked up automatically. A notebook writes into a staging copy of ``figures/`` (under the runs
folder); only when it ran to the end are its new or changed files copied into ``figures/``, so a
notebook that fails leaves ``figures/`` byte for byte as it was. Run it twice: the PNG files do not
change (see :mod:`yolov9lite.report.viz`).
Each notebook's claims ledger lands in ``figures/claims/NN_name.json``; after the notebooks ran,
:func:`yolov9lite.study.claims.write_summary` gathers them into ``figures/claims.md``.

    yolov9lite figures                     # all notebooks
    yolov9lite figures --only 01           # those whose file name contains "01"
    yolov9lite figures --only 03 --full    # full scale, written under runs/full/
    yolov9lite figures --scale gpu-hour    # notebooks/params/NN_name.gpu-hour.yaml, runs/gpu-hour/
    yolov9lite figures --only 05 -p n_seeds=3   # one parameter changed (a YAML value)
    yolov9lite figures --only 03 --recompute    # rerun the runs committed as figures/runs/*.csv

Run records: the training experiments of notebooks 03, 05 and 08 take longer than a CI run, so
their runs are committed as ``figures/runs/NN_name.csv`` (:mod:`yolov9lite.study.runs`) and the
notebooks render figures and verdicts from them when their settings are the recorded ones;
``--recompute`` reruns every run and rewrites those files.

Matplotlib: the kernel gets Jupyter's inline backend (``MPLBACKEND`` is removed from its
environment), so ``plt.show()`` puts each figure into the executed notebook (the book shows them);
``save_figure`` writes the PNG files itself, so ``figures/`` is byte for byte the same either way.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from ..report.viz import repo_root  # where output folders are decided
from ..study.claims import write_summary
from ..utils.paths import temp_beside
from .args import make_parser

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
KERNEL = "python3"  # ipykernel's spec inside the environment; jupyter_client runs sys.executable


def discover(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in reading order, optionally filtered by substrings of their names."""
    paths = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if only:
        paths = [p for p in paths if any(s in p.stem for s in only)]
    return paths


DEFAULT_SCALE = "default"


def full_params_path(nb: Path) -> Path:
    return scale_params_path(nb, "full")


def scale_params_path(nb: Path, scale: str) -> Path:
    """``notebooks/params/NN_name.<scale>.yaml`` (``full``, ``gpu-hour``, ...)."""
    return nb.parent / "params" / f"{nb.stem}.{scale}.yaml"


def scale_folders(scale: str) -> tuple[str, str]:
    """(figures, executed notebooks) of a scale, relative to the repository: the default scale
    writes the committed ``figures/`` and ``runs/figures/``, any other ``runs/<scale>/figures`` and
    ``runs/<scale>/``, so runs at other scales never mix with (or replace) the committed ones."""
    if scale == DEFAULT_SCALE:
        return "figures", "runs/figures"
    return f"runs/{scale}/figures", f"runs/{scale}"


@contextmanager
def inline_matplotlib():
    """The kernel inherits this process's environment; without ``MPLBACKEND`` ipykernel picks the
    inline backend, so figures shown with ``plt.show()`` are stored in the executed notebook."""
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


def _snapshot(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _first_line(source: str, width: int = 48) -> str:
    line = next((ln.strip() for ln in source.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _progress_engine() -> str:
    """papermill's nbclient engine whose bar also names the running cell (its first code line)."""
    from papermill.engines import NBClientEngine, papermill_engines

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                start(cell, cell_index, **kw)
                if getattr(nb_man, "pbar", None) and cell.cell_type == "code":
                    nb_man.pbar.set_postfix_str(_first_line(cell.source), refresh=True)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("yolov9lite-progress", ProgressEngine)
    return "yolov9lite-progress"


def run_notebook(nb: Path, output: Path, parameters: dict, kernel: str = KERNEL,
                 progress: bool = False) -> None:
    """Execute ``nb`` with papermill, working directory = the notebook's folder (as in Jupyter and
    nbval), so relative paths in notebooks mean the same everywhere. ``progress``: papermill's
    tqdm bar on stderr: cells done / cells, then the first line of the running cell."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    bar = {"desc": f"  {nb.stem}", "unit": "cell", "leave": True} if progress else False
    engine = _progress_engine() if progress else None
    with inline_matplotlib():
        pm.execute_notebook(str(nb), str(output), parameters=parameters, kernel_name=kernel,
                            cwd=str(nb.parent), progress_bar=bar, log_output=False,
                            engine_name=engine)


def stage_folder(out: Path, runs: Path, nb: Path) -> Path:
    """A fresh copy of ``out`` for one notebook to write into (notebooks may read what earlier
    notebooks wrote there), inside the git-ignored runs folder."""
    runs.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".stage-{nb.stem}-", dir=runs))
    if out.is_dir():
        shutil.copytree(out, stage, dirs_exist_ok=True)
    return stage


def publish(stage: Path, out: Path) -> None:
    """Copy the files of ``stage`` that are new or differ into ``out``, each one atomically
    (a temporary file in the target folder, then a rename); identical files stay untouched."""
    for src in sorted(p for p in stage.rglob("*") if p.is_file()):
        dst = out / src.relative_to(stage)
        data = src.read_bytes()
        if dst.is_file() and dst.read_bytes() == data:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        with temp_beside(dst) as fh:
            fh.write(data)


def run_and_publish(nb: Path, out: Path, runs: Path, full: bool | str, kernel: str,
                    overrides: dict | None = None, progress: bool = False) -> None:
    """Run ``nb`` against a staging copy of ``out``; publish its files only if it ran to the end."""
    stage = stage_folder(out, runs, nb)
    try:
        run_notebook(nb, runs / nb.name, build_parameters(nb, stage, full, overrides), kernel,
                     progress)
        publish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def notebook_parameters(nb: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(nb))


def build_parameters(nb: Path, fig_dir: Path, full: bool | str,
                     overrides: dict | None = None) -> dict:
    """``fig_dir`` (when the notebook has it) plus the scale's parameter file (``full=True`` or
    ``"full"``: full.yaml; ``"gpu-hour"``: gpu-hour.yaml; missing file: the defaults), then the
    ``-p`` ``overrides`` this notebook declares."""
    scale = "full" if full is True else (full or DEFAULT_SCALE)
    declared = notebook_parameters(nb)
    params: dict = {}
    path = scale_params_path(nb, scale)
    if scale != DEFAULT_SCALE and path.exists():
        params.update(yaml.safe_load(path.read_text()) or {})
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ValueError(f"{path}: unknown parameter(s) {unknown}")
    params.update({k: v for k, v in (overrides or {}).items() if k in declared})
    if "fig_dir" in declared:
        params["fig_dir"] = str(fig_dir.resolve())
    return params


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("yolov9lite figures", __doc__.split("\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only notebooks whose name contains NAME (repeatable)")
    parser.add_argument("--out", default=None, help="where figures and tables go (default: "
                        "figures/; with --full runs/full/figures/, so the committed ones stay)")
    parser.add_argument("--runs", default=None, help="where executed notebooks go (default: "
                        "runs/figures/; with --full runs/full/)")
    parser.add_argument("--notebooks", default=None, help="notebook folder (default: notebooks/)")
    parser.add_argument("--full", action="store_true",
                        help="use notebooks/params/<name>.full.yaml (full scale; slow); "
                        "the same as --scale full")
    parser.add_argument("--scale", default=None, metavar="NAME",
                        help="use notebooks/params/<name>.NAME.yaml where it exists (e.g. "
                        "gpu-hour, full); results go to runs/NAME/ (default scale: figures/)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="set a notebook parameter (VALUE read as YAML) in every selected "
                        "notebook that declares KEY (repeatable)")
    parser.add_argument("--recompute", action="store_true",
                        help="rerun the training experiments whose runs are committed as records "
                        "(figures/runs/*.csv; notebooks with a `recompute` parameter) instead "
                        "of rendering from those records (much longer than rendering)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (one line per notebook only)")
    parser.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name")
    args = parser.parse_args(argv)
    if args.full and args.scale not in (None, "full"):
        parser.error(f"--full and --scale {args.scale} contradict each other; give one")
    scale = "full" if args.full else (args.scale or DEFAULT_SCALE)
    if not scale.replace("-", "").replace("_", "").isalnum():
        parser.error(f"--scale {scale!r}: use letters, digits, '-' and '_' (e.g. gpu-hour)")
    overrides = parse_overrides(parser, args.param)
    # results at another scale never replace the committed default-scale figures unless asked to
    default_out, default_runs = scale_folders(scale)
    args.out = args.out or default_out
    args.runs = args.runs or default_runs

    root = repo_root()
    nb_dir = Path(args.notebooks) if args.notebooks else root / "notebooks"
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    runs = Path(args.runs) if Path(args.runs).is_absolute() else root / args.runs
    notebooks = discover(nb_dir, args.only)
    if not notebooks:
        print(f"yolov9lite figures: no notebook matches in {nb_dir}", file=sys.stderr)
        return 2
    if scale != DEFAULT_SCALE and not any(scale_params_path(nb, scale).exists()
                                          for nb in notebooks):
        print(f"yolov9lite figures: --scale {scale}: no notebooks/params/*.{scale}.yaml for the "
              f"selected notebooks; known scales: {', '.join(known_scales(nb_dir))}",
              file=sys.stderr)
        return 2
    if overrides:
        declared = set().union(*(notebook_parameters(nb) for nb in notebooks))
        unknown = sorted(set(overrides) - declared)
        if unknown:
            print(f"yolov9lite figures: -p {unknown[0]}: no selected notebook has this parameter "
                  "(see the parameters cell of each notebook)", file=sys.stderr)
            return 2
    if args.recompute:  # only the notebooks that declare it receive it (build_parameters)
        overrides["recompute"] = True

    before = _snapshot(out)
    failed, t_all = [], time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        t0 = time.perf_counter()
        tag = f"[{i}/{len(notebooks)}] {nb.name}"
        params_file = scale_params_path(nb, scale)
        at = (f"scale {scale}: {params_file.relative_to(nb.parent.parent)}"
              if scale != DEFAULT_SCALE and params_file.exists() else "default parameters")
        print(f"{tag} ... ({at})", flush=True)
        try:
            run_and_publish(nb, out, runs, scale, args.kernel, overrides,
                            progress=not args.no_progress)
            print(f"{tag} ok ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception as err:  # noqa: BLE001  (report it, then run the other notebooks)
            first = str(err).strip().splitlines()
            print(f"{tag} FAILED ({time.perf_counter() - t0:.1f} s): {type(err).__name__}: "
                  f"{first[-1] if first else ''}", flush=True)
            print(f"      executed copy with the traceback: {runs / nb.name}", flush=True)
            failed.append(nb.name)

    if (out / "claims").is_dir():  # one table of every claim, from the notebooks' ledgers

        write_summary(out / "claims")
    after = _snapshot(out)
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in after if k in before and after[k] != before[k])
    same = len(after) - len(new) - len(changed)
    print(f"\n{len(notebooks) - len(failed)}/{len(notebooks)} notebooks ran in "
          f"{time.perf_counter() - t_all:.1f} s; {out.relative_to(root) if out.is_relative_to(root) else out}/: "
          f"{len(new)} new, {len(changed)} changed, {same} unchanged files")
    for name in new:
        print(f"  new      {name}")
    for name in changed:
        print(f"  changed  {name}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def parse_overrides(parser: argparse.ArgumentParser, pairs: list[str]) -> dict:
    """``-p key=value`` pairs; the value is YAML (``3``, ``0.5``, ``[1, 2]``, ``true``, text)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            parser.error(f"-p {pair!r}: write KEY=VALUE, e.g. -p n_seeds=3")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            parser.error(f"-p {pair!r}: VALUE is not valid YAML (quote text: -p 'name=\"x\"')")
    return out


def known_scales(nb_dir: Path) -> list[str]:
    """Scales that have at least one parameter file in ``notebooks/params/``."""
    names = {p.name.split(".")[-2] for p in (nb_dir / "params").glob("*.*.yaml")}
    return [DEFAULT_SCALE, *sorted(names)]


if __name__ == "__main__":
    sys.exit(main())
