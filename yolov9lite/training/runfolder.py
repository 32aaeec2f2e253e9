"""The run folder: where a training run writes, and who may write there.

A run folder (``runs/train/exp``, ``exp2``, ...) holds ``args.yaml`` (the config), ``hyp.yaml``
(the hyperparameters in effect), ``results.csv`` (one row per epoch, rewritten every epoch),
``weights/last.pt`` and ``weights/best.pt`` (written atomically), TensorBoard events and, at the
end, the plots of :func:`yolov9lite.report.plots.save_run_plots`.

Rules that keep a folder consistent:

* one process at a time: ``train.lock`` holds ``pid host`` (:func:`acquire_run_lock`); the lock
  of a process that died on this host is taken over;
* temp files of a killed atomic write are removed when the folder is next used
  (:func:`remove_stale_temp_files`);
* a resume continues only in the folder that holds its checkpoint as ``weights/last.pt``, next
  to the run's ``args.yaml`` (:func:`run_folder_of`).
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..utils.paths import increment_path, temp_beside
from ..weights.checkpoint import save_checkpoint
from .config import TrainError

if TYPE_CHECKING:
    from .trainsetup import Run

__all__ = ["CURRENT_RUN", "LOCK_NAME", "acquire_run_lock", "find_last_checkpoint",
           "interrupted_message", "open_run_folder", "release_run_lock", "remove_stale_temp_files",
           "run_folder_of", "save_training_checkpoint", "tensorboard_writer", "write_csv",
           "write_yaml"]


def find_last_checkpoint(project: str | Path) -> Path:
    candidates = sorted(Path(project).glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise TrainError(f"resume=True but no */weights/last.pt under {project}; pass a path")
    return candidates[-1]


def run_folder_of(path: Path) -> Path:
    """The run folder a resume writes into: the one holding ``path`` as ``weights/last.pt``
    (with the run's ``args.yaml``). Anything else is refused, so a resume never creates
    ``weights/`` or replaces a ``results.csv`` in some unrelated folder (a ``last.pt`` copied to
    Downloads), and never rewinds a run from its ``best.pt`` over its newer ``last.pt``."""
    path = Path(path).resolve()
    run = path.parent.parent
    if path.name == "best.pt":
        raise TrainError(f"--resume {path}: best.pt is the best epoch, not where the run "
                         f"stopped; resuming from it would rewind the run over its newer "
                         f"last.pt. Resume from {path.parent / 'last.pt'}")
    if path.name != "last.pt" or path.parent.name != "weights":
        raise TrainError(f"--resume {path}: expected a run's weights/last.pt (a resume "
                         "continues in the run folder that holds it); to resume a copied "
                         "checkpoint, copy the whole run folder")
    if not (run / "args.yaml").is_file():
        raise TrainError(f"--resume {path}: {run} is not a run folder (no args.yaml next to "
                         "weights/); copy the whole run folder, not only last.pt")
    return run


def open_run_folder(run: Run, save_dir: Path | None) -> None:
    """Rank 0: the run folder (a new ``project/name[N]``, or the resumed run's), its
    ``args.yaml`` and ``hyp.yaml``, the TensorBoard writer, the start-up summary."""
    cfg = run.cfg
    run.save_dir = save_dir if save_dir is not None else increment_path(cfg.project, cfg.name)
    acquire_run_lock(run)
    CURRENT_RUN["last"] = run.last  # kept after the run ends: Ctrl-C's message names it
    remove_stale_temp_files(run.save_dir, cfg.verbose)
    (run.save_dir / "weights").mkdir(parents=True, exist_ok=True)
    write_yaml(run.save_dir / "args.yaml", cfg.to_dict())
    write_yaml(run.save_dir / "hyp.yaml", cfg.hyperparameters())
    run.writer = tensorboard_writer(run.save_dir, cfg.tensorboard)
    if cfg.verbose:
        plan, model = run.plan, run.state.model
        what = f"resuming at epoch {run.state.epoch + 1}" if run.resumed else "starting"
        procs = f" x {plan.dist_info.world_size} processes" if plan.dist_info.ddp else ""
        print(f"{what}: {model.name} ({sum(p.numel() for p in model.parameters()):,} params) "
              f"on {plan.device}{procs}, amp {plan.amp_dtype or 'off'}, batch {cfg.batch_size} "
              f"(accumulate to {cfg.schedule.nominal_batch}), "
              f"{len(run.train_loader.dataset)} train images, {plan.batches_per_epoch} "
              f"batches/epoch, warm-up {plan.warmup_batches} batches -> {run.save_dir}")


CURRENT_RUN: dict = {}  # this process's run: the last.pt that Ctrl-C's message names
LOCK_NAME = "train.lock"


def acquire_run_lock(run: Run) -> None:
    """Own the run folder while training in it: ``train.lock`` holds ``pid host``. A second
    process (e.g. a second ``--resume`` of the same run) is refused; the lock of a process that
    died (same host, pid gone) is taken over with a warning."""
    lock = run.save_dir / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(lock)
            if owner is None:  # removed (or half-written) in the meantime: try again
                continue
            pid, host = owner
            if host != socket.gethostname() or process_alive(pid):
                raise TrainError(f"run folder {run.save_dir} is in use by process {pid} on "
                                 f"{host} ({lock}); wait for that run to end, or delete the "
                                 "lock file if no run is active") from None
            warnings.warn(f"{lock}: process {pid} that held it is no longer running; taking "
                          "the run folder over", RuntimeWarning, stacklevel=2)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        run.lock = lock
        return
    raise TrainError(f"cannot take the lock {lock}; delete it if no run is active")


def read_lock(lock: Path) -> tuple[int, str] | None:
    try:
        pid, host = lock.read_text().split(maxsplit=1)
        return int(pid), host.strip()
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def release_run_lock(run: Run) -> None:
    if getattr(run, "lock", None) is not None:
        with contextlib.suppress(OSError):
            run.lock.unlink()
        run.lock = None


def remove_stale_temp_files(save_dir: Path, verbose: bool) -> None:
    """Temporary files of atomic writes (``weights/.last.pt.XXXX.tmp``, ``results.csv.tmp``)
    that a killed run left behind; safe to delete while we hold the run's lock."""
    stale = [*(save_dir / "weights").glob(".*.tmp"), *save_dir.glob("*.tmp")]
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()
    if stale and verbose:
        print(f"removed {len(stale)} temporary file(s) left by an interrupted run in {save_dir}")


def write_yaml(path: Path, data: dict) -> None:
    """Atomic write of a plain dict (json round trip: tuples become lists for yaml)."""
    with temp_beside(path, "w") as f:
        f.write(yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False))


def write_csv(path: Path, history: list[dict]) -> None:
    """Rewritten every epoch from the history, so a resumed run never keeps stale rows."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    with temp_beside(path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)


def tensorboard_writer(save_dir: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module needs the separate `tensorboard` package
        print("TensorBoard logging skipped: `pip install tensorboard` to enable it")
        return None
    return SummaryWriter(str(save_dir))


def save_training_checkpoint(run: Run, path: Path) -> None:
    """Atomic write (temp file + rename): a run killed mid-save leaves the previous file intact.
    ``model`` is the EMA (the model to use); the rest is what a resume needs."""
    state = run.state
    try:
        save_checkpoint(path, state.ema.module if state.ema else state.model, names=run.names,
                        train_config=run.cfg.to_dict(), **state.state_dict())
    except (OSError, RuntimeError) as err:  # disk full: torch.save says "unexpected pos ..."
        reason = write_error_reason(err, path.parent)
        if run.last.is_file():
            kept = (f"{run.last} from the previous epoch is intact; free space and resume with "
                    f"--resume {run.last}")
        elif path != run.best and run.best.is_file():
            kept = (f"{run.best} (this epoch's weights) was written, but no resumable "
                    f"{run.last.name}; free space and start the run again")
        else:
            kept = "no checkpoint was written; free space and start the run again"
        raise TrainError(f"cannot write {path} ({reason}); {kept}") from err


LOW_SPACE = 64 * 2**20  # a write that fails with less free than this ran out of space


def write_error_reason(err: BaseException, folder: Path) -> str:
    """Why a write failed, in words: torch.save reports a full disk as a RuntimeError
    ("unexpected pos ..."), so a failure with (almost) no free space left is named as such."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return err.strerror or os.strerror(errno.ENOSPC)  # "No space left on device"
    text = (err.strerror if isinstance(err, OSError) and err.strerror else str(err)).strip()
    try:
        full = shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        full = False
    if full or "No space left" in text:
        return f"no space left on device: {text}" if text else "no space left on device"
    return text or type(err).__name__


def interrupted_message() -> str:
    """What Ctrl-C prints: how to continue the interrupted run."""
    last = CURRENT_RUN.get("last")
    if last is not None and Path(last).is_file():
        return f"interrupted; resume with yolov9lite train --resume {last}"
    return "interrupted before the first checkpoint was written; nothing to resume"
