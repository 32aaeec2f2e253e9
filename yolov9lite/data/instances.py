"""Labels of one image while it moves through the augmentation pipeline.

Every augmentation in `augment.py` takes an image plus an `Instances` and returns new ones.
Boxes are absolute pixel `xyxy` (what geometric transforms want); polygon segments, when
the dataset has them, are resampled to a fixed number of points per object so that the whole
set is one `(n, points, 2)` array: mosaic shifts, affine warps and flips then act on all
objects at once, with no Python loop over boxes (the official ``utils/dataloaders.py`` resamples
every segment to 1000 points before `random_perspective` for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENT_POINTS = 1000  # points per polygon after resampling, as in the official pipeline


@dataclass
class Instances:
    """Objects of one image: class ids (n,), pixel xyxy boxes (n, 4), optional segments (n, P, 2)."""

    cls: np.ndarray
    boxes: np.ndarray
    segments: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cls)

    @staticmethod
    def empty(with_segments: bool = False) -> Instances:
        segs = np.zeros((0, SEGMENT_POINTS, 2), np.float32) if with_segments else None
        return Instances(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), segs)

    def copy(self) -> Instances:
        segs = None if self.segments is None else self.segments.copy()
        return Instances(self.cls.copy(), self.boxes.copy(), segs)

    def scale_shift(self, sx: float, sy: float, dx: float, dy: float) -> Instances:
        """x' = x * sx + dx, y' = y * sy + dy for boxes and segments (a new object)."""
        gain = np.array([sx, sy, sx, sy], np.float32)
        shift = np.array([dx, dy, dx, dy], np.float32)
        segs = None
        if self.segments is not None:
            segs = self.segments * np.array([sx, sy], np.float32) + np.array([dx, dy], np.float32)
        return Instances(self.cls.copy(), self.boxes * gain + shift, segs)

    def clip(self, width: float, height: float) -> Instances:
        """Clip boxes (and segment points) to the image, in place; returns self."""
        np.clip(self.boxes[:, 0::2], 0, width, out=self.boxes[:, 0::2])
        np.clip(self.boxes[:, 1::2], 0, height, out=self.boxes[:, 1::2])
        if self.segments is not None:
            np.clip(self.segments[..., 0], 0, width, out=self.segments[..., 0])
            np.clip(self.segments[..., 1], 0, height, out=self.segments[..., 1])
        return self


def concat_instances(parts: list[Instances]) -> Instances:
    """Stack objects of several images; segments survive only if every part has them."""
    with_segments = all(p.segments is not None for p in parts)
    if not parts:
        return Instances.empty()
    segs = np.concatenate([p.segments for p in parts]) if with_segments else None
    return Instances(
        np.concatenate([p.cls for p in parts]),
        np.concatenate([p.boxes for p in parts]).astype(np.float32, copy=False),
        segs,
    )


def resample_segments(polygons: list[np.ndarray], n: int = SEGMENT_POINTS) -> np.ndarray:
    """Resample closed polygons of different lengths to `n` points each, vectorised.

    Points are spaced uniformly in *vertex index* along the closed outline (first vertex
    repeated at the end), the same parametrisation the official code uses. Returns (m, n, 2).
    """
    if not polygons:
        return np.zeros((0, n, 2), np.float32)
    closed = [np.concatenate([p, p[:1]]) for p in polygons]  # close each outline
    lengths = np.array([len(c) for c in closed])  # k + 1 points each
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate(closed).astype(np.float32)
    t = np.linspace(0, 1, n, dtype=np.float64)[None, :] * (lengths[:, None] - 1)  # (m, n)
    lo = np.floor(t).astype(np.int64)
    lo = np.minimum(lo, lengths[:, None] - 2).clip(0)  # keep lo+1 inside each polygon
    frac = (t - lo)[..., None].astype(np.float32)
    lo_global = lo + offsets[:, None]
    hi_global = np.minimum(lo_global + 1, (offsets + lengths - 1)[:, None])
    return flat[lo_global] * (1 - frac) + flat[hi_global] * frac


def segments_to_boxes(segments: np.ndarray, width: float, height: float) -> np.ndarray:
    """Tight xyxy boxes of the segment points lying inside the image; (n, P, 2) -> (n, 4).

    Objects with no point inside get a zero box (the box filter then drops them).
    """
    x, y = segments[..., 0], segments[..., 1]
    inside = (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
    big = np.float32(1e9)
    x0 = np.where(inside, x, big).min(1)
    y0 = np.where(inside, y, big).min(1)
    x1 = np.where(inside, x, -big).max(1)
    y1 = np.where(inside, y, -big).max(1)
    boxes = np.stack([x0, y0, x1, y1], 1)
    boxes[~inside.any(1)] = 0
    return boxes.astype(np.float32)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes)
    out[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 2] = boxes[:, 2] - boxes[:, 0]
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    return out


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes)
    half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
    out[:, 0] = boxes[:, 0] - half_w
    out[:, 1] = boxes[:, 1] - half_h
    out[:, 2] = boxes[:, 0] + half_w
    out[:, 3] = boxes[:, 1] + half_h
    return out
