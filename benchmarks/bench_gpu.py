"""One round of GPU speed measurements = one table: training step and deployed inference, ours and
(when its folder is given) the official YOLOv9 code, in the same process on the same GPU.

Rows
----
Training step (forward, dual loss, backward, SGD step; random images, 8 boxes per image):

* ``official``       - the official model and ``ComputeLoss`` as the official ``train_dual.py``
  step runs them (fp16 autocast + scaler, NCHW, plain SGD);
* ``official cl``    - the same with channels-last and cuDNN autotuning;
* ``ours plain``     - our model and loss in that same configuration (fp16 + scaler, NCHW,
  multi-tensor SGD, no autotuning): the like-for-like row;
* ``ours fast``      - channels-last, cuDNN autotuning, bf16 autocast without a scaler (fp16 +
  scaler where the GPU lacks bf16), fused SGD;
* ``ours compile``   - ``ours fast`` + ``torch.compile`` of the model (compile time in its column);
* ``ours graph``     - ``ours fast`` through :class:`yolov9lite.training.graphstep.GraphStep`: targets padded
  to a fixed box budget, the non-finite guard on the device, forward + loss + backward replayed
  as one CUDA graph; it includes the guard, clipping at 10 and the EMA that the bare rows leave
  out (compare it with ``--full-step`` rows for the like-for-like cost of the graph).

Inference of the deployed (fused) gelan-s / gelan-c in fp16 at batch 1 and 32: eager and
CUDA-graph replay (:class:`yolov9lite.utils.accel.CudaGraphRunner`), ours and official. Section
``infer-compile`` (ours, CUDA only): ``torch.compile`` with max-autotune under our CUDA graph
(:func:`yolov9lite.utils.accel.compile_for_inference`), and the CUDA graph of the model followed by the
sync-free GPU postprocessing (:class:`yolov9lite.evaluation.postprocess.EndToEnd`: decode + batched NMS).

Measurement method (the same for both codes, so the ratios are like for like): the same
batch sizes, ``torch.rand`` images on the device, the same random boxes (``targets_for``), the same
warm-up / timed iteration counts, one ``cuda.synchronize`` before and after the timed loop
(training) or around every call (inference, median). ``ratio`` is img/s over the first official
row of the same model and batch. Peak memory is ``torch.cuda.max_memory_allocated`` during the
row. MFU (training rows) = img/s x 3 x forward GFLOPs of the training graph
(:func:`yolov9lite.profile`, aux branch included; used for the official rows too, same
architecture) / ``--peak-tflops`` (default 800, the project's H100 bf16 figure, as in
``benchmarks/train_step.py``).

On CPU, ``--smoke`` runs a seconds-long version (yolov9-s at batch 2, 64 px, 1 warm-up + 1 timed
step; gelan-s inference at batch 1 and 2): it checks that every row runs, not speed. CUDA-graph
rows are skipped on CPU with a note; peak memory and MFU are printed as "-".

Examples::

    python benchmarks/bench_gpu.py --smoke --device cpu
    python benchmarks/bench_gpu.py --official third_party/yolov9 --json runs/bench_gpu.json
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

from yolov9lite import build_model, deploy, profile
from yolov9lite.evaluation import latency
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.training.optim import build_optimizer
from yolov9lite.utils.accel import CudaGraphRunner, pick_amp

TRAIN_FULL = [("yolov9-s", 64), ("yolov9-c", 32)]
INFER_FULL = [("gelan-s", (1, 32)), ("gelan-c", (1, 32))]


# --------------------------------------------------------------------------- shared inputs
def targets_for(batch: int, boxes: int = 8, seed: int = 0) -> torch.Tensor:
    """The benchmark's boxes, the same draws for both codes: w, h in [0.05, 0.35), centres in [0.2, 0.8), a class
    in [0, 80); rows ``[image, class, cx, cy, w, h]``."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(batch):
        for _ in range(boxes):
            w, h = torch.rand(2, generator=g) * 0.3 + 0.05
            x, y = torch.rand(2, generator=g) * 0.6 + 0.2
            rows.append([i, int(torch.randint(0, 80, (1,), generator=g)), x, y, w, h])
    return torch.tensor(rows)


