"""``yolov9lite book``: the executed notebooks, their figures and the claims ledger as a site.

Students read before they run. ``yolov9lite figures`` leaves executed notebooks (with their figures,
tables and ledger tables as outputs) in ``runs/figures/`` (``runs/<scale>/`` at another scale); this
command turns them into a book with Sphinx, myst-nb (``nb_execution_mode = "off"``: nothing is
executed again) and sphinx-book-theme, configured in the repository's ``book/`` folder:

- parts in the notebooks' order (information bottleneck, reversible functions, GELAN, PGI and
  ablations, training and evaluation), each page opened by how it ran (scale, parameters, machine,
  date; papermill's injected cell and local absolute paths are removed);
- a **Results** page generated from ``<figures>/claims/*.json``: verdict first, one table per
  notebook, one anchored row per claim; every verdict in the book is a badge linking to its row
  (``book/_ext/verdict_badges.py``);
- a **Reproduce** page: scales, commands, the parameter files of ``notebooks/params/``, comparing
  ledgers (``yolov9lite claims compare``).

    yolov9lite book                          # runs/figures/ + figures/  ->  runs/book/html/
    yolov9lite book --scale gpu-hour         # runs/gpu-hour/{,figures/} -> runs/gpu-hour/book/html/
    yolov9lite book --runs DIR --figures DIR --out DIR --strict
"""
from __future__ import annotations

import json
import re
import shutil
import site
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ..report.viz import repo_root
from ..study.claims import fmt as claims_fmt
from .args import make_parser
from .figures import DEFAULT_SCALE, scale_folders

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
# parts of the book: (caption, notebook number prefixes), in reading order
PARTS = (
    ("The information bottleneck", ("01",)),
    ("Reversible functions", ("02",)),
    ("GELAN", ("03",)),
    ("PGI and ablations", ("04", "05", "08")),  # 08: PGI in a deep, thin network
    ("Training and evaluation", ("06", "07")),
)
OTHER_PART = "More notebooks"
NB_SUBDIR = "notebooks"  # pages of the notebooks inside the book
HIDE_TAG = "remove-cell"  # myst-nb drops the cell from the page
FULL_WIDTH_TAG = "full-width"  # sphinx-book-theme: the cell may use the right margin
PATH_RE = re.compile(r"(?<![\w.:/~-])/(?:home|Users|tmp|work|root|private|var|opt|mnt|srv|usr|"
                     r"scratch|data)/[^\s'\"<>()\[\]{}`,;]*")
# the staging copy of figures/ a notebook wrote into (yolov9lite.cli.figures.stage_folder)
STAGE_RE = re.compile(r"(?:[\w.~<>-]*/)*\.stage-[\w.-]+")


# --- small helpers --------------------------------------------------------------------------------

def md_escape(text: str) -> str:
    """Plain text safe inside MyST Markdown (no emphasis, math, links, table cells, dashes)."""
    return re.sub(r"([\\`*_{}\[\]<>$|#-])", r"\\\1", str(text))


def fmt(x) -> str:
    return claims_fmt(float(x))


class Scrubber:
    """Removes local absolute paths from text: the repository becomes relative, the Python
    environment ``<env>``, the home folder ``~``, anything else under a machine's usual roots its
    last component."""

    def __init__(self, *roots: tuple[Path, str], figures: str = "figures"):
        self.figures = figures
        self.pairs = []
        for root, repl in roots:
            root = str(root).rstrip("/")
            if root and root != "/":
                self.pairs.append((root + "/", repl + "/" if repl else ""))
                self.pairs.append((root, repl or "."))
        self.pairs.sort(key=lambda p: -len(p[0]))  # longest (most specific) first

    def __call__(self, text: str) -> str:
        text = STAGE_RE.sub(self.figures, text)
        for old, new in self.pairs:
            text = text.replace(old, new)
        return PATH_RE.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def default_scrubber(runs: Path, figures: Path) -> Scrubber:
    """Paths of the run shown as the repository names them (``figures``, ``runs/figures``)."""
    def shown(p: Path, fallback: str) -> str:
        p = p.resolve()
        return str(p.relative_to(repo_root())) if p.is_relative_to(repo_root()) else fallback

    fig_name = shown(figures, "figures")
    roots = [(runs.resolve(), shown(runs, "runs")), (figures.resolve(), fig_name)]
    roots += [(repo_root(), ""), (Path(sys.prefix), "<env>"), (Path(sys.base_prefix), "<python>"),
              (Path(tempfile.gettempdir()), "<tmp>"), (Path.home(), "~")]
    roots += [(Path(p), "<site-packages>") for p in site.getsitepackages()]
    return Scrubber(*roots, figures=fig_name)


def notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def load_ledgers(claims_dir: Path) -> dict[str, dict]:
    """``{notebook stem: ledger JSON}``; the JSON is read as it is (any verdict it names)."""
    out = {}
    for path in sorted(Path(claims_dir).glob("*.json")):
        data = json.loads(path.read_text())
        out[data.get("notebook", path.stem)] = data
    return out


def machine_line(machine: dict | None) -> str:
    if not machine:
        return "not recorded"
    parts = [machine.get("cpu") or "unknown CPU"]
    if machine.get("cpu_count"):
        parts.append(f"{machine['cpu_count']} logical cores")
    if machine.get("torch_threads"):
        parts.append(f"{machine['torch_threads']} torch threads")
    if machine.get("cuda"):
        parts.append(f"GPU {machine['cuda']}")
    if machine.get("platform"):
        parts.append(machine["platform"])
    versions = machine.get("versions") or {}
    parts += [f"{k} {v}" for k, v in sorted(versions.items()) if k in ("python", "torch")]
    return ", ".join(str(p) for p in parts)


def _when(meta: dict) -> str:
    start, dur = meta.get("start_time"), meta.get("duration")
    if not start:
        return "not recorded"
    try:
        stamp = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        text = stamp.strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        text = str(start)
    return text + (f", {float(dur):.0f} s" if dur is not None else "")


def _value(v) -> str:
    return repr(v) if not isinstance(v, str) else json.dumps(v)


# --- one notebook page ----------------------------------------------------------------------------

def run_info_markdown(nb, ledger: dict | None, scale: str, scrub: Scrubber) -> str:
    """The box that opens a notebook page: scale, parameters, machine, date."""
    meta = nb.metadata.get("papermill", {}) or {}
    params = {k: v for k, v in (meta.get("parameters") or {}).items() if k != "fig_dir"}
    claim_scale = next((c.get("scale") for c in (ledger or {}).get("claims", []) if c.get("scale")),
                       None)
    scale_text = md_escape(scale) + (f" — {md_escape(claim_scale)}" if claim_scale else "")
    if params:
        shown = ", ".join(f"`{k} = {scrub(_value(v))}`" for k, v in sorted(params.items()))
        params_text = f"{shown} (set for this run; the rest as in the parameters cell)"
    else:
        params_text = "the defaults of the parameters cell (below)"
    python = (nb.metadata.get("language_info") or {}).get("version")
    machine = machine_line((ledger or {}).get("machine"))
    if machine == "not recorded" and python:
        machine = f"Python {python} (no ledger: machine not recorded)"
    return "\n".join([
        ":::{admonition} How this page ran",
        ":class: run-info",
        "",
        f"**Scale:** {scale_text}  ",
        f"**Parameters:** {params_text}  ",
        f"**Ran:** {md_escape(_when(meta))} (papermill, executed by `yolov9lite figures`)  ",
        f"**Machine:** {md_escape(scrub(machine))}",
        ":::",
    ])


