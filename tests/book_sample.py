"""A small book for the tests: executed notebooks made with nbformat (nothing is executed), a
claims ledger with every verdict kind (one a ledger may add later), built with ``yolov9lite book``'s
functions, warnings as errors."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat

from yolov9lite.cli import book
from yolov9lite.study.claims import Claim, claims_table


def _claim(**fields) -> dict:
    return fields


CLAIMS = [  # of 01_alpha
    _claim(id="01.deep_loses", paper="a deep plain stack loses its input", where="Sec. 3.1, Fig. 2",
         metric="retained fraction at layer 200, PlainNet", estimate=0.05, ci=[0.04, 0.06],
         ci_method="bootstrap (percentile), 10,000 resamples", n=24, n_unit="seed x image pairs",
         rule="supports if the interval lies below 0.1", verdict="supports",
         scale="default (tiny test book)", kind="claim"),
    _claim(id="01.wide_keeps", paper="a wide stack keeps it", where="Sec. 3.1",
         metric="retained fraction, wide stack", estimate=0.2, ci=[0.1, 0.3],
         ci_method="t interval", n=5, n_unit="seeds", rule="supports if above 0.9",
         verdict="contradicts", scale="default (tiny test book)", kind="claim"),
    _claim(id="01.noise_small", paper="rounding noise is small", where="our control",
         metric="spread of reruns", estimate=0.01, ci=[-0.02, 0.04], ci_method="t interval",
         n=5, n_unit="reruns", rule="supports if within ±0.01", verdict="inconclusive",
         scale="default (tiny test book)", kind="control"),
    _claim(id="01.control_rank", paper="rounding noise is small", where="Eq. 3",  # same words
         metric="rank ratio", estimate=0.5, ci=[0.4, 0.6], ci_method="t interval", n=5,
         n_unit="seeds", rule="a control that must pass", verdict="control failed",
         scale="default (tiny test book)", kind="control"),
]


def png_bytes(width: int = 1600, height: int = 400) -> bytes:
    """A wide figure, as a notebook's inline backend would store it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    ax.plot([0, 1, 2], [2, 0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table(claims: list[dict]) -> str:
    """The ledger table as a notebook displays it (``Ledger.markdown()``); the verdict a ledger
    may add later is written by hand in the same layout."""
    known = [Claim.from_dict(c) for c in claims if c["verdict"] != "control failed"]
    text = claims_table(known)
    for c in claims:
        if c["verdict"] == "control failed":
            text += (f"\n| `{c['id']}` (control) | {c['paper']} ({c['where']}) | {c['metric']} | "
                     f"0.5 [0.4, 0.6] | {c['ci_method']} | {c['n']} {c['n_unit']} | "
                     f"**{c['verdict']}** |")
    return text


def executed_notebook(title: str, local_dir: Path, with_claims: bool):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.2"}
    nb.metadata["papermill"] = {
        "parameters": {"fig_dir": str(local_dir / "figures"), "width": 12},
        "start_time": "2026-01-02T03:04:05.000000", "end_time": "2026-01-02T03:05:05.000000",
        "duration": 60.0, "input_path": str(local_dir / "nb.ipynb"),
        "output_path": str(local_dir / "out.ipynb"), "exception": None}
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    params = code('fig_dir: str = "../runs/figures_ci"  # where figures go\nwidth: int = 32')
    params.metadata["tags"] = ["parameters"]
    injected = code(f'# Parameters\nfig_dir = "{local_dir / "figures"}"\nwidth = 12\n')
    injected.metadata["tags"] = ["injected-parameters"]
    plot = code("fig, ax = plt.subplots(figsize=(16, 4)); plt.show()")
    plot.outputs = [nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(png_bytes()).decode(),
                              "text/plain": "<Figure size 1600x400 with 1 Axes>"})]
    stream = code("print(out_path)")
    stream.outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text=f"wrote {local_dir / 'figures' / 'fig.png'}\n")]
    cells = [md(f"# {title}\n\nWith math: $\\mathcal{{I}}(X, X) \\geq \\mathcal{{I}}(X, f(X))$."),
             params, injected, plot, stream]
    if with_claims:
        table = code("display(Markdown(ledger.markdown()))")
        table.outputs = [nbformat.v4.new_output(
            "display_data", data={"text/markdown": _table(CLAIMS), "text/plain": "<Markdown>"})]
        sentence = code("for cid in ledger.claims: display(Markdown(ledger.sentence(cid)))")
        sentence.outputs = [nbformat.v4.new_output("display_data", data={
            "text/markdown": f"Paper ({c['where']}): *{c['paper']}* — {c['metric']}: **0.05** "
                             f"(95 % interval [0.04, 0.06]) → **{c['verdict']}** ({c['rule']}).",
            "text/plain": "<Markdown>"}) for c in (CLAIMS[0], CLAIMS[2], CLAIMS[3])]
        cells += [table, sentence]
    nb.cells = cells
    return nb


def make_sample(root: Path) -> tuple[Path, Path]:
    """``root/runs`` (executed notebooks) and ``root/figures`` (``claims/01_alpha.json``)."""
    runs, figures = root / "runs", root / "figures"
    runs.mkdir(parents=True)
    (figures / "claims").mkdir(parents=True)
    nbformat.write(executed_notebook("01 · Alpha: a test notebook", root, True),
                   runs / "01_alpha.ipynb")
    nbformat.write(executed_notebook("04 · Beta: no claims here", root, False),
                   runs / "04_beta.ipynb")
    ledger = {"notebook": "01_alpha", "claims": CLAIMS,
              "machine": {"cpu": "Test CPU", "cpu_count": 2, "torch_threads": 1,
                          "platform": "Linux-test", "cuda": None,
                          "versions": {"python": "3.11.2", "torch": "2.5.0"}}}
    (figures / "claims" / "01_alpha.json").write_text(json.dumps(ledger, indent=2))
    # a ledger whose notebook has no executed copy: on the Results page only, under its file name
    other = {"notebook": "05_a_notebook_with_a_long_file_name_and_no_page",
             "claims": [dict(CLAIMS[1], id="05.gamma_only_in_the_ledger")], "machine": {}}
    (figures / "claims" / f"{other['notebook']}.json").write_text(json.dumps(other, indent=2))
    return runs, figures


def build_sample(root: Path) -> tuple[int, Path]:
    """Assemble and build the sample book under ``root/book``; (sphinx exit code, html folder)."""
    runs, figures = make_sample(root)
    out = root / "book"
    book.assemble(runs, figures, out / "src", "default")
    rc = book.build(out / "src", out / "html", strict=True)
    return rc, out / "html"
