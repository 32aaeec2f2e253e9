"""Detection on your own images and videos: :func:`predict` (the command is
:mod:`yolov9lite.cli.predict`).

The steps are those of the official ``detect.py``:

1. letterbox each image so its longest side is ``imgsz``, padding the short side only up to the
   next multiple of 32 (the largest stride) with grey 114; this keeps the aspect ratio and wastes
   little compute on padding;
2. run the model (eval mode: ``(B, 4 + nc, A)`` centre-xywh pixel boxes + class scores);
3. NMS with the ``detect.py`` defaults: conf 0.25, IoU 0.45, at most 1000 boxes, best class only
   (``--classes`` keeps anchors whose best class is listed, before NMS, as ``detect.py`` does);
4. undo the letterbox: boxes come back in the original image's pixel coordinates.

Sources (images, folders, globs, video files, a webcam; no network streams) are resolved in
:mod:`yolov9lite.inference.sources`; the detections of each image are a :class:`~yolov9lite.inference.results.Results`
(:mod:`yolov9lite.inference.results`, with :func:`~yolov9lite.inference.results.draw`). For a video an
annotated copy is written. Weights given as a path are loaded with
:func:`yolov9lite.weights.checkpoint.load_model`, i.e. deployed (auxiliary branch removed, layers fused).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.augment import letterbox
from ..evaluation.postprocess import non_max_suppression, scale_boxes
from ..utils.errors import InputError
from ..utils.paths import temp_beside
from ..utils.runtime import select_device
from ..weights.checkpoint import load_model
from .results import Results
from .sources import (
    _to_rgb_array,
    is_stream,
    is_video,
    is_webcam,
    iter_video,
    list_sources,
)

MAX_STRIDE = 32


# ------------------------------------------------------------------------------------ letterbox
def letterbox_shape(hw: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """The input size for an ``hw`` image: longest side ``imgsz``, each side rounded up to 32."""
    gain = imgsz / max(hw)
    return tuple(int(math.ceil(round(s * gain) / MAX_STRIDE) * MAX_STRIDE) for s in hw)


def _prepare(image: np.ndarray, imgsz: int):
    """Letterbox -> (CHW float tensor in [0, 1], ratio_pad as :func:`scale_boxes` wants it)."""
    shape = letterbox_shape(image.shape[:2], imgsz)
    boxed, gain, pad = letterbox(image, shape, scaleup=True)
    tensor = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1))).float().div_(255)
    if not isinstance(gain, (tuple, list)):  # a single gain: derive the exact per-axis ones,
        h0, w0 = image.shape[:2]  # since each side was rounded to whole pixels
        gain = (round(h0 * gain) / h0, round(w0 * gain) / w0)
    return tensor, (tuple(gain), pad)


# ------------------------------------------------------------------------------------ model
def _resolve_model(model_or_weights, device):
    if isinstance(model_or_weights, (str, os.PathLike)):
        model = load_model(model_or_weights, deploy=True)
    else:
        model = model_or_weights
    model = model.eval()
    if device is not None:
        model = model.to(select_device(device))  # "0" = cuda:0, "auto", ... as on the CLI
    return model


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def class_names(model, nc: int) -> list[str]:
    names = getattr(model, "names", None)
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    return list(names) if names is not None and len(names) >= nc else [str(i) for i in range(nc)]


def keep_classes(pred: torch.Tensor, classes) -> torch.Tensor:
    """Zero the scores of every anchor whose best class is not in ``classes``: the same
    detections as ``detect.py``'s ``--classes`` (which filters the best class before NMS)."""
    if classes is None:
        return pred
    best = pred[:, 4:].argmax(1, keepdim=True)  # (B, 1, A)
    wanted = torch.as_tensor(sorted(set(classes)), device=pred.device)
    keep = torch.isin(best, wanted)
    out = pred.clone()
    out[:, 4:] *= keep
    return out