def _scrub_output(out: dict, scrub: Scrubber) -> None:
    if "text" in out:
        out["text"] = scrub(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
    if "traceback" in out:
        out["traceback"] = [scrub(t) for t in out["traceback"]]
    for mime, data in (out.get("data") or {}).items():
        if mime.startswith("text/") or mime in ("application/json",):
            if isinstance(data, list):
                data = "".join(data)
            if isinstance(data, str):
                out["data"][mime] = scrub(data)


def prepare_notebook(nb, ledger: dict | None, scale: str, scrub: Scrubber):
    """A copy of an executed notebook ready for its page (outputs kept, nothing executed)."""
    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    info = nbformat.v4.new_markdown_cell(run_info_markdown(nb, ledger, scale, scrub))
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:
            tags.append(HIDE_TAG)  # its values are stated in the run-info box
        elif "parameters" in tags:
            tags.append("hide-input")  # defaults and their comments, one click away
        cell.source = scrub(cell.source)
        for out in cell.get("outputs", []):
            _scrub_output(out, scrub)
            data = out.get("data") or {}
            wide = any(m.startswith("image/") for m in data) or "\n|---" in str(
                data.get("text/markdown", "")) or "<table" in str(data.get("text/html", ""))
            if wide and FULL_WIDTH_TAG not in tags:  # figures and tables (ledgers) use the margin
                tags.append(FULL_WIDTH_TAG)
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first_md + 1, info)
    pm = nb.metadata.get("papermill")
    if pm:  # absolute paths of this machine: not part of the book
        for key in ("input_path", "output_path", "environment_variables"):
            pm.pop(key, None)
        if "fig_dir" in (pm.get("parameters") or {}):
            pm["parameters"]["fig_dir"] = scrub(str(pm["parameters"]["fig_dir"]))
    return nb


# --- generated pages ------------------------------------------------------------------------------

def claim_anchor(claim_id: str) -> str:
    return "claim-" + re.sub(r"[^a-z0-9]+", "-", claim_id.lower()).strip("-")


def results_markdown(ledgers: dict[str, dict], titles: dict[str, str], pages: set[str],
                     scale: str) -> str:
    claims = [c for led in ledgers.values() for c in led.get("claims", [])]
    def counts(kind: str) -> str:
        of_kind = [c["verdict"] for c in claims if c.get("kind", "claim") == kind]
        return ", ".join(f"{of_kind.count(v)} {v}" for v in dict.fromkeys(of_kind)) or "none"

    lines = ["---", "html_theme.sidebar_secondary.remove: true", "---", "",  # room for the tables
             "# Results", "",
             (f"Every claim the notebooks tested at the **{md_escape(scale)}** scale, from the "
             "claims ledgers (`claims/NN_name.json`). The **verdict comes first**: it is computed "
             "by a rule in `yolov9lite/study/claims.py` from the estimate and its 95 % interval, never typed. "
             "Controls check a measuring method, not the paper. Every verdict badge in this book "
             "links to its row here."), ""]
    if claims:
        lines += [f"Paper claims: {counts('claim')}. Controls: {counts('control')}.", ""]
    else:
        lines += ["No ledger found: run `make figures` first.", ""]
    for stem, led in ledgers.items():
        title = titles.get(stem) or stem.replace("_", " ")  # no page: "05 ablations"
        lines += [f"## {md_escape(title)}", ""]
        where = [f"Notebook: {{doc}}`{NB_SUBDIR}/{stem}`" if stem in pages else
                 f"Notebook `{stem}` (no executed copy in this build)",
                 f"machine: {md_escape(machine_line(led.get('machine')))}"]
        lines += ["; ".join(where) + ".", ""]
        lines += ["::::{container} full-width ledger", "```{list-table}", ":header-rows: 1",
                  ":class: ledger-table",
                  ":widths: 9 17 22 18 12 7 20", "",
                  "* - verdict", "  - claim", "  - the paper says", "  - measured",
                  "  - estimate [95 % interval]", "  - n", "  - rule; interval method"]
        for c in led.get("claims", []):
            tag = " (control)" if c.get("kind") == "control" else ""
            lo, hi = c["ci"]
            lines += [f"* - **{c['verdict']}**",
                      f"  - `{c['id']}`{tag}",
                      f"  - {md_escape(c['paper'])} ({md_escape(c['where'])})",
                      f"  - {md_escape(c['metric'])}",
                      f"  - {fmt(c['estimate'])} [{fmt(lo)}, {fmt(hi)}]",
                      f"  - {c['n']} {md_escape(c['n_unit'])}",
                      f"  - {md_escape(c['rule'])}; {md_escape(c['ci_method'])}"]
        lines += ["```", "::::", ""]
    return "\n".join(lines)


def _yaml_header(text: str) -> str:
    head = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("# ").rstrip())
    return " ".join(h for h in head if h and not h.startswith(("papermill", "-f ", "yolov9lite")))


