"""How much of the input survives a deep, randomly initialised network (paper Section 3, Figs. 2, 6).

The paper's Eq. (1) is the data-processing inequality of a feed-forward network::

    I(X, X) >= I(X, f_theta(X)) >= I(X, g_phi(f_theta(X)))

and Figures 2 and 6 illustrate it with feature maps of PlainNet, ResNet, CSPNet and GELAN stacks at
random initialisation. The paper does not define those stacks, how a "layer" is counted, nor how a
feature map is turned into a picture; this module makes one explicit choice for each, and adds two
linear estimators of "how much of the input is still there". Notebooks ``01_information_bottleneck``
and ``02_reversible_functions`` use it.

Choices (all documented again in notebook 01):

* **A layer is one convolution (conv + BN + activation) on the longest input-to-output path**, the
  convention behind the names ResNet-50 / ResNet-152. Parallel branches do not add depth; the two
  parallel kernels of :class:`~yolov9lite.blocks.RepConvN` count once (they fuse into one 3x3 conv).
  :func:`conv_depth` measures it on the autograd graph, so the count is computed, not asserted.
* Every stack is ``stem (3x3 stride-2 Conv) -> units``, one width ``C`` and one resolution, so depth
  is the only thing that changes. Units: PlainNet = one ``Conv``; ResNet = ``ResBlock`` (1x1-3x3-1x1
  bottleneck + identity); CSPNet = ``RepNCSP`` with 5 bottlenecks; GELAN = ``RepNCSPELAN4`` (c3 = C,
  c4 = C/2, D_CSP = 1); all from :mod:`yolov9lite.blocks`. Notebook 02 adds a RevNet-style additive
  coupling unit (exactly invertible) and a PreAct-ResNet unit (paper Eq. 4).
* BatchNorm is in **inference mode** by default (running statistics at their initial values, so BN
  is nearly the identity), which is what visualising an untrained model's features in inference
  mode shows, and the stacks compute in float64 so that the shrinking activations do not underflow
  (:func:`build_stack`). ``bn_mode="batch"`` (statistics of the current batch, as in the first
  training step) is the alternative; notebook 01 shows that it changes the picture.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Conv, ConvBlock, RepNCSP, RepNCSPELAN4, ResBlock

ARCHS = ("plain", "resnet", "cspnet", "gelan")  # the four networks of Figures 2 and 6
ARCH_NAMES = {"plain": "PlainNet", "resnet": "ResNet", "cspnet": "CSPNet", "gelan": "GELAN",
              "revnet": "RevNet (additive coupling)", "preact": "PreAct-ResNet"}


# --- images ----------------------------------------------------------------------------------------

def sample_image_path(name: str = "grace_hopper.jpg") -> Path:
    """A photograph that ships inside matplotlib (``mpl-data/sample_data``), so no download."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data(name, asfileobj=False))


