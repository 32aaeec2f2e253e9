"""`DetectionDataset`: records + augmentation recipe -> (CHW RGB uint8 image, labels, meta).

Training (official ``utils/dataloaders.py``, ``LoadImagesAndLabels``): mosaic (+copy-paste,
affine crop), MixUp, the Albumentations step, HSV, flips; after close-mosaic, letterbox + affine,
then the same steps from the Albumentations step on. Validation (official ``val.py``): longest
side to `imgsz` with INTER_AREA when shrinking, letterbox with `scaleup=False` into rectangular
batch shapes `ceil(shape * imgsz / 32 + pad) * 32`, images sorted by aspect ratio so a batch
wastes little.

Randomness comes from `self.rng` (a numpy Generator). The training loader's `EpochSampler`
passes a seed with every index, and the sample's generator is seeded from it, so a training
batch is a function of (seed, epoch, index) only: the same with any number of workers,
persistent or restarted, and after a resume. The mosaic switch lives in shared memory, so
`set_mosaic(False)` reaches persistent worker processes too (batches already prefetched keep
the old setting).

With `build_dataset(..., cache_images=True)` the decoded, resized images come from the image
cache (imagecache.py), which stores exactly what :func:`load_resized` returns.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os

import cv2
import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps

from . import augment as A
from .checks import header_size
from .instances import Instances, cxcywh_to_xyxy, resample_segments, xyxy_to_cxcywh
from .records import LOGGER, ImageRecord

MAX_RETRIES = 10  # how many other images to try when one fails to decode mid-epoch


_WITHIN_BOUND: set[tuple] = set()  # files (path, inode, size, mtime) found within the bound


def read_image_bgr(path: str, reduce: int = 1) -> np.ndarray:
    """Decode to HxWx3 uint8 BGR; EXIF orientation applied, gray/RGBA/16-bit converted.

    `reduce` in {1, 2, 4, 8} lets libjpeg decode at 1/reduce size directly (much cheaper than
    decoding in full and resizing). Falls back to PIL for files OpenCV refuses, e.g. JPEGs cut
    short, whose missing part PIL fills in.
    """
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    st = os.stat(path)  # the pixel bound, from the header: no decoder ever sees a bomb
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _WITHIN_BOUND:  # the header read costs ~0.1 ms: once per file version
        header_size(path)
        _WITHIN_BOUND.add(key)
    image = cv2.imread(path, flag)
    if image is not None:
        return image
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # only this fallback path ever needs it
    with Image.open(path) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1])


def load_resized(record: ImageRecord, imgsz: int, training: bool) -> np.ndarray:
    """An image with its longest side resized to `imgsz`, BGR (official ``load_image``).

    Training may enlarge, and decodes big JPEGs at 1/2, 1/4, 1/8 size while that is still
    >= imgsz; evaluation shrinks with INTER_AREA (it averages instead of aliasing). The image
    cache (imagecache.py) stores exactly this function's output."""
    h0, w0 = record.shape
    reduce = 1
    if training:
        while reduce < 8 and max(h0, w0) / (reduce * 2) >= imgsz:
            reduce *= 2
    image = read_image_bgr(record.path, reduce)
    image, _ = A.resize_longest(image, imgsz, area_when_shrinking=not training)
    return image


def rect_batch_shapes(shapes_hw: np.ndarray, batch_size: int, imgsz: int, stride: int = 32,
                      pad: float = 0.5) -> np.ndarray:
    """Per-batch (h, w) for images already sorted by aspect ratio h/w (official
    ``utils/dataloaders.py``, ``rect=True``).

    A batch of wide images gets shape (max_ratio, 1) * imgsz, of tall ones (1, 1/min_ratio),
    mixed ones square; then ceil(shape * imgsz / stride + pad) * stride.
    """
    aspect = shapes_hw[:, 0] / shapes_hw[:, 1]
    n_batches = int(np.ceil(len(aspect) / batch_size))
    shapes = np.ones((n_batches, 2))
    for b in range(n_batches):  # a loop over batches, not boxes
        ar = aspect[b * batch_size:(b + 1) * batch_size]
        if ar.max() < 1:
            shapes[b] = [ar.max(), 1]
        elif ar.min() > 1:
            shapes[b] = [1, 1 / ar.min()]
    return (np.ceil(shapes * imgsz / stride + pad) * stride).astype(int)