def reproduce_markdown(nb_dir: Path, scale: str) -> str:
    params = sorted((nb_dir / "params").glob("*.*.yaml"))
    scales = sorted({p.name.split(".")[-2] for p in params})
    lines = [
        "# Reproduce", "",
        (f"This book shows the **{md_escape(scale)}** scale. Every page was produced by "
        "running the notebooks with papermill; nothing here was executed by the book."), "",
        "## From a fresh clone", "",
        "```bash",
        "make figures     # default (laptop) scale: figures/, runs/figures/",
        "make book        # this site: runs/book/html/",
        "make test        # the test suite (what CI runs)",
        "```", "",
        "## Scales", "",
        "The default scale runs each notebook on a laptop CPU in minutes. Larger scales live in "
        "parameter files `notebooks/params/NN_name.<scale>.yaml` (known here: "
        + ", ".join(f"`{s}`" for s in scales) + "). Each scale writes its own folders, so runs "
        "never mix: `runs/<scale>/NN_name.ipynb` and `runs/<scale>/figures/` (the committed "
        "`figures/` holds the default scale only).", "",
        "```bash",
        "yolov9lite figures --scale gpu-hour            # runs/gpu-hour/",
        "yolov9lite figures --only 05 --scale gpu-hour  # one notebook",
        "yolov9lite figures --only 05 -p n_seeds=8      # one parameter changed",
        "make book SCALE=gpu-hour                       # runs/gpu-hour/book/html/",
        "```", "",
        "The same with papermill alone (working directory: the notebooks' folder):", "",
        "```bash",
        "papermill notebooks/05_ablations.ipynb runs/gpu-hour/05_ablations.ipynb \\",
        "    -f notebooks/params/05_ablations.gpu-hour.yaml -p fig_dir ../runs/gpu-hour/figures \\",
        "    -k python3 --cwd notebooks",
        "```", "",
        "## Comparing ledgers", "",
        ("Bytes may differ between machines and scales; a verdict that changes is news. "
        "`yolov9lite claims compare` prints two ledgers side by side (estimate, interval, "
        "verdict), from folders or files:"), "",
        "```bash",
        "yolov9lite claims compare figures runs/gpu-hour/figures",
        "yolov9lite claims compare figures/claims/05_ablations.json \\",
        "    runs/gpu-hour/figures/claims/05_ablations.json",
        "```", "",
        "## Parameter files", "",
    ]
    for scale_name in scales:
        lines += [f"### Scale `{scale_name}`", ""]
        for path in (p for p in params if p.name.split(".")[-2] == scale_name):
            text = path.read_text()
            lines += [f"**`notebooks/params/{path.name}`**: {md_escape(_yaml_header(text))}", "",
                      "```yaml", text.rstrip(), "```", ""]
    return "\n".join(lines)


def index_markdown(entries: list[tuple[str, str]], scale: str) -> str:
    """``entries``: (notebook stem, title) in order."""
    lines = [
        "# yolov9lite: YOLOv9, verified", "",
        ("The notebooks of yolov9lite — a compact PyTorch re-implementation of YOLOv9 (Wang, Yeh, "
        "Liao, [*Learning What You Want to Learn Using Programmable Gradient Information*]"
        "(https://arxiv.org/abs/2402.13616), 2024) — as executed, with every figure and table they "
        f"made, at the **{md_escape(scale)}** scale. Each claim of the paper that a notebook tests "
        "carries a verdict badge; the {doc}`results` page lists them all, the {doc}`reproduce` "
        "page says how to rerun any of it."), "",
    ]
    used: set[str] = set()
    for caption, prefixes in PARTS:
        stems = [s for s, _ in entries if s[:2] in prefixes]
        used.update(stems)
        if stems:
            lines += ["```{toctree}", f":caption: {caption}", ":maxdepth: 1", "",
                      *[f"{NB_SUBDIR}/{s}" for s in stems], "```", ""]
    rest = [s for s, _ in entries if s not in used]
    if rest:
        lines += ["```{toctree}", f":caption: {OTHER_PART}", ":maxdepth: 1", "",
                  *[f"{NB_SUBDIR}/{s}" for s in rest], "```", ""]
    lines += ["```{toctree}", ":caption: Results", ":maxdepth: 1", "", "results", "reproduce",
              "```", ""]
    return "\n".join(lines)


# --- assemble and build ---------------------------------------------------------------------------

