"""Training: the YOLOv9 recipe as one readable run, from a laptop CPU to ``torchrun`` on 8 GPUs.

The recipe is the official ``train_dual.py`` / ``train.py`` with ``hyp.scratch-high.yaml``
(paper Section 5.1 and appendix). This module is the orchestration around the engine:

* :func:`train` -- settings (:class:`yolov9lite.training.config.TrainConfig`), device and processes
  (:mod:`yolov9lite.utils.runtime`), model, loaders, the run folder, then one
  :func:`yolov9lite.training.engine.train_one_epoch` per epoch followed by validation, logging and
  checkpoints; returns the :class:`~yolov9lite.training.engine.History`;
* its command line, ``yolov9lite train``, is :mod:`yolov9lite.cli.train` (generated from the
  config's fields).

The pieces it puts together: :mod:`yolov9lite.training.trainsetup` (checks, loaders, model state) and
:mod:`yolov9lite.training.runfolder` (the run folder, its lock and files).

Per epoch: mosaic is closed for the last ``close_mosaic`` (15) epochs; the EMA model is validated
with COCO metrics (:func:`yolov9lite.evaluation.coco_eval.evaluate`) every ``val_interval`` epochs and at
the end; fitness = 0.1 mAP50 + 0.9 mAP50:95 picks ``best.pt``; ``last.pt`` is written every
epoch (after ``best.pt``, so a death between the two never loses the best). Both are written
atomically and hold everything a resumed run needs (model, EMA, optimizer, scaler, epoch, RNG
states, pending accumulated gradients, the config), so ``resume`` continues a killed run exactly
where the last epoch ended; on CPU with ``deterministic=True`` and ``workers=0`` the result is
bit-identical to an uninterrupted run. The run folder also holds ``args.yaml`` (the config) and
``hyp.yaml`` (the hyperparameters in effect).

Safety: a resume continues only in the run folder that holds its ``weights/last.pt`` and refuses
explicitly changed settings (:func:`resume_config`) and a model other than the one whose
weights the checkpoint holds (:func:`yolov9lite.training.trainsetup.check_resumed_model`);
``train.lock`` keeps a second process out of a run folder
(:func:`yolov9lite.training.runfolder.acquire_run_lock`); temp files of a killed save are removed when
the folder is next used; an epoch without a finite loss or non-finite weights stop the run
instead of saving garbage; settings are validated when the config is built
(:meth:`yolov9lite.training.config.TrainConfig.validate`).

Watching: tqdm bars (losses, lr, images/s), ``results.csv``, TensorBoard scalars when the
``tensorboard`` package is installed, ``callbacks`` for notebooks, and at the end (``plots``) the
figures of :func:`yolov9lite.report.plots.save_run_plots`: ``results.png``, ``labels.jpg``,
``train_batch*.jpg`` and the PR/F1/confusion plots of the final validation.

Multi-GPU: launch the same command with ``torchrun --nproc_per_node 8 -m yolov9lite train ...``;
``--batch`` is the *total* batch, split over the ranks (as in the official code). Each rank sees
its own shard of every epoch (DistributedSampler); DDP averages gradients and the loss's
``x world_size`` turns that back into the sum over the global batch; only rank 0 validates,
logs and writes files.

Deviations from the official code, on purpose:

* the close-mosaic rule is "the last ``close_mosaic`` epochs" even when the run is shorter than
  that (the official ``epoch == epochs - close_mosaic`` test never fires then);
* a non-finite gradient norm (possible in bf16/fp32, where no scaler catches it) skips the step;
* the data order and augmentation of every epoch are re-seeded from ``(seed, epoch)``, so that
  a resume is exact (gradients accumulated but not applied by an epoch's end are dropped at the
  next epoch's start, as in the official loop, and saved in checkpoints all the same);
* checkpoints keep float32 weights (the official ones are fp16), again for exact resume.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from ..data import DetectionDataset, dataset_to_coco
from ..evaluation.table import format_metrics_table, write_metrics_files
from ..report.plots import save_run_plots
from ..utils.runtime import (
    DistInfo,
    cleanup_distributed,
    cpu_training_threads,
    resolve_amp,
    seed_everything,
    setup_distributed,
    training_device,
)
from ..weights.checkpoint import load_checkpoint
from .config import (
    LOSS_GAINS,
    RUNTIME_KEYS,
    SCHEDULE_KEYS,
    TrainConfig,
    TrainError,
    flag_of,
)
from .engine import (
    EpochPlan,
    History,
    NonFiniteLossError,
    fitness,
    train_one_epoch,
    validate,
)
from .finetune import freeze_layers, load_source, source_model_name, transfer_weights
from .loss import DetectionLoss
from .optim import short_run_warning, warmup_iters
from .runfolder import (
    CURRENT_RUN,
    find_last_checkpoint,
    open_run_folder,
    release_run_lock,
    run_folder_of,
    save_training_checkpoint,
    write_csv,
)
from .trainsetup import (
    Run,
    build_loaders,
    build_state,
    check_inputs,
    set_loader_epoch,
)

__all__ = ["train", "train_resolved"]

# --------------------------------------------------------------------------- the entry point
def train(config: TrainConfig | None = None, *, callbacks: dict | None = None,
          **options) -> History:
    """Train a model with the YOLOv9 recipe (see the module docstring).

    Either a :class:`~yolov9lite.training.config.TrainConfig`, or its fields as keyword arguments (the
    schedule's too, flat: ``train(model="gelan-c", data="coco.yaml", epochs=300, lr0=0.01)``),
    or both (the keywords override the config's fields). Defaults are hyp.scratch-high.
    ``batch_size`` is the total over all ranks; ``max_batches`` caps the batches per epoch
    (quick runs); ``hyp`` overrides augmentation settings (``mosaic``, ``mixup``, ...; see
    :class:`yolov9lite.data.augment.Hyp`), the loss gains ``box``, ``cls``, ``dfl`` and schedule
    keys (an explicit keyword wins); unknown keys are an error. ``resume`` is a run's
    ``weights/last.pt``, or True for the newest one under ``project`` (the saved config is then
    used; only device, workers and verbose may change, any other keyword that differs from the
    saved value is an error); ``callbacks = {"on_epoch_end": fn(history),
    "on_train_end": fn(history)}`` (a function or a list of them); ``model_kwargs`` are
    ablation knobs passed to :func:`yolov9lite.build_model` (e.g. ``{"pgi": "ds"}``);
    ``compile`` wraps the model in ``torch.compile`` (the first epoch's record then holds
    ``compile_s``).

    Returns the :class:`~yolov9lite.training.engine.History`: one dict per epoch (``epoch``,
    ``train/box`` ... ``lr/...``, ``metrics/AP50``, ``metrics/AP``, ``fitness`` on validated
    epochs), with ``save_dir``, ``best``, ``last``, ``model`` and ``ema`` attributes.
    """
    cfg = _config_from(config, options)
    return train_resolved(cfg, callbacks, explicit_settings(config, options))


def train_resolved(cfg: TrainConfig, callbacks: dict | None, explicit: set[str]) -> History:
    """:func:`train` after the settings are known; ``explicit`` = the settings the caller gave
    (a resume refuses those that differ from the run's saved ones)."""
    checkpoint, save_dir = None, None
    CURRENT_RUN["last"] = None
    if cfg.resume:
        cfg, checkpoint, save_dir = resume_config(cfg, explicit)
        CURRENT_RUN["last"] = save_dir / "weights" / "last.pt"  # for Ctrl-C's message
    try:
        device = training_device(cfg.device)
    except ValueError as err:
        raise TrainError(f"--device {cfg.device!r}: {err}") from err
    source = None
    if cfg.weights and checkpoint is None:  # a resume's weights are in its checkpoint
        source = load_source(cfg.weights)
        if "model" not in explicit:  # as the official code: the model the weights hold
            cfg = replace(cfg, model=source_model_name(source, cfg.weights))
    dist_info = setup_distributed(device)
    run = None
    try:
        with cpu_training_threads(device):
            run = prepare_run(cfg, device, dist_info, checkpoint, save_dir, callbacks, source)
            return run_training(run)
    finally:
        if run is not None:
            release_run_lock(run)
        cleanup_distributed(dist_info)


def explicit_settings(config: TrainConfig | None, options: dict) -> set[str]:
    """Names (flat: ``lr0``, not ``schedule``) of the settings given to :func:`train`: its
    keywords, and the fields of a passed config that differ from the defaults."""
    given = set(options) - {"schedule"}
    schedule = options.get("schedule") or {}
    given |= set(schedule if isinstance(schedule, dict) else SCHEDULE_KEYS)
    if config is not None:
        ours, default = flat_settings(config), flat_settings(TrainConfig())
        given |= {k for k in ours if ours[k] != default[k]}
    return given


def flat_settings(cfg: TrainConfig) -> dict:
    """The config as the flat keywords of :func:`train` (schedule keys at the top level)."""
    settings = cfg.to_dict()
    return {**settings.pop("schedule"), **settings}


def _config_from(config: TrainConfig | None, options: dict) -> TrainConfig:
    if config is None:
        return TrainConfig.from_options(**options)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train(config): expected a TrainConfig, got {type(config).__name__}; "
                        "pass other settings as keywords, e.g. train(model='gelan-c')")
    if not options:
        return replace(config)  # a copy: the run resolves some fields (channels_last)
    settings = config.to_dict()
    schedule = settings.pop("schedule")
    return TrainConfig.from_options(**{**settings, **schedule, **options})

# --------------------------------------------------------------------------- resume
def load_training_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (weights_only=True); any failure is a TrainError naming it."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"resume checkpoint {str(path)!r} does not exist")
    try:
        ckpt = load_checkpoint(path)
    except Exception as err:  # report what was wrong with the file, not a traceback
        raise TrainError(f"cannot read resume checkpoint {str(path)!r}: {type(err).__name__}: "
                         f"{err}") from err
    missing = [k for k in ("train_state", "train_config", "epoch") if k not in ckpt]
    if missing:
        raise TrainError(f"{str(path)!r} is not a training checkpoint of this project "
                         f"(missing {missing}); use it as weights, not with resume")
    return ckpt


# Settings a resume may change: where it runs and how it reports (``project`` is where
# ``--resume`` without a path looks; ``name`` is moot, the run keeps its folder).
RESUME_MAY_CHANGE = (*RUNTIME_KEYS, "project", "name")


def resume_config(cfg: TrainConfig, explicit: set[str] = frozenset()
                  ) -> tuple[TrainConfig, dict, Path]:
    """The saved config (only what concerns this machine may change), the checkpoint, and the
    run folder to continue in: always the folder that holds the checkpoint as
    ``weights/last.pt`` (see :func:`run_folder_of`). An explicitly given setting that differs
    from the saved one is refused by name (:func:`check_resume_overrides`)."""
    path = find_last_checkpoint(cfg.project) if cfg.resume is True else Path(cfg.resume)
    checkpoint = load_training_checkpoint(path)
    save_dir = run_folder_of(path)
    saved = TrainConfig.from_dict(checkpoint["train_config"])  # also the old flat layout
    if int(checkpoint["epoch"]) + 1 >= saved.epochs:
        raise TrainError(f"{path} is from a finished run ({saved.epochs} epochs); "
                         "nothing to resume (start a new run, e.g. with weights)")
    check_resume_overrides(saved, cfg, explicit)
    # the machine settings given now (e.g. another --device); the saved ones otherwise
    machine = {k: getattr(cfg, k) for k in RUNTIME_KEYS if k in explicit}
    cfg = replace(saved, **{**machine, "resume": str(path)})
    return cfg, checkpoint, save_dir


def check_resume_overrides(saved: TrainConfig, requested: TrainConfig, explicit: set[str]):
    """A resume continues the run as it was started: a setting given explicitly with another
    value than the saved one (``--batch``, ``--data``, ``--img``, ``--lr0``, ...) is refused,
    not silently ignored. ``--epochs`` too: more epochs change the learning-rate curve of the
    epochs already trained (it decays to ``lrf`` at the last epoch), so an extended run would
    not be the run it claims to be."""
    old, new = flat_settings(saved), flat_settings(requested)
    for key in sorted(explicit - set(RESUME_MAY_CHANGE)):
        if key in new and new[key] != old.get(key):
            what = ("start a new run with more epochs instead" if key == "epochs"
                    else "drop the flag, or start a new run")
            raise TrainError(f"--resume continues the run with its saved settings: "
                             f"{flag_of(key)} {new[key]!r} differs from the run's "
                             f"{old.get(key)!r}; {what}")

# --------------------------------------------------------------------------- setup
def prepare_run(cfg: TrainConfig, device: torch.device, dist_info: DistInfo,
                checkpoint: dict | None, save_dir: Path | None, callbacks: dict | None,
                source: torch.nn.Module | None = None) -> Run:
    """Everything before the first epoch: seeds, checks, loaders, model (with the ``source``
    weights of a fine-tuning run, and its frozen layers), state, run folder."""
    # Model init is seeded identically on every rank (DDP also broadcasts rank 0's weights);
    # augmentation is seeded per rank and per epoch (set_loader_epoch).
    seed_everything(cfg.seed, cfg.deterministic)
    data_cfg, model = check_inputs(cfg, dist_info, checkpoint)
    start_from_weights(cfg, model, source, dist_info.main and cfg.verbose)
    if cfg.channels_last is None:
        cfg = replace(cfg, channels_last=device.type == "cuda")
    try:
        amp_dtype = resolve_amp(cfg.amp, device)
    except ValueError as err:
        raise TrainError(str(err)) from err
    train_loader, val_loader, gt = build_loaders(cfg, data_cfg, dist_info)
    nb = len(train_loader) if cfg.max_batches is None else min(len(train_loader), cfg.max_batches)
    state = build_state(cfg, model, device, dist_info, amp_dtype)
    gains = {LOSS_GAINS[k]: float(v) for k, v in (cfg.hyp or {}).items() if k in LOSS_GAINS}
    loss_fn = DetectionLoss(state.model, lead_head_guided=cfg.lead_head_guided,
                            world_size=dist_info.world_size, **gains)
    if checkpoint is not None:
        state.load_state_dict(checkpoint)
    names = data_cfg["names"]
    names = list(names.values()) if isinstance(names, dict) else list(names)
    plan = EpochPlan(cfg, device, dist_info, amp_dtype, loss_fn, batches_per_epoch=nb,
                     warmup_batches=warmup_iters(nb, cfg.schedule.warmup_epochs))
    if dist_info.main and (short := short_run_warning(cfg.epochs, nb, plan.warmup_batches)):
        warnings.warn(short, RuntimeWarning, stacklevel=2)
    run = Run(cfg, state, plan, data_cfg, names, train_loader, val_loader, gt,
              callbacks=callbacks, resumed=checkpoint is not None)
    if dist_info.main:
        open_run_folder(run, save_dir)
    state.history.save_dir = run.save_dir
    return run


def start_from_weights(cfg: TrainConfig, model: torch.nn.Module, source: torch.nn.Module | None,
                       verbose: bool) -> None:
    """Fine-tuning (:mod:`yolov9lite.training.finetune`): copy the matching weights of
    ``source``, then freeze the first ``cfg.freeze`` layers (also on a resume, before the
    optimizer is built, so that its parameter groups are the saved ones)."""
    if source is not None:
        moved = transfer_weights(model, source)
        if verbose:
            fresh = sorted({k.rsplit(".", 2)[0] for k in moved["reinitialised_keys"]})
            print(f"weights {cfg.weights} ({source.name}, {source.nc} classes -> {model.nc}): "
                  f"{moved['transferred']}/{moved['total']} tensors transferred, "
                  f"{moved['reinitialised']} initialised afresh"
                  + (f" ({', '.join(fresh[:6])}{', ...' if len(fresh) > 6 else ''})"
                     if fresh else ""))
    if cfg.freeze:
        frozen = freeze_layers(model, cfg.freeze)
        if verbose:
            print(f"freeze {cfg.freeze}: {len(frozen)} parameter tensors of layers "
                  f"0-{cfg.freeze - 1} frozen")


def run_callbacks(callbacks: dict | None, event: str, *args) -> None:
    """Call ``callbacks[event]``: one function or a list of them."""
    fns = (callbacks or {}).get(event, [])
    for fn in [fns] if callable(fns) else fns:
        fn(*args)

# --------------------------------------------------------------------------- the epochs
def run_training(run: Run) -> History:
    """Train the remaining epochs of ``run``, then close it; returns the history."""
    cfg, state = run.cfg, run.state
    run.plan.last_checkpoint = run.last
    if cfg.verbose and run.plan.dist_info.main and cfg.close_mosaic >= cfg.epochs:
        print(f"close-mosaic {cfg.close_mosaic} >= {cfg.epochs} epochs: mosaic is off for the "
              "whole run (lower --close-mosaic to train some epochs with it)")
    while state.epoch < cfg.epochs:
        epoch = state.epoch
        dataset = run.train_loader.dataset
        mosaic = epoch < cfg.epochs - cfg.close_mosaic
        if not mosaic and hasattr(dataset, "set_mosaic"):
            dataset.set_mosaic(False)  # close mosaic (also after a resume)
        set_loader_epoch(run.train_loader, epoch)
        record = {"epoch": epoch + 1, "mosaic": int(mosaic and dataset.mosaic)
                  if hasattr(dataset, "mosaic") else None}
        record.update(train_one_epoch(state, run.train_loader, run.plan))
        if run.plan.dist_info.main:
            end_epoch(run, record)
        state.epoch += 1
    return finish_run(run)


def end_epoch(run: Run, record: dict) -> None:
    """Rank 0, after an epoch: validate (when due), pick the best, write checkpoints and logs."""
    cfg, state = run.cfg, run.state
    epoch = state.epoch
    final = epoch + 1 == cfg.epochs
    if final or (cfg.val_interval > 0 and (epoch + 1) % cfg.val_interval == 0):
        record.update(validate(state, run.data_cfg, run.val_loader, run.gt, cfg, run.plan.device,
                               keep_records=final and cfg.plots))
        run.detections = record.pop("detections", None)
        run.table = record.pop("table", None)
        record["fitness"] = fitness(record)
    warn_if_exploding(state.history, record)
    check_weights_finite(run, epoch)
    state.history.append(record)
    if record.get("fitness", -1.0) > state.best_fitness:
        # best.pt first: if the process dies before last.pt records the new best fitness, the
        # resumed run re-trains this epoch and writes best.pt again; the other order loses it
        state.best_fitness = record["fitness"]
        save_training_checkpoint(run, run.best)
    save_training_checkpoint(run, run.last)
    write_csv(run.save_dir / "results.csv", state.history)
    if run.writer is not None:
        for k, v in record.items():
            if isinstance(v, (int, float)) and k != "epoch":
                run.writer.add_scalar(k, v, epoch + 1)
    if cfg.verbose and "fitness" in record:
        print(f"epoch {epoch + 1}/{cfg.epochs}: validation of the EMA model, "
              f"{record['images_per_s']:.1f} img/s training\n"
              + format_metrics_table(run.table["classes"], run.table["all"], per_class=final))
    if final and run.table is not None:
        write_metrics_files(run.save_dir, run.table, record)
    run_callbacks(run.callbacks, "on_epoch_end", state.history)


EXPLODING = 1e4  # an epoch loss this many times the first epoch's: the run is diverging


def warn_if_exploding(history: list[dict], record: dict) -> None:
    """Warn (once per epoch) when the training loss has grown far beyond the first epoch's:
    a learning rate too high for the batch or data, which a finite loss alone does not show."""
    loss = record.get("train/loss")
    first = history[0].get("train/loss") if history else None
    if first and loss is not None and math.isfinite(first) and loss > EXPLODING * first:
        warnings.warn(f"epoch {record['epoch']}: train loss {loss:.3g} is more than "
                      f"{EXPLODING:g} x the first epoch's {first:.3g}; the run is diverging "
                      "(lower --lr0, check the data)", RuntimeWarning, stacklevel=2)


def check_weights_finite(run: Run, epoch: int) -> None:
    """Never save NaN/inf weights as a checkpoint (they would look like a finished run)."""
    models = [run.state.model] + ([run.state.ema.module] if run.state.ema else [])
    flags = [torch.isfinite(p).all() for m in models for p in m.parameters()]
    if flags and not bool(torch.stack(flags).all()):
        kept = (f"the last good checkpoint is kept at {run.last}" if run.last.is_file()
                else "no checkpoint was written")
        raise NonFiniteLossError(f"the weights became non-finite in epoch {epoch + 1}; "
                                 f"training stopped and they were not saved; {kept}. Try a "
                                 "lower --lr0 or amp='off'")


def finish_run(run: Run) -> History:
    state, history = run.state, run.state.history
    history.model, history.ema = state.model, state.ema.module if state.ema else None
    if run.plan.dist_info.main:
        history.last, history.best = run.last, run.best if run.best.exists() else None
        if run.cfg.plots and history:
            save_plots(run)
        if run.writer is not None:
            run.writer.close()
        if run.cfg.verbose:
            print(f"done: {run.cfg.epochs} epochs, best fitness {state.best_fitness:.4f}; "
                  f"results in {run.save_dir}")
        run_callbacks(run.callbacks, "on_train_end", history)
    return history

def save_plots(run: Run) -> None:
    """Rank 0, at the end: the run's figures (:func:`yolov9lite.report.plots.save_run_plots`).
    ``results.png``; ``labels.jpg`` from the training labels (the loader's scan, with the class
    names and the number of classes present); ``train_batch0..2.jpg`` from the training loader as it is at the end (mosaic
    closed for the last ``close_mosaic`` epochs); the PR/F1/P/R curves and confusion matrices
    from the final validation's detections (kept by :func:`yolov9lite.training.engine.validate`, no
    second pass); also as TensorBoard images when TensorBoard logs."""
    found = run.detections or {}
    dataset = run.train_loader.dataset  # labels.jpg shows the labels the model trains on
    train_gt = dataset_to_coco(dataset) if isinstance(dataset, DetectionDataset) else None
    save_run_plots(run.save_dir, run.names, gt=found.get("gt_dict"), dets=found.get("records"),
                   cat_ids=found.get("cat_ids") or getattr(dataset, "category_ids", None),
                   train_gt=train_gt, train_loader=run.train_loader,
                   history=run.state.history, tb_writer=run.writer, step=run.cfg.epochs)
