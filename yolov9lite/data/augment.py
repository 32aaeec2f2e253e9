"""The YOLOv9 training augmentations (official `utils/augmentations.py`,
`data/hyps/hyp.scratch-high.yaml`), one plain function each.

Order for a training sample, as in the official `train_dual.py` pipeline:

    mosaic4 (p=1, 2s x 2s canvas, random centre in [s/2, 3s/2]^2)
      -> copy_paste (p=0.3, YOLOv5 variant: mirrored instances pasted where IoA < 0.30)
      -> random_affine (scale U(1-0.9, 1+0.9), translate +-0.1, crop back to s x s)
      -> box filter (w, h > 2 px, area ratio > 0.1, aspect < 100)
    mixup (p=0.15, with a second mosaic, r ~ Beta(32, 32))
    albumentations_step (blur, median blur, to-gray, CLAHE; p=0.01 each)
    augment_hsv (gains 0.015, 0.7, 0.4) -> flip_lr (p=0.5)

Without mosaic (close-mosaic epochs, rect or validation): `letterbox`, then (when training)
the same `random_affine` with no border, then the same steps from `albumentations_step` on.
Every function takes an explicit `rng: np.random.Generator`, so a notebook can show one step on
one image, and a seeded run is reproducible. Images are HxWx3 uint8 BGR (OpenCV order) until the
dataset emits CHW RGB.

`albumentations_step` is the official ``Albumentations`` class of ``utils/augmentations.py``
(which the official requirements install the albumentations package for) written with OpenCV
calls: the same four transforms with p > 0, in the same order, with the same parameter ranges,
and the same pixels for the same parameters (tests/test_albumentations_step.py compares both
with albumentations 1.3.1). Its other transforms have p=0 there and are left out. Its
probabilities are the hyperparameters ``blur``, ``median_blur``, ``to_gray`` and ``clahe``
(0 turns a transform off); the official code hard-codes them and has no such keys.
Which official runs have the step depends on the albumentations they got: PyPI's ``yolo9``
asks for >=1.0.3,<1.4 and applies it; the official repository's requirements.txt asks for
>=1.0.3 only, and with albumentations 2.0.8 (tried) the class's constructor fails (its
RandomResizedCrop no longer takes height/width), logs the error and skips the step for the
whole run, as it does when the package is missing. Our default is the first; setting the four
probabilities to 0 gives the second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from .instances import Instances, concat_instances, segments_to_boxes

PAD_VALUE = 114  # grey used for every border, as in the official code


@dataclass(frozen=True)
class Hyp:
    """Augmentation hyperparameters; defaults are the official hyp.scratch-high.yaml."""

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.9
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.15
    copy_paste: float = 0.3
    # the official Albumentations class (utils/augmentations.py), not in the hyp yaml there
    blur: float = 0.01
    median_blur: float = 0.01
    to_gray: float = 0.01
    clahe: float = 0.01

    @staticmethod
    def from_any(hyp) -> Hyp:
        """Build from None / Hyp / dict (extra keys such as lr0 or box are ignored)."""
        if hyp is None:
            return Hyp()
        if isinstance(hyp, Hyp):
            return hyp
        names = {f.name for f in fields(Hyp)}
        return Hyp(**{k: float(v) for k, v in dict(hyp).items() if k in names})


HYP_SCRATCH_HIGH = Hyp()


# ---------------------------------------------------------------------------------------------
# resizing


def resize_longest(image: np.ndarray, size: int,
                   area_when_shrinking: bool = True) -> tuple[np.ndarray, float]:
    """Resize so the longest side is `size`; returns (image, gain).

    INTER_AREA when shrinking for validation (official `utils/dataloaders.py`) because it
    averages instead of aliasing; bilinear otherwise (training, or enlarging). The new size is
    truncated, ``int(w * gain)``, as the official ``load_image`` does (rounding made 10 of the
    256 coco128 images 1 px larger than the official loader); at least 1 px (the official code
    would pass 0 to ``cv2.resize`` and fail).
    """
    h, w = image.shape[:2]
    gain = size / max(h, w)
    if gain == 1:
        return image, 1.0
    interp = cv2.INTER_AREA if (gain < 1 and area_when_shrinking) else cv2.INTER_LINEAR
    new_wh = (max(1, int(w * gain)), max(1, int(h * gain)))
    return cv2.resize(image, new_wh, interpolation=interp), gain


def letterbox(image: np.ndarray, new_shape: tuple[int, int], scaleup: bool = True,
              color: int = PAD_VALUE
              ) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Fit `image` inside `new_shape` (h, w) keeping aspect ratio, pad the rest with grey.

    Returns (image, (gain_h, gain_w), (pad_w, pad_h)): pad is the left/top padding and the
    gains are exact per axis (new size / old size, after rounding to whole pixels), so a point
    maps back to the input as x_in = (x - pad_w) / gain_w. `scaleup=False` (validation, official
    `val.py`) never enlarges, which keeps small images sharp and matches the official mAP protocol.
    """
    h, w = image.shape[:2]
    gain = min(new_shape[0] / h, new_shape[1] / w)
    if not scaleup:
        gain = min(gain, 1.0)
    new_w, new_h = round(w * gain), round(h * gain)
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (new_shape[1] - new_w) / 2, (new_shape[0] - new_h) / 2
    # the official rounding: split an odd remainder as evenly as possible
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                               value=(color, color, color))
    return image, (new_h / h, new_w / w), (float(left), float(top))


