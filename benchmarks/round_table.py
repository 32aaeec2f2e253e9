"""Merge the JSON files of one ``gpu_round.sh`` run into one Markdown table and write it into
``benchmarks/README.md`` between the ``gpu_round`` marker comments (or into any file).

Every row the round is meant to produce is listed in :data:`ROUND` (the same models and batches
``gpu_round.sh`` passes to the scripts; ``tests/test_gpu_round_smoke.py`` checks the two agree):
a row that did not come back (no ``--official`` folder, a stage cut by its time cap, a GPU-only
row on a CPU) is still printed, with the reason in ``notes``, so a table always shows what is
missing. ``ratio`` is img/s over the first ``official`` row of the same section, model and batch
(the official code as shipped) and is recomputed here across the files of the round.

    python benchmarks/round_table.py --dir runs/gpu_round/DATE --readme benchmarks/README.md
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

BEGIN, END = "<!-- gpu_round:begin -->", "<!-- gpu_round:end -->"

TRAIN_VARIANTS = ("official", "official cl", "ours plain", "ours fast", "ours graph",
                  "ours compile")
INFER_VARIANTS = ("official eager nchw", "official graph nchw", "ours eager nchw",
                  "ours graph nchw", "ours eager cl", "ours graph cl", "ours compiled graph cl",
                  "ours graph cl + nms")
PRECISION_VARIANTS = ("bf16 vs fp32", "fp16+scaler vs fp32")
E2E_VARIANTS = ("official train_dual.py", "ours", "ours + image cache")

# (section, model, batch, variants) of every row of a round; gpu_round.sh passes these sizes
ROUND = {
    "full": [
        *[("train", m, b, TRAIN_VARIANTS) for m, b in (("yolov9-s", 64), ("yolov9-c", 32))],
        *[("infer", m, b, INFER_VARIANTS if b == 1 else INFER_VARIANTS[:6])
          for m in ("gelan-s", "gelan-c") for b in (1, 32)],
        ("precision", "yolov9-s", 64, PRECISION_VARIANTS),
        ("e2e", "yolov9-s", 64, E2E_VARIANTS),
    ],
    "smoke": [
        ("train", "yolov9-nano", 2, TRAIN_VARIANTS),
        *[("infer", "gelan-nano", b, INFER_VARIANTS if b == 1 else INFER_VARIANTS[:6])
          for b in (1, 2)],
        ("precision", "yolov9-nano", 2, PRECISION_VARIANTS),
        ("e2e", "gelan-nano", 8, E2E_VARIANTS),
    ],
}


def expected_rows(plan: str) -> list[tuple[str, str, int, str]]:
    return [(s, m, b, v) for s, m, b, variants in ROUND[plan] for v in variants]


def load_rows(folder: Path) -> tuple[list[dict], dict]:
    """All rows of the round's JSON files (bench_gpu, precision, train_e2e), and the stage
    outcomes ``gpu_round.sh`` recorded in ``stages.jsonl``."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # a stage killed while writing: its rows are reported as missing
        rows.extend(data.get("rows", []))
    stages = {}
    status = folder / "stages.jsonl"
    if status.exists():
        for line in status.read_text().splitlines():
            if line.strip():
                s = json.loads(line)
                stages[s["stage"]] = s
    return rows, stages


def missing_reason(section: str, variant: str, stages: dict, official: bool, cuda: bool) -> str:
    stage = stages.get("compile" if variant == "ours compile" else section)
    if variant.startswith("official") and not official:
        return "not run: no --official folder"
    if stage and stage.get("skipped"):
        return f"not run: {stage['skipped']}"
    if stage and stage.get("rc") in (124, 137):
        return f"not run: stage {stage['stage']} hit its {stage.get('cap_s')} s cap"
    if stage and stage.get("rc") not in (0, None):
        return f"not run: stage {stage['stage']} failed (exit {stage['rc']}, see its log)"
    if not cuda and section == "infer" and ("graph" in variant or " cl" in variant):
        return "not run: CUDA graphs and the channels-last rows need a GPU"
    return "not run"


