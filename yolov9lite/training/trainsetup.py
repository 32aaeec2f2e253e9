"""Training set-up: what a run needs before its first epoch, except the run folder.

* :class:`Run` -- one training run: settings, the engine's state and plan, the data, outputs;
* :func:`check_inputs` -- data config and model, with errors that name the problem (on resume,
  first :func:`check_resumed_model`);
* :func:`build_loaders` -- the training loader (one shard per rank) and, on rank 0, the
  validation loader with its COCO ground truth;
* :func:`set_loader_epoch` -- data order and augmentation as a function of ``(seed, epoch)``
  only, which is what makes a resume exact;
* :func:`build_state` -- the model on its device (SyncBatchNorm, DDP, compile), the optimizer
  (:func:`yolov9lite.training.optim.build_optimizer`), the AMP scaler and the EMA.

:func:`yolov9lite.training.trainer.prepare_run` puts them together; the run folder is
:mod:`yolov9lite.training.runfolder`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import DetectionDataset, build_dataloader, dataset_to_coco, load_data_config
from ..nn.models import BASELINES, PRESETS, build_model
from ..utils.accel import prepare_model, setup_backends
from ..utils.runtime import DistInfo
from ..utils.safe_pickle import CheckpointError
from ..weights.checkpoint import check_model_fits
from .config import LOSS_GAINS, TrainConfig, TrainError
from .engine import EpochPlan, State
from .optim import ModelEMA, build_optimizer, scaled_weight_decay

__all__ = ["Run", "augmentation_seed", "build_loaders", "build_state", "check_inputs",
           "check_resumed_model", "set_loader_epoch"]


@dataclass
class Run:
    """One training run: the settings, the engine's state and plan, the data, the outputs."""

    cfg: TrainConfig
    state: State
    plan: EpochPlan
    data_cfg: dict
    names: list[str]
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    gt: object  # the validation ground truth (COCO json path or dict), rank 0 only
    save_dir: Path | None = None
    writer: object = None  # TensorBoard SummaryWriter
    callbacks: dict | None = None
    resumed: bool = False
    lock: Path | None = None  # the run folder's train.lock while this process trains in it
    detections: dict | None = None  # the final validation's records, for the run's plots
    table: dict | None = None  # the last validation's metrics table (rows, all row)

    @property
    def last(self) -> Path | None:
        return self.save_dir / "weights" / "last.pt" if self.save_dir else None

    @property
    def best(self) -> Path | None:
        return self.save_dir / "weights" / "best.pt" if self.save_dir else None


def check_inputs(cfg: TrainConfig, dist_info: DistInfo,
                 checkpoint: dict | None = None) -> tuple[dict, nn.Module]:
    """Model, data and batch checks before anything heavy: errors name the problem. With a
    resume ``checkpoint``, the model is first checked to be the one it holds
    (:func:`check_resumed_model`)."""
    try:
        data_cfg = load_data_config(cfg.data)  # a YAML path, "synthetic" or a dict
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"data {cfg.data!r}: {err}") from err
    if checkpoint is not None:
        check_resumed_model(cfg, data_cfg.get("nc"), checkpoint)
    try:
        model = build_model(cfg.model, num_classes=int(data_cfg["nc"]), **(cfg.model_kwargs or {}))
    except ValueError as err:
        raise TrainError(f"model: {err}") from err
    if cfg.batch_size % dist_info.world_size:  # ranges: TrainConfig.validate()
        raise TrainError(f"batch size {cfg.batch_size} must be a positive multiple of the number "
                         f"of processes ({dist_info.world_size}); it is the total batch, split "
                         "over the ranks")
    return data_cfg, model


def check_resumed_model(cfg: TrainConfig, nc, checkpoint: dict) -> None:
    """A resume builds its model from the checkpoint's saved settings, which nothing bounds
    (its ``model_kwargs`` could ask for ``depth_elan=10**6``, its data for a million classes).
    So before anything is built, the model they describe must be the one whose weights the file
    holds: that one is bounded and matched against the stored tensors on a shape-only model by
    :func:`yolov9lite.weights.checkpoint.check_model_fits`. A small edited file then cannot make us
    allocate a big model."""
    try:
        stored = check_model_fits(checkpoint)
    except CheckpointError as err:
        raise TrainError(f"resume checkpoint {cfg.resume}: {err}") from err
    key = str(cfg.model).lower()
    preset = PRESETS.get(key)
    try:
        wanted = preset.replace(**(cfg.model_kwargs or {})) if preset is not None else None
    except TypeError:  # an unknown model option
        wanted = None
    if key in BASELINES and not cfg.model_kwargs:  # a baseline is stored by its name
        wanted = key
    if wanted != stored or nc != checkpoint.get("nc"):
        raise TrainError(f"resume checkpoint {cfg.resume}: its saved settings (model "
                         f"{cfg.model!r:.40}, model_kwargs {cfg.model_kwargs!r:.80}, {nc!r:.20} "
                         "classes) do not describe the model whose weights it holds; the file "
                         "was edited or damaged; start a new run")