# ---------------------------------------------------------------------------------------------
# mosaic, copy-paste, affine, mixup


def mosaic4(images: list[np.ndarray], labels: list[Instances], size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, Instances]:
    """Place 4 images around a random centre of a (2*size)^2 grey canvas.

    Each image is already resized so its longest side is `size`. Image 0 goes top-left of the
    centre, 1 top-right, 2 bottom-left, 3 bottom-right; parts falling off the canvas are cut.
    The centre is U(size/2, 3*size/2) in x and y (official `load_mosaic`: [320, 960] for 640).
    """
    s = size
    canvas = np.empty((2 * s, 2 * s, 3), np.uint8)  # grey only where no tile lands, below
    yc, xc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, 2))  # official order: y first
    placed = []
    for k, (im, inst) in enumerate(zip(images, labels)):
        h, w = im.shape[:2]
        # (x0, y0, x1, y1) of the tile on the canvas, before clipping
        x0 = xc - w if k in (0, 2) else xc
        y0 = yc - h if k in (0, 1) else yc
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + w, 2 * s), min(y0 + h, 2 * s)
        canvas[cy0:cy1, cx0:cx1] = im[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        _pad_around(canvas, (cx0, cy0, cx1, cy1), (0, 0, xc, yc) if k == 0 else
                    (xc, 0, 2 * s, yc) if k == 1 else (0, yc, xc, 2 * s) if k == 2 else
                    (xc, yc, 2 * s, 2 * s))
        placed.append(inst.scale_shift(1, 1, x0, y0))
    merged = concat_instances(placed).clip(2 * s, 2 * s)
    return canvas, merged


def _pad_around(canvas: np.ndarray, tile: tuple, quadrant: tuple) -> None:
    """Fill the part of `quadrant` that `tile` (inside it, both x0, y0, x1, y1) leaves uncovered
    with PAD_VALUE: the bands above/below the tile, then left/right of it (empty slices are
    no-ops). Same canvas as filling all of it first, without writing the tiles' pixels twice."""
    tx0, ty0, tx1, ty1 = tile
    qx0, qy0, qx1, qy1 = quadrant
    canvas[qy0:ty0, qx0:qx1] = PAD_VALUE
    canvas[ty1:qy1, qx0:qx1] = PAD_VALUE
    canvas[ty0:ty1, qx0:tx0] = PAD_VALUE
    canvas[ty0:ty1, tx1:qx1] = PAD_VALUE


def box_ioa(boxes1: np.ndarray, boxes2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Intersection over the area of boxes2, (n, 4) x (m, 4) -> (n, m), xyxy."""
    tl = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    br = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (br - tl).clip(0).prod(2)
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return inter / (area2[None, :] + eps)


def copy_paste(image: np.ndarray, inst: Instances, p: float,
               rng: np.random.Generator, inplace: bool = False) -> tuple[np.ndarray, Instances]:
    """YOLOv5-style copy-paste (Ghiasi et al. 2021, simplified; official `utils/augmentations.py`).

    Every object is mirrored left-right; those whose mirrored box covers less than 30% of every
    existing box (IoA < 0.30, so objects are not buried) are the candidates, and a fraction `p`
    of them, drawn at random, is pasted onto the same image. As in the official code, the mask
    is the original polygons with their vertices truncated to whole pixels, flipped. Needs
    polygon segments; without them this is a no-op. `inplace=True` pastes into `image` itself
    (the mosaic's own canvas: saves copying 2s x 2s pixels).
    """
    n = len(inst)
    if p <= 0 or n == 0 or inst.segments is None:
        return image, inst
    h, w = image.shape[:2]
    mirrored = inst.boxes.copy()
    mirrored[:, [0, 2]] = w - inst.boxes[:, [2, 0]]
    free = np.nonzero((box_ioa(mirrored, inst.boxes) < 0.30).all(1))[0]
    k = round(p * len(free))
    if k == 0:
        return image, inst
    chosen = rng.choice(free, k, replace=False)
    new_segs = inst.segments[chosen].copy()
    new_segs[..., 0] = w - new_segs[..., 0]
    # Work only inside the box around the chosen polygons: drawing a full-canvas mask and
    # mirroring the whole 2s x 2s mosaic would cost more than the rest of the sample.
    vertices = inst.segments[chosen].astype(np.int32)  # truncated, as the official code draws
    x0, y0 = vertices.reshape(-1, 2).min(0).clip(0)
    x1, y1 = vertices.reshape(-1, 2).max(0) + 1
    x1, y1 = min(x1, w), min(y1, h)
    out = image if inplace else image.copy()
    if x1 > x0 and y1 > y0:  # cv2.flip below copies the source first, so in place is safe
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for polygon in vertices - [x0, y0]:  # one by one: one call fills overlaps even-odd
            cv2.drawContours(mask, [polygon], -1, 255, cv2.FILLED)
        # pixel column x of the original lands in column w-1-x of the mirrored image
        cv2.copyTo(cv2.flip(image[y0:y1, x0:x1], 1), cv2.flip(mask, 1), out[y0:y1, w - x1:w - x0])
    pasted = Instances(inst.cls[chosen], mirrored[chosen], new_segs)
    return out, concat_instances([inst, pasted])


def box_candidates(before: np.ndarray, after: np.ndarray, wh_thr: float = 2,
                   ar_thr: float = 100, area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Keep boxes that stay > wh_thr px wide and high, keep > area_thr of their (scaled) area,
    and have aspect ratio < ar_thr. `before` is the pre-transform box already times the scale."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


def affine_matrix(in_hw: tuple[int, int], out_hw: tuple[int, int], hyp: Hyp,
                  rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Random 3x3 warp: centre, perspective, rotate+scale, shear, translate (in that order).

    Translation is relative to the *output* size, so with a mosaic the crop lands near the
    mosaic centre. Returns (M, scale).
    """
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -in_hw[1] / 2, -in_hw[0] / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = rng.uniform(-hyp.perspective, hyp.perspective, 2)
    angle = rng.uniform(-hyp.degrees, hyp.degrees)
    scale = rng.uniform(1 - hyp.scale, 1 + hyp.scale)
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=scale)
    shear = np.eye(3)
    shear[0, 1] = math.tan(math.radians(rng.uniform(-hyp.shear, hyp.shear)))
    shear[1, 0] = math.tan(math.radians(rng.uniform(-hyp.shear, hyp.shear)))
    trans = np.eye(3)
    trans[0, 2] = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * out_hw[1]
    trans[1, 2] = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * out_hw[0]
    return trans @ shear @ rot @ persp @ centre, scale


def random_affine(image: np.ndarray, inst: Instances, hyp: Hyp, rng: np.random.Generator,
                  out_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, Instances]:
    """Random scale/translate (rotate/shear/perspective if enabled), then the box filter.

    `out_hw` defaults to the input size; for a 2s mosaic pass (s, s) (the official
    `border=-s/2`). Boxes of objects with segments are recomputed from the warped polygon
    points inside the image, which is tighter than warping the box corners.
    """
    h_in, w_in = image.shape[:2]
    out_h, out_w = out_hw or (h_in, w_in)
    m, scale = affine_matrix((h_in, w_in), (out_h, out_w), hyp, rng)
    is_affine = hyp.perspective == 0
    border = (PAD_VALUE, PAD_VALUE, PAD_VALUE)
    if is_affine:
        image = cv2.warpAffine(image, m[:2], dsize=(out_w, out_h), borderValue=border)
    else:
        image = cv2.warpPerspective(image, m, dsize=(out_w, out_h), borderValue=border)
    if len(inst) == 0:
        return image, inst

    def warp(points: np.ndarray) -> np.ndarray:  # (..., 2) -> (..., 2)
        xy1 = np.concatenate([points, np.ones_like(points[..., :1])], -1) @ m.T.astype(np.float32)
        return xy1[..., :2] / (xy1[..., 2:3] if not is_affine else 1)

    if inst.segments is not None:
        segs = warp(inst.segments)
        new_boxes = segments_to_boxes(segs, out_w, out_h)
    else:
        segs = None
        b = inst.boxes
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1)
        wc = warp(corners)
        new_boxes = np.concatenate([wc.min(1), wc.max(1)], 1).astype(np.float32)
        new_boxes[:, 0::2] = new_boxes[:, 0::2].clip(0, out_w)
        new_boxes[:, 1::2] = new_boxes[:, 1::2].clip(0, out_h)
    # the official code relaxes the area threshold to 0.01 when boxes come from polygons
    keep = box_candidates(inst.boxes * scale, new_boxes,
                          area_thr=0.01 if segs is not None else 0.10)
    out = Instances(inst.cls[keep], new_boxes[keep], None if segs is None else segs[keep])
    return image, out


def mixup(image1: np.ndarray, inst1: Instances, image2: np.ndarray, inst2: Instances,
          rng: np.random.Generator) -> tuple[np.ndarray, Instances]:
    """Blend two equally sized images with r ~ Beta(32, 32) (so r is about 0.5); keep all labels
    (Zhang et al. 2018, applied to detection as in the official recipe)."""
    r = rng.beta(32.0, 32.0)
    # the official arithmetic, truncating to uint8 (cv2.addWeighted rounds: every pixel with a
    # fractional part >= 0.5 came out 1 higher than in the official pipeline)
    blended = (image1 * r + image2 * (1 - r)).astype(np.uint8)
    return blended, concat_instances([inst1, inst2])


# ---------------------------------------------------------------------------------------------
# photometric and flips


def augment_hsv(image: np.ndarray, rng: np.random.Generator, hgain: float = 0.015,
                sgain: float = 0.7, vgain: float = 0.4) -> np.ndarray:
    """Multiply hue, saturation and value by random gains 1 +- U(gain), via 256-entry lookup
    tables (a LUT per channel costs one pass instead of float maths per pixel)."""
    if not (hgain or sgain or vgain):
        return image
    r = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain]) + 1
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)  # OpenCV hue lives in [0, 180)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    # one 3-channel LUT call: the same bytes as split + three LUTs + merge, 15 % less time
    lut = np.stack([lut_h, lut_s, lut_v], 1).reshape(256, 1, 3)
    hsv = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_BGR2HSV), lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _flip(image: np.ndarray, inst: Instances, axis: int) -> tuple[np.ndarray, Instances]:
    """Mirror the image and its labels along x (axis 0) or y (axis 1)."""
    size = image.shape[1 - axis]  # width for a left-right flip, height for top-bottom
    lo, hi = axis, axis + 2  # x1, x2 or y1, y2 columns of the xyxy boxes
    out = inst.copy()
    out.boxes[:, [lo, hi]] = size - inst.boxes[:, [hi, lo]]
    if out.segments is not None:
        out.segments[..., axis] = size - out.segments[..., axis]
    return cv2.flip(image, 1 - axis), out  # cv2: 1 = around the vertical axis, 0 = horizontal


