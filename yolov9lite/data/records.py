"""The common representation of a scanned dataset: one `ImageRecord` per image, and the
`ScanReport` that counts every problem the scan met.

The representation follows the YOLO label files (the official pipeline converts COCO to them):
per image its path, an integer image id, the displayed (EXIF-corrected) `(h, w)`, class indices
(n,), boxes (n, 4) as normalised `cx cy w h`, and optional polygon segments as normalised `(k, 2)`
arrays (copy-paste needs them, as in the official ``utils/augmentations.py``).

Every problem with a file is *skipped* (the image is dropped) or *repaired* (the image is kept,
the bad part fixed or dropped), logged as one warning naming the file (and the line or annotation
id), counted in a `ScanReport`, and summarised in one line at the end. The scans themselves are in
`labels.py` (YOLO layout) and `coco_json.py` (COCO JSON); the checks they share in `checks.py`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger("yolov9lite.data")
WARNINGS_PER_KIND = 20  # after this many, one line says how many more were hidden
SAMPLE_BYTES = 4096  # copies are detected from size + first and last 4 KiB, never a full read

# what happens to the image for each kind of problem
SKIP_KINDS = {"corrupt image", "missing image", "image too small", "image too large",
              "unsupported file", "duplicate file",
              "duplicate image id", "unreadable label file", "bad image entry"}
REPAIR_KINDS = {"truncated JPEG", "converted image mode", "EXIF rotation", "missing label file",
                "empty label file", "bad label line", "non-finite label values",
                "label file encoding", "coordinates outside [0, 1]", "class id out of range",
                "non-integer class id",
                "unknown category", "bad annotation", "zero-area box", "duplicate labels",
                "size mismatch"}


# here rather than in cache.py: `ScanReport.from_json` raises it for a malformed cached report
class CacheError(ValueError):
    """A label cache file that is not ours or is inconsistent (it is then ignored)."""


@dataclass
class ImageRecord:
    """One image and its objects, in the common representation (see module docstring)."""

    path: str
    image_id: int
    shape: tuple[int, int]  # (h, w) as displayed, i.e. after EXIF orientation
    cls: np.ndarray  # (n,) int64 contiguous class index
    boxes: np.ndarray  # (n, 4) float32 normalised cx, cy, w, h
    segments: list[np.ndarray] = field(default_factory=list)  # [] or n arrays (k, 2) normalised

    @property
    def has_segments(self) -> bool:
        return len(self.segments) == len(self.cls) > 0


@dataclass
class ScanReport:
    """Counted problems of one scan; `issues` holds (kind, file, action) for every one."""

    name: str
    issues: list[tuple[str, str, str]] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    backgrounds: int = 0
    copies: int = 0  # images kept although their bytes repeat another one's (oversampling)
    copy_example: str = ""

    def add(self, kind: str, file: str | Path, action: str) -> None:
        self.issues.append((kind, str(file), action))

    @property
    def skipped(self) -> int:
        return len({f for k, f, _ in self.issues if k in SKIP_KINDS})

    @property
    def repaired(self) -> int:
        skipped = {f for k, f, _ in self.issues if k in SKIP_KINDS}
        return len({f for k, f, _ in self.issues if k in REPAIR_KINDS and f not in skipped})

    def counts(self) -> Counter:
        return Counter(k for k, _, _ in self.issues)

    def summary(self) -> str:
        detail = ", ".join(f"{k}: {n}" for k, n in sorted(self.counts().items()))
        return (f"{self.name}: {self.images} images, {self.boxes} boxes, {self.skipped} skipped, "
                f"{self.repaired} repaired, {self.backgrounds} backgrounds"
                + (f" ({detail})" if detail else ""))

    def log(self, from_cache: bool = False) -> None:
        """One warning per problem (capped per kind), one for all copies, then the summary."""
        shown = Counter()
        for kind, file, action in self.issues:
            shown[kind] += 1
            if shown[kind] <= WARNINGS_PER_KIND:
                LOGGER.warning("%s: %s: %s", kind, file, action)
        for kind, n in shown.items():
            if n > WARNINGS_PER_KIND:
                LOGGER.warning("%s: %d more files not listed", kind, n - WARNINGS_PER_KIND)
        if self.copies:
            LOGGER.warning("%s: %d files are byte-identical copies of others (same size, first "
                           "and last %d KiB; e.g. %s); kept (oversampling)", self.name,
                           self.copies, SAMPLE_BYTES // 1024, self.copy_example)
        LOGGER.info(self.summary() + (" [label cache]" if from_cache else ""))

    def to_json(self) -> dict:
        return {"name": self.name, "issues": [list(i) for i in self.issues],
                "images": self.images, "boxes": self.boxes, "backgrounds": self.backgrounds,
                "copies": self.copies, "copy_example": self.copy_example}

    @classmethod
    def from_json(cls, d: dict) -> ScanReport:
        """Inverse of `to_json`, checking every field's type (a cache is untrusted input)."""
        issues = d["issues"]
        if not (isinstance(issues, list) and all(
                isinstance(i, list) and len(i) == 3 and all(isinstance(s, str) for s in i)
                for i in issues)):
            raise CacheError("malformed issue list")
        counts = [d[k] for k in ("images", "boxes", "backgrounds", "copies")]
        if not all(type(c) is int and c >= 0 for c in counts):
            raise CacheError("malformed counts")
        if not isinstance(d["name"], str) or not isinstance(d["copy_example"], str):
            raise CacheError("malformed name")
        return cls(d["name"], [tuple(i) for i in issues], *counts, d["copy_example"])


def finish_report(records: list[ImageRecord], report: ScanReport) -> None:
    report.images = len(records)
    report.boxes = int(sum(len(r.cls) for r in records))
    report.backgrounds = sum(1 for r in records if len(r.cls) == 0)