def merge(rows: list[dict], plan: str, stages: dict, official: bool, cuda: bool) -> list[dict]:
    """One row per expected (section, model, batch, variant), in the plan's order; ratios
    recomputed over all rows; unexpected extra rows are appended."""
    by_key = {}
    for r in rows:
        by_key.setdefault((r["section"], r["model"], int(r["batch"]), r["variant"]), r)
    out = []
    for key in expected_rows(plan):
        row = by_key.pop(key, None)
        if row is None:
            s, m, b, v = key
            row = {"section": s, "model": m, "batch": b, "variant": v,
                   "notes": missing_reason(s, v, stages, official, cuda)}
        out.append(dict(row))
    out += [dict(r) for r in by_key.values()]
    for r in out:
        if "img_per_s" not in r and r.get("s_per_step"):
            r["img_per_s"] = r["batch"] / r["s_per_step"]
        if "ms" not in r and r.get("s_per_step"):
            r["ms"] = 1e3 * r["s_per_step"]
    for r in out:
        base = next((b for b in out if (b["section"], b["model"], b["batch"])
                     == (r["section"], r["model"], r["batch"])
                     and b["variant"].startswith("official") and b.get("img_per_s")), None)
        if base is not None and r.get("img_per_s"):
            r["ratio"] = r["img_per_s"] / base["img_per_s"]
    return out


def format_table(rows: list[dict]) -> str:
    def f(v, spec, scale=1.0):
        return "-" if v is None else format(v * scale, spec)

    lines = [("| section | model | batch | variant | img/s | ms | ratio | peak GiB | MFU % | "
              "compile s | notes |"), "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['section']} | {r['model']} | {r['batch']} | {r['variant']} | "
            f"{f(r.get('img_per_s'), '.1f')} | {f(r.get('ms'), '.2f')} | "
            f"{f(r.get('ratio'), '.2f')} | {f(r.get('peak_gib'), '.2f')} | "
            f"{f(r.get('mfu'), '.1f', 100)} | {f(r.get('compile_s'), '.0f')} | "
            f"{r.get('notes', '')} |")
    return "\n".join(lines)


def versions() -> str:
    """GPU (or CPU), torch, torchvision, CUDA, cuDNN, Python."""
    import torch
    import torchvision

    if torch.cuda.is_available():
        hw = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cuDNN " \
             f"{torch.backends.cudnn.version()}"
    else:
        hw = f"CPU {platform.machine()} (no GPU)"
    return (f"{hw}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"Python {platform.python_version()}")


def official_commit(folder: str | None) -> str:
    if not folder:
        return "absent"
    try:
        sha = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown commit"
    return f"WongKinYiu/yolov9 at {sha}"


def render(rows: list[dict], plan: str, command: str, official: str | None,
           elapsed_s: float | None) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    smoke = "SMOKE (CPU, tiny sizes: checks that every row runs, measures nothing). " \
        if plan == "smoke" else ""
    took = f", {elapsed_s:.0f} s" if elapsed_s is not None else ""
    return (f"{smoke}{stamp}; {versions()}; official code: {official_commit(official)}.\n"
            f"Command: `{command}`{took}.\n\n{format_table(rows)}\n")


def write_between_markers(path: Path, block: str) -> None:
    """Replace what lies between the markers (appending the markers at the end the first time);
    the file is replaced atomically."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    else:
        head, tail = text.rstrip("\n") + "\n\n" if text else "", "\n"
    new = f"{head}{BEGIN}\n{block}{END}{tail}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="the round's folder of JSON files")
    ap.add_argument("--plan", choices=sorted(ROUND), default="full")
    ap.add_argument("--write", required=True, help="file to write the table into, between "
                    "the gpu_round markers (benchmarks/README.md for a real round)")
    ap.add_argument("--official", default=None)
    ap.add_argument("--command", default="bash benchmarks/gpu_round.sh")
    ap.add_argument("--elapsed", type=float, default=None)
    args = ap.parse_args(argv)
    import torch

    rows, stages = load_rows(Path(args.dir))
    merged = merge(rows, args.plan, stages, official=bool(args.official),
                   cuda=torch.cuda.is_available())
    block = render(merged, args.plan, args.command, args.official, args.elapsed)
    write_between_markers(Path(args.write), block)
    print(block)
    return block


if __name__ == "__main__":
    main()