def random_images(batch: int, img: int, device, dtype=torch.float32,
                  channels_last: bool = False) -> torch.Tensor:
    """A batch of uniform noise images, NCHW or channels-last."""
    x = torch.rand(batch, 3, img, img, device=device, dtype=dtype)
    return x.to(memory_format=torch.channels_last) if channels_last else x


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    """Free what the previous row left and restart the peak counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# --------------------------------------------------------------------------- the official code
def load_official(folder: str, stubs: str | None):
    """``(Model, ComputeLoss, hyp)`` of the official code in ``folder`` (fetched for the
    measurement only, never committed). ``stubs`` (IPython, git, pkg_resources stand-ins) go on
    the path first so that it imports offline."""
    folder = str(Path(folder).resolve())
    for path in (folder, stubs):
        if path and Path(path).is_dir() and path not in sys.path:
            sys.path.insert(0, str(path))
    import yaml
    from models.yolo import Model  # the official package layout
    from utils.loss_tal_dual import ComputeLoss

    with open(Path(folder) / "data" / "hyps" / "hyp.scratch-high.yaml") as f:
        hyp = yaml.safe_load(f)
    return Model, ComputeLoss, hyp, Path(folder)


# --------------------------------------------------------------------------- training rows
def time_steps(step, device: torch.device, warm: int, steps: int) -> tuple[float, float]:
    """(seconds per timed step, seconds of the warm-up): the timing loop, synchronised once
    at the start and once at the end of the timed steps."""
    t_start = time.perf_counter()
    for _ in range(warm):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps, t0 - t_start


def official_train_row(off, name: str, batch: int, img: int, device, channels_last: bool,
                       warm: int, steps: int) -> dict:
    """``bench_official_model.py``'s step: fp16 autocast + scaler on GPU, float32 on CPU."""
    Model, ComputeLoss, hyp, folder = off
    torch.backends.cudnn.benchmark = channels_last  # as-shipped: off; the opt script: on
    torch.manual_seed(0)
    with contextlib.redirect_stdout(None):  # the official Model prints its layer table
        m = Model(str(folder / "models" / "detect" / f"{name}.yaml"), ch=3, nc=80).to(device)
    m.hyp, m.nc = hyp, 80
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    m.train()
    loss_fn = ComputeLoss(m)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    x = random_images(batch, img, device, channels_last=channels_last)
    tg = targets_for(batch).to(device)

    def step():
        with torch.autocast(device.type, enabled=use_amp):
            loss, _ = loss_fn(m(x), tg)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    dt, _ = time_steps(step, device, warm, steps)
    return {"s_per_step": dt, "notes": "fp16+scaler" if use_amp else "fp32"}


