"""How much of the input survives a deep, randomly initialised network (paper Section 3, Figs. 2, 6).

The paper's Eq. (1) is the data-processing inequality of a feed-forward network::

    I(X, X) >= I(X, f_theta(X)) >= I(X, g_phi(f_theta(X)))

and Figures 2 and 6 illustrate it with feature maps of PlainNet, ResNet, CSPNet and GELAN stacks at
random initialisation. The paper does not define those stacks, how a "layer" is counted, nor how a
feature map is turned into a picture; the project makes one explicit choice for each. This module
is the one import of notebooks ``01_information_bottleneck`` and ``02_reversible_functions``; the
work is split by concern:

* :mod:`yolov9lite.study.stacks`: the stacks (PlainNet, ResNet, CSPNet, GELAN, and notebook 02's RevNet
  and PreAct-ResNet units), how a layer is counted (:func:`conv_depth`), :func:`build_stack`;
* :mod:`yolov9lite.study.retention_measures`: "how much of the input is still there", measured two ways:
  the spectrum of the input-to-feature Jacobian (:func:`jacobian_curves`; it passes a positive
  control, the exactly invertible RevNet stack, and a negative one, PlainNet) and two linear
  estimators (:func:`retention_curves`: they measure linear decodability, and fail the positive
  control);
* here: the probe images (photographs that ship with matplotlib, synthetic scenes), the renderings
  of a feature map as a picture, the trainability task (does retention at initialisation
  predict how well a stack trains?), and the ledger design of both notebooks: the margins and
  thresholds of their claims, fixed here before the data, each with its reason.

Statistics (:mod:`yolov9lite.study.statistics`): the seed is the unit. The images measured on
one initialisation share its weights, so each claim averages them per seed first
(:func:`yolov9lite.study.retention_measures.paired_values`, then ``seed_means``) and puts a t
interval over the seeds; the trainability correlation has one run per (stack, depth, seed), and
its >= 20 runs are the units of a BCa bootstrap.

"""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.synthetic import render_image
from .stacks import (
    DeepStack,
)
from .statistics import Margin

__all__ = [
    "COLLAPSE_MARGIN", "CORRELATION_MARGIN", "FULL_MARKS_MARGIN", "IMAGE_SET", "KEEPS_MARGIN",
    "PHOTOS", "RECONSTRUCTION_FRACTION", "RECONSTRUCTION_REASON", "RETAINED_MARGIN",
    "StackClassifier", "image_batch", "load_image", "probe_images", "render_mean_abs",
    "render_pca", "sample_image_path", "shape_crops", "synthetic_scene", "train_classifier",
]


# --- the ledger design of notebooks 01 and 02: fixed before the data, each with its reason ------
# A retained fraction is a share of input directions (3 x jac_size^2 of them, 108 at the default).
RETAINED_MARGIN = Margin(
    0.05, "a twentieth of the input's directions (5 of 108 at 6x6 inputs): a smaller difference "
          "in retained fraction is not one Figs. 2 and 6 could show; the margin of the first "
          "ledger, fixed before its data and kept")
FULL_MARKS_MARGIN = Margin(
    0.1, "an exactly invertible stack keeps every direction (full marks 1); a measure passes the "
         "control when it gives at least 1 - 0.1 (threshold 0.9), room for the finite "
         "differences and the rank tolerance")
COLLAPSE_MARGIN = Margin(
    0.1, "PlainNet 'loses the input' (Fig. 2) when it keeps under a tenth of the directions it "
         "kept at layer 1 (threshold 0.1, against 0 for a stack that kept nothing)")
KEEPS_MARGIN = Margin(
    0.5, "'passes the input on explicitly' (Eq. 4) means at least half of the input's directions "
         "still resolvable at layer ~200 (threshold 0.5, against 0 for a stack that lost them)")
# masked reconstruction (Eq. 5): margins in MSE, a fraction of the error of a reference
RECONSTRUCTION_FRACTION = 0.1
RECONSTRUCTION_REASON = (
    "a tenth of the reference's mean held-out MSE (the mean-colour reconstruction, or the model "
    "at initialisation): recovering X must remove a visible share of the reference's error; "
    "less is as good as the reference")
CORRELATION_MARGIN = Margin(
    0.3, "a medium rank correlation (Cohen's convention): 'predicts' needs more than a weak one, "
         "since depth lowers both retention and accuracy; symmetric, so a medium negative one "
         "contradicts")


# --- images ----------------------------------------------------------------------------------------

def sample_image_path(name: str = "grace_hopper.jpg") -> Path:
    """A photograph that ships inside matplotlib (``mpl-data/sample_data``), so no download."""
    return Path(matplotlib.cbook.get_sample_data(name, asfileobj=False))


