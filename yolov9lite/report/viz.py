"""One plotting style and deterministic figure/table files for every notebook.

``paper_style()`` fixes the look (font, sizes, colours) so that figures from different notebooks
match; ``save_figure()`` writes a PNG whose bytes depend only on what was drawn, plus a sidecar JSON
saying how it was made; ``save_table()`` writes the same rows as Markdown and CSV.

Why the PNG is reproducible: matplotlib's Agg renderer is deterministic for the same inputs, the
font is DejaVu Sans (shipped inside matplotlib, so identical on every machine), and the only
volatile PNG metadata matplotlib writes, ``Software: Matplotlib version X``, is removed. The sidecar
JSON carries no timestamp and no git commit: both would change on every run or every commit while
the figure itself does not, so regenerating figures would dirty the tree forever. It records what
does determine the figure: the notebook's parameters, the seed, the library versions and the
machine (CPU model, thread count; :func:`machine_info`). Bytes may therefore
differ between machines (CPU floating point differs too); verdicts must not (see
:mod:`yolov9lite.study.claims`).
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
from pathlib import Path

import matplotlib as mpl
import numpy
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import __version__

# One colour per architecture, used by every notebook (colour-blind-safe "tab10" entries).
ARCH_COLORS = {
    "plain": "#d62728", "resnet": "#ff7f0e", "cspnet": "#2ca02c", "gelan": "#1f77b4",
    "revnet": "#9467bd", "preact": "#8c564b",
}
DPI = 150  # savefig resolution of every committed PNG
# One colour per PGI variant (notebooks 04 and 05). "none" is plain GELAN and keeps GELAN's blue;
# red stays PlainNet's. Paper labels map onto the knobs: PFH = DS = "ds", LHG-ICN = "lhg-icn".
PGI_COLORS = {"none": "#1f77b4", "ds": "#7f7f7f", "fpn": "#17becf", "pan": "#bcbd22",
              "icn": "#e377c2", "lhg-icn": "#a0457e"}
_PGI_ALIASES = {"pfh": "ds", "gelan": "none"}


def repo_root() -> Path:
    """The checkout: the current directory if it has ``notebooks/``, else the package's parent
    (the package is installed editable, so that is the clone)."""
    cwd = Path.cwd()
    if (cwd / "notebooks").is_dir():
        return cwd
    return Path(__file__).resolve().parents[2]


def pgi_color(label: str) -> str:
    """The colour of a PGI variant, by knob (``"icn"``) or paper label (``"LHG-ICN"``, ``"PFH"``)."""
    key = label.lower()
    return PGI_COLORS[_PGI_ALIASES.get(key, key)]



STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "figure.figsize": (6.4, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
    "svg.hashsalt": "yolov9lite",
    "path.simplify": True,
    "axes.prop_cycle": mpl.cycler(color=list(ARCH_COLORS.values())),
}


def paper_style() -> None:
    """Apply the project's fixed matplotlib style (call once at the top of a notebook)."""
    mpl.rcParams.update(STYLE)


def versions() -> dict[str, str]:
    """Versions of the libraries that determine a figure's pixels."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "matplotlib": mpl.__version__,
            "yolov9lite": __version__}


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def simd_paths() -> dict:
    """The vector instruction sets the numerical libraries dispatch to on this machine:
    PyTorch's ATen kernels (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"`` = none; the environment
    variable ``ATEN_CPU_CAPABILITY`` lowers it) and numpy's optional kernels (the dispatched
    feature groups in use; ``NPY_DISABLE_CPU_FEATURES`` turns them off). Two machines that
    differ here add and multiply in different orders, so their last digits differ."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    numpy_in_use = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return {"torch": torch.backends.cpu.get_cpu_capability(), "numpy": numpy_in_use}


def no_simd_env() -> dict[str, str]:
    """Environment variables that make a new process compute like a CPU without AVX: PyTorch's
    plain C++ kernels, oneDNN at SSE4.1, MKL at SSE4.2, and numpy without the optional groups it
    uses here (naming others is an error). The variables are read at import, so they act on
    child processes. Used to rerun an experiment as another reader's processor would."""
    return {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            "NPY_DISABLE_CPU_FEATURES": " ".join(simd_paths()["numpy"])}


