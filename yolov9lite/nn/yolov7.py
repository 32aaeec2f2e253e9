"""The anchor-free YOLOv7 baseline of paper Table 6 ("YOLOv7 + AF"), official ``yolov7-af.yaml``.

Table 6 walks from YOLOv7 to YOLOv9-E one change at a time. Its second row, "+ AF", is YOLOv7 with
the anchor-free decoupled DFL head of YOLOv9 (the official ``Detect``, :class:`Detect`)
instead of YOLOv7's anchor-based one. The official repository releases that step as
``models/detect/yolov7-af.yaml``; :func:`yolov9lite.nn.models.build_model` builds it as
``"yolov7-af"`` with exactly its parameter count (43,589,728; 43,564,736 after ``deploy``,
asserted in ``tests/test_models.py``).

The yaml spells YOLOv7's blocks out layer by layer; here they are the classes
:class:`ELAN7` (ELAN / ELAN-W), :class:`MPConv` and :class:`SPPCSPC` (defined here, next to the
model that uses them), in the same order and widths. The model has the interface of
:class:`yolov9lite.nn.models.DetectionModel` without PGI (train mode: 3 raw maps; eval mode:
``(B, 4 + nc, A)``), so the loss, :func:`~yolov9lite.nn.deployment.deploy` and
:func:`~yolov9lite.nn.complexity.profile` work on it unchanged. It is a comparison baseline: our
checkpoint format stores GELAN configs only, so it is not saved or loaded by ``checkpoint.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Conv
from .head import DDetect

STRIDES = (8, 16, 32)


# --- YOLOv7 blocks, for the yolov7-af baseline of Table 6 (official models/detect/yolov7-af.yaml) --
# The official yaml spells the two YOLOv7 aggregations out layer by layer (Conv, Concat, MP); here
# each is one class. ``MP`` and ``SPPCSPC`` keep their official names (models/common.py).


class MP(nn.Module):
    """Max-pool k x k with stride k (YOLOv7's downsampling pool)."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class SPPCSPC(nn.Module):
    """YOLOv7's SPP neck entry as a CSP block: a (1x1, 3x3, 1x1, pools 5/9/13 in parallel, 1x1,
    3x3) path next to a 1x1 shortcut path, concatenated and mixed by a 1x1 conv."""

    def __init__(self, c1: int, c2: int, e: float = 0.5, k: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        c_ = int(2 * c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(c_, c_, 3, 1)
        self.cv4 = Conv(c_, c_, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)
        self.cv5 = Conv(4 * c_, c_, 1, 1)
        self.cv6 = Conv(c_, c_, 3, 1)
        self.cv7 = Conv(2 * c_, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1, *(pool(x1) for pool in self.m)], 1)))
        return self.cv7(torch.cat((y1, self.cv2(x)), 1))


class ELAN7(nn.Module):
    """YOLOv7's ELAN (backbone) and ELAN-W (neck) aggregation, paper Fig. 2c of YOLOv7.

    Two 1x1 convs of width ``c_`` read the input; a chain of four 3x3 convs of width ``cb``
    continues from the second. ``wide=False`` (backbone ELAN) concatenates the chain's 4th and 2nd
    outputs with both 1x1 outputs; ``wide=True`` (ELAN-W) all four chain outputs. A 1x1 conv maps
    the concatenation to ``c2``. Concat order as in the yaml: newest first.
    """

    def __init__(self, c1: int, c_: int, cb: int, c2: int, wide: bool = False):
        super().__init__()
        self.wide = wide
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.m = nn.ModuleList(Conv(c_ if i == 0 else cb, cb, 3, 1) for i in range(4))
        self.cv3 = Conv(2 * c_ + (4 if wide else 2) * cb, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x), self.cv2(x)]
        for conv in self.m:
            y.append(conv(y[-1]))
        picked = y[::-1] if self.wide else [y[5], y[3], y[1], y[0]]
        return self.cv3(torch.cat(picked, 1))


class MPConv(nn.Module):
    """YOLOv7's stride-2 transition: concat(Conv3x3 s2(Conv1x1(x)), Conv1x1(MP(x))), ``c`` each."""

    def __init__(self, c1: int, c: int):
        super().__init__()
        self.mp = MP(2)
        self.cv1 = Conv(c1, c, 1, 1)  # after the max-pool
        self.cv2 = Conv(c1, c, 1, 1)
        self.cv3 = Conv(c, c, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cv3(self.cv2(x)), self.cv1(self.mp(x))), 1)


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


class Detect(DDetect):
    """The official ``Detect``: :class:`~yolov9lite.nn.head.DDetect` with ungrouped box convs
    (``box_groups=1``), the head of the anchor-free YOLOv7 baseline (official
    ``models/detect/yolov7-af.yaml``); YOLOv9's heads are the grouped ``DDetect`` and
    ``DualDDetect``."""

    def __init__(self, nc: int = 80, ch: tuple[int, ...] = (), strides=(8, 16, 32), reg_max: int = 16):
        super().__init__(nc, ch, strides, reg_max, box_groups=1)


class YOLOv7AF(nn.Module):
    """YOLOv7 + anchor-free head: backbone, neck and :class:`Detect`."""

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
