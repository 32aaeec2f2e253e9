"""Programmable Gradient Information: the auxiliary branches of YOLOv9 (paper Section 4.1, Fig. 3).

PGI adds, for training only, an auxiliary branch plus an auxiliary head (the ``aux`` half of
:class:`yolov9lite.nn.head.DualDDetect`). Its loss sends extra, more complete gradient information
into the main branch; at inference the branch is deleted (:func:`yolov9lite.nn.deployment.deploy`), so
it costs nothing there. Notebook ``04_pgi.ipynb`` compares the variants; notebook
``05_ablations.ipynb`` reproduces Tables 4 and 5 with them.

The variants of ``ModelConfig.pgi`` (names follow the paper's Table 4/5 vocabulary):

``"none"``  plain GELAN.
``"ds"``    deep supervision (Table 4's "PFH", Table 5's "DS"): the auxiliary head reads the main
            backbone's own ``B3``-``B5`` features; no extra layers (paper Fig. 3c).
``"fpn"``   multi-level auxiliary information (Section 4.1.2): a second top-down FPN on the
            backbone, feeding the auxiliary head. This is the PGI of the released yolov9-t, -s
            and -e (for -e the FPN reads the *first* of its two backbones).
``"pan"``   the same with a full FPN + PAN auxiliary neck (Table 4's "PAN" row).
``"icn"``   auxiliary reversible branch (Section 4.1.1, "ICN"/DHLC linkage): a whole second
            backbone, fed with the image and with the main backbone's ``B3``-``B5`` through
            CBLinear/CBFuse links. The released yolov9-m and -c. The auxiliary loss reaches the
            main backbone only through the CBLinear 1x1 convs.

``ModelConfig.pgi_neck`` adds Table 4's other column, G_neck:

``"icn"``   an auxiliary reversible branch on the **neck**: a second backbone whose CBLinear links
            read the main neck's outputs ``P3``-``P5`` instead of the backbone's ``B3``-``B5``, so
            the auxiliary loss reaches the neck first. Alone (``pgi="none"``) it is Table 4's row
            "G_backbone -, G_neck ICN"; with ``pgi="fpn"`` the row "FPN, ICN" (GELAN-C and
            GELAN-E). No official configuration exists for these rows, so the wiring of the
            combination is ours: the backbone-side branch's three outputs are concatenated with
            ``P3``-``P5`` before the CBLinear links, i.e. linked into the same second backbone
            (a 1x1 conv of a concatenation is the sum of two link convs), and the auxiliary head
            reads that second backbone. One auxiliary head, as in every released model.

Every branch is called the same way, ``branch(feats)`` with the main branch's
:class:`~yolov9lite.nn.gelan.MainFeatures`, and returns the three auxiliary-head inputs (strides 8,
16, 32). The CBNet machinery itself, :class:`~yolov9lite.nn.gelan.ReversibleBranch`, lives in
:mod:`yolov9lite.nn.gelan` because GELAN-E's *inference* model uses it too ("+DHLC", Table 6).
"""
from __future__ import annotations

import torch
from torch import nn

from .gelan import MainFeatures, Neck, ReversibleBranch, TopDown

PGI_VARIANTS = ("none", "ds", "fpn", "pan", "icn")
PGI_NECK_VARIANTS = ("none", "icn")
LINKED_LEVELS = ("B3", "B4", "B5")


class DeepSupervision(nn.Module):
    """Auxiliary head directly on the main backbone's B3, B4, B5 (no parameters of its own)."""

    def __init__(self, main_ch: dict[str, int]):
        super().__init__()
        self.out_channels = (main_ch["B3"], main_ch["B4"], main_ch["B5"])

    def forward(self, feats: MainFeatures):
        main = feats.neck_input
        return main["B3"], main["B4"], main["B5"]


class AuxiliaryFPN(nn.Module):
    """Multi-level auxiliary information: an FPN (or FPN+PAN) neck of its own on the first backbone.

    Each auxiliary output level sees all backbone levels, so the gradient it sends back carries
    information about every object size at every level (paper Section 4.1.2).
    """

    def __init__(self, cfg, first_ch: dict[str, int], with_pan: bool = False):
        super().__init__()
        self.with_pan = with_pan
        if with_pan:
            self.neck = Neck(cfg, first_ch)
            self.out_channels = self.neck.out_channels
        else:
            self.neck = TopDown(cfg, first_ch)
            c = self.neck.out_channels
            self.out_channels = (c["P3"], c["N4"], c["N5"])

    def forward(self, feats: MainFeatures):
        first = feats.backbone
        out = self.neck(first["B3"], first["B4"], first["B5"])
        if self.with_pan:
            return out
        n5, n4, p3 = out
        return p3, n4, n5


