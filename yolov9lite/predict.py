"""Detection on your own images: the :func:`predict` API and ``yolov9lite predict`` (issue 6).

The steps are those of the official ``detect.py`` (spec Section 5, last NMS bullet):

1. letterbox each image so its longest side is ``imgsz``, padding the short side only up to the
   next multiple of 32 (the largest stride) with grey 114; this keeps the aspect ratio and wastes
   little compute on padding;
2. run the model (eval mode: ``(B, 4 + nc, A)`` centre-xywh pixel boxes + class scores);
3. NMS with the ``detect.py`` defaults: conf 0.25, IoU 0.45, at most 1000 boxes, best class only;
4. undo the letterbox: boxes come back in the original image's pixel coordinates.

Images of equal letterboxed shape are batched together. Weights given as a path are loaded with
:func:`yolov9lite.checkpoint.load_model`, i.e. deployed (auxiliary branch removed, layers fused).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .data.augment import letterbox
from .postprocess import non_max_suppression, scale_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_STRIDE = 32


def _to_rgb_array(image) -> tuple[np.ndarray, str | None]:
    """An image as a uint8 HWC RGB array, and its path when it was given as one."""
    if isinstance(image, (str, os.PathLike)):
        import cv2

        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {image}")
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


def _resolve_model(model_or_weights, device):
    from .checkpoint import load_model

    if isinstance(model_or_weights, (str, os.PathLike)):
        model = load_model(model_or_weights, deploy=True)
    else:
        model = model_or_weights
    model = model.eval()
    if device is not None:
        model = model.to(device)
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


@torch.no_grad()
def predict(model_or_weights, images, imgsz: int = 640, conf: float = 0.25, iou: float = 0.45,
            max_det: int = 1000, device=None, batch_size: int = 8) -> list[dict]:
    """Detect objects in ``images``; one result dict per image, in input order.

    Args:
        model_or_weights: a model (any module returning ``(B, 4 + nc, A)`` in eval mode) or the
            path of a checkpoint (ours or official; loaded deployed).
        images: one image or a list; each a file path, a uint8 HxWx3 RGB numpy array or a PIL
            image, of any size.
        imgsz: longest side of the network input (rounded up to a multiple of 32).
        conf, iou, max_det: NMS settings (official ``detect.py`` defaults).
        device: e.g. ``"cpu"`` or ``"cuda:0"``; default: where the model already is.

    Returns:
        dicts with ``boxes`` (n, 4) float32 xyxy in the original image's pixels, ``scores`` (n,),
        ``classes`` (n,) int64, ``names`` (class name of each box), ``shape`` (h, w) and ``path``.
    """
    if isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, "convert"):
        images = [images]
    imgsz = int(math.ceil(imgsz / MAX_STRIDE) * MAX_STRIDE)
    model = _resolve_model(model_or_weights, device)
    dev = _model_device(model)
    dtype = next(model.parameters(), torch.empty(0)).dtype

    loaded = [_to_rgb_array(im) for im in images]
    prepared = [_prepare(arr, imgsz) for arr, _ in loaded]
    results: list[dict | None] = [None] * len(loaded)
    groups: dict[tuple, list[int]] = {}
    for i, (tensor, _) in enumerate(prepared):  # batch images of equal input shape
        groups.setdefault(tuple(tensor.shape), []).append(i)
    for idx in groups.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            batch = torch.stack([prepared[i][0] for i in chunk]).to(dev, dtype)
            out = model(batch)
            pred = out[0] if isinstance(out, (tuple, list)) else out
            dets = non_max_suppression(pred.float(), conf, iou, max_det=max_det, multi_label=False)
            names = class_names(model, pred.shape[1] - 4)
            for i, det in zip(chunk, dets):
                results[i] = _result(det, loaded[i], prepared[i][1], names)
    return results


def _result(det: torch.Tensor, loaded, ratio_pad, names: list[str]) -> dict:
    array, path = loaded
    h0, w0 = array.shape[:2]
    det = scale_boxes(det.cpu(), ratio_pad=ratio_pad, orig_shape=(h0, w0))
    classes = det[:, 5].long().numpy()
    return {"boxes": det[:, :4].numpy().astype(np.float32), "scores": det[:, 4].numpy().astype(np.float32),
            "classes": classes, "names": [names[c] for c in classes], "shape": (h0, w0), "path": path}


# ------------------------------------------------------------------------------------------- CLI

def _palette(c: int) -> tuple[int, int, int]:
    """A stable, distinct colour per class (golden-ratio hue steps)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((c * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image_rgb: np.ndarray, result: dict) -> np.ndarray:
    """A copy of the image with each box and its "name score" label drawn on it (RGB)."""
    import cv2

    out = np.ascontiguousarray(image_rgb.copy())
    thickness = max(1, round(sum(out.shape[:2]) / 600))
    for box, score, cls, name in zip(result["boxes"], result["scores"], result["classes"], result["names"]):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = _palette(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = f"{name} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        y_text = y1 - 2 if y1 - th - 4 >= 0 else y1 + th + 2
        cv2.rectangle(out, (x1, y_text - th - 2), (x1 + tw + 2, y_text + 2), color, -1)
        cv2.putText(out, label, (x1 + 1, y_text), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def list_images(source: str | os.PathLike) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        return files
    if source.is_file():
        return [source]
    raise FileNotFoundError(f"--source {source} does not exist")


def main(argv: list[str] | None = None) -> int:
    """``yolov9lite predict --weights W --source IMAGE|DIR``: annotated images + detections.json."""
    ap = argparse.ArgumentParser(prog="yolov9lite predict", description=main.__doc__)
    ap.add_argument("--weights", default=None,
                    help="checkpoint: ours (best: the output of `yolov9lite deploy`) or an official .pt")
    ap.add_argument("--source", required=True, help="an image file or a folder of images")
    ap.add_argument("--out", default="runs/predict", help="output folder")
    ap.add_argument("--img", type=int, default=640, help="longest input side (pixels)")
    ap.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    ap.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    ap.add_argument("--max-det", type=int, default=1000, help="maximum boxes per image")
    ap.add_argument("--device", default="", help="'cpu', '0' or 'cuda:0' (default: cuda if any)")
    args = ap.parse_args(argv)
    if not args.weights:
        print("yolov9lite predict: --weights is required: pass a checkpoint (ours, e.g. from "
              "`yolov9lite deploy`, or an official YOLOv9 .pt)", file=sys.stderr)
        return 2
    if args.device:
        device = torch.device(f"cuda:{args.device}" if args.device.isdigit() else args.device)
    else:
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

    from .checkpoint import CheckpointError, load_model

    try:
        files = list_images(args.source)
        model = load_model(args.weights, deploy=True).to(device)
    except (FileNotFoundError, CheckpointError) as err:
        print(f"yolov9lite predict: {err}", file=sys.stderr)
        return 1
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    import cv2

    for path in files:  # one at a time: a folder may hold more images than fit in memory
        rgb, _ = _to_rgb_array(path)
        result = predict(model, rgb, imgsz=args.img, conf=args.conf, iou=args.iou,
                         max_det=args.max_det)[0]
        target = out_dir / path.name
        cv2.imwrite(str(target), np.ascontiguousarray(draw(rgb, result)[..., ::-1]))
        records.append(_json_record(path, result))
        print(f"{path}: {len(result['boxes'])} objects -> {target}")
    with open(out_dir / "detections.json", "w") as f:
        json.dump(records, f, indent=1)
    print(f"detections of {len(records)} images written to {out_dir / 'detections.json'}")
    return 0


def _json_record(path: Path, result: dict) -> dict:
    h, w = result["shape"]
    return {"image": str(path), "width": int(w), "height": int(h), "detections": [
        {"box_xyxy": [round(float(v), 2) for v in box], "score": round(float(s), 5),
         "class": int(c), "name": str(n)}
        for box, s, c, n in zip(result["boxes"], result["scores"], result["classes"], result["names"])]}