def machine_info() -> dict:
    """What ran the computation: CPU model, its vector paths, core and thread counts, library
    versions.

    Recorded in JSON sidecars and ledgers for the reader; never part of a verdict.
    """
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "simd": simd_paths(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(terse=True),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": versions()}


def _jsonable(value):
    """Parameters as plain JSON (tuples -> lists, paths and other objects -> str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def write_sidecar(path: Path, **info) -> Path:
    """``<name>.json`` next to a figure or table: sorted keys, so the bytes are stable too."""
    info["versions"] = versions()
    info["machine"] = {k: v for k, v in machine_info().items() if k != "versions"}
    path.write_text(json.dumps(_jsonable(info), indent=2, sort_keys=True) + "\n")
    return path


def save_figure(fig, name: str, fig_dir: str | Path, params: dict | None = None,
                seed: int | None = None, source: str | None = None,
                dpi: int = DPI) -> Path:
    """Write ``fig_dir/name.png`` (deterministic bytes) and ``fig_dir/name.json``; return the PNG.

    ``params`` are the notebook parameters that produced the figure (leave out output folders, which
    differ between machines), ``source`` the notebook's name. The figure is not closed, so a
    notebook can still display it.
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    png = fig_dir / f"{name}.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    data = buf.getvalue()
    if not png.exists() or png.read_bytes() != data:  # leave identical files untouched
        png.write_bytes(data)
    write_sidecar(fig_dir / f"{name}.json", figure=f"{name}.png", source=source,
                  params=params or {}, seed=seed)
    return png


def _fmt(value, floatfmt: str) -> str:
    return format(value, floatfmt) if isinstance(value, float) else str(value)


def save_table(rows: list[dict], name: str, out_dir: str | Path, columns: list[str] | None = None,
               floatfmt: str = ".3f", params: dict | None = None, seed: int | None = None,
               source: str | None = None) -> tuple[Path, Path]:
    """Write ``rows`` (a list of dicts) as ``name.md`` (a GitHub table) and ``name.csv``, plus a
    sidecar ``name.json``; return the two table paths. Floats use ``floatfmt`` in both files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(columns or (rows[0].keys() if rows else []))
    cells = [[_fmt(r.get(c, ""), floatfmt) for c in columns] for r in rows]
    md = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    md += ["| " + " | ".join(row) + " |" for row in cells]
    md_path, csv_path = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    md_path.write_text("\n".join(md) + "\n")
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
    write_sidecar(out_dir / f"{name}.json", table=[md_path.name, csv_path.name], source=source,
                  params=params or {}, seed=seed)
    return md_path, csv_path


def plot_history(history: list[dict], path: str | Path | None = None):
    """Loss, learning-rate and mAP curves of a training run (the records of
    :func:`yolov9lite.train`), one panel each; returns the matplotlib Figure (shown inline in a
    notebook) and writes it to ``path`` if given."""
    import seaborn as sns

    keys = list(dict.fromkeys(k for row in history for k in row))
    panels = [("train loss", [k for k in keys if k.startswith("train/")]),
              ("validation loss", [k for k in keys if k.startswith("val/")]),
              ("learning rate", [k for k in keys if k.startswith("lr/")]),
              ("mAP (EMA model)", ["metrics/AP50", "metrics/AP"])]
    panels = [p for p in panels if p[0] != "validation loss" or p[1]]  # only when recorded
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
        axes = fig.subplots(1, len(panels))
        for ax, (title, panel_keys) in zip(axes, panels):
            for key in panel_keys:
                pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
                if pts:
                    xs, ys = zip(*pts)
                    sns.lineplot(x=list(xs), y=list(ys), ax=ax, marker="o", markersize=3,
                                 label=key.split("/")[-1])
            ax.set(title=title, xlabel="epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
