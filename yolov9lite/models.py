"""GELAN and YOLOv9 detection models as plain PyTorch classes (paper Sections 4 and 5).

A model is three parts, each a small class, wired by :class:`DetectionModel`:

* :class:`Backbone`: two strided convs, a stem block, then three (downsample -> GELAN unit) stages
  whose outputs are ``B3``, ``B4``, ``B5`` (strides 8, 16, 32).
* :class:`Neck`: the FPN top-down path (SPPELAN ``N5`` -> ``N4`` -> ``P3``) followed by the PAN
  bottom-up path (``P3`` -> ``P4`` -> ``P5``), as in the official yaml files.
* a head from :mod:`yolov9lite.head` on (``P3``, ``P4``, ``P5``).

GELAN-E additionally runs a second backbone fed from the first one through CBLinear/CBFuse links
("DHLC", Table 6): that is :class:`yolov9lite.pgi.ReversibleBranch` used inside the main branch.

YOLOv9 = GELAN + PGI: an auxiliary branch and an auxiliary head used for training only
(:mod:`yolov9lite.pgi`). :func:`yolov9lite.deploy.deploy` removes them.

Every size is a :class:`ModelConfig` preset in :data:`PRESETS`; the numbers are those of the
official yaml files (WongKinYiu/yolov9, ``models/detect``), and ``tests/test_models.py`` checks
that the parameter counts equal the official integers. The ablation knobs of Tables 2-5 are fields
of the same config: ``block`` (computational block), ``depth_elan`` (D_ELAN), ``depth_csp``
(D_CSP), ``pgi`` (auxiliary-branch variant).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import DOWN_TYPES, ELAN1, SPPELAN, Conv, RepNCSPELAN4
from .head import DDetect, DualDDetect

STRIDES = (8, 16, 32)
PGI_VARIANTS = ("none", "ds", "fpn", "pan", "icn")


def round_up8(c: int) -> int:
    """Output widths are rounded up to a multiple of 8, as the official builder does.

    This is what turns yolov9-m's ``AConv [180]`` into 184 channels (spec Section 2.1).
    """
    return -(-int(c) // 8) * 8


@dataclass(frozen=True)
class ModelConfig:
    """Widths and knobs of one model. ``(c2, c3)`` pairs are GELAN units ``RepNCSPELAN4(c2, c3,
    c3 // 2, depth_csp)`` (official yaml arguments 1-3; the 4th hidden width is always c3 / 2)."""

    conv0: int  # first 3x3 stride-2 conv (P1/2)
    conv1: int  # second 3x3 stride-2 conv (P2/4)
    stem: tuple[str, int, int]  # ("elan1" | "gelan", c2, c3) at stride 4
    down: str  # "aconv" | "adown" | "conv": the backbone / PAN downsampler
    backbone_down: tuple[int, int, int]  # downsampler widths into strides 8, 16, 32
    backbone: tuple[tuple[int, int], ...]  # B3, B4, B5 GELAN units
    spp: tuple[int, int]  # SPPELAN (c2, c3) = N5
    n4: tuple[int, int]  # top-down GELAN unit at stride 16
    p3: tuple[int, int]  # top-down GELAN unit at stride 8 (= output P3)
    pan_down: tuple[int, int]  # PAN downsampler widths into strides 16, 32
    p4: tuple[int, int]
    p5: tuple[int, int]
    depth_csp: int = 1  # D_CSP: bottlenecks per CSP block (yaml arg 4)
    depth_elan: int = 2  # D_ELAN: stages per GELAN unit
    block: str = "csp"  # computational block: csp | res | dark | conv  (Table 2)
    dhlc: bool = False  # GELAN-E: second backbone linked to the first (kept at inference)
    pgi: str = "none"  # auxiliary branch: none | ds | fpn | pan | icn  (Tables 4, 5)
    paper: dict = field(default_factory=dict, compare=False)  # published numbers, for tables

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


# --- The official sizes (gelan-X = inference model, yolov9-X = gelan-X + PGI) ----------------------
# Comments give the unfused / deployed parameter counts of the gelan model (official code, nc=80).

_T = ModelConfig(  # 2,442,640 / 2,407,632
    conv0=16, conv1=32, stem=("elan1", 32, 32), down="aconv", backbone_down=(64, 96, 128),
    backbone=((64, 64), (96, 96), (128, 128)), spp=(128, 64), n4=(96, 96), p3=(64, 64),
    pan_down=(48, 64), p4=(96, 96), p5=(128, 128), depth_csp=3)
_S = ModelConfig(  # 7,226,208 / 7,105,888
    conv0=32, conv1=64, stem=("elan1", 64, 64), down="aconv", backbone_down=(128, 192, 256),
    backbone=((128, 128), (192, 192), (256, 256)), spp=(256, 128), n4=(192, 192), p3=(128, 128),
    pan_down=(96, 128), p4=(192, 192), p5=(256, 256), depth_csp=3)
_M = ModelConfig(  # 20,124,000 / 19,978,672
    conv0=32, conv1=64, stem=("gelan", 128, 128), down="aconv", backbone_down=(240, 360, 480),
    backbone=((240, 240), (360, 360), (480, 480)), spp=(480, 240), n4=(360, 360), p3=(240, 240),
    pan_down=(180, 240), p4=(360, 360), p5=(480, 480), depth_csp=1)  # 180 -> 184 by round_up8
_C = ModelConfig(  # 25,498,752 / 25,288,768
    conv0=64, conv1=128, stem=("gelan", 256, 128), down="adown", backbone_down=(256, 512, 512),
    backbone=((512, 256), (512, 512), (512, 512)), spp=(512, 256), n4=(512, 512), p3=(256, 256),
    pan_down=(256, 512), p4=(512, 512), p5=(512, 512), depth_csp=1)
_E = ModelConfig(  # 58,114,432 / 57,345,920
    conv0=64, conv1=128, stem=("gelan", 256, 128), down="adown", backbone_down=(256, 512, 1024),
    backbone=((512, 256), (1024, 512), (1024, 512)), spp=(512, 256), n4=(512, 512),
    p3=(256, 256), pan_down=(256, 512), p4=(512, 512), p5=(512, 1024), depth_csp=2, dhlc=True)

# Made-up tiny sizes with the same topology, for laptops, notebooks and CI (minGPT's "gpt-nano").
_NANO = ModelConfig(
    conv0=8, conv1=16, stem=("elan1", 16, 16), down="aconv", backbone_down=(32, 48, 64),
    backbone=((32, 32), (48, 48), (64, 64)), spp=(64, 32), n4=(48, 48), p3=(32, 32),
    pan_down=(24, 32), p4=(48, 48), p5=(64, 64), depth_csp=1)

# Published numbers (paper Table 1; YOLOv9-T from the official README, see spec Section 1).
_PAPER = {
    "t": dict(params_m=2.0, gflops=7.7, ap=38.3), "s": dict(params_m=7.1, gflops=26.4, ap=46.8),
    "m": dict(params_m=20.0, gflops=76.3, ap=51.4), "c": dict(params_m=25.3, gflops=102.1, ap=53.0),
    "e": dict(params_m=57.3, gflops=189.0, ap=55.6),
}
_GELAN_AP = {"s": 46.7, "m": 51.1, "c": 52.5, "e": 55.0}

# PGI flavour of each released yolov9 model (spec Section 2.5):
#   t, s, e: "multi-level auxiliary information" = an auxiliary FPN on the (first) backbone;
#   m, c:    "auxiliary reversible branch" = a CBNet-style second backbone linked by CBLinear/CBFuse.
_RELEASED_PGI = {"t": "fpn", "s": "fpn", "m": "icn", "c": "icn", "e": "fpn"}

PRESETS: dict[str, ModelConfig] = {}
for _size, _cfg in {"t": _T, "s": _S, "m": _M, "c": _C, "e": _E}.items():
    _paper = dict(_PAPER[_size])
    PRESETS[f"gelan-{_size}"] = _cfg.replace(paper={**_paper, "ap": _GELAN_AP.get(_size)})
    PRESETS[f"yolov9-{_size}"] = _cfg.replace(pgi=_RELEASED_PGI[_size], paper=_paper)
PRESETS["gelan-nano"] = _NANO
PRESETS["yolov9-nano"] = _NANO.replace(pgi="fpn")
PRESETS["yolov9-nano-icn"] = _NANO.replace(pgi="icn")  # the m/c flavour of PGI, tiny

OFFICIAL_MODELS = tuple(f"{kind}-{s}" for kind in ("gelan", "yolov9") for s in "tsmce")


def gelan_unit(c1: int, c2c3: tuple[int, int], cfg: ModelConfig) -> RepNCSPELAN4:
    c2, c3 = c2c3
    return RepNCSPELAN4(c1, round_up8(c2), c3, c3 // 2, cfg.depth_csp, cfg.depth_elan, cfg.block)


class Backbone(nn.Module):
    """Conv s2 -> Conv s2 -> stem -> 3 x (downsample -> GELAN unit).

    ``forward`` returns the feature of each resolution level, keyed ``L1`` (stride 2), ``L2``
    (stride 4), ``B3``, ``B4``, ``B5``. An optional ``fuse(level, x)`` callback is applied right
    after each resolution change; the reversible branch uses it to add the CBFuse links.
    """

    LEVELS = ("L1", "L2", "B3", "B4", "B5")

    def __init__(self, cfg: ModelConfig, in_ch: int = 3):
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

    def forward(self, x: torch.Tensor, fuse=None) -> dict[str, torch.Tensor]:
        fuse = fuse or (lambda level, t: t)
        out = {}
        x = fuse("L1", self.conv0(x))
        out["L1"] = x
        x = fuse("L2", self.conv1(x))
        out["L2"] = x = self.stem(x)
        for level, down, stage in zip(self.LEVELS[2:], self.downs, self.stages):
            x = stage(fuse(level, down(x)))
            out[level] = x
        return out


class TopDown(nn.Module):
    """FPN half of the neck: N5 = SPPELAN(B5); N4 = GELAN(cat(up(N5), B4)); P3 = GELAN(cat(up(N4), B3)).

    Also used on its own as PGI's "multi-level auxiliary information" branch (yolov9-t/s/e).
    """

    def __init__(self, cfg: ModelConfig, ch: dict[str, int]):
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

    def __init__(self, cfg: ModelConfig, ch: dict[str, int]):
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


class DetectionModel(nn.Module):
    """A GELAN detector, optionally with a PGI auxiliary branch (then it is a YOLOv9 model).

    * ``model(x)`` in train mode returns the head's raw maps: a list of 3 tensors (gelan), or
      ``[aux_maps, main_maps]`` (yolov9, official order);
    * in eval mode it returns ``(B, 4 + nc, A)``: pixel centre-xywh boxes and class probabilities
      of the main branch (the auxiliary branch is not even run);
    * ``model.forward_features(x)`` returns every named intermediate feature (``L1``, ``L2``,
      ``B3``-``B5``, ``N5``, ``N4``, ``P3``-``P5``, and with PGI ``A3``-``A5``; a dual-backbone
      model also has ``bb1.B3`` etc. for its first backbone) for visualisation.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int = 80, name: str = "custom"):
        super().__init__()
        from .pgi import ReversibleBranch, build_aux_branch  # pgi imports this module

        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if cfg.pgi not in PGI_VARIANTS:
            raise ValueError(f"unknown PGI variant {cfg.pgi!r}; choose from {PGI_VARIANTS}")
        self.cfg, self.name, self.nc = cfg, name, num_classes
        self.strides = STRIDES
        self.backbone = Backbone(cfg)
        main_ch = self.backbone.out_channels
        if cfg.dhlc:  # GELAN-E: the neck reads a second backbone linked to the first (DHLC)
            self.dhlc = ReversibleBranch(cfg, self.backbone, levels=Backbone.LEVELS)
            main_ch = self.dhlc.backbone.out_channels
        self.neck = Neck(cfg, main_ch)
        self.aux = build_aux_branch(cfg, self.backbone, main_ch)
        if self.aux is None:
            self.head = DDetect(num_classes, self.neck.out_channels, STRIDES)
        else:
            self.head = DualDDetect(num_classes, self.aux.out_channels, self.neck.out_channels, STRIDES)

    @property
    def has_aux(self) -> bool:
        return self.aux is not None

    @property
    def stride(self) -> torch.Tensor:
        return torch.tensor(self.strides, dtype=torch.float)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[2:]
        if h % 32 or w % 32:
            raise ValueError(
                f"input sides must be multiples of 32 (the largest stride), got {h}x{w}; "
                f"letterbox or resize to e.g. {-(-h // 32) * 32}x{-(-w // 32) * 32}")

    def forward_features(self, x: torch.Tensor, with_aux: bool = True) -> dict[str, torch.Tensor]:
        self.check_input(x)
        feats: dict[str, torch.Tensor] = {}
        first = self.backbone(x)
        if self.cfg.dhlc:
            feats.update({f"bb1.{k}": v for k, v in first.items()})
            main = self.dhlc(x, first)
        else:
            main = first
        feats.update(main)
        self.neck(main["B3"], main["B4"], main["B5"], features=feats)
        if with_aux and self.aux is not None:
            a3, a4, a5 = self.aux(x, first, main, feats)
            feats.update(A3=a3, A4=a4, A5=a5)
        return feats

    def forward(self, x: torch.Tensor):
        want_aux = self.training and self.aux is not None
        f = self.forward_features(x, with_aux=want_aux)
        main = [f["P3"], f["P4"], f["P5"]]
        if self.aux is None:
            return self.head(main)
        if want_aux:
            return self.head([f["A3"], f["A4"], f["A5"]], main)
        return self.head.main.decode(self.head.main.forward_maps(main))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, nc={self.nc}, pgi={self.cfg.pgi!r}"


def build_model(name: str | ModelConfig = "gelan-c", num_classes: int = 80, **overrides) -> DetectionModel:
    """Build a model from a preset name (``gelan-t`` ... ``yolov9-e``, ``gelan-nano``, ...) or a
    :class:`ModelConfig`. Keyword ``overrides`` change config fields, e.g. the ablation knobs
    ``pgi="ds"``, ``block="res"``, ``depth_elan=3``, ``depth_csp=2``."""
    if isinstance(name, ModelConfig):
        cfg, label = name, "custom"
    else:
        key = str(name).lower()
        if key not in PRESETS:
            raise ValueError(f"unknown model {name!r}; valid names: {', '.join(PRESETS)}")
        cfg, label = PRESETS[key], key
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
        if unknown:
            raise ValueError(f"unknown model option(s) {sorted(unknown)}")
        cfg = cfg.replace(**overrides)
        label = f"{label}({', '.join(f'{k}={v}' for k, v in overrides.items())})"
    return DetectionModel(cfg, num_classes, name=label)


def list_models() -> list[str]:
    return list(PRESETS)
