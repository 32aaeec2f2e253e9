"""The anchor-free YOLOv7 baseline of paper Table 6 ("YOLOv7 + AF"), official ``yolov7-af.yaml``.

Table 6 walks from YOLOv7 to YOLOv9-E one change at a time. Its second row, "+ AF", is YOLOv7 with
the anchor-free decoupled DFL head of YOLOv9 (the official ``Detect``, :class:`yolov9lite.head.Detect`)
instead of YOLOv7's anchor-based one. The official repository releases that step as
``models/detect/yolov7-af.yaml``; :func:`yolov9lite.models.build_model` builds it as
``"yolov7-af"`` with exactly its parameter count (43,589,728; 43,564,736 after ``deploy``,
asserted in ``tests/test_models.py``).

The yaml spells YOLOv7's blocks out layer by layer; here they are the classes
:class:`~yolov9lite.blocks.ELAN7` (ELAN / ELAN-W), :class:`~yolov9lite.blocks.MPConv` and
:class:`~yolov9lite.blocks.SPPCSPC`, in the same order and widths. The model has the interface of
:class:`yolov9lite.models.DetectionModel` without PGI (train mode: 3 raw maps; eval mode:
``(B, 4 + nc, A)``), so the loss, :func:`~yolov9lite.deployment.deploy` and
:func:`~yolov9lite.complexity.profile` work on it unchanged. It is a comparison baseline: our
checkpoint format stores GELAN configs only, so it is not saved or loaded by ``checkpoint.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ELAN7, SPPCSPC, Conv, MPConv
from .head import Detect

STRIDES = (8, 16, 32)


class YOLOv7Backbone(nn.Module):
    """Official layers 0-50: a 4-conv stem to stride 4, then ELAN blocks with MP-Conv transitions.

    Returns ``C3``, ``C4``, ``C5``: the ELAN outputs at strides 8, 16, 32 (yaml layers 24, 37, 50).
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 32, 3, 1), Conv(32, 64, 3, 2), Conv(64, 64, 3, 1),
                                  Conv(64, 128, 3, 2))
        self.elan2 = ELAN7(128, 64, 64, 256)  # stride 4
        self.down3, self.elan3 = MPConv(256, 128), ELAN7(256, 128, 128, 512)
        self.down4, self.elan4 = MPConv(512, 256), ELAN7(512, 256, 256, 1024)
        self.down5, self.elan5 = MPConv(1024, 512), ELAN7(1024, 256, 256, 1024)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.elan2(self.stem(x))
        c3 = self.elan3(self.down3(x))
        c4 = self.elan4(self.down4(c3))
        c5 = self.elan5(self.down5(c4))
        return {"C3": c3, "C4": c4, "C5": c5}


class YOLOv7Neck(nn.Module):
    """Official layers 51-104: SPPCSPC, top-down and bottom-up ELAN-W paths, and the three 3x3
    convs that widen (P3, P4, P5) to (256, 512, 1024) for the head."""

    def __init__(self):
        super().__init__()
        self.spp = SPPCSPC(1024, 512)  # N5
        self.reduce5, self.lateral4 = Conv(512, 256, 1), Conv(1024, 256, 1)
        self.n4 = ELAN7(512, 256, 128, 256, wide=True)
        self.reduce4, self.lateral3 = Conv(256, 128, 1), Conv(512, 128, 1)
        self.p3 = ELAN7(256, 128, 64, 128, wide=True)
        self.down4, self.p4 = MPConv(128, 128), ELAN7(512, 256, 128, 256, wide=True)
        self.down5, self.p5 = MPConv(256, 256), ELAN7(1024, 512, 256, 512, wide=True)
        self.out3, self.out4, self.out5 = Conv(128, 256, 3), Conv(256, 512, 3), Conv(512, 1024, 3)
        self.out_channels = (256, 512, 1024)

    def forward(self, c3, c4, c5, features: dict | None = None):
        n5 = self.spp(c5)
        up5 = F.interpolate(self.reduce5(n5), scale_factor=2.0, mode="nearest")
        n4 = self.n4(torch.cat((self.lateral4(c4), up5), 1))
        up4 = F.interpolate(self.reduce4(n4), scale_factor=2.0, mode="nearest")
        p3 = self.p3(torch.cat((self.lateral3(c3), up4), 1))
        p4 = self.p4(torch.cat((self.down4(p3), n4), 1))
        p5 = self.p5(torch.cat((self.down5(p4), n5), 1))
        out = self.out3(p3), self.out4(p4), self.out5(p5)
        if features is not None:
            features.update(N5=n5, N4=n4, P3=out[0], P4=out[1], P5=out[2])
        return out


class YOLOv7AF(nn.Module):
    """YOLOv7 + anchor-free head: backbone, neck and :class:`~yolov9lite.head.Detect`."""

    aux = None
    has_aux = False

    def __init__(self, num_classes: int = 80, name: str = "yolov7-af"):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.name, self.nc, self.strides = name, num_classes, STRIDES
        # Table 6, "+ AF" row (paper numbers; params/FLOPs of the deployed model)
        self.paper = {"params_m": 43.6, "gflops": 130.5, "ap": 53.0}
        self.backbone = YOLOv7Backbone()
        self.neck = YOLOv7Neck()
        self.head = Detect(num_classes, self.neck.out_channels, STRIDES)

    @property
    def stride(self) -> torch.Tensor:
        return torch.tensor(self.strides, dtype=torch.float)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"expected (B, 3, H, W) with H, W multiples of 32, got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor, with_aux: bool = False) -> dict[str, torch.Tensor]:
        self.check_input(x)
        feats = self.backbone(x)
        self.neck(feats["C3"], feats["C4"], feats["C5"], features=feats)
        return feats

    def forward(self, x: torch.Tensor):
        f = self.forward_features(x)
        return self.head([f["P3"], f["P4"], f["P5"]])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, nc={self.nc}"