def load_image(path: str | Path | None = None, size: int = 128,
               box: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """Read an RGB image as a (3, size, size) float tensor in [0, 1].

    ``box`` = (left, top, right, bottom) as fractions of the image selects a crop first; the crop is
    resized (bilinear, PIL) to a square, which distorts the aspect ratio slightly: fine for a probe.
    Transparent pixels (RGBA) are composited over white.
    """
    from PIL import Image

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


# --- counting layers -------------------------------------------------------------------------------

def conv_depth(module: nn.Module, channels: int) -> int:
    """Number of convolutions on the longest input-to-output path of ``module``.

    Measured, not declared: run a tiny input through ``module`` and walk the autograd graph from the
    output back to the input, adding one for every convolution node on the way and taking the
    longest route (``channels`` = the module's input width). So ``Conv`` (conv+BN+act) counts one, the two parallel kernels of ``RepConvN``
    count one (they are side by side, and fuse into one 3x3 conv at deployment), and additions,
    concatenations, splits and pooling count zero.
    """
    dtype = next(module.parameters()).dtype
    g = torch.Generator().manual_seed(0)  # leave the global RNG (weight init) untouched
    x = torch.randn(2, channels, 8, 8, generator=g, dtype=dtype).requires_grad_()
    was_training = module.training
    module.eval()  # and leave BN running statistics untouched
    try:
        with torch.enable_grad():
            out = module(x)
    finally:
        module.train(was_training)
    memo: dict = {}
    todo = [out.grad_fn]
    while todo:  # iterative post-order DFS (deep stacks would overflow recursion)
        node = todo[-1]
        kids = [n for n, _ in node.next_functions if n is not None]
        missing = [k for k in kids if k not in memo]
        if missing:
            todo.extend(missing)
            continue
        todo.pop()
        is_conv = "Convolution" in type(node).__name__
        memo[node] = max((memo[k] for k in kids), default=0) + int(is_conv)
    return memo[out.grad_fn]


# --- units for notebook 02 -------------------------------------------------------------------------

class AdditiveCoupling(nn.Module):
    """RevNet / NICE additive coupling (paper Eq. 2: X = v(r(X)) with v = r^-1), exactly invertible.

    Split x into halves (x1, x2) along channels, then::

        y1 = x1 + F(x2)          x2 = y2 - G(y1)
        y2 = x2 + G(y1)          x1 = y1 - F(x2)

    F and G are arbitrary (here one 3x3 ``Conv`` each); invertibility never needs them inverted.
    BatchNorm inside F and G must use fixed statistics (eval mode) for the inverse to be exact, since
    batch statistics of the inverse pass would differ; :meth:`inverse` says so with an assert.
    """

    def __init__(self, c: int):
        super().__init__()
        assert c % 2 == 0, "additive coupling splits the channels in two halves"
        self.f = Conv(c // 2, c // 2, 3)
        self.g = Conv(c // 2, c // 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, 1)
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return torch.cat((y1, y2), 1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        assert not self.training, "call .eval(): the inverse needs BN with fixed statistics"
        y1, y2 = y.chunk(2, 1)
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return torch.cat((x1, x2), 1)


class PreActBlock(nn.Module):
    """PreAct-ResNet unit (He et al. 2016; paper Eq. 4): x_{l+1} = x_l + f(x_l), where
    f = BN -> SiLU -> conv3x3 -> BN -> SiLU -> conv3x3. Nothing touches the identity path, so x_0
    reaches every later layer unchanged (plus the sum of all residuals)."""

    def __init__(self, c: int):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(c), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(c), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


# --- deep stacks -----------------------------------------------------------------------------------

def make_unit(arch: str, c: int) -> nn.Module:
    """One repeating unit of a deep stack of width ``c`` (see the module docstring)."""
    if arch == "plain":
        return ConvBlock(c, c, 1)  # 1 layer
    if arch == "resnet":
        return ResBlock(c, c, 1)  # 3 layers
    if arch == "cspnet":
        return RepNCSP(c, c, n=5)  # 1 + 2*5 + 1 = 12 layers
    if arch == "gelan":
        return RepNCSPELAN4(c, c, c, c // 2, n=1)  # 1 + 2*(1+2+1 + 1) + 1 = 12 layers
    if arch == "revnet":
        return AdditiveCoupling(c)  # 2 layers (F then G)
    if arch == "preact":
        return PreActBlock(c)  # 2 layers
    raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCH_NAMES)}")


class DeepStack(nn.Module):
    """``stem -> unit_1 -> ... -> unit_K`` at constant width and resolution.

    ``depths[k]`` is the layer count (:func:`conv_depth`) at the output of unit k (``depths[0]`` is
    the stem, 1). :meth:`taps` returns the unit outputs closest to requested depths.
    """

    def __init__(self, arch: str, min_depth: int = 200, width: int = 32, stem_stride: int = 2):
        super().__init__()
        self.arch = arch
        self.stem = Conv(3, width, 3, stem_stride)
        unit = make_unit(arch, width)
        per_unit = conv_depth(unit, width)
        n_units = max(1, math.ceil((min_depth - 1) / per_unit))
        self.units = nn.ModuleList([unit] + [make_unit(arch, width) for _ in range(n_units - 1)])
        self.depths = [1 + k * per_unit for k in range(n_units + 1)]

    @property
    def depth(self) -> int:
        return self.depths[-1]

    def nearest(self, depth: int) -> int:
        """Index of the unit output whose depth is closest to ``depth`` (ties: the shallower)."""
        return min(range(len(self.depths)), key=lambda k: (abs(self.depths[k] - depth), k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for unit in self.units:
            x = unit(x)
        return x

    def taps(self, x: torch.Tensor, depths) -> dict[int, torch.Tensor]:
        """{actual depth: feature map} for the unit outputs closest to each requested depth."""
        want = {self.nearest(d) for d in depths}
        out = {}
        x = self.stem(x)
        if 0 in want:
            out[self.depths[0]] = x
        for k, unit in enumerate(self.units, start=1):
            if k > max(want):
                break
            x = unit(x)
            if k in want:
                out[self.depths[k]] = x
        return out


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch has them (CPU: cheap)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


BN_MODES = ("eval", "batch")


def build_stack(arch: str, seed: int = 0, min_depth: int = 200, width: int = 32,
                bn_mode: str = "eval", dtype: torch.dtype = torch.float64) -> DeepStack:
    """A randomly initialised :class:`DeepStack` (PyTorch default init) for one seed.

    ``bn_mode="eval"``: BatchNorm uses its initial running statistics (mean 0, var 1), so at
    initialisation it is (almost) the identity; this is what a feature-map visualisation of an
    untrained model in inference mode shows. Activations then shrink by a constant factor per layer
    (about 1e-109 after 200 plain layers), hence float64 by default: every rendering and estimator
    here is scale-invariant, but float32 would underflow to exact zeros near layer 40.
    ``bn_mode="batch"``: BatchNorm normalises with the statistics of the current batch, as in the
    first training step.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    torch.manual_seed(seed)
    return DeepStack(arch, min_depth, width).to(dtype).train(bn_mode == "batch")


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


# --- retention estimators --------------------------------------------------------------------------

def pixels(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C): one sample per position, float64."""
    b, c, h, w = feat.shape
    return feat.detach().double().reshape(b, c, h * w).transpose(1, 2)


def target_pixels(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The input downsampled (area average) to the feature grid: (B, H*W, 3)."""
    return pixels(F.interpolate(images, size=size, mode="area"))


def ridge_fit_predict(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                      lam: float = 1.0) -> torch.Tensor:
    """Ridge regression y ~ x W + b: features standardised with training statistics, the bias not
    penalised, W = (X^T X + lam n I)^-1 X^T Y (so ``lam`` is per sample and scale-free)."""
    mu, sd = x_train.mean(0), x_train.std(0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))  # scale-free: tiny features are fine
    xs, xt = (x_train - mu) / sd, (x_test - mu) / sd
    ym = y_train.mean(0)
    n, p = xs.shape
    a = xs.T @ xs + lam * n * torch.eye(p, dtype=xs.dtype)
    w = torch.linalg.solve(a, xs.T @ (y_train - ym))
    return xt @ w + ym


def r2_score(y: torch.Tensor, y_hat: torch.Tensor) -> float:
    """Coefficient of determination over all outputs: 1 - SSE / SST (can be < 0 on held-out data)."""
    sse = ((y - y_hat) ** 2).sum()
    sst = ((y - y.mean(0)) ** 2).sum()
    return float(1 - sse / sst)


def ridge_r2(feats: torch.Tensor, images: torch.Tensor, lam: float = 1e-3) -> list[float]:
    """Held-out R^2 of a per-position linear readout of the (downsampled) input from the features.

    Leave-one-image-out: fit on the positions of B-1 images, score on the held-out image; one R^2 per
    image. With a single image, fit on the left half and score on the right half. 1 = the input is a
    linear function of the features at each position; 0 = no better than the mean colour.
    """
    x = pixels(feats)  # (B, HW, C)
    y = target_pixels(images, feats.shape[-2:])  # (B, HW, 3)
    b = x.shape[0]
    if b == 1:
        w = feats.shape[-1]
        cols = torch.arange(x.shape[1]) % w
        tr, te = cols < w // 2, cols >= w // 2
        return [r2_score(y[0, te], ridge_fit_predict(x[0, tr], y[0, tr], x[0, te], lam))]
    scores = []
    for i in range(b):
        keep = [j for j in range(b) if j != i]
        y_hat = ridge_fit_predict(x[keep].flatten(0, 1), y[keep].flatten(0, 1), x[i], lam)
        scores.append(r2_score(y[i], y_hat))
    return scores


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centered kernel alignment (Kornblith et al. 2019) between (n, p) and (n, q) matrices:

        CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)    (columns centred)

    1 when Y is X up to rotation and isotropic scaling, 0 when they are linearly unrelated. It is
    invariant to orthogonal transforms and scale, not to arbitrary invertible linear maps.
    """
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    # CKA is scale-invariant; rescale first so that features of size 1e-100 do not underflow
    x, y = x / x.abs().max().clamp_min(1e-300), y / y.abs().max().clamp_min(1e-300)
    num = (y.T @ x).square().sum()
    den = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(num / den) if den > 0 else 0.0


def cka_to_input(feats: torch.Tensor, images: torch.Tensor) -> list[float]:
    """Per image, linear CKA between the downsampled input and the features (positions = samples)."""
    x = pixels(feats)
    y = target_pixels(images, feats.shape[-2:])
    return [linear_cka(y[i], x[i]) for i in range(x.shape[0])]


ESTIMATORS = {"ridge_r2": ridge_r2, "cka": cka_to_input}


@torch.no_grad()
def retention_curves(archs, depths, images: torch.Tensor, seeds, width: int = 32,
                     min_depth: int | None = None, lam: float = 1e-3, bn_mode: str = "eval",
                     dtype: torch.dtype = torch.float64) -> list[dict]:
    """Run both estimators for every (arch, seed, depth, image); one row per combination.

    Rows: ``arch, seed, image, target_depth, depth, ridge_r2, cka``. ``depth`` is the actual layer
    count of the unit output used (the closest to ``target_depth``).
    """
    rows = []
    min_depth = max(depths) if min_depth is None else min_depth
    for arch in archs:
        for seed in seeds:
            net = build_stack(arch, seed, min_depth, width, bn_mode, dtype)
            feats = net.taps(images.to(dtype), depths)
            for target in depths:
                depth = net.depths[net.nearest(target)]
                f = feats[depth]
                r2 = ridge_r2(f, images, lam)
                cka = cka_to_input(f, images)
                for i in range(images.shape[0]):
                    rows.append(dict(arch=arch, seed=seed, image=i, target_depth=target,
                                     depth=depth, ridge_r2=r2[i], cka=cka[i]))
    return rows


def summarise(rows: list[dict], key: str, floor: float | None = None
              ) -> dict[str, dict[str, np.ndarray]]:
    """{arch: {depth, mean, std, n}} of ``key`` over seeds x images, per target depth.

    ``floor`` clips each value from below first (``floor=0`` for R^2: a readout worse than
    predicting the mean colour carries no information about the input, however negative it is).
    """
    out = {}
    for arch in dict.fromkeys(r["arch"] for r in rows):
        sub = [r for r in rows if r["arch"] == arch]
        targets = sorted({r["target_depth"] for r in sub})
        vals = [[r[key] if floor is None else max(r[key], floor) for r in sub
                 if r["target_depth"] == t] for t in targets]
        depth = [next(r["depth"] for r in sub if r["target_depth"] == t) for t in targets]
        out[arch] = dict(depth=np.array(depth), mean=np.array([np.mean(v) for v in vals]),
                         std=np.array([np.std(v) for v in vals]), n=np.array([len(v) for v in vals]))
    return out