def build_loaders(cfg: TrainConfig, data_cfg: dict, dist_info: DistInfo):
    """Training loader (augmented, shuffled; one shard per rank) and, on rank 0, the
    validation loader (rectangular letterboxed batches) with its COCO ground truth.

    Training workers persist across epochs: the per-epoch seeds travel with the indices
    (`data.EpochSampler`), so a resume is exact with any number of workers and no epoch pays
    for starting them again.
    """
    hyp = {k: v for k, v in (cfg.hyp or {}).items() if k not in LOSS_GAINS} or None
    try:
        train_loader = build_dataloader(
            data_cfg, "train", cfg.imgsz, cfg.batch_size // dist_info.world_size, cfg.workers,
            augment=True, rect=False, shuffle=True, seed=augmentation_seed(cfg, dist_info),
            hyp=hyp, persistent_workers=True, rank=dist_info.rank,
            world_size=dist_info.world_size, shard_seed=cfg.seed, cache_images=cfg.cache_images)
        val_loader = gt = None
        if dist_info.main:
            val_loader = build_dataloader(data_cfg, "val", cfg.imgsz, cfg.batch_size * 2,
                                          cfg.workers, augment=False, rect=True, shuffle=False,
                                          seed=cfg.seed, cache_images=cfg.cache_images)
            # the loader's dataset gives the ground truth: no second scan (nor its summary and
            # notes printed twice)
            scanned = val_loader.dataset
            gt = data_cfg["val_json"] if data_cfg.get("val_json") else dataset_to_coco(
                scanned if isinstance(scanned, DetectionDataset) else data_cfg, "val")
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"data {cfg.data!r}: {err}") from err
    n_train = len(train_loader.dataset)
    if n_train < cfg.batch_size:
        raise TrainError(f"batch size {cfg.batch_size} is larger than the training set "
                         f"({n_train} images in {cfg.data!r}); use --batch {max(n_train, 1)} "
                         "or less")
    return train_loader, val_loader, gt


def augmentation_seed(cfg: TrainConfig, dist_info: DistInfo) -> int:
    return cfg.seed + 1 + dist_info.rank  # official init_seeds(seed + 1 + RANK): own augmentation


def set_loader_epoch(loader, epoch: int) -> None:
    """Make this epoch's data order and augmentation a function of (seed, epoch) only, so a
    resumed run sees exactly the batches the uninterrupted run would have seen. The seeds
    were given to the loader's `EpochSampler` when it was built; call this before `iter`."""
    loader.sampler.set_epoch(epoch)


def build_state(cfg: TrainConfig, model: nn.Module, device: torch.device, dist_info: DistInfo,
                amp_dtype: torch.dtype | None) -> State:
    """Model on the device (SyncBatchNorm, DDP, compile as asked), optimizer, scaler, EMA."""
    setup_backends(device, cfg.deterministic)  # cuDNN autotuning, TF32 (CUDA only)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if dist_info.ddp and cfg.sync_bn:
        if device.type == "cuda":  # official for 8-GPU runs: BN statistics over the global batch
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            warnings.warn("sync_bn ignored: SyncBatchNorm needs CUDA", RuntimeWarning, stacklevel=2)
    sched = cfg.schedule
    weight_decay = scaled_weight_decay(sched.weight_decay, cfg.batch_size, sched.nominal_batch)
    optimizer = build_optimizer(model, sched.lr0, sched.momentum, weight_decay)
    net = model
    if dist_info.ddp:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    net = prepare_model(net, compile=cfg.compile)
    return State(model=model, net=net, optimizer=optimizer,
                 scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
                 ema=ModelEMA(model) if cfg.ema and dist_info.main else None)