def assemble(runs: Path, figures: Path, src: Path, scale: str, nb_dir: Path | None = None) -> dict:
    """Write the book's source folder ``src`` (recreated) from the executed notebooks in ``runs``
    and the ledgers in ``figures/claims``; return what went in."""
    import nbformat

    nb_dir = nb_dir or repo_root() / "notebooks"
    if src.exists():
        shutil.rmtree(src)
    (src / NB_SUBDIR).mkdir(parents=True)
    scrub = default_scrubber(runs, figures)
    ledgers = load_ledgers(figures / "claims")
    entries, titles = [], {}
    for path in sorted(runs.glob(NOTEBOOK_GLOB)):
        nb = nbformat.read(path, as_version=4)
        page = prepare_notebook(nb, ledgers.get(path.stem), scale, scrub)
        nbformat.write(page, src / NB_SUBDIR / path.name)
        titles[path.stem] = notebook_title(nb)
        entries.append((path.stem, titles[path.stem]))
    pages = {s for s, _ in entries}
    (src / "index.md").write_text(index_markdown(entries, scale))
    (src / "results.md").write_text(results_markdown(ledgers, titles, pages, scale))
    (src / "reproduce.md").write_text(reproduce_markdown(nb_dir, scale))
    claims = [{"id": c["id"], "verdict": c["verdict"], "paper": c["paper"],
               "metric": c.get("metric", ""), "notebook": stem}
              for stem, led in ledgers.items() for c in led.get("claims", [])]
    (src / "_book.json").write_text(json.dumps({"scale": scale, "claims": claims}, indent=1))
    return {"notebooks": [s for s, _ in entries], "claims": len(claims)}


def build(src: Path, html: Path, strict: bool = False, conf_dir: Path | None = None) -> int:
    """Sphinx (in this process): ``src`` -> ``html``. ``strict``: warnings are errors."""
    from sphinx.cmd.build import build_main

    conf_dir = conf_dir or repo_root() / "book"
    if not (conf_dir / "conf.py").exists():
        raise FileNotFoundError(f"{conf_dir / 'conf.py'}: the book's configuration is missing")
    doctrees = html.parent / ".doctrees"
    argv = ["-b", "html", "-c", str(conf_dir), "-d", str(doctrees), "-q", "-E", str(src), str(html)]
    if strict:
        argv[:0] = ["-W", "--keep-going"]
    return build_main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("yolov9lite book", __doc__.split("\n")[0])
    parser.add_argument("--scale", default=DEFAULT_SCALE,
                        help="which run of `yolov9lite figures` to show (its folders)")
    parser.add_argument("--runs", default=None, help="executed notebooks (default: the scale's "
                        "runs folder, runs/figures/ for the default scale)")
    parser.add_argument("--figures", default=None, help="figures folder holding claims/ "
                        "(default: the scale's, figures/ for the default scale)")
    parser.add_argument("--out", default=None, help="book folder: src/ and html/ go there "
                        "(default: runs/book, or runs/<scale>/book)")
    parser.add_argument("--strict", action="store_true", help="Sphinx warnings are errors")
    args = parser.parse_args(argv)
    root = repo_root()
    fig_default, runs_default = scale_folders(args.scale)
    runs = root / (args.runs or runs_default)
    figures = root / (args.figures or fig_default)
    out = root / (args.out or ("runs/book" if args.scale == DEFAULT_SCALE
                               else f"runs/{args.scale}/book"))
    if not list(runs.glob(NOTEBOOK_GLOB)):
        print(f"yolov9lite book: no executed notebook in {runs}; run `yolov9lite figures"
              f"{'' if args.scale == DEFAULT_SCALE else ' --scale ' + args.scale}` first "
              "(or give --runs)", file=sys.stderr)
        return 2
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as err:
        print(f"yolov9lite book: {err.name} is missing; pip install -e '.[book]'", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    info = assemble(runs, figures, out / "src", args.scale)
    rc = build(out / "src", out / "html", strict=args.strict)
    size = sum(p.stat().st_size for p in (out / "html").rglob("*") if p.is_file())
    print(f"yolov9lite book: {len(info['notebooks'])} notebooks, {info['claims']} claims -> "
          f"{out / 'html' / 'index.html'} ({size / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.1f} s){'' if rc == 0 else f'; sphinx exit code {rc}'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
