"""The deep stacks whose information retention notebooks 01-02 measure (paper Sec. 3, Figs. 2, 6).

The paper illustrates Eq. (1) with feature maps of PlainNet, ResNet, CSPNet and GELAN stacks at
random initialisation but does not define those stacks nor how a "layer" is counted; this module
makes one explicit choice for each. The measurements live in :mod:`yolov9lite.study.retention_measures`,
the probe images, renderings and the trainability task in :mod:`yolov9lite.study.retention`.

Choices (all documented again in notebook 01):

* **A layer is one convolution (conv + BN + activation) on the longest input-to-output path**, the
  convention behind the names ResNet-50 / ResNet-152. Parallel branches do not add depth; the two
  parallel kernels of :class:`~yolov9lite.nn.blocks.RepConvN` count once (they fuse into one 3x3 conv).
  :func:`conv_depth` measures it on the autograd graph, so the count is computed, not asserted;
  ``conv_depth(..., shortest=True)`` counts the shortest path too (0 through a residual unit).
* Every stack is ``stem (3x3 stride-2 Conv) -> units``, one width ``C`` and one resolution, so depth
  is the only thing that changes. Units: PlainNet = one ``Conv``; ResNet = ``ResBlock`` (1x1-3x3-1x1
  bottleneck + identity); CSPNet = ``RepNCSP`` with 5 bottlenecks; GELAN = ``RepNCSPELAN4`` (c3 = C,
  c4 = C/2, D_CSP = 1); all from :mod:`yolov9lite.nn.blocks`. Notebook 02 adds a RevNet-style additive
  coupling unit (exactly invertible) and a PreAct-ResNet unit (paper Eq. 4).
* BatchNorm is in **inference mode** by default (running statistics at their initial values, so BN
  is nearly the identity), which is what visualising an untrained model's features in inference
  mode shows, and the stacks compute in float64 so that the shrinking activations do not underflow
  (:func:`build_stack`). ``bn_mode="batch"`` (statistics of the current batch, as in the first
  training step) is the alternative; notebook 01 shows that it changes the picture.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.blocks import Conv, ConvBlock, RepNCSP, RepNCSPELAN4, ResBlock

ARCHS = ("plain", "resnet", "cspnet", "gelan")  # the four networks of Figures 2 and 6
ARCH_NAMES = {"plain": "PlainNet", "resnet": "ResNet", "cspnet": "CSPNet", "gelan": "GELAN",
              "revnet": "RevNet (additive coupling)", "preact": "PreAct-ResNet"}


# --- counting layers -------------------------------------------------------------------------------

def conv_depth(module: nn.Module, channels: int, shortest: bool = False) -> int:
    """Number of convolutions on the longest (``shortest=True``: shortest) input-to-output path.

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
    # only routes that reach the input count (weights are graph leaves too): None = no route
    pick = min if shortest else max
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
        if not kids:  # a leaf: the input itself, or a parameter
            memo[node] = 0 if getattr(node, "variable", None) is x else None
            continue
        routes = [memo[k] for k in kids if memo[k] is not None]
        is_conv = "Convolution" in type(node).__name__
        memo[node] = pick(routes) + int(is_conv) if routes else None
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

    def __init__(self, c: int, branch_gain: float = 0.5):
        super().__init__()
        assert c % 2 == 0, "additive coupling splits the channels in two halves"
        self.f = Conv(c // 2, c // 2, 3)
        self.g = Conv(c // 2, c // 2, 3)
        # Why 0.5: with BN's default gain 1 each unit adds F(x2) to x1 and the activations grow
        # ~1e5-fold over 200 layers, so the (still exactly invertible) stack becomes so
        # ill-conditioned that float32 cannot invert it and a few input directions dominate its
        # Jacobian. Halving the initial BN gain of F and G (a residual-branch scale, as in
        # Fixup/SkipInit-style initialisations) keeps the 200-layer stack well conditioned.
        for conv in (self.f, self.g):
            nn.init.constant_(conv.bn.weight, branch_gain)

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
        # the same unit outputs counted on the *shortest* input-to-output path (0 for a shortcut)
        per_unit_short = conv_depth(unit, width, shortest=True)
        self.shortest_depths = [1 + k * per_unit_short for k in range(n_units + 1)]

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
