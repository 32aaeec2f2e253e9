"""Data pipeline of yolov9lite: datasets, the YOLOv9 augmentation recipe, loaders.

- `load_data_config(data)`: dataset YAML / "synthetic" -> normalised config (config.py)
- `make_synthetic(root, ...)`: offline COCO-format shapes dataset (synthetic.py)
- `build_dataloader(cfg, split, ...)`: (images uint8, targets [i, c, cx, cy, w, h], metas)
- `EpochSampler`: order and per-sample seeds from (seed, epoch, index) (sampling.py)
- `DetectionDataset`, `collate` (dataset.py); `ImageRecord`, `ScanReport` (records.py)
- scanning: YOLO layout and `load_records` (labels.py), COCO JSON (coco_json.py), image and
  label checks (checks.py), the safe .npz label cache (cache.py)
- the image cache: decoded, resized images in one shared memory map (imagecache.py)
- augmentations, one function each: `mosaic4`, `copy_paste`, `random_affine`, `mixup`,
  `albumentations_step` (the official Albumentations step in OpenCV), `augment_hsv`, `flip_lr`,
  `flip_ud`, `letterbox` (augment.py); `HYP_SCRATCH_HIGH`
- `dataset_to_coco(cfg_or_dataset, split)`: ground truth as a COCO dict (coco_export.py)
- `draw_batch(images, targets, names)`: matplotlib figure of a batch (draw.py)
"""

import logging
import sys

from .augment import (
    HYP_SCRATCH_HIGH,
    Hyp,
    albumentations_step,
    augment_hsv,
    box_candidates,
    copy_paste,
    flip_lr,
    flip_ud,
    letterbox,
    mixup,
    mosaic4,
    random_affine,
    resize_longest,
)
from .coco_export import dataset_to_coco
from .config import DataConfigError, load_data_config
from .dataset import DetectionDataset, collate, read_image_bgr, rect_batch_shapes
from .draw import draw_batch
from .instances import Instances
from .loader import build_dataloader, build_dataset
from .records import ImageRecord, ScanReport
from .sampling import EpochSampler
from .synthetic import SYNTHETIC_NAMES, make_synthetic


class _SplitStreamHandler(logging.StreamHandler):
    """INFO (the one-line scan summary) to stdout, warnings to stderr. Jupyter shows stderr as
    pink warning blocks, which a routine summary is not; the stream is looked up per record, so
    notebook and pytest capture see it."""

    def emit(self, record: logging.LogRecord) -> None:
        # assigned, not setStream(): that flushes the previous stream, which a notebook or
        # pytest may already have closed
        self.stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        super().emit(record)


# Show scan warnings and the summary line even when the user configured no logging.
_logger = logging.getLogger("yolov9lite.data")
if not _logger.handlers:
    _handler = _SplitStreamHandler()
    _handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(logging.INFO)

__all__ = [
    "HYP_SCRATCH_HIGH",
    "SYNTHETIC_NAMES",
    "DataConfigError",
    "DetectionDataset",
    "EpochSampler",
    "Hyp",
    "ImageRecord",
    "Instances",
    "ScanReport",
    "albumentations_step",
    "augment_hsv",
    "box_candidates",
    "build_dataloader",
    "build_dataset",
    "collate",
    "copy_paste",
    "dataset_to_coco",
    "draw_batch",
    "flip_lr",
    "flip_ud",
    "letterbox",
    "load_data_config",
    "make_synthetic",
    "mixup",
    "mosaic4",
    "random_affine",
    "read_image_bgr",
    "rect_batch_shapes",
    "resize_longest",
]