class AuxiliaryReversibleBranch(nn.Module):
    """PGI's auxiliary reversible branch (m/c flavour): a :class:`ReversibleBranch` on B3-B5."""

    def __init__(self, cfg, main_ch: dict[str, int]):
        super().__init__()
        self.branch = ReversibleBranch(cfg, main_ch, levels=("B3", "B4", "B5"))
        ch = self.branch.backbone.out_channels
        self.out_channels = (ch["B3"], ch["B4"], ch["B5"])

    def forward(self, feats: MainFeatures):
        out = self.branch(feats.image, feats.neck_input)
        return out["B3"], out["B4"], out["B5"]


class NeckReversibleBranch(nn.Module):
    """Table 4's G_neck = ICN: a :class:`ReversibleBranch` linked from the main neck's P3-P5.

    ``inner`` is the backbone-side auxiliary branch (G_backbone) or ``None``; its three outputs
    are concatenated with P3-P5 level by level before the CBLinear links.
    """

    def __init__(self, cfg, neck_ch: tuple[int, ...], inner: nn.Module | None = None):
        super().__init__()
        self.inner = inner
        inner_ch = inner.out_channels if inner is not None else (0, 0, 0)
        sources = {lvl: c + ci for lvl, c, ci in zip(LINKED_LEVELS, neck_ch, inner_ch)}
        self.branch = ReversibleBranch(cfg, sources, levels=LINKED_LEVELS)
        ch = self.branch.backbone.out_channels
        self.out_channels = tuple(ch[k] for k in LINKED_LEVELS)

    def forward(self, feats: MainFeatures):
        linked = [feats.neck[k] for k in ("P3", "P4", "P5")]
        if self.inner is not None:
            linked = [torch.cat(pair, 1) for pair in zip(linked, self.inner(feats))]
        out = self.branch(feats.image, dict(zip(LINKED_LEVELS, linked)))
        return tuple(out[k] for k in LINKED_LEVELS)


def _backbone_side_branch(cfg, first_ch: dict[str, int], main_ch: dict[str, int]) -> nn.Module | None:
    """The G_backbone branch named by ``cfg.pgi`` (``None`` for ``"none"``)."""
    if cfg.pgi == "none":
        return None
    if cfg.pgi == "ds":
        return DeepSupervision(main_ch)
    if cfg.pgi in ("fpn", "pan"):
        return AuxiliaryFPN(cfg, first_ch, with_pan=cfg.pgi == "pan")
    if cfg.pgi == "icn":
        if cfg.dhlc:
            raise ValueError("pgi='icn' on a dual-backbone (dhlc) model is not supported; "
                             "the released yolov9-e uses pgi='fpn'")
        return AuxiliaryReversibleBranch(cfg, main_ch)
    raise ValueError(f"unknown PGI variant {cfg.pgi!r}; choose from {PGI_VARIANTS}")


def build_aux_branch(cfg, first_ch: dict[str, int], main_ch: dict[str, int],
                     neck_ch: tuple[int, ...]) -> nn.Module | None:
    """The auxiliary branch named by ``cfg.pgi`` and ``cfg.pgi_neck`` (``None`` for plain GELAN).

    ``first_ch``: the widths of the first backbone's levels; ``main_ch``: those of the levels the
    neck reads (different only for GELAN-E); ``neck_ch``: the widths of the neck's P3-P5.
    """
    inner = _backbone_side_branch(cfg, first_ch, main_ch)
    if cfg.pgi_neck == "none":
        return inner
    if cfg.pgi_neck != "icn":
        raise ValueError(f"unknown neck PGI variant {cfg.pgi_neck!r}; choose from {PGI_NECK_VARIANTS}")
    if cfg.pgi == "icn":
        raise ValueError("pgi='icn' with pgi_neck='icn' is not a Table 4 row; use pgi='none' or 'fpn'")
    return NeckReversibleBranch(cfg, neck_ch, inner)