def flip_lr(image: np.ndarray, inst: Instances) -> tuple[np.ndarray, Instances]:
    """Mirror the image and its labels left-right."""
    return _flip(image, inst, 0)


def flip_ud(image: np.ndarray, inst: Instances) -> tuple[np.ndarray, Instances]:
    """Mirror the image and its labels top-bottom (p=0 in the recipe, kept for completeness)."""
    return _flip(image, inst, 1)


# ---------------------------------------------------------------------------------------------
# the official Albumentations step (blur, median blur, to-gray, CLAHE)

# Parameters of the official transforms (albumentations 1.3.1 defaults: the official class sets
# none of them): kernel sizes drawn uniformly from the odd sizes 3..7, the CLAHE clip limit
# uniform in [1, 4] on an 8 x 8 tile grid.
BLUR_KERNEL_SIZES = (3, 5, 7)
CLAHE_CLIP_LIMIT = (1.0, 4.0)
CLAHE_TILE_GRID = (8, 8)


def blur(image: np.ndarray, ksize: int) -> np.ndarray:
    """Mean over a ksize x ksize window (a box filter; borders reflected, OpenCV's default)."""
    return cv2.blur(image, (ksize, ksize))


def median_blur(image: np.ndarray, ksize: int) -> np.ndarray:
    """Median over a ksize x ksize window, per channel (ksize odd)."""
    return cv2.medianBlur(image, ksize)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey level copied into all three channels.

    The official pipeline hands its BGR image to a library that assumes RGB, so the luma weights
    land on the wrong channels (0.299 on blue, 0.114 on red); we follow the code, not the intent.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # RGB on purpose: see the docstring
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def clahe(image: np.ndarray, clip_limit: float,
          tile_grid: tuple[int, int] = CLAHE_TILE_GRID) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) of the lightness channel
    of CIELAB, colour (a, b) kept.

    Like :func:`to_gray`, the official pipeline converts its BGR image as if it were RGB; the
    round trip is consistent (colours come back in BGR), only the lightness mixes the channels
    with swapped weights. Followed here.
    """
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # RGB on purpose: see the docstring
    equaliser = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=tile_grid)
    lab[..., 0] = equaliser.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def albumentations_step(image: np.ndarray, rng: np.random.Generator,
                        hyp: Hyp = HYP_SCRATCH_HIGH) -> np.ndarray:
    """The official ``Albumentations`` step on a uint8 BGR image: blur, median blur, to-gray,
    CLAHE, in that order, each applied independently with its own probability (``hyp.blur``,
    ``hyp.median_blur``, ``hyp.to_gray``, ``hyp.clahe``; 0.01 each, so about 4 % of the samples
    are touched). Returns `image` itself when nothing applies.

    Labels are untouched: all four transforms act on pixels only. (The official code sends its
    labels through albumentations' box conversion and back, which changes them by float rounding
    only, about 1e-16.)
    """
    if rng.random() < hyp.blur:
        image = blur(image, int(rng.choice(BLUR_KERNEL_SIZES)))
    if rng.random() < hyp.median_blur:
        image = median_blur(image, int(rng.choice(BLUR_KERNEL_SIZES)))
    if rng.random() < hyp.to_gray:
        image = to_gray(image)
    if rng.random() < hyp.clahe:
        image = clahe(image, float(rng.uniform(*CLAHE_CLIP_LIMIT)))
    return image
