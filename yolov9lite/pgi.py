"""Programmable Gradient Information: the auxiliary branches of YOLOv9 (paper Section 4.1, Fig. 3).

PGI adds, for training only, an auxiliary branch plus an auxiliary head (the ``aux`` half of
:class:`yolov9lite.head.DualDDetect`). Its loss sends extra, more complete gradient information
into the main branch's backbone; at inference the branch is deleted
(:func:`yolov9lite.deploy.deploy`), so it costs nothing there. Notebook ``04_pgi.ipynb`` compares
the variants; notebook ``05_ablations.ipynb`` reproduces Tables 4 and 5 with them.

The variants of ``ModelConfig.pgi`` (names follow the paper's Table 4/5 vocabulary):

``"none"``  plain GELAN.
``"ds"``    deep supervision (Table 4's "PFH", Table 5's "DS"): the auxiliary head reads the main
            backbone's own ``B3``-``B5`` features; no extra layers (paper Fig. 3b).
``"fpn"``   multi-level auxiliary information (Section 4.1.2): a second top-down FPN on the
            backbone, feeding the auxiliary head. This is the PGI of the released yolov9-t, -s
            and -e (for -e the FPN reads the *first* of its two backbones).
``"pan"``   the same with a full FPN + PAN auxiliary neck (Table 4's "PAN" row).
``"icn"``   auxiliary reversible branch (Section 4.1.1, "ICN"/DHLC linkage): a whole second
            backbone, fed with the image and with the main backbone's ``B3``-``B5`` through
            CBLinear/CBFuse links. The released yolov9-m and -c. The auxiliary loss reaches the
            main backbone only through the CBLinear 1x1 convs.

The same CBNet machinery, :class:`ReversibleBranch`, is also part of the *inference* model of
GELAN-E, whose second backbone is linked to the first at all five levels (Table 6, "+DHLC").
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import CBFuse, CBLinear


class ReversibleBranch(nn.Module):
    """A second backbone whose stages also receive a source backbone's features (CBNet, DHLC).

    For every linked level ``j`` a :class:`CBLinear` maps the source feature of level ``j`` to the
    widths of all linked levels at or below ``j`` (finer resolutions); after the second backbone's
    downsampler into level ``k``, a :class:`CBFuse` adds the nearest-upsampled pieces from every
    source level ``j >= k``. High-level information therefore flows densely to low levels
    ("dense high-to-low connections").

    ``levels`` = ``("B3", "B4", "B5")`` gives the m/c auxiliary branch; all five levels
    ``("L1", "L2", "B3", "B4", "B5")`` give GELAN-E's main second backbone.
    """

    def __init__(self, cfg, source, levels=("B3", "B4", "B5")):
        super().__init__()
        from .models import Backbone

        self.levels = tuple(levels)
        self.backbone = Backbone(cfg)
        widths = [self.backbone.entry_channels[k] for k in self.levels]
        # CBLinear of source level j produces one tensor for each linked level up to j
        self.links = nn.ModuleList(
            CBLinear(source.out_channels[j], widths[: i + 1]) for i, j in enumerate(self.levels))
        # CBFuse at level k picks element k from every link j >= k
        self.fuses = nn.ModuleList(
            CBFuse([i] * (len(self.levels) - i)) for i in range(len(self.levels)))

    def forward(self, x: torch.Tensor, source_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        linked = [link(source_feats[j]) for link, j in zip(self.links, self.levels)]

        def fuse(level: str, t: torch.Tensor) -> torch.Tensor:
            if level not in self.levels:
                return t
            i = self.levels.index(level)
            return self.fuses[i](linked[i:] + [t])

        return self.backbone(x, fuse=fuse)


class DeepSupervision(nn.Module):
    """Auxiliary head directly on the main backbone's B3, B4, B5 (no parameters of its own)."""

    def __init__(self, main_ch: dict[str, int]):
        super().__init__()
        self.out_channels = (main_ch["B3"], main_ch["B4"], main_ch["B5"])

    def forward(self, x, first, main, feats):
        return main["B3"], main["B4"], main["B5"]


class AuxiliaryFPN(nn.Module):
    """Multi-level auxiliary information: an FPN (or FPN+PAN) neck of its own on the first backbone.

    Each auxiliary output level sees all backbone levels, so the gradient it sends back carries
    information about every object size at every level (paper Section 4.1.2).
    """

    def __init__(self, cfg, first_ch: dict[str, int], with_pan: bool = False):
        super().__init__()
        from .models import Neck, TopDown

        self.with_pan = with_pan
        if with_pan:
            self.neck = Neck(cfg, first_ch)
            self.out_channels = self.neck.out_channels
        else:
            self.neck = TopDown(cfg, first_ch)
            c = self.neck.out_channels
            self.out_channels = (c["P3"], c["N4"], c["N5"])

    def forward(self, x, first, main, feats):
        out = self.neck(first["B3"], first["B4"], first["B5"])
        if self.with_pan:
            return out
        n5, n4, p3 = out
        return p3, n4, n5


class AuxiliaryReversibleBranch(nn.Module):
    """PGI's auxiliary reversible branch (m/c flavour): :class:`ReversibleBranch` on B3-B5."""

    def __init__(self, cfg, main_backbone):
        super().__init__()
        self.branch = ReversibleBranch(cfg, main_backbone, levels=("B3", "B4", "B5"))
        ch = self.branch.backbone.out_channels
        self.out_channels = (ch["B3"], ch["B4"], ch["B5"])

    def forward(self, x, first, main, feats):
        out = self.branch(x, main)
        return out["B3"], out["B4"], out["B5"]


def build_aux_branch(cfg, first_backbone, main_ch: dict[str, int]) -> nn.Module | None:
    """The auxiliary branch named by ``cfg.pgi`` (``None`` for plain GELAN)."""
    if cfg.pgi == "none":
        return None
    if cfg.pgi == "ds":
        return DeepSupervision(main_ch)
    if cfg.pgi in ("fpn", "pan"):
        return AuxiliaryFPN(cfg, first_backbone.out_channels, with_pan=cfg.pgi == "pan")
    if cfg.pgi == "icn":
        if cfg.dhlc:
            raise ValueError("pgi='icn' on a dual-backbone (dhlc) model is not supported; "
                             "the released yolov9-e uses pgi='fpn'")
        return AuxiliaryReversibleBranch(cfg, first_backbone)
    raise ValueError(f"unknown PGI variant {cfg.pgi!r}")
