"""GELAN, the main (inference) branch: backbone, neck and the DHLC second backbone (paper Sec. 4.2).

The parts, each a small class wired together by :class:`yolov9lite.nn.models.DetectionModel`:

* :func:`gelan_unit`: one GELAN unit, ``RepNCSPELAN4`` with the ablation knobs of Tables 2-3.
* :class:`Backbone`: two strided convs, a stem block, then three (downsample -> GELAN unit) stages
  whose outputs are ``B3``, ``B4``, ``B5`` (strides 8, 16, 32).
* :class:`TopDown` + :class:`Neck`: the FPN top-down path (SPPELAN ``N5`` -> ``N4`` -> ``P3``)
  followed by the PAN bottom-up path (``P3`` -> ``P4`` -> ``P5``), as in the official yaml files.
* :class:`CBLinear` + :class:`CBFuse` (official names) and :class:`ReversibleBranch`: a second
  backbone fed from a first one through CBLinear/CBFuse links (CBNet). GELAN-E's inference model uses it at all five levels ("+DHLC", paper Table 6); PGI's
  auxiliary reversible branch (:mod:`yolov9lite.nn.pgi`) reuses it for training only.
* :class:`MainFeatures`: what the main branch computed for one batch, the single input of every
  PGI auxiliary branch.

The modules take a :class:`yolov9lite.nn.models.ModelConfig` (``cfg``) for their widths and knobs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DOWN_TYPES, ELAN1, SPPELAN, Conv, RepNCSPELAN4, autopad

LevelHook = Callable[[str, torch.Tensor], torch.Tensor]


def round_up8(c: int) -> int:
    """Output widths are rounded up to a multiple of 8, as the official builder does.

    This is what turns yolov9-m's ``AConv [180]`` into 184 channels (official
    ``models/yolo.py``, ``make_divisible(c2 * gw, 8)``).
    """
    return -(-int(c) // 8) * 8


def gelan_unit(c1: int, c2c3: tuple[int, int], cfg) -> RepNCSPELAN4:
    """A GELAN unit ``RepNCSPELAN4(c1, c2, c3, c3 // 2, D_CSP, D_ELAN, block)`` (Fig. 4, Tables 2-3)."""
    c2, c3 = c2c3
    return RepNCSPELAN4(c1, round_up8(c2), c3, c3 // 2, cfg.depth_csp, cfg.depth_elan, cfg.block)


class Backbone(nn.Module):
    """Conv s2 -> Conv s2 -> stem -> 3 x (downsample -> GELAN unit).

    ``forward`` returns the feature of each resolution level, keyed ``L1`` (stride 2), ``L2``
    (stride 4), ``B3``, ``B4``, ``B5``. An optional ``cbfuse(level, x)`` hook is applied right
    after each resolution change (where the official yaml places its ``CBFuse`` layers); the
    :class:`ReversibleBranch` uses it to add the features linked in from another backbone.
    """

    LEVELS = ("L1", "L2", "B3", "B4", "B5")

    def __init__(self, cfg, in_ch: int = 3):
        super().__init__()
        down = DOWN_TYPES[cfg.down]
        self.conv0 = Conv(in_ch, round_up8(cfg.conv0), 3, 2)
        self.conv1 = Conv(round_up8(cfg.conv0), round_up8(cfg.conv1), 3, 2)
        kind, c2, c3 = cfg.stem
        c1 = round_up8(cfg.conv1)
        if kind == "elan1":
            self.stem = ELAN1(c1, round_up8(c2), c3, c3 // 2)
        else:
            self.stem = gelan_unit(c1, (c2, c3), cfg)
        c = round_up8(c2)
        self.downs, self.stages = nn.ModuleList(), nn.ModuleList()
        for d, unit in zip(cfg.backbone_down, cfg.backbone):
            self.downs.append(down(c, round_up8(d)))
            self.stages.append(gelan_unit(round_up8(d), unit, cfg))
            c = round_up8(unit[0])
        # widths per level: what the level ends with, and what the downsampler into it produces
        self.out_channels = dict(zip(self.LEVELS, [round_up8(cfg.conv0), round_up8(c2)]
                                     + [round_up8(u[0]) for u in cfg.backbone]))
        self.entry_channels = dict(zip(self.LEVELS, [round_up8(cfg.conv0), round_up8(cfg.conv1)]
                                       + [round_up8(d) for d in cfg.backbone_down]))

    def forward(self, x: torch.Tensor, cbfuse: LevelHook | None = None) -> dict[str, torch.Tensor]:
        cbfuse = cbfuse or (lambda level, t: t)
        out = {}
        x = cbfuse("L1", self.conv0(x))
        out["L1"] = x
        x = cbfuse("L2", self.conv1(x))
        out["L2"] = x = self.stem(x)
        for level, down, stage in zip(self.LEVELS[2:], self.downs, self.stages):
            x = stage(cbfuse(level, down(x)))
            out[level] = x
        return out


class TopDown(nn.Module):
    """FPN half of the neck: N5 = SPPELAN(B5); N4 = GELAN(cat(up(N5), B4)); P3 = GELAN(cat(up(N4), B3)).

    Also used on its own as PGI's "multi-level auxiliary information" branch (yolov9-t/s/e).
    """

    def __init__(self, cfg, ch: dict[str, int]):
        super().__init__()
        self.spp = SPPELAN(ch["B5"], round_up8(cfg.spp[0]), cfg.spp[1])
        n5 = round_up8(cfg.spp[0])
        self.n4 = gelan_unit(n5 + ch["B4"], cfg.n4, cfg)
        self.p3 = gelan_unit(round_up8(cfg.n4[0]) + ch["B3"], cfg.p3, cfg)
        self.out_channels = {"N5": n5, "N4": round_up8(cfg.n4[0]), "P3": round_up8(cfg.p3[0])}

    def forward(self, b3, b4, b5):
        n5 = self.spp(b5)
        n4 = self.n4(torch.cat((F.interpolate(n5, scale_factor=2.0, mode="nearest"), b4), 1))
        p3 = self.p3(torch.cat((F.interpolate(n4, scale_factor=2.0, mode="nearest"), b3), 1))
        return n5, n4, p3


class Neck(nn.Module):
    """Top-down FPN then bottom-up PAN; outputs (P3, P4, P5) at strides 8, 16, 32."""

    def __init__(self, cfg, ch: dict[str, int]):
        super().__init__()
        down = DOWN_TYPES[cfg.down]
        self.top_down = TopDown(cfg, ch)
        c = self.top_down.out_channels
        self.down4 = down(c["P3"], round_up8(cfg.pan_down[0]))
        self.p4 = gelan_unit(round_up8(cfg.pan_down[0]) + c["N4"], cfg.p4, cfg)
        self.down5 = down(round_up8(cfg.p4[0]), round_up8(cfg.pan_down[1]))
        self.p5 = gelan_unit(round_up8(cfg.pan_down[1]) + c["N5"], cfg.p5, cfg)
        self.out_channels = (c["P3"], round_up8(cfg.p4[0]), round_up8(cfg.p5[0]))

    def forward(self, b3, b4, b5, features: dict | None = None):
        n5, n4, p3 = self.top_down(b3, b4, b5)
        p4 = self.p4(torch.cat((self.down4(p3), n4), 1))
        p5 = self.p5(torch.cat((self.down5(p4), n5), 1))
        if features is not None:
            features.update(N5=n5, N4=n4, P3=p3, P4=p4, P5=p5)
        return p3, p4, p5


class CBLinear(nn.Module):
    """The linear half of a CBNet/DHLC link (paper Section 4.1.1, Fig. 3d): one 1x1 conv **with
    bias, no BN, no activation** from a main-branch feature to the widths of several auxiliary-branch
    levels; the result is split into one tensor per level.

    In the auxiliary reversible branch these 1x1 convs are the only path by which the auxiliary
    loss reaches the main backbone.
    """

    def __init__(self, c1: int, c2s: list[int], k: int = 1, s: int = 1):
        super().__init__()
        self.c2s = list(c2s)
        self.conv = nn.Conv2d(c1, sum(self.c2s), k, s, autopad(k), bias=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.conv(x).split(self.c2s, dim=1)


class CBFuse(nn.Module):
    """The fusing half of a CBNet link: pick one tensor from each CBLinear output, resize it
    (nearest) to the target's spatial size and add everything to the target."""

    def __init__(self, idx: list[int]):
        super().__init__()
        self.idx = list(idx)

    def forward(self, xs: list) -> torch.Tensor:
        *links, target = xs
        size = target.shape[2:]
        out = target
        for i, link in zip(self.idx, links):
            out = out + F.interpolate(link[i], size=size, mode="nearest")
        return out


class ReversibleBranch(nn.Module):
    """A second backbone whose stages also receive a source's features (CBNet, "DHLC").

    For every linked level ``j`` a :class:`CBLinear` maps the source feature of level ``j`` to the
    widths of all linked levels at or below ``j`` (finer resolutions); after the second backbone's
    downsampler into level ``k``, a :class:`CBFuse` adds the nearest-upsampled pieces from every
    source level ``j >= k``. High-level information therefore flows densely to low levels
    ("dense high-to-low connections").

    ``source_channels`` gives, for each linked level, the width of the source feature linked into
    it (a backbone's ``out_channels``; the PGI neck variant passes the neck's P3-P5 widths keyed
    ``B3``-``B5``). ``levels`` = ``("B3", "B4", "B5")`` gives the m/c auxiliary branch; all five
    levels ``("L1", "L2", "B3", "B4", "B5")`` give GELAN-E's main second backbone.
    """

    def __init__(self, cfg, source_channels: dict[str, int], levels=("B3", "B4", "B5")):
        super().__init__()
        self.levels = tuple(levels)
        self.backbone = Backbone(cfg)
        widths = [self.backbone.entry_channels[k] for k in self.levels]
        # CBLinear of source level j produces one tensor for each linked level up to j
        self.links = nn.ModuleList(
            CBLinear(source_channels[j], widths[: i + 1]) for i, j in enumerate(self.levels))
        # CBFuse at level k picks element k from every link j >= k
        self.fuses = nn.ModuleList(
            CBFuse([i] * (len(self.levels) - i)) for i in range(len(self.levels)))

    def forward(self, x: torch.Tensor, source_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        linked = [link(source_feats[j]) for link, j in zip(self.links, self.levels)]

        def cbfuse(level: str, t: torch.Tensor) -> torch.Tensor:
            if level not in self.levels:
                return t
            i = self.levels.index(level)
            return self.fuses[i](linked[i:] + [t])

        return self.backbone(x, cbfuse=cbfuse)


class MainFeatures(NamedTuple):
    """The main branch's features of one batch: the one input of every PGI auxiliary branch.

    ``image``: the input batch; ``backbone``: the first backbone's levels (``L1``-``B5``);
    ``neck_input``: the levels the neck reads (the first backbone's, or for GELAN-E the DHLC
    second backbone's); ``neck``: the neck's outputs ``N5``, ``N4``, ``P3``, ``P4``, ``P5``.
    """

    image: torch.Tensor
    backbone: dict[str, torch.Tensor]
    neck_input: dict[str, torch.Tensor]
    neck: dict[str, torch.Tensor]