class Detector:
    """A loaded model plus its settings; ``detector(rgb_images)`` -> one :class:`Results` each."""

    def __init__(self, model_or_weights, imgsz: int = 640, conf: float = 0.25, iou: float = 0.45,
                 max_det: int = 1000, device=None, classes=None, agnostic_nms: bool = False,
                 half: bool = False):
        self.model = _resolve_model(model_or_weights, device)
        self.device = _model_device(self.model)
        self.half = half and self.device.type == "cuda"  # FP16 convolutions: GPU only
        self.imgsz = int(math.ceil(imgsz / MAX_STRIDE) * MAX_STRIDE)
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes, self.agnostic = classes, agnostic_nms

    @torch.no_grad()
    def __call__(self, arrays: list[np.ndarray], paths=None, frames=None) -> list[Results]:
        prepared = [_prepare(a, self.imgsz) for a in arrays]
        groups: dict[tuple, list[int]] = {}
        for i, (tensor, _) in enumerate(prepared):  # batch images of equal input shape
            groups.setdefault(tuple(tensor.shape), []).append(i)
        results: list[Results | None] = [None] * len(arrays)
        for chunk in groups.values():
            batch = torch.stack([prepared[i][0] for i in chunk]).to(self.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
                out = self.model(batch)
            pred = (out[0] if isinstance(out, (tuple, list)) else out).float()
            pred = keep_classes(pred, self.classes)
            dets = non_max_suppression(pred, self.conf, self.iou, max_det=self.max_det,
                                       multi_label=False, agnostic=self.agnostic)
            names = class_names(self.model, pred.shape[1] - 4)
            for i, det in zip(chunk, dets):
                h0, w0 = arrays[i].shape[:2]
                det = scale_boxes(det.cpu(), ratio_pad=prepared[i][1], orig_shape=(h0, w0))
                results[i] = Results(det[:, :4].float().contiguous(), det[:, 4].float().contiguous(),
                                     det[:, 5].long(), names, arrays[i],
                                     paths[i] if paths else None, frames[i] if frames else None)
        return results


def _expand(images) -> list:
    """A predict() argument as a flat list of in-memory images and file paths."""
    if isinstance(images, (str, os.PathLike)):
        if is_stream(str(images)) or is_webcam(images):
            raise InputError(f"{images}: predict() takes images, folders, globs and video files; "
                           "network streams and webcams are not supported here")
        return list_sources(images) if not Path(images).is_file() else [Path(images)]
    if isinstance(images, np.ndarray) or hasattr(images, "convert"):
        return [images]
    out = []
    for item in images:
        if isinstance(item, (str, os.PathLike)) and not Path(item).is_file():
            out += list_sources(item)
        else:
            out.append(item)
    return out


def predict(model_or_weights, images, imgsz: int = 640, conf: float = 0.25, iou: float = 0.45,
            max_det: int = 1000, device=None, batch_size: int = 8, classes=None,
            agnostic_nms: bool = False, half: bool = False) -> list[Results]:
    """Detect objects; one :class:`Results` per image (per frame for a video), in input order.

    Args:
        model_or_weights: a model (any module returning ``(B, 4 + nc, A)`` in eval mode) or the
            path of a checkpoint (ours or official; loaded deployed).
        images: one image or a list; each a file path, a folder, a glob pattern, a video file, a
            uint8 HxWx3 RGB numpy array or a PIL image, of any size.
        imgsz: longest side of the network input (rounded up to a multiple of 32).
        conf, iou, max_det: NMS settings (official ``detect.py`` defaults).
        device: e.g. ``"cpu"`` or ``"cuda:0"``; default: where the model already is.
        classes: keep only these class indices; agnostic_nms: suppress across classes.
        half: FP16 inference on CUDA (ignored on CPU).

    Example::

        r = yolov9lite.predict("gelan-c.pt", "bus.jpg")[0]
        r.boxes, r.scores, r.classes, r.names    # tensors (xyxy pixels), names of each box
        r.save("bus_annotated.jpg"); print(r.to_json())
    """
    detector = Detector(model_or_weights, imgsz, conf, iou, max_det, device, classes,
                        agnostic_nms, half)
    items = _expand(images)
    results: list[Results] = []
    pending: list[tuple[np.ndarray, str | None, int | None]] = []

    def flush():
        for start in range(0, len(pending), batch_size):
            part = pending[start:start + batch_size]
            results.extend(detector([a for a, _, _ in part], [p for _, p, _ in part],
                                    [f for _, _, f in part]))
        pending.clear()

    for item in items:
        if isinstance(item, (str, os.PathLike)) and is_video(item):
            for index, frame, _ in iter_video(item):
                pending.append((frame, str(item), index))
                if len(pending) >= batch_size:
                    flush()
        else:
            array, path = _to_rgb_array(item)
            pending.append((array, path, None))
    flush()
    return results


# ------------------------------------------------------------------------------------ CLI
class RunWriter:
    """Everything one ``predict`` run writes, under one new folder (never over a source)."""

    def __init__(self, save_dir: Path, args, root: Path | None):
        self.dir, self.args, self.root = save_dir, args, root
        self.records: list[dict] = []
        self.crop_counts: dict[str, int] = {}

    def relative(self, path: Path) -> Path:
        """The source's path below the source folder (keeps a/x.jpg and b/x.jpg apart)."""
        if self.root is not None:
            try:
                return path.resolve().relative_to(self.root)
            except ValueError:
                pass
        return Path(path.name)

    def image(self, result: Results, source: Path) -> Path:
        rel = self.relative(source)
        target = self.dir / rel
        if not self.args.nosave:
            result.save(target, line_width=self.args.line_width, labels=not self.args.hide_labels,
                        conf=not self.args.hide_conf)
        self.extras(result, rel.with_suffix(""))
        self.records.append(result.to_dict())
        return target

    def extras(self, result: Results, stem: Path) -> None:
        """YOLO label file and per-box crops, if asked for."""
        if self.args.save_txt:
            label = self.dir / "labels" / stem.with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(result.to_yolo())
        if self.args.save_crop:
            for k, (name, crop) in enumerate(result.crops()):
                target = self.dir / "crops" / name / f"{stem.name}_{k}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(target), np.ascontiguousarray(crop[..., ::-1]))

    def finish(self) -> Path:
        path = self.dir / "detections.json"
        with temp_beside(path, "w") as f:
            f.write(json.dumps(self.records, indent=1))
        return path


def check_output_folder(folder: Path, exist_ok: bool, flag: str = "--out") -> None:
    if not exist_ok and folder.is_dir() and any(folder.iterdir()):
        raise InputError(f"{flag} {folder} exists and is not empty (an earlier run's results); "
                       "pass --exist-ok to write into it and replace its detections.json, or "
                       "choose a new folder")


def claim_output_folder(folder: Path, exist_ok: bool, flag: str = "--out") -> Path:
    """The folder one ``predict`` run writes into. Without ``--exist-ok`` it must be new or
    empty, and the run claims it by creating ``detections.json`` with O_EXCL, so of several
    runs started into one folder only the first writes there and the others are refused (no
    run's records are silently replaced). ``--exist-ok`` writes into it, replacing its
    ``detections.json`` and same-named outputs."""
    check_output_folder(folder, exist_ok, flag)
    folder.mkdir(parents=True, exist_ok=True)
    if not exist_ok:
        try:
            os.close(os.open(folder / "detections.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644))
        except FileExistsError:
            raise InputError(f"{flag} {folder}: another run is writing into it; pass --exist-ok "
                           "to write there anyway, or choose a new folder") from None
    return folder


def _video(detector: Detector, frames, source: Path | str, writer: RunWriter, stem: Path) -> str:
    """Annotated video + one record (and label file) per frame."""
    out_path = writer.dir / stem.with_suffix(".mp4")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    video, count, objects = None, 0, 0
    try:
        # a bar per video on a terminal (frames, rate); none in logs and pipes (disable=None)
        for index, frame, fps in tqdm(frames, desc=str(source), unit="frame", leave=False,
                                      disable=None):
            (result,) = detector([frame], [str(source)], [index])
            if video is None and not writer.args.nosave:
                h, w = frame.shape[:2]
                video = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if video is not None:
                video.write(np.ascontiguousarray(result.plot(
                    writer.args.line_width, not writer.args.hide_labels,
                    not writer.args.hide_conf)[..., ::-1]))
            writer.extras(result, stem.parent / f"{stem.name}_{index}")
            writer.records.append(result.to_dict())
            count, objects = count + 1, objects + len(result)
    except KeyboardInterrupt:  # a webcam runs until Ctrl-C: keep what was recorded
        print(f"{source}: stopped after {count} frames")
    finally:
        if video is not None:
            video.release()
    if count == 0:
        raise OSError(f"{source}: no frame could be read")
    return f"{count} frames, {objects} objects -> {out_path}"



__all__ = ["Detector", "RunWriter", "check_output_folder", "claim_output_folder", "class_names",
           "keep_classes", "predict"]