def ours_train_row(name: str, batch: int, img: int, device, variant: str, warm: int,
                   steps: int, full_step: bool) -> dict:
    """Our model and loss. ``plain``: the official configuration (fp16 + scaler on GPU, NCHW,
    multi-tensor SGD, no autotuning). ``fast``: channels-last, autotuning, bf16 (no scaler),
    fused SGD. ``compile``: fast + torch.compile. ``full_step``: the step of
    :func:`yolov9lite.training.engine.train_step` (non-finite guard, clipping at 10, EMA) instead of the
    bare step, which has none of them."""
    from yolov9lite.training.engine import State, train_step
    from yolov9lite.training.optim import ModelEMA
    from yolov9lite.utils.accel import prepare_model
    from yolov9lite.utils.runtime import DistInfo

    fast = variant != "plain"
    graph = variant == "graph"
    torch.backends.cudnn.benchmark = fast and device.type == "cuda"
    if device.type == "cuda":
        amp_dtype = pick_amp(device, "auto") if fast else torch.float16
    else:
        amp_dtype = None
    torch.manual_seed(0)
    model = build_model(name, 80).to(device).train()
    net = prepare_model(model, channels_last=fast, compile=variant == "compile")
    opt = build_optimizer(model, 0.01, 0.937, 5e-4, fused=fast)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = DetectionLoss(model)
    x = random_images(batch, img, device, channels_last=fast)
    tg = targets_for(batch)  # on the CPU, as the training loop passes them: padding costs no device sync
    s = State(model=model, net=net, optimizer=opt, scaler=scaler,
              ema=ModelEMA(model) if full_step or graph else None)
    sums = torch.zeros(3, device=device)
    if graph:
        from yolov9lite.training.engine import make_graph_step

        # budget = the benchmark's 8 boxes per image, so the loss does the work of the other rows
        graph_step = make_graph_step(s, loss_fn, amp_dtype, device, box_budget=8)

    def step():
        if graph:
            graph_step(s, x, tg, loss_fn, DistInfo(), amp_dtype, sums, step_due=True)
            return
        if full_step:
            train_step(s, x, tg, loss_fn, DistInfo(), amp_dtype, sums, step_due=True)
            return
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            loss, _ = loss_fn(net(x), tg)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    dt, warm_s = time_steps(step, device, warm, steps)
    row = {}
    if graph:
        graph_step.end_epoch()  # one read of the device guard (warns on a skipped batch)
    notes = [str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"]
    if scaler.is_enabled():
        notes[0] += "+scaler"
    if fast:
        notes.append("channels_last, fused SGD" + (", autotune" if device.type == "cuda" else ""))
    if variant == "compile":
        row["compile_s"] = net.compile_s
        notes.append(f"first forward {net.compile_s:.0f} s, warm-up {warm_s:.0f} s")
        torch._dynamo.reset()
    if graph:
        notes.append("graph step (guard, clip, EMA included)"
                     + (f"; capture + warm-up {warm_s:.0f} s" if device.type == "cuda" else
                        "; no CUDA graph on CPU"))
    return {**row, "s_per_step": dt, "notes": "; ".join(notes)}


# --------------------------------------------------------------------------- inference rows
def time_calls(fn, device, warm: int, n: int) -> float:
    """Median seconds per inference call, synchronised around every call (the same for both codes;
    the timing loop itself is :func:`yolov9lite.evaluation.latency.time_calls`)."""
    with torch.inference_mode():
        return statistics.median(latency.time_calls(fn, device, warm, n))


def infer_model(name: str, device, off=None):
    """A deployed model in the inference dtype: ours via :func:`yolov9lite.deploy`, the
    official one via its ``Model(...).fuse()``. fp16 on GPU, float32 on CPU."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if off is None:
        model = deploy(build_model(name, 80)).to(device)
    else:
        Model, _, _, folder = off
        with contextlib.redirect_stdout(None):
            model = Model(str(folder / "models" / "detect" / f"{name}.yaml"), ch=3, nc=80)
            model = model.to(device).eval().fuse()
    return model.to(dtype).eval(), dtype


def infer_rows(name: str, batches, img: int, device, off, warm: int, n_for, graph: bool,
               channels_last: bool) -> list[dict]:
    """Eager and (on CUDA) CUDA-graph rows of one deployed model for each batch size."""
    torch.backends.cudnn.benchmark = device.type == "cuda"
    who = "official" if off is not None else "ours"
    model, dtype = infer_model(name, device, off)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fmt = "cl" if channels_last else "nchw"
    rows = []
    for batch in batches:
        x = random_images(batch, img, device, dtype, channels_last)
        base = {"section": "infer", "model": name, "batch": batch}
        reset_memory(device)
        dt = time_calls(partial(model, x), device, warm, n_for(batch))
        rows.append({**base, "variant": f"{who} eager {fmt}", "s_per_step": dt,
                     "peak_gib": peak_gib(device), "notes": str(dtype).replace("torch.", "")})
        if not graph:
            continue
        if device.type != "cuda":
            rows.append({**base, "variant": f"{who} graph {fmt}",
                         "notes": "skipped: CUDA graphs need a GPU"})
            continue
        reset_memory(device)
        runner = CudaGraphRunner(model, x)
        dt = time_calls(partial(runner, x), device, warm, n_for(batch))
        rows.append({**base, "variant": f"{who} graph {fmt}", "s_per_step": dt,
                     "peak_gib": peak_gib(device), "notes": "CUDA graph replay"})
        del runner
    del model
    return rows


def deployed_cl(name: str, device):
    """Our deployed model, fp16 on CUDA, channels-last."""
    model, dtype = infer_model(name, device)
    return model.to(memory_format=torch.channels_last), dtype


def compiled_rows(name: str, batches, img: int, device, warm: int, n_for, mode: str) -> list[dict]:
    """Ours, channels-last fp16, CUDA only: torch.compile (``mode``) under our CUDA graph."""
    from yolov9lite.utils.accel import compile_for_inference

    torch.backends.cudnn.benchmark = True
    model, dtype = deployed_cl(name, device)
    rows = []
    for batch in batches:
        x = random_images(batch, img, device, dtype, channels_last=True)
        reset_memory(device)
        runner, compile_s = compile_for_inference(model, x, mode=mode)
        dt = time_calls(partial(runner, x), device, warm, n_for(batch))
        rows.append({"section": "infer", "model": name, "batch": batch,
                     "variant": "ours compiled graph cl", "s_per_step": dt,
                     "compile_s": compile_s, "peak_gib": peak_gib(device),
                     "notes": f"torch.compile {mode} + CUDA graph"})
        del runner
        torch._dynamo.reset()
    return rows


def nms_rows(name: str, batches, img: int, device, warm: int, n_for) -> list[dict]:
    """Ours, channels-last fp16, CUDA only: the CUDA graph of the model followed by the
    sync-free GPU postprocessing (decode + batched NMS), image in, detections out."""
    from yolov9lite.evaluation.postprocess import EndToEnd

    model, dtype = deployed_cl(name, device)
    rows = []
    for batch in batches:
        x = random_images(batch, img, device, dtype, channels_last=True)
        reset_memory(device)
        runner = CudaGraphRunner(EndToEnd(model), x)
        dt = time_calls(partial(runner, x), device, warm, n_for(batch))
        rows.append({"section": "infer", "model": name, "batch": batch,
                     "variant": "ours graph cl + nms", "s_per_step": dt,
                     "peak_gib": peak_gib(device),
                     "notes": "model + decode + batched NMS (conf 0.25, iou 0.45) in one graph"})
        del runner
    return rows


# --------------------------------------------------------------------------- the table
def add_derived(rows: list[dict], peak_tflops: float | None, gflops: dict) -> None:
    """img/s, ratio to the first official row of the same (section, model, batch), MFU."""
    for r in rows:
        if "s_per_step" in r:
            r["img_per_s"] = r["batch"] / r["s_per_step"]
            r["ms"] = 1e3 * r["s_per_step"]
    for r in rows:
        base = next((b for b in rows if b["section"] == r["section"] and b["model"] == r["model"]
                     and b["batch"] == r["batch"] and b["variant"].startswith("official")
                     and "img_per_s" in b), None)
        if base is not None and "img_per_s" in r:
            r["ratio"] = r["img_per_s"] / base["img_per_s"]
        if r["section"] == "train" and "img_per_s" in r and peak_tflops:
            r["mfu"] = r["img_per_s"] * 3 * gflops[r["model"]] * 1e9 / (peak_tflops * 1e12)


def format_table(rows: list[dict]) -> str:
    def f(v, spec, scale=1.0):
        return "-" if v is None else format(v * scale, spec)

    lines = ["| section | model | batch | variant | img/s | ms | ratio | peak GiB | MFU % | notes |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['section']} | {r['model']} | {r['batch']} | {r['variant']} | "
            f"{f(r.get('img_per_s'), '.1f')} | {f(r.get('ms'), '.2f')} | "
            f"{f(r.get('ratio'), '.2f')} | {f(r.get('peak_gib'), '.2f')} | "
            f"{f(r.get('mfu'), '.1f', 100)} | {r.get('notes', '')} |")
    return "\n".join(lines)


SAVE_TO: dict = {}  # {"path": ..., "rows": [...]}: --json is rewritten after every row


def progress(row: dict) -> None:
    """One line per finished row, so a long GPU round shows where it is; with ``--json`` the rows
    so far are saved too, so a round cut short by a time cap keeps what it measured."""
    if SAVE_TO:
        SAVE_TO["rows"].append(row)
        tmp = Path(SAVE_TO["path"] + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"rows": SAVE_TO["rows"], "partial": True}, default=str))
        os.replace(tmp, SAVE_TO["path"])
    if "s_per_step" in row:
        what = f"{1e3 * row['s_per_step']:.2f} ms, {row['batch'] / row['s_per_step']:.1f} img/s"
    else:
        what = row.get("notes", "")
    print(f"{row['section']} {row['model']} b{row['batch']} {row['variant']}: {what}", flush=True)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"{torch.get_num_threads()} torch threads")


def parse_models(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """``"gelan-s:1,32,gelan-c:1"`` -> ``[("gelan-s", (1, 32)), ("gelan-c", (1,))]``."""
    out = []
    for part in text.split(","):
        if ":" in part:
            name, first = part.split(":", 1)
            out.append((name, (int(first),)))
        elif out:
            out[-1] = (out[-1][0], (*out[-1][1], int(part)))
        else:
            raise SystemExit(f"bench_gpu.py: bad model list {text!r}: use model:batch,...")
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--official", default=None, help="folder of the official YOLOv9 code "
                    "(git-ignored, e.g. third_party/yolov9); its rows are skipped without it")
    ap.add_argument("--stubs", default=None, help="folder of offline stand-ins for the "
                    "official code's imports (IPython, git, pkg_resources), if it needs them")
    ap.add_argument("--device", default="auto", help="auto, cuda, cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1+1 steps: checks that "
                    "every row runs (CPU friendly), measures nothing")
    ap.add_argument("--sections", default="train,infer", help="train, infer, infer-compile")
    ap.add_argument("--infer-compile-mode", default="max-autotune-no-cudagraphs",
                    help="torch.compile mode of the infer-compile rows")
    ap.add_argument("--train-models", default=None, help="model:batch list, e.g. "
                    "yolov9-s:64,yolov9-c:32 (the default; smoke yolov9-s:2)")
    ap.add_argument("--infer-models", default=None, help="model:batches list, e.g. "
                    "gelan-s:1,32,gelan-c:1,32 (the default; smoke gelan-s:1,2)")
    ap.add_argument("--variants", default=None, help="training variants of ours: plain,fast,"
                    "compile (default all on GPU; plain,fast with --smoke)")
    ap.add_argument("--official-cl", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the official step with channels-last + autotuning")
    ap.add_argument("--full-step", action="store_true", help="ours: the train.py step "
                    "(guard, clipping, EMA), not the bare step")
    ap.add_argument("--img", type=int, default=None, help="image side (default 640; 64 smoke)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (20; smoke 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (5; smoke 1)")
    ap.add_argument("--peak-tflops", type=float, default=800.0, help="for the MFU (GPU only)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="also write the rows and settings here")
    return ap.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    smoke = args.smoke
    img = args.img or (64 if smoke else 640)
    steps = args.steps or (1 if smoke else 20)
    warm = args.warmup or (1 if smoke else 5)
    train_cfgs = [("yolov9-s", 2)] if smoke else TRAIN_FULL
    infer_cfgs = [("gelan-s", (1, 2))] if smoke else INFER_FULL
    if args.train_models:
        train_cfgs = [(m, b[0]) for m, b in parse_models(args.train_models)]
    if args.infer_models:
        infer_cfgs = parse_models(args.infer_models)
    variants = (args.variants or ("plain,fast" if smoke else "plain,fast,compile")).split(",")
    sections = args.sections.split(",")
    n_for = (lambda b: 2) if smoke else (lambda b: 200 if b == 1 else 50)
    infer_warm = 1 if smoke else 20
    off = load_official(args.official, args.stubs) if args.official else None
    if args.json:
        SAVE_TO.update(path=args.json, rows=[])
    if off is not None and os.environ.get("YOLOV5_CONFIG_DIR") is None:
        print("note: the official code may try to download Arial.ttf; set YOLOV5_CONFIG_DIR to a "
              "folder holding any TTF under that name")

    rows, gflops = [], {}

    def run(section, model, batch, variant, fn):
        """One row; a failure (OOM, a compile error) is a row with a note, not a lost round."""
        reset_memory(device)
        base = {"section": section, "model": model, "batch": batch, "variant": variant}
        try:
            row = {**base, **fn()}
            row["peak_gib"] = peak_gib(device)
        except Exception as err:  # noqa: BLE001 - report and go on with the next row
            traceback.print_exc()
            row = {**base, "notes": f"failed: {type(err).__name__}: {str(err)[:80]}"}
        rows.append(row)
        progress(row)

    if "train" in sections:
        for name, batch in train_cfgs:
            with torch.device("meta"):
                gflops[name] = profile(build_model(name, 80), img)["gflops"]
            if off is not None:
                run("train", name, batch, "official", partial(
                    official_train_row, off, name, batch, img, device, False, warm, steps))
                if args.official_cl:
                    run("train", name, batch, "official cl", partial(
                        official_train_row, off, name, batch, img, device, True, warm, steps))
            for v in variants:
                run("train", name, batch, f"ours {v}", partial(
                    ours_train_row, name, batch, img, device, v, warm, steps, args.full_step))
    if "infer" in sections:
        for name, batches in infer_cfgs:
            for who in ([off] if off is not None else []) + [None]:
                reset_memory(device)
                new = infer_rows(name, batches, img, device, who, infer_warm, n_for, graph=True,
                                 channels_last=False)
                if who is None and device.type == "cuda":  # ours also in channels-last
                    new += infer_rows(name, batches, img, device, None, infer_warm, n_for,
                                      graph=True, channels_last=True)
                    new += nms_rows(name, [b for b in batches if b == 1], img, device,
                                    infer_warm, n_for)
                rows.extend(new)
                for r in new:
                    progress(r)
    if "infer-compile" in sections:
        for name, batches in infer_cfgs:
            if device.type != "cuda":
                rows.extend({"section": "infer", "model": name, "batch": b,
                             "variant": "ours compiled graph cl",
                             "notes": "skipped: CUDA graphs need a GPU"} for b in batches)
                continue
            try:
                new = compiled_rows(name, batches, img, device, infer_warm, n_for,
                                    args.infer_compile_mode)
            except Exception as err:  # noqa: BLE001 - a failed compile is a row, not a lost round
                traceback.print_exc()
                new = [{"section": "infer", "model": name, "batch": batches[0],
                        "variant": "ours compiled graph cl",
                        "notes": f"failed: {type(err).__name__}: {str(err)[:80]}"}]
            rows.extend(new)
            for r in new:
                progress(r)
    add_derived(rows, args.peak_tflops if device.type == "cuda" else None, gflops)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"{'SMOKE (not a measurement) ' if smoke else ''}{stamp}; {hardware(device)}; "
              f"torch {torch.__version__}; img {img}, {warm} warm-up + {steps} timed training "
              f"steps; official: {args.official or 'absent'}")
    print("\n" + header + "\n" + format_table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"header": header, "argv": sys.argv[1:],
                                               "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
