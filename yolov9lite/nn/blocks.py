"""GELAN building blocks (YOLOv9 paper, Section 4.2 "Generalized ELAN", Figure 4).

Every class keeps the name it has in the official code (``models/common.py`` of WongKinYiu/yolov9)
and the names of its sub-modules (``cv1``, ``cv2``, ``m``, ``conv``, ``bn``), so a reader can put this
file next to the official one and so that official checkpoints map onto ours by renaming only the
layer prefix (see ``yolov9lite/weights/checkpoint.py``). Notebook ``03_gelan.ipynb`` walks through them.

Vocabulary used in the docstrings:

* ``c1`` input width, ``c2`` output width, ``c3``/``c4`` hidden widths (as in the official code).
* GELAN unit = "CSP-ELAN" = :class:`RepNCSPELAN4`: an ELAN aggregation (paper Fig. 4c) whose
  computational blocks are CSP blocks (:class:`RepNCSP`). ``D_ELAN`` is the number of stages
  (``elan_depth``), ``D_CSP`` the number of bottlenecks in each CSP block (``n``); Table 3.
* The computational block is pluggable (Table 2): ``"csp"`` (official), ``"res"``, ``"dark"`` and
  ``"conv"``; see :func:`computational_block`.

BatchNorm uses eps 1e-3 and momentum 0.03, which the official builder sets on every BN after
construction; we set it at construction so the two agree from the start.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(k: int, d: int = 1) -> int:
    """'Same' padding for an odd kernel ``k`` with dilation ``d``."""
    return d * (k - 1) // 2


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> SiLU; the basic unit of every YOLO since v4.

    ``fuse()`` folds the BatchNorm into the convolution (which then gets a bias), the inference form.
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, d: int = 1, act: bool | nn.Module = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, d) if p is None else p,
                              dilation=d, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        if act is True:
            self.act = nn.SiLU(inplace=True)
        elif isinstance(act, nn.Module):
            self.act = act
        else:
            self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BN into the conv: W' = W * g / sqrt(v + eps), b' = beta - mean * g / sqrt(v + eps)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a new Conv2d (with bias) equal to ``bn(conv(x))`` in eval mode."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True).to(conv.weight)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C2,)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    fused.requires_grad_(False)
    return fused


class RepConvN(nn.Module):
    """Re-parameterisable 3x3 conv: SiLU(BN(conv3x3 x) + BN(conv1x1 x)).

    Unlike RepVGG there is **no identity branch** (the "N" in RepConvN); the paper's GELAN uses it
    inside the bottleneck. ``fuse()`` merges both branches into one 3x3 conv with bias: the 1x1
    kernel is zero-padded to 3x3 and added after each branch's BN has been folded in.
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, g: int = 1):
        super().__init__()
        assert k == 3, "RepConvN is defined for 3x3 kernels"
        self.act = nn.SiLU(inplace=True)
        self.conv1 = Conv(c1, c2, 3, s, g=g, act=False)  # 3x3 branch
        self.conv2 = Conv(c1, c2, 1, s, p=0, g=g, act=False)  # 1x1 branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    @torch.no_grad()
    def fuse(self) -> None:
        if hasattr(self, "conv"):
            return
        k3 = fuse_conv_bn(self.conv1.conv, self.conv1.bn)
        k1 = fuse_conv_bn(self.conv2.conv, self.conv2.bn)
        merged = k3
        merged.weight.add_(F.pad(k1.weight, [1, 1, 1, 1]))
        merged.bias.add_(k1.bias)
        self.conv = merged
        del self.conv1, self.conv2


