"""End-to-end training throughput: our training loop (loader, augmentation, step) on N distinct
images, and with ``--official DIR`` the official ``train_dual.py`` on the very same files.

What is measured: images per second of the *last* training epoch (default 2 epochs: the first
pays worker start-up, cuDNN autotuning and any compilation), data loading and augmentation
included, validation excluded. Ours: the epoch record's ``images_per_s`` of
:func:`yolov9lite.train`. Official: a callback on ``on_train_batch_end`` (its loop reads the
losses for its progress bar every batch, so every timestamp is after a device sync) gives the time
from the end of the previous epoch's last batch to the end of this epoch's last batch.

The images: ``--images DIR`` (a YOLO layout, ``DIR/images/train/*.jpg`` with
``DIR/labels/train/*.txt``; ``DIR/images/val`` optional) or, by default, ``--n`` synthetic JPEGs
written here (distinct noise backgrounds with 1-8 filled rectangles, 80 classes, written once
and reused), so both codes read identical bytes. The official run writes only under
``--out``; its checkout is never modified.

Examples::

    python benchmarks/train_e2e.py --smoke                                  # CPU, seconds
    python benchmarks/train_e2e.py --n 2048 --model yolov9-s --batch 64 --workers 16 \\
        --official third_party/yolov9 --json runs/gpu_round/e2e.json
    python benchmarks/train_e2e.py ... --set graph_step=true --set compile=true   # our options
    python benchmarks/train_e2e.py ... --cached         # and a row with the image cache

The official code runs in a child process (``--official-child``, internal) with the stand-ins
it needs offline (``--write-support DIR`` writes them: a font and stub modules; gpu_round.sh
uses it for bench_gpu.py too); its output is kept in ``OUT/official.log``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

NC = 80  # the official model yamls are built for COCO's 80 classes


# --------------------------------------------------------------------------- the images
def write_one(job: tuple[str, str, int, int, int]) -> None:
    """One distinct JPEG and its YOLO label file (drawn from ``(seed, index)`` only)."""
    import cv2
    import numpy as np

    image_dir, label_dir, index, img, seed = job
    rng = np.random.default_rng([seed, index])
    h = int(img * rng.uniform(0.6, 1.0))
    image = rng.integers(0, 256, (h, img, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 3)  # noise compresses badly; blur = COCO-like sizes
    rows = []
    for _ in range(int(rng.integers(1, 9))):
        w, bh = rng.uniform(0.05, 0.5) * img, rng.uniform(0.05, 0.5) * h
        x0, y0 = rng.uniform(0, img - w), rng.uniform(0, h - bh)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y0 + bh)), colour, -1)
        rows.append(f"{int(rng.integers(0, NC))} {(x0 + w / 2) / img:.6f} {(y0 + bh / 2) / h:.6f} "
                    f"{w / img:.6f} {bh / h:.6f}")
    name = f"{index:07d}"
    cv2.imwrite(str(Path(image_dir) / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    (Path(label_dir) / f"{name}.txt").write_text("\n".join(rows) + "\n")


def write_synthetic(root: Path, n: int, img: int, seed: int = 0, n_val: int = 8,
                    procs: int | None = None) -> Path:
    """``root/images/{train,val}`` + ``root/labels/{train,val}``; reused when complete."""
    stamp = root / "e2e.json"
    params = {"n": n, "img": img, "seed": seed, "n_val": n_val, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    jobs = []
    for split, count, first in (("train", n, 0), ("val", n_val, n)):
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True, exist_ok=True)
        jobs += [(str(root / "images" / split), str(root / "labels" / split), i, img, seed)
                 for i in range(first, first + count)]
    procs = procs or min(16, os.cpu_count() or 1)
    if procs > 1 and n > 64:
        with Pool(procs) as pool:
            pool.map(write_one, jobs, chunksize=16)
    else:
        for job in jobs:
            write_one(job)
    stamp.write_text(json.dumps(params))
    return root


def data_yaml(root: Path, out: Path) -> Path:
    """The dataset file both codes read: YOLO layout, 80 classes (the official yamls' nc)."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    path = out / "e2e_data.yaml"
    val = "images/val" if (root / "images" / "val").is_dir() else "images/train"
    path.write_text(yaml.safe_dump({"path": str(root.resolve()), "train": "images/train",
                                    "val": val, "nc": NC,
                                    "names": [f"class{i}" for i in range(NC)]}, sort_keys=False))
    return path


# --------------------------------------------------------------------------- ours
def parse_sets(pairs: list[str]) -> dict:
    """``--set key=value`` -> TrainConfig options (values parsed as YAML: true, 3, 0.5, ...)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"train_e2e.py: --set {pair!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    return options


def run_ours(yaml_path: Path, args, extra: dict) -> dict:
    """Train ``args.epochs`` epochs with our loop; the last epoch's images/s."""
    import yolov9lite

    t0 = time.perf_counter()
    history = yolov9lite.train(
        model=args.model, data=str(yaml_path), epochs=args.epochs, batch_size=args.batch,
        imgsz=args.img, workers=args.workers, device=args.device, close_mosaic=0,
        val_interval=0, project=str(args.out), name="ours", plots=False, tensorboard=False,
        verbose=args.verbose, seed=0, **extra)
    last = history[-1]
    wait = last["data_wait_s"] / max(last["epoch_time_s"], 1e-9)
    return {"img_per_s": last["images_per_s"], "epoch_s": last["epoch_time_s"],
            "wall_s": time.perf_counter() - t0, "compile_s": history[0].get("compile_s"),
            "epochs": args.epochs, "data_wait_s": last["data_wait_s"],
            # the profile that says what bounds the loop: near 0 % = the step, high = the loader
            "notes": f"loop waited for the loader {wait:.0%} of the epoch"}


# --------------------------------------------------------------------------- official
def write_official_support(folder: Path) -> Path:
    """Stand-ins the official code needs offline, under ``folder``: ``Arial.ttf`` (any TTF: it
    downloads one otherwise; here matplotlib's DejaVuSans) and stub modules for ``IPython``,
    ``git`` and ``pkg_resources`` when this Python lacks them. Returns the stubs folder (put it
    on ``PYTHONPATH``; ``bench_gpu.py --stubs`` takes it too)."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    font = folder / "Arial.ttf"
    if not font.exists():
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    stubs = folder / "stubs"
    stubs.mkdir(exist_ok=True)
    sources = {
        "IPython": "def get_ipython():\n    return None\n\n\nclass display:\n"
                   "    @staticmethod\n    def clear_output(*a, **k):\n        pass\n",
        "git": "class _Exc:\n    class InvalidGitRepositoryError(Exception):\n        pass\n\n\n"
               "exc = _Exc\n\n\nclass Repo:\n    def __init__(self, *a, **k):\n"
               "        raise exc.InvalidGitRepositoryError('not a repository')\n",
        "pkg_resources": "class VersionConflict(Exception):\n    pass\n\n\n"
                         "class DistributionNotFound(Exception):\n    pass\n\n\n"
                         "def require(*a, **k):\n    return []\n\n\n"
                         "def parse_version(v):\n"
                         "    return tuple(int(p) if p.isdigit() else 0 for p in "
                         "str(v).split('+')[0].split('.')[:3])\n",
    }
    for name, text in sources.items():
        if importlib.util.find_spec(name) is None:
            (stubs / name).mkdir(exist_ok=True)
            (stubs / name / "__init__.py").write_text(text)
    return stubs


def official_child(argv: list[str]) -> None:
    """Runs inside a fresh process: ``train_dual.main`` with a timing callback; prints one JSON
    line ``E2E_TIMES {...}`` with the (global batch index, seconds) of every batch end."""
    folder, rest = argv[0], argv[1:]
    os.chdir(folder)
    sys.path.insert(0, folder)
    import train_dual  # the official code (fetched for the measurement only)
    from utils.callbacks import Callbacks

    times = []
    callbacks = Callbacks()
    callbacks.register_action("on_train_batch_end", "e2e_timer",
                              lambda model, ni, *a: times.append((int(ni), time.perf_counter())))
    sys.argv = ["train_dual.py", *rest]
    opt = train_dual.parse_opt(True)
    train_dual.main(opt, callbacks)
    print("E2E_TIMES " + json.dumps(times), flush=True)


def run_official(folder: str, yaml_path: Path, args) -> dict:
    """The official ``train_dual.py`` on the same images and settings (SGD, hyp.scratch-high,
    no close-mosaic, validation only after the last epoch, no plots); its last epoch's img/s."""
    folder = str(Path(folder).resolve())
    support = Path(args.out).resolve() / "official_support"
    stubs = write_official_support(support)
    env = dict(os.environ, YOLOV5_CONFIG_DIR=str(support), TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(stubs), os.environ.get("PYTHONPATH"))
                                          if p))
    device = "cpu" if args.device == "cpu" else (args.device.replace("cuda:", "")
                                                 if args.device.startswith("cuda:") else "0")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--official-child", folder,
           "--data", str(yaml_path.resolve()), "--cfg", f"models/detect/{args.model}.yaml",
           "--weights", "", "--hyp", "data/hyps/hyp.scratch-high.yaml",
           "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--img", str(args.img),
           "--workers", str(args.workers), "--device", device, "--noval", "--nosave",
           "--noplots", "--project", str(Path(args.out).resolve()), "--name", "official",
           "--exist-ok", "--close-mosaic", "0"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = Path(args.out) / "official.log"
    log.write_text(proc.stdout + "\n" + proc.stderr)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("E2E_TIMES ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:120]
        return {"notes": f"failed (exit {proc.returncode}, log {log}): {tail}"}
    times = json.loads(line[len("E2E_TIMES "):])
    nb = len(times) // args.epochs
    if nb < 1 or args.epochs < 2:
        t_prev, last = times[0][1], times[1:]
    else:
        t_prev, last = times[-nb - 1][1], times[-nb:]
    n_images = len(last) * args.batch  # the official loader keeps the last partial batch too
    return {"img_per_s": n_images / max(last[-1][1] - t_prev, 1e-9), "wall_s": wall,
            "epochs": args.epochs}


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--images", default=None, help="YOLO-layout folder (images/train, "
                    "labels/train); default: --n synthetic JPEGs written under --data-dir")
    ap.add_argument("--n", type=int, default=2048, help="synthetic training images")
    ap.add_argument("--data-dir", default="runs/data/e2e", help="where synthetic images go")
    ap.add_argument("--model", default=None, help="default yolov9-s (smoke: gelan-nano)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--img", type=int, default=640)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2, help="the last one is timed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--official", default=None, help="folder of the official YOLOv9 code "
                    "(git-ignored, e.g. third_party/yolov9): also run its train_dual.py")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra TrainConfig option of ours, e.g. --set compile=true")
    ap.add_argument("--cached", action="store_true", help="also run ours with the image cache "
                    "(cache_images=true; built before epoch 1, in OUT/image-cache unless "
                    "YOLOV9LITE_CACHE_DIR is set), after the official run")
    ap.add_argument("--out", default="runs/train_e2e", help="run folders and logs")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--smoke", action="store_true", help="CPU, seconds: gelan-nano, 16 images "
                    "of 64 px, batch 8, 1 worker, 1 epoch")
    ap.add_argument("--verbose", action="store_true", help="our progress bars")
    args = ap.parse_args(argv)
    if args.smoke:
        args.model = args.model or "gelan-nano"
        args.n, args.img, args.batch, args.workers = 16, 64, 8, 1
        args.epochs = 1
        args.device = "cpu" if args.device == "auto" else args.device
        args.data_dir = str(Path(args.out) / "data")
    args.model = args.model or "yolov9-s"
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def fail(message: str) -> None:
    print(f"train_e2e.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--official-child"]:
        official_child(argv[1:])
        return []
    if argv[:1] == ["--write-support"] and len(argv) == 2:  # used by gpu_round.sh
        print(write_official_support(Path(argv[1]).resolve()))
        return []
    args = parse_args(argv)
    extra = parse_sets(args.set)
    args.out = Path(args.out)
    if args.official and not (Path(args.official) / "train_dual.py").is_file():
        fail(f"--official {args.official}: no train_dual.py there; pass the folder of a "
             "checkout of github.com/WongKinYiu/yolov9")
    if args.images:
        root = Path(args.images)
        if not (root / "images" / "train").is_dir():
            fail(f"--images {root}: expected {root}/images/train (and {root}/labels/train)")
    else:
        t0 = time.perf_counter()
        root = write_synthetic(Path(args.data_dir), args.n, args.img)
        print(f"images: {root} ({args.n} x {args.img} px, {time.perf_counter() - t0:.1f} s)",
              flush=True)
    yaml_path = data_yaml(root, args.out)
    n_train = len(list((root / "images" / "train").glob("*.jpg")))
    base = {"section": "e2e", "model": args.model, "batch": args.batch,
            "workers": args.workers, "images": n_train}

    def save(rows):  # after each run: a round cut short by its time cap keeps what finished
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"rows": rows, "argv": argv}, indent=1))

    notes = ", ".join(f"{k}={v}" for k, v in extra.items())
    rows = [{**base, "variant": "ours" + (f" ({notes})" if notes else ""),
             **run_ours(yaml_path, args, extra)}]
    save(rows)
    if args.official:
        rows.insert(0, {**base, "variant": "official train_dual.py",
                        **run_official(args.official, yaml_path, args)})
        save(rows)
    if args.cached:  # last: a round cut by its time cap keeps the official row
        os.environ.setdefault("YOLOV9LITE_CACHE_DIR", str((args.out / "image-cache").resolve()))
        row = {**base, "variant": "ours + image cache",
               **run_ours(yaml_path, args, {**extra, "cache_images": True})}
        # the official run is not given its own --cache: its row decodes every epoch
        row["notes"] += "; images from the cache (the official row decodes each epoch)"
        rows.append(row)
        save(rows)
    official = next((r for r in rows if r["variant"].startswith("official")
                     and r.get("img_per_s")), None)
    for r in rows:
        if official is not None and r is not official and "img_per_s" in r:
            r["ratio"] = r["img_per_s"] / official["img_per_s"]
    save(rows)
    print(f"\nend to end, {args.model}, batch {args.batch}, {args.img} px, {args.workers} "
          f"workers, {n_train} distinct images, epoch {args.epochs} of {args.epochs} timed:")
    for r in rows:
        rate = f"{r['img_per_s']:.1f} img/s" if "img_per_s" in r else ""
        print(f"  {r['variant']:<28} {rate}" + (f"  ({r['ratio']:.2f}x official)"
                                                 if "ratio" in r else "")
              + (f"  {r['notes']}" if r.get("notes") else ""))
    return rows


if __name__ == "__main__":
    main()
