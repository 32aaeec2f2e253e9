"""``yolov9lite figures``: regenerate every figure and table by running the notebooks.

Every notebook ``notebooks/NN_name.ipynb`` (two digits, then a name) is executed with papermill at
its default (laptop) scale, or with ``notebooks/params/NN_name.full.yaml`` when ``--full`` is given.
The executed copy goes to ``runs/figures/`` (git-ignored); the figures and tables go to
``figures/`` because the command passes the notebook parameter ``fig_dir``. Notebooks added later
are picked up automatically. Run it twice: the PNG files do not change (see :mod:`yolov9lite.report.viz`).
Each notebook's claims ledger lands in ``figures/claims/NN_name.json``; after the notebooks ran,
:func:`yolov9lite.study.claims.write_summary` gathers them into ``figures/claims.md``.

    yolov9lite figures                     # all notebooks
    yolov9lite figures --only 01           # those whose file name contains "01"
    yolov9lite figures --only 03 --full    # full scale, written under runs/full/
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import yaml

from ..report.viz import repo_root  # where output folders are decided
from ..study.claims import write_summary
from .args import make_parser

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
KERNEL = "python3"  # ipykernel's spec inside the environment; jupyter_client runs sys.executable


def discover(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in reading order, optionally filtered by substrings of their names."""
    paths = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if only:
        paths = [p for p in paths if any(s in p.stem for s in only)]
    return paths


def full_params_path(nb: Path) -> Path:
    return nb.parent / "params" / f"{nb.stem}.full.yaml"


def _snapshot(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_notebook(nb: Path, output: Path, parameters: dict, kernel: str = KERNEL) -> None:
    """Execute ``nb`` with papermill, working directory = the notebook's folder (as in Jupyter and
    nbval), so relative paths in notebooks mean the same everywhere."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(nb), str(output), parameters=parameters, kernel_name=kernel,
                        cwd=str(nb.parent), progress_bar=False, log_output=False)


def notebook_parameters(nb: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(nb))


def build_parameters(nb: Path, fig_dir: Path, full: bool) -> dict:
    """``fig_dir`` (when the notebook has it) plus, with ``--full``, the notebook's full.yaml."""
    declared = notebook_parameters(nb)
    params: dict = {}
    if full and full_params_path(nb).exists():
        params.update(yaml.safe_load(full_params_path(nb).read_text()) or {})
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ValueError(f"{full_params_path(nb)}: unknown parameter(s) {unknown}")
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
                        help="use notebooks/params/<name>.full.yaml (full scale; slow)")
    parser.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name")
    args = parser.parse_args(argv)
    # full-scale results never replace the committed default-scale figures unless asked to
    args.out = args.out or ("runs/full/figures" if args.full else "figures")
    args.runs = args.runs or ("runs/full" if args.full else "runs/figures")

    root = repo_root()
    nb_dir = Path(args.notebooks) if args.notebooks else root / "notebooks"
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    runs = Path(args.runs) if Path(args.runs).is_absolute() else root / args.runs
    notebooks = discover(nb_dir, args.only)
    if not notebooks:
        print(f"yolov9lite figures: no notebook matches in {nb_dir}", file=sys.stderr)
        return 2
    # headless: the kernel inherits this, so plt.show() never needs a display
    os.environ.setdefault("MPLBACKEND", "Agg")

    before = _snapshot(out)
    failed, t_all = [], time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        t0 = time.perf_counter()
        tag = f"[{i}/{len(notebooks)}] {nb.name}"
        print(f"{tag} ...", flush=True)
        try:
            run_notebook(nb, runs / nb.name, build_parameters(nb, out, args.full), args.kernel)
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


if __name__ == "__main__":
    sys.exit(main())