class RepNBottleneck(nn.Module):
    """Residual bottleneck x + Conv3x3(RepConvN3x3(x)); the residual only when c1 == c2."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 1.0):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = RepConvN(c1, c_, 3)
        self.cv2 = Conv(c_, c2, 3, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class RepNCSP(nn.Module):
    """CSP block (CSPNet): split into two 1x1 paths, run ``n`` bottlenecks on one, concat, 1x1.

    This is the computational block the paper picks for GELAN (Table 2, "CSP").
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)  # path through the bottlenecks
        self.cv2 = Conv(c1, c_, 1)  # cross-stage partial path
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(RepNBottleneck(c_, c_, shortcut, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


# --- Alternative computational blocks for the Table 2 ablation -------------------------------------
# The paper names them "Res" and "Dark" (and plain "Conv") without defining them precisely; these
# are the standard blocks of those families built from the same Conv unit, repeated ``n`` times.


class ResBlock(nn.Module):
    """ResNet bottleneck: 1x1 reduce to c/2 -> 3x3 -> 1x1 expand, plus identity (after a 1x1 when
    the width changes)."""

    def __init__(self, c1: int, c2: int, n: int = 1):
        super().__init__()
        self.proj = Conv(c1, c2, 1) if c1 != c2 else nn.Identity()
        c_ = max(c2 // 2, 1)
        self.m = nn.ModuleList(
            nn.Sequential(Conv(c2, c_, 1), Conv(c_, c_, 3), Conv(c_, c2, 1, act=False))
            for _ in range(n))
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for block in self.m:
            x = self.act(x + block(x))
        return x


class DarkBlock(nn.Module):
    """Darknet-53 residual unit: 1x1 reduce to c/2 -> 3x3 back to c, plus identity."""

    def __init__(self, c1: int, c2: int, n: int = 1):
        super().__init__()
        self.proj = Conv(c1, c2, 1) if c1 != c2 else nn.Identity()
        c_ = max(c2 // 2, 1)
        self.m = nn.ModuleList(nn.Sequential(Conv(c2, c_, 1), Conv(c_, c2, 3)) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for block in self.m:
            x = x + block(x)
        return x


class ConvBlock(nn.Sequential):
    """Plain stack of ``n`` 3x3 Convs (no shortcut): the "Conv" row of Table 2."""

    def __init__(self, c1: int, c2: int, n: int = 1):
        super().__init__(*(Conv(c1 if i == 0 else c2, c2, 3) for i in range(n)))


BLOCK_TYPES = {"csp": RepNCSP, "res": ResBlock, "dark": DarkBlock, "conv": ConvBlock}


def computational_block(kind: str, c1: int, c2: int, n: int) -> nn.Module:
    """The pluggable computational block of a GELAN stage (paper Table 2)."""
    if kind not in BLOCK_TYPES:
        raise ValueError(f"unknown computational block {kind!r}; choose from {sorted(BLOCK_TYPES)}")
    return BLOCK_TYPES[kind](c1, c2, n)


class RepNCSPELAN4(nn.Module):
    """The GELAN unit ("CSP-ELAN", paper Fig. 4c and App. Table 2).

    ::

        t = cv1(x)                 1x1, c1 -> c3, then split into halves p, q
        s_1 = stage_1(q)           computational block (c3/2 -> c4) + Conv3x3(c4)
        s_k = stage_k(s_{k-1})     k = 2 .. D_ELAN, each c4 -> c4
        y = fuse(cat(p, q, s_1, ..., s_D))    1x1 -> c2

    With the official ``elan_depth = 2`` the sub-modules are named exactly as in the official code:
    ``cv1``, the stages ``cv2``/``cv3`` and the fusing 1x1 ``cv4``. In general stage k is ``cv{k+1}``
    and the fusing conv is ``cv{D_ELAN+2}``. ``n`` is D_CSP, the depth of each computational block.
    """

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 1,
                 elan_depth: int = 2, block: str = "csp"):
        super().__init__()
        if elan_depth < 1:
            raise ValueError(f"elan_depth (D_ELAN) must be >= 1, got {elan_depth}")
        self.c = c3 // 2
        self.elan_depth = elan_depth
        self.cv1 = Conv(c1, c3, 1, 1)
        for k in range(1, elan_depth + 1):
            c_in = c3 // 2 if k == 1 else c4
            stage = nn.Sequential(computational_block(block, c_in, c4, n), Conv(c4, c4, 3, 1))
            setattr(self, f"cv{k + 1}", stage)
        setattr(self, f"cv{elan_depth + 2}", Conv(c3 + elan_depth * c4, c2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))  # [p, q]
        for k in range(1, self.elan_depth + 1):
            y.append(getattr(self, f"cv{k + 1}")(y[-1]))
        return getattr(self, f"cv{self.elan_depth + 2}")(torch.cat(y, 1))


class ELAN1(nn.Module):
    """ELAN with single 3x3 convs as stages: the stem of the t and s models."""

    def __init__(self, c1: int, c2: int, c3: int, c4: int):
        super().__init__()
        self.c = c3 // 2
        self.cv1 = Conv(c1, c3, 1, 1)
        self.cv2 = Conv(c3 // 2, c4, 3, 1)
        self.cv3 = Conv(c4, c4, 3, 1)
        self.cv4 = Conv(c3 + 2 * c4, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.append(self.cv2(y[-1]))
        y.append(self.cv3(y[-1]))
        return self.cv4(torch.cat(y, 1))


class AConv(nn.Module):
    """Downsampling of the t/s/m models: avg-pool 2x2 stride 1 (H -> H-1), then Conv 3x3 stride 2.

    The paper's App. Table 2 calls this "DOWN" (pooling + strided conv).
    """

    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.cv1 = Conv(c1, c2, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv1(F.avg_pool2d(x, 2, 1, 0, False, True))


class ADown(nn.Module):
    """Downsampling of the c/e models: avg-pool 2x2 s1, split channels; one half through a strided
    3x3 conv, the other through max-pool 3x3 s2 and a 1x1 conv; concat. Cheaper than a 3x3 s2 conv."""

    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1 // 2, self.c, 3, 2, 1)
        self.cv2 = Conv(c1 // 2, self.c, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2, 1, 0, False, True)
        a, b = x.chunk(2, 1)
        a = self.cv1(a)
        b = self.cv2(F.max_pool2d(b, 3, 2, 1))
        return torch.cat((a, b), 1)


class DownConv(Conv):
    """Plain 3x3 stride-2 Conv used as a downsampler (the ReLU variants and the ablation option)."""

    def __init__(self, c1: int, c2: int):
        super().__init__(c1, c2, 3, 2)


DOWN_TYPES = {"aconv": AConv, "adown": ADown, "conv": DownConv}


class SP(nn.Module):
    """Max-pool k x k, stride 1, 'same' padding (the pooling step of SPPELAN)."""

    def __init__(self, k: int = 5, s: int = 1):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=s, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class SPPELAN(nn.Module):
    """Spatial pyramid pooling as an ELAN: 1x1, three chained 5x5 max-pools, concat all four, 1x1."""

    def __init__(self, c1: int, c2: int, c3: int):
        super().__init__()
        self.c = c3
        self.cv1 = Conv(c1, c3, 1, 1)
        self.cv2 = SP(5)
        self.cv3 = SP(5)
        self.cv4 = SP(5)
        self.cv5 = Conv(4 * c3, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for pool in (self.cv2, self.cv3, self.cv4):
            y.append(pool(y[-1]))
        return self.cv5(torch.cat(y, 1))
