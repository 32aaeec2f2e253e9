"""The anchor-free decoupled detection head (YOLOv9 paper Section 5.1: "anchor-free ... DFL").

Each pyramid level (strides 8, 16, 32) has two branches:

* box branch ``cv2``: predicts, for every cell, a distribution over ``reg_max = 16`` integer
  distances for each side (left, top, right, bottom) of the box, measured from the cell centre in
  stride units. ``DFL`` turns each distribution into its expectation (Distribution Focal Loss,
  Li et al. 2020, "Generalized Focal Loss").
* class branch ``cv3``: one logit per class; there is no objectness.

:class:`DualDDetect` holds two such heads: the auxiliary one (PGI's auxiliary branch, trained only)
and the main one (kept at inference). Notebook ``04_pgi.ipynb`` explains the pairing.

Official-code facts reproduced here (official ``models/yolo.py``, ``DDetect`` and ``DualDDetect``):

* both branch widths are computed from the *first* level's input width and used for all levels;
* the second box conv and the final box 1x1 use ``groups=4``: one group per box side;
* bias init: box logits 1.0; class logits log(5 / nc / (640 / stride)^2), i.e. a prior of about
  5 objects per 640x640 image spread over the cells of that level.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import Conv


def round_up(x: int, divisor: int) -> int:
    return math.ceil(x / divisor) * divisor


class DFL(nn.Module):
    """Expectation of a discrete distribution over 0..reg_max-1, as a frozen 1x1 conv.

    The weights are the fixed values 0, 1, ..., reg_max-1. They are a (frozen) parameter, as in
    the official code, so parameter counts include these 16 numbers per head.
    """

    def __init__(self, c1: int = 16):
        super().__init__()
        self.c1 = c1
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape  # (B, 4*reg_max, A)
        probs = x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)  # (B, reg_max, 4, A)
        return self.conv(probs).view(b, 4, a)  # (B, 4, A) expected l, t, r, b


def make_anchors(feats: list[torch.Tensor], strides, offset: float = 0.5):
    """Cell centres of every level in grid units, and the matching stride of each anchor.

    Returns ``anchor_points`` (A, 2) as (x, y) and ``stride_tensor`` (A, 1).
    """
    points, stride_list = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[2:]
        sx = torch.arange(w, device=device, dtype=dtype) + offset
        sy = torch.arange(h, device=device, dtype=dtype) + offset
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((xx, yy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(stride), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_list)


def dist2bbox(distance: torch.Tensor, anchor_points: torch.Tensor, xywh: bool = True, dim: int = -1):
    """(l, t, r, b) distances from the anchor point -> box as centre-xywh or xyxy."""
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)
    return torch.cat((x1y1, x2y2), dim)


class DDetect(nn.Module):
    """Anchor-free decoupled head with DFL box regression for 3 levels.

    * train mode: list of ``nl`` maps, each (B, 4*reg_max + nc, H, W) (the loss decodes them);
    * eval mode: (B, 4 + nc, A) with pixel centre-xywh boxes and sigmoid class scores,
      A = sum of H*W over levels (8400 for a 640x640 input).
    """

    def __init__(self, nc: int = 80, ch: tuple[int, ...] = (), strides=(8, 16, 32), reg_max: int = 16,
                 box_groups: int = 4):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = reg_max
        self.no = nc + reg_max * 4  # outputs per anchor
        self.strides = tuple(int(s) for s in strides)  # plain ints: also works on the meta device
        # widths from the first level, used for every level (official-code behaviour)
        c2 = round_up(max(ch[0] // 4, self.reg_max * 4, 16), box_groups)
        c3 = max(ch[0], min(self.nc * 2, 128))
        g = box_groups
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3, g=g), nn.Conv2d(c2, 4 * reg_max, 1, groups=g))
            for x in ch)
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.nc, 1)) for x in ch)
        self.dfl = DFL(reg_max)
        self.bias_init()

    @property
    def stride(self) -> torch.Tensor:
        return torch.tensor(self.strides, dtype=torch.float)

    @torch.no_grad()
    def bias_init(self) -> None:
        """Box logits start at 1.0 (a flat distribution); class logits at the log prior of ~5
        objects per 640x640 image at each level's cell count."""
        for box, cls, s in zip(self.cv2, self.cv3, self.strides):
            box[-1].bias.fill_(1.0)
            cls[-1].bias.fill_(math.log(5 / self.nc / (640 / s) ** 2))

    def forward_maps(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Raw per-level maps (B, 4*reg_max + nc, H, W): what the loss consumes."""
        return [torch.cat((box(x), cls(x)), 1) for x, box, cls in zip(feats, self.cv2, self.cv3)]

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level maps -> (B, 4 + nc, A): pixel centre-xywh boxes and class probabilities."""
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(maps, self.strides))
        b = maps[0].shape[0]
        flat = torch.cat([m.view(b, self.no, -1) for m in maps], 2)  # (B, no, A)
        box, cls = flat.split((self.reg_max * 4, self.nc), 1)
        xywh = dist2bbox(self.dfl(box), anchors.unsqueeze(0), xywh=True, dim=1) * strides
        return torch.cat((xywh, cls.sigmoid()), 1)

    def forward(self, feats: list[torch.Tensor]):
        maps = self.forward_maps(feats)
        return maps if self.training else self.decode(maps)


class DualDDetect(nn.Module):
    """Two :class:`DDetect` heads in one module, as PGI trains them (paper Fig. 3d).

    ``aux`` reads the auxiliary branch's three levels (official inputs 0-2, ``cv2``/``cv3``/``dfl``),
    ``main`` the main branch's (official inputs 3-5, ``cv4``/``cv5``/``dfl2``). Each head computes its
    widths from its own first input, so e.g. yolov9-c's auxiliary head (inputs 512/512/512) is wider
    than its main head (256/512/512).

    * train mode: ``[aux_maps, main_maps]`` (the official order: auxiliary first);
    * eval mode: the main head's decoded output only, (B, 4 + nc, A), which is what the official
      validation uses (``pred[0][1]``); the auxiliary branch is never needed at inference.
    """

    def __init__(self, nc: int, ch_aux: tuple[int, ...], ch_main: tuple[int, ...],
                 strides=(8, 16, 32), reg_max: int = 16):
        super().__init__()
        self.aux = DDetect(nc, ch_aux, strides, reg_max)
        self.main = DDetect(nc, ch_main, strides, reg_max)
        self.nc, self.reg_max, self.nl = nc, reg_max, self.main.nl

    @property
    def stride(self) -> torch.Tensor:
        return self.main.stride

    def forward(self, aux_feats: list[torch.Tensor], main_feats: list[torch.Tensor]):
        if self.training:
            return [self.aux.forward_maps(aux_feats), self.main.forward_maps(main_feats)]
        return self.main.decode(self.main.forward_maps(main_feats))
