"""How much of the input a deep stack's features still hold, measured two ways (Sec. 3, Eq. 1).

* **Linear decodability** (:func:`retention_curves`): a held-out ridge readout of the downsampled
  input from the features (:func:`ridge_r2`) and linear CKA between input and features
  (:func:`cka_to_input`). They measure linear decodability, and fail the positive control, the
  exactly invertible RevNet stack of :mod:`yolov9lite.study.stacks`.
* **The spectrum of the input-to-feature Jacobian** (:func:`jacobian_curves`): how many input
  directions still move the features by a resolvable amount. It passes the positive control
  (RevNet) and a negative one (PlainNet).

The stacks are built by :func:`yolov9lite.study.stacks.build_stack`; notebooks
``01_information_bottleneck`` and ``02_reversible_functions`` reach everything here through
:mod:`yolov9lite.study.retention`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .stacks import DeepStack, build_stack

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
                    rows.append({"arch": arch, "seed": seed, "image": i, "target_depth": target,
                                     "depth": depth, "ridge_r2": r2[i], "cka": cka[i]})
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
        out[arch] = {"depth": np.array(depth), "mean": np.array([np.mean(v) for v in vals]),
                     "std": np.array([np.std(v) for v in vals]),
                     "n": np.array([len(v) for v in vals])}
    return out


def paired_values(rows: list[dict], arch: str, target: int, key: str = "retained",
                  floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, values) of ``key`` for one architecture at one target depth, one entry per (seed,
    image) in (seed, image) order, so that two architectures or depths pair up entry by entry.
    The seeds say which entries share an initialisation: a ledger averages them per seed
    (:func:`yolov9lite.study.statistics.seed_means`, the seed is the unit), never counts images
    as units. ``floor`` clips from below as in :func:`summarise`."""
    sub = sorted((r for r in rows if r["arch"] == arch and r["target_depth"] == target),
                 key=lambda r: (r["seed"], r["image"]))
    if not sub:
        raise ValueError(f"no rows for {arch!r} at target depth {target}")
    vals = [r[key] if floor is None else max(r[key], floor) for r in sub]
    return np.array([r["seed"] for r in sub]), np.array(vals, dtype=np.float64)


# --- an invertibility-aware measure: the spectrum of the input -> feature Jacobian -------------------
#
# For a deterministic network, Eq. 1's I(X, f(X)) is infinite whenever f is injective, so what a
# finite computer can keep is a matter of *precision*: an input direction survives if moving the
# input along it still moves the features by a resolvable amount. The singular values s_1 >= ... of
# the Jacobian J = d f(x) / d x say exactly that (locally): direction i is amplified by s_i.
#   * retained fraction = #{i : s_i > tol * s_1} / d   (numerical rank per input dimension; an
#     invertible, well-conditioned map keeps 1, a map that squashes the input onto a few
#     directions keeps ~0). tol = 1e-3: readable at 0.1 % of the strongest direction (~10 bits).
#   * log-volume = mean_i log10(s_i / s_1), floored at 1e-6 (the finite-difference precision):
#     how many decades, on average, the input's directions lie below the strongest one.
# Both are scale-free (a network that only shrinks its activations loses nothing) and, unlike the
# linear readouts above, invariant to any invertible reparametrisation of the features that is
# well conditioned.

RANK_TOL = 1e-3
LOGVOL_FLOOR = 1e-6


def freeze_batch_statistics(net: nn.Module, images: torch.Tensor) -> None:
    """Put every BatchNorm in eval mode with the statistics of ``images`` (one training-mode
    forward pass), so that BN normalises exactly as in a training step on that batch but the
    Jacobian of one image does not include its (small) effect on the batch statistics."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    counts: dict = {}
    hooks = [bn.register_forward_pre_hook(
        lambda m, inp: counts.__setitem__(m, inp[0].numel() // inp[0].shape[1])) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over one batch = that batch's statistics
    net.train()
    try:
        with torch.no_grad():
            net(images)
    finally:
        for hook in hooks:
            hook.remove()
    for bn in bns:  # running_var is the unbiased variance; training normalises with the biased one
        n = counts[bn]
        bn.running_var.mul_((n - 1) / n)
    net.eval()


@torch.no_grad()
def input_jacobians(net: DeepStack, images: torch.Tensor, depths, h: float = 1e-6
                    ) -> dict[int, torch.Tensor]:
    """{actual depth: (B, D_out, D_in) Jacobians} of the features at ``depths`` w.r.t. each image,
    by forward differences in float64: one batched forward pass of the image plus D_in nudged
    copies (much faster than forward-mode AD for these tiny, very deep stacks). The error is about
    ``h`` relative to the largest singular value, far below :data:`RANK_TOL` and
    :data:`LOGVOL_FLOOR`. ``net`` must be in eval mode (BN with fixed statistics)."""
    assert not net.training, "call .eval() or freeze_batch_statistics() first"
    x = images.to(torch.float64)
    b, d = x.shape[0], x[0].numel()
    eye = torch.eye(d, dtype=torch.float64).reshape(d, *x.shape[1:]) * h
    batch = torch.cat([x[:, None], x[:, None] + eye[None]], 1).reshape(-1, *x.shape[1:])
    out = {}
    for k, f in net.taps(batch, depths).items():
        f = f.reshape(b, d + 1, -1)
        out[k] = ((f[:, 1:] - f[:, :1]) / h).transpose(1, 2)
    return out


def jacobian_spectrum_stats(jac: torch.Tensor, tol: float = RANK_TOL,
                            floor: float = LOGVOL_FLOOR) -> tuple[list[float], list[float]]:
    """Per image: (retained fraction, log-volume) of (B, D_out, D_in) Jacobians (see above)."""
    s = torch.linalg.svdvals(jac)  # (B, min(D_out, D_in)), descending
    d = jac.shape[-1]
    rel = s / s[:, :1].clamp_min(1e-300)
    frac = ((rel > tol).sum(1).double() / d).tolist()
    # a wide Jacobian (D_out < D_in) has D_in - D_out zero singular values: they count at the floor
    logs = torch.log10(rel.clamp_min(floor))
    missing = d - s.shape[1]
    logvol = ((logs.sum(1) + missing * math.log10(floor)) / d).tolist()
    return frac, logvol


def jacobian_curves(archs, depths, images: torch.Tensor, seeds, width: int = 16,
                    min_depth: int | None = None, bn_mode: str = "eval",
                    tol: float = RANK_TOL) -> list[dict]:
    """The Jacobian measure for every (arch, seed, depth, image): rows ``arch, seed, image,
    target_depth, depth, shortest_depth, retained, logvol``. ``bn_mode="batch"``: BN uses the
    statistics of ``images`` (:func:`freeze_batch_statistics`)."""
    rows = []
    min_depth = max(depths) if min_depth is None else min_depth
    for arch in archs:
        for seed in seeds:
            net = build_stack(arch, seed, min_depth, width, "eval")
            if bn_mode == "batch":
                freeze_batch_statistics(net, images.to(torch.float64))
            jacs = input_jacobians(net, images, depths)
            for target in depths:
                k = net.nearest(target)
                frac, logvol = jacobian_spectrum_stats(jacs[net.depths[k]], tol)
                for i in range(images.shape[0]):
                    rows.append({"arch": arch, "seed": seed, "image": i, "target_depth": target,
                                     "depth": net.depths[k], "shortest_depth": net.shortest_depths[k],
                                     "retained": frac[i], "logvol": logvol[i]})
    return rows
