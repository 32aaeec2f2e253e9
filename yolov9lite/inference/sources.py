"""Where :func:`yolov9lite.predict` and ``yolov9lite predict`` get their images: source resolution
and reading.

Sources: an image, a folder (searched recursively), a glob (``'dir/**/*.jpg'``), a video file
(every frame), a webcam index (``0``) where the machine has one. Network streams (``http://``,
``rtsp://``) are refused with one line: this library reads local files only. In-memory images
(numpy arrays, PIL images) become uint8 RGB arrays here too.
"""
from __future__ import annotations

import glob
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import UnidentifiedImageError

from ..data.checks import header_size  # one pixel bound for the scan, the loader and predict
from ..data.labels import IMAGE_SUFFIXES  # one list: what the dataset scan reads, we predict on
from ..utils.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
STREAM_PREFIXES = ("http://", "https://", "rtsp://", "rtmp://", "tcp://", "udp://")


# ------------------------------------------------------------------------------------ images
def _to_rgb_array(image) -> tuple[np.ndarray, str | None]:
    """An image as a uint8 HWC RGB array, and its path when it was given as one."""
    if isinstance(image, (str, os.PathLike)):
        try:
            header_size(image)  # the pixel bound, from the header, before any decoding
        except UnidentifiedImageError:
            pass  # not for PIL; OpenCV may still read it (and has its own bound)
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {image} (missing, unreadable or not an image)")
        return np.ascontiguousarray(bgr[..., ::-1]), str(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
        return np.asarray(image.convert("RGB")), getattr(image, "filename", None) or None
    array = np.asarray(image)
    if array.ndim == 2:  # grey -> 3 channels
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (0-255), got {array.dtype}")
    return np.ascontiguousarray(array[..., :3]), None


# ------------------------------------------------------------------------------------ sources
def is_stream(source) -> bool:
    return isinstance(source, str) and source.lower().startswith(STREAM_PREFIXES)


def is_webcam(source) -> bool:
    return isinstance(source, (str, int)) and str(source).isdigit() and not Path(str(source)).exists()


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_sources(source: str | os.PathLike) -> list[Path]:
    """The image and video files of a source: a file, a folder (recursive) or a glob pattern.

    Raises :class:`InputError` with one line for network streams, and ``OSError`` when nothing is
    found."""
    text = str(source)
    if is_stream(text):
        raise InputError(f"--source {text}: network streams and URLs are not supported (this library "
                       "reads local files only); download the file and pass its path")
    wanted = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    path = Path(text)
    if path.is_dir():
        entries = [p for p in path.rglob("*") if not p.is_dir()]
        files = sorted(p for p in entries if p.suffix.lower() in wanted and p.is_file())
        warn_skipped(path, [p for p in entries if p.suffix.lower() not in wanted],
                     [p for p in entries if p.suffix.lower() in wanted and not p.is_file()])
        if not files:
            raise FileNotFoundError(f"--source {path}: no images or videos "
                                    f"({', '.join(s[1:] for s in wanted)}) in this folder or below")
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if Path(p).suffix.lower() in wanted and Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"--source {text}: the pattern matches no image or video")
        return files
    raise FileNotFoundError(f"--source {text}: no such file or folder")


def warn_skipped(folder: Path, other: list[Path], special: list[Path]) -> None:
    """One line each on stderr for what a source folder holds that is not read: files of other
    types (e.g. .gif, counted by suffix) and entries that are not regular files (FIFOs,
    sockets, devices, broken links), which would block or fail a read."""
    if other:
        kinds = Counter(p.suffix.lower() or "(no suffix)" for p in other)
        listed = ", ".join(f"{k}: {n}" for k, n in kinds.most_common(5))
        print(f"warning: --source {folder}: skipped {len(other)} files that are not images or "
              f"videos ({listed}; read: {', '.join(s[1:] for s in IMAGE_SUFFIXES)}, videos)",
              file=sys.stderr)
    if special:
        print(f"warning: --source {folder}: skipped {len(special)} entries that are not regular "
              f"files (FIFOs, sockets, devices or broken links; e.g. {special[0]})",
              file=sys.stderr)


def iter_video(path: str | os.PathLike | int) -> Iterator[tuple[int, np.ndarray, float]]:
    """(frame index, RGB frame, frames per second) of a video file or webcam index."""
    capture = cv2.VideoCapture(int(path) if isinstance(path, int) else str(path))
    if not capture.isOpened():
        raise OSError(f"cannot open video {path} (missing, unreadable or an unsupported codec)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield index, np.ascontiguousarray(bgr[..., ::-1]), fps
            index += 1
    finally:
        capture.release()


def open_webcam(index: int):
    """The camera as a video iterator, or one line saying it is unavailable."""
    try:  # OpenCV prints its own multi-line warnings for a missing camera
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    capture = cv2.VideoCapture(index)
    available = capture.isOpened()
    capture.release()
    if not available:
        raise InputError(f"--source {index}: no webcam {index} on this machine (or no permission to "
                       "open it); pass an image, folder, glob or video file instead")
    return iter_video(index)


__all__ = ["STREAM_PREFIXES", "VIDEO_SUFFIXES", "is_stream", "is_video",
           "is_webcam", "iter_video", "list_sources", "open_webcam"]
