"""The detections of one image, :class:`Results`, and :func:`draw`, which draws them.

:func:`yolov9lite.predict` returns one :class:`Results` per image (per frame for a video); the
``yolov9lite predict`` command writes what these methods give (annotated image, ``detections.json``
records, YOLO label lines, crops).
"""
from __future__ import annotations

import colorsys
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..utils.errors import InputError


# ------------------------------------------------------------------------------------ results
@dataclass
class Results:
    """The detections in one image (or one video frame), in the original image's pixels.

    The fields are plain tensors (CPU): ``boxes`` (n, 4) float32 xyxy, ``scores`` (n,) float32,
    ``classes`` (n,) int64; ``names`` is the class name of each box, ``class_names`` all the
    model's class names; ``image`` the original RGB uint8 array; ``path`` its file (or None) and
    ``frame`` the frame index for videos.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    class_names: list[str]
    image: np.ndarray = field(repr=False)
    path: str | None = None
    frame: int | None = None

    @property
    def names(self) -> list[str]:
        return [self.class_names[c] for c in self.classes.tolist()]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[:2])

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        where = f"{self.path or 'image'}" + (f" frame {self.frame}" if self.frame is not None else "")
        counts: dict[str, int] = {}
        for name in self.names:
            counts[name] = counts.get(name, 0) + 1
        found = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no objects"
        return f"Results({where}, {self.shape[1]}x{self.shape[0]}: {found})"

    def numpy(self) -> dict:
        """``boxes``, ``scores``, ``classes`` as numpy arrays, plus ``names``."""
        return {"boxes": self.boxes.numpy(), "scores": self.scores.numpy(),
                "classes": self.classes.numpy(), "names": self.names}

    def plot(self, line_width: int | None = None, labels: bool = True, conf: bool = True
             ) -> np.ndarray:
        """A copy of the image (RGB) with each box and its "name score" label drawn on it."""
        return draw(self.image, self, line_width=line_width, labels=labels, conf=conf)

    def save(self, path: str | os.PathLike, **plot_kwargs) -> Path:
        """Write the annotated image; never over the source image."""
        path = Path(path)
        if self.path is not None and _same_path(path, Path(self.path)):
            raise InputError(f"{path} is the source image; save the annotated copy elsewhere")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), np.ascontiguousarray(self.plot(**plot_kwargs)[..., ::-1])):
            raise OSError(f"cannot write {path} (unknown image suffix or unwritable folder)")
        return path

    def to_dict(self) -> dict:
        h, w = self.shape
        record = {"image": self.path, "width": int(w), "height": int(h)}
        if self.frame is not None:
            record["frame"] = self.frame
        record["detections"] = [
            {"box_xyxy": [round(float(v), 2) for v in box], "score": round(float(s), 5),
             "class": int(c), "name": n}
            for box, s, c, n in zip(self.boxes.tolist(), self.scores.tolist(),
                                    self.classes.tolist(), self.names)]
        return record

    def to_json(self, **kwargs) -> str:
        """The detections as JSON (the records of ``detections.json``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_yolo(self) -> str:
        """YOLO label lines ``class cx cy w h`` (normalised to [0, 1]), readable as a dataset."""
        h, w = self.shape
        lines = []
        for (x1, y1, x2, y2), c in zip(self.boxes.tolist(), self.classes.tolist()):
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        return "".join(line + "\n" for line in lines)

    def crops(self) -> list[tuple[str, np.ndarray]]:
        """(class name, RGB crop) of each box, in score order."""
        h, w = self.shape
        out = []
        for (x1, y1, x2, y2), name in zip(self.boxes.tolist(), self.names):
            x1, y1 = max(0, math.floor(x1)), max(0, math.floor(y1))
            x2, y2 = min(w, math.ceil(x2)), min(h, math.ceil(y2))
            if x2 > x1 and y2 > y1:
                out.append((name, self.image[y1:y2, x1:x2].copy()))
        return out


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# ------------------------------------------------------------------------------------ drawing
def _palette(c: int) -> tuple[int, int, int]:
    """A stable, distinct colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((c * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image_rgb: np.ndarray, result, line_width: int | None = None, labels: bool = True,
         conf: bool = True) -> np.ndarray:
    """A copy of the image with each box and its "name score" label drawn on it (RGB)."""
    out = np.ascontiguousarray(image_rgb.copy())
    thickness = line_width or max(1, round(sum(out.shape[:2]) / 600))
    scale = max(0.4, thickness / 3)
    for box, score, cls, name in zip(_rows(result, "boxes"), _rows(result, "scores"),
                                     _rows(result, "classes"), result["names"] if isinstance(
                                         result, dict) else result.names):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = _palette(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        if not labels:
            continue
        label = f"{name} {float(score):.2f}" if conf else str(name)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y_text = y1 - 2 if y1 - th - 4 >= 0 else y1 + th + 2
        cv2.rectangle(out, (x1, y_text - th - 2), (x1 + tw + 2, y_text + 2), color, -1)
        cv2.putText(out, label, (x1 + 1, y_text), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _rows(result, key):
    value = result[key] if isinstance(result, dict) else getattr(result, key)
    return value.tolist() if hasattr(value, "tolist") else value


__all__ = ["Results", "draw"]