class DetectionDataset(torch.utils.data.Dataset):
    """A detection split with the YOLOv9 recipe. Items are (image, labels, meta):

    - image: uint8 tensor (3, H, W), RGB;
    - labels: float tensor (n, 5) `[class, cx, cy, w, h]` normalised to (H, W);
    - meta: dict with `path`, `image_id`, `orig_shape` (h0, w0), `ratio_pad`
      ((gain_h, gain_w), (pad_w, pad_h)) mapping boxes back: x0 = (x - pad_w) / gain_w.
    """

    def __init__(self, records: list[ImageRecord], names: list[str], imgsz: int = 640,
                 augment: bool = False, hyp=None, rect: bool = False, batch_size: int = 16,
                 pad: float = 0.0, stride: int = 32, seed: int = 0, name: str = "dataset"):
        self.names = list(names)
        self.nc = len(self.names)
        self.imgsz = imgsz
        self.augment = augment
        self.hyp = A.Hyp.from_any(hyp)
        self.rect = rect
        self.rng = np.random.default_rng(seed)
        self.failures = 0  # images that failed to decode during iteration
        self.has_segments = any(r.has_segments for r in records)
        use_mosaic = augment and not rect and self.hyp.mosaic > 0
        self._mosaic = multiprocessing.RawValue(ctypes.c_bool, use_mosaic)
        if augment and self.hyp.copy_paste > 0 and not self.has_segments:
            LOGGER.warning("%s: copy_paste=%g skipped: the dataset has no polygon segments",
                           name, self.hyp.copy_paste)
        if rect:  # sort by aspect ratio so each batch holds similar shapes
            shapes = np.array([r.shape for r in records], dtype=np.float64)
            order = np.argsort(shapes[:, 0] / shapes[:, 1], kind="stable")
            records = [records[i] for i in order]
            shapes = shapes[order]
            self.batch_shapes = rect_batch_shapes(shapes, batch_size, imgsz, stride, pad)
            self.batch_index = np.arange(len(records)) // batch_size
        self.records = records
        self.image_cache = None  # an imagecache.ImageCache of self.records, or None

    # -- close-mosaic switch -------------------------------------------------------------------

    @property
    def mosaic(self) -> bool:
        return bool(self._mosaic.value)

    def set_mosaic(self, enabled: bool) -> None:
        """Turn mosaic (and with it MixUp and copy-paste) on or off, in every worker process."""
        self._mosaic.value = bool(enabled) and self.augment and not self.rect

    def __len__(self) -> int:
        return len(self.records)

    # -- loading --------------------------------------------------------------------------------

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Image i with its longest side resized to imgsz (:func:`load_resized`), from the
        image cache when one is attached (then a read-only view into it: copy before drawing
        on it). Returns (BGR image, original (h0, w0))."""
        rec = self.records[i]
        image = self.image_cache.get(i) if self.image_cache is not None else None
        if image is None:
            image = load_resized(rec, self.imgsz, training=self.augment)
        return image, rec.shape

    def load_instances(self, i: int, width: float, height: float, pad=(0.0, 0.0),
                       with_segments: bool = False) -> Instances:
        """Labels of image i in pixels of an image resized to (width, height) and shifted by pad."""
        rec = self.records[i]
        scale = np.array([width, height, width, height], np.float32)
        shift = np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)
        boxes = cxcywh_to_xyxy(rec.boxes.astype(np.float32)) * scale + shift
        segments = None
        if with_segments and rec.has_segments:
            segments = resample_segments(rec.segments) * scale[:2] + shift[:2]
        elif with_segments and len(rec.cls) == 0:
            segments = Instances.empty(with_segments=True).segments
        return Instances(rec.cls.copy(), boxes, segments)

    def load_mosaic(self, i: int) -> tuple[np.ndarray, Instances]:
        """Mosaic of image i and 3 random others, copy-paste, then the affine crop to imgsz."""
        indices = np.concatenate([[i], self.rng.integers(0, len(self), 3)])
        self.rng.shuffle(indices)
        images, labels = [], []
        for j in indices:
            image, _ = self.load_image(int(j))
            h, w = image.shape[:2]
            images.append(image)
            labels.append(self.load_instances(int(j), w, h, with_segments=self.has_segments))
        canvas, inst = A.mosaic4(images, labels, self.imgsz, self.rng)
        canvas, inst = A.copy_paste(canvas, inst, self.hyp.copy_paste, self.rng, inplace=True)
        return A.random_affine(canvas, inst, self.hyp, self.rng, out_hw=(self.imgsz, self.imgsz))

    def load_letterboxed(self, i: int):
        """Image i letterboxed to its batch shape (rect) or imgsz^2; returns image, labels and
        ratio_pad ((gain_h, gain_w), (pad_w, pad_h)) relative to the original image."""
        image, (h0, w0) = self.load_image(i)
        h1, w1 = image.shape[:2]
        shape = tuple(self.batch_shapes[self.batch_index[i]]) if self.rect else (self.imgsz,) * 2
        image, (gh, gw), pad = A.letterbox(image, shape, scaleup=self.augment)
        gain_h, gain_w = gh * h1 / h0, gw * w1 / w0  # both resizes, exact per axis
        inst = self.load_instances(i, gain_w * w0, gain_h * h0, pad,
                                   with_segments=self.augment and self.has_segments)
        return image, inst, ((gain_h, gain_w), pad)

    # -- items ----------------------------------------------------------------------------------

    def __getitem__(self, key):
        """One sample; a file that became unreadable since the scan never stops the epoch.

        `key` is an index, or ``(index, seed)`` from `EpochSampler`: then this sample's
        augmentation draws from a generator seeded by `seed` alone (``(seed, epoch, index)``),
        whichever worker builds it.

        Training uses another random image instead (the batch stays full). Evaluation must not:
        a substitute would carry its own image id, so one image would be scored twice and the lost
        one not at all. It returns a grey placeholder with the lost image's own id and no labels
        instead, so that image simply counts as missed.
        """
        if isinstance(key, tuple):
            i, seed = key
            self.rng = np.random.default_rng(seed)
        else:
            i = key
        for attempt in range(MAX_RETRIES + 1):
            try:
                return self.get_item(i)
            except Exception as e:
                self.failures += 1
                if not self.augment:
                    LOGGER.warning("unreadable image: %s: %s; evaluated as a blank image",
                                   self.records[i].path, e)
                    return self.placeholder(i)
                LOGGER.warning("unreadable image: %s: %s; using another image instead",
                               self.records[i].path, e)
                if attempt == MAX_RETRIES:
                    raise
                i = int(self.rng.integers(0, len(self)))

    def placeholder(self, i: int):
        """A grey (114) image of item i's batch shape, no labels, item i's own meta."""
        rec = self.records[i]
        h, w = tuple(self.batch_shapes[self.batch_index[i]]) if self.rect else (self.imgsz,) * 2
        image = torch.full((3, int(h), int(w)), 114, dtype=torch.uint8)
        meta = {"path": rec.path, "image_id": rec.image_id, "orig_shape": rec.shape,
                "ratio_pad": ((1.0, 1.0), (0.0, 0.0)), "shape": (int(h), int(w))}
        return image, torch.zeros((0, 5)), meta

    def get_item(self, i: int):
        rec = self.records[i]
        if self.mosaic:
            image, inst = self.load_mosaic(i)
            if self.rng.random() < self.hyp.mixup:
                image2, inst2 = self.load_mosaic(int(self.rng.integers(0, len(self))))
                image, inst = A.mixup(image, inst, image2, inst2, self.rng)
            ratio_pad = ((1.0, 1.0), (0.0, 0.0))  # a mosaic has no single original image
        else:
            image, inst, ratio_pad = self.load_letterboxed(i)
            if self.augment:
                image, inst = A.random_affine(image, inst, self.hyp, self.rng)
        if self.augment:
            # the official Albumentations step, where the official __getitem__ calls it. Its
            # draws come from a child generator (spawning leaves this one's stream as it was), so
            # switching it on or off changes only the ~4 % of samples it touches, nothing else.
            image = A.albumentations_step(image, self.rng.spawn(1)[0], self.hyp)
            image = A.augment_hsv(image, self.rng, self.hyp.hsv_h, self.hyp.hsv_s, self.hyp.hsv_v)
            if self.rng.random() < self.hyp.flipud:
                image, inst = A.flip_ud(image, inst)
            if self.rng.random() < self.hyp.fliplr:
                image, inst = A.flip_lr(image, inst)
        h, w = image.shape[:2]
        labels = np.zeros((len(inst), 5), np.float32)
        labels[:, 0] = inst.cls
        labels[:, 1:] = xyxy_to_cxcywh(inst.boxes) / np.array([w, h, w, h], np.float32)
        # BGR HWC -> RGB CHW in one strided copy (0.5 ms at 640; cv2.split + np.stack: 1.3 ms)
        chw_rgb = np.ascontiguousarray(image.transpose(2, 0, 1)[::-1])
        meta = {"path": rec.path, "image_id": rec.image_id, "orig_shape": rec.shape,
                "ratio_pad": ratio_pad, "shape": (h, w)}
        return torch.from_numpy(chw_rgb), torch.from_numpy(labels), meta


def collate(batch):
    """Stack images; targets become (N, 6) `[image_index, class, cx, cy, w, h]` (official layout)."""
    images, labels, metas = zip(*batch)
    targets = [torch.cat([torch.full((len(lab), 1), float(k)), lab], 1)
               for k, lab in enumerate(labels)]
    return torch.stack(images), torch.cat(targets), list(metas)