def load_image(path: str | Path | None = None, size: int = 128,
               box: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """Read an RGB image as a (3, size, size) float tensor in [0, 1].

    ``box`` = (left, top, right, bottom) as fractions of the image selects a crop first; the crop is
    resized (bilinear, PIL) to a square, which distorts the aspect ratio slightly: fine for a probe.
    Transparent pixels (RGBA) are composited over white.
    """
    img = Image.open(sample_image_path() if path is None else path)
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    img = img.convert("RGB")
    if box is not None:
        w, h = img.size
        img = img.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    img = img.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return x.permute(2, 0, 1).contiguous()  # (3, H, W)


# (file, crop box) pairs: distinct photographs / crops from matplotlib's sample data
IMAGE_SET = (
    ("grace_hopper.jpg", None),
    ("Minduka_Present_Blue_Pack.png", None),
    ("grace_hopper.jpg", (0.2, 0.05, 0.8, 0.55)),  # the face
    ("grace_hopper.jpg", (0.0, 0.5, 1.0, 1.0)),  # uniform, medals, background
    ("grace_hopper.jpg", (0.5, 0.0, 1.0, 0.5)),  # top right quarter
    ("grace_hopper.jpg", (0.0, 0.0, 0.5, 0.5)),  # top left quarter
)


def image_batch(n: int, size: int, first: str | Path | None = None) -> torch.Tensor:
    """``n`` different images (B, 3, size, size): ``first`` (or Grace Hopper) then :data:`IMAGE_SET`."""
    if not 1 <= n <= len(IMAGE_SET):
        raise ValueError(f"n must be in 1..{len(IMAGE_SET)}, got {n}")
    imgs = [load_image(first, size)]
    for name, box in IMAGE_SET[1:n]:
        imgs.append(load_image(sample_image_path(name), size, box))
    return torch.stack(imgs)


# --- probe images: photographs shipped with matplotlib + synthetic scenes ---------------------------

PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")  # matplotlib's mpl-data/sample_data


def synthetic_scene(size: int, seed: int) -> torch.Tensor:
    """One scene of the synthetic detection set (:mod:`yolov9lite.data.synthetic`'s renderer),
    square, as a (3, size, size) tensor in [0, 1]; rendered in memory, nothing written."""
    rng = np.random.default_rng([seed, 7])
    image, _ = render_image(256, 256, 6, rng)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def probe_images(n: int = 8, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """``n`` distinct images (B, 3, size, size) and their names: the two photographs of
    :data:`PHOTOS`, then synthetic scenes ``seed``, ``seed + 1``, ... (never crops of each other)."""
    imgs, names = [], []
    for name in PHOTOS[:n]:
        imgs.append(load_image(sample_image_path(name), size))
        names.append(f"photo:{name}")
    for k in range(n - len(imgs)):
        imgs.append(synthetic_scene(size, seed + k))
        names.append(f"synthetic:{seed + k}")
    return torch.stack(imgs), names


# --- from a feature map to a picture ---------------------------------------------------------------

def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


def render_mean_abs(feat: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W) in [0, 1]: the channel mean of |activation|, min-max normalised.

    Our default rendering: one number per position saying "how strongly does anything fire here".
    It treats all channels alike, so it is insensitive to which channel happens to carry the input.
    """
    return _minmax(feat.detach().double().abs().mean(0)).float().numpy()  # scale first: no underflow


def render_pca(feat: torch.Tensor, clip: float = 0.01) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) in [0, 1]: the top three principal components across channels as RGB.

    Each position is a sample, each channel a variable. The components are the directions of most
    variance, so this shows the three strongest *linear* patterns; each is clipped at its ``clip``
    and ``1 - clip`` quantiles, then scaled to [0, 1]. Signs are fixed so the largest loading is
    positive (an eigenvector's sign is otherwise arbitrary).
    """
    c, h, w = feat.shape
    x = feat.detach().double().reshape(c, h * w).T  # (HW, C)
    x = x - x.mean(0)
    x = x / x.abs().max() if x.abs().max() > 0 else x  # scale-free (maps of 1e-100 are fine)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    vh = vh[:3]
    sign = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))
    z = x @ (vh * sign).T  # (HW, k)
    if z.shape[1] < 3:
        z = torch.cat([z, z.new_zeros(h * w, 3 - z.shape[1])], 1)
    lo, hi = torch.quantile(z, clip, 0), torch.quantile(z, 1 - clip, 0)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    z = ((z - lo) / span).clamp(0, 1)
    return z.reshape(h, w, 3).float().numpy()


# --- does retention at initialisation predict trainability? (the argument of Sec. 3) ---------------

def shape_crops(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` single-object crops of synthetic scenes (the renderer of ``make_synthetic``), resized
    to ``size``; labels = the six shape classes. Returns (x (n, 3, size, size), y (n,))."""
    rng = np.random.default_rng([seed, 11])
    xs, ys = [], []
    while len(xs) < n:
        image, objects = render_image(128, 128, 4, rng)
        for cls, _, (x, y, w, h), _ in objects:
            if w < 8 or h < 8 or len(xs) >= n:
                continue
            pad = max(w, h) // 4  # some context around the object, square crop
            side = max(w, h) + 2 * pad
            cx, cy = x + w // 2, y + h // 2
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            crop = image[y0:y0 + side, x0:x0 + side]
            if min(crop.shape[:2]) < 8:
                continue
            xs.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
            ys.append(cls)
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return x.contiguous(), torch.tensor(ys)


class StackClassifier(nn.Module):
    """A :class:`DeepStack` followed by global average pooling and a linear layer."""

    def __init__(self, arch: str, min_depth: int, width: int = 16, classes: int = 6):
        super().__init__()
        self.body = DeepStack(arch, min_depth, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def train_classifier(arch: str, min_depth: int, seed: int, data, steps: int = 100,
                     width: int = 16, batch: int = 32, lr: float = 0.01) -> tuple[nn.Module, float]:
    """Train :class:`StackClassifier` for ``steps`` SGD steps (momentum 0.9, BN in training mode)
    on ``data = (x_train, y_train, x_test, y_test)``; return the model (still at its
    initial-weights seed) and the held-out accuracy."""
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    model = StackClassifier(arch, min_depth, width, int(y_tr.max()) + 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x_tr.shape[0], (batch,), generator=g)
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).double().mean().item()
    return model, acc
