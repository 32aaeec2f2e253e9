"""GELAN and YOLOv9 detection models: configs, presets and the model class (paper Sections 4, 5).

A model is three parts wired by :class:`DetectionModel`:

* the main branch from :mod:`yolov9lite.nn.gelan`: a :class:`~yolov9lite.nn.gelan.Backbone` (``B3``,
  ``B4``, ``B5`` at strides 8, 16, 32) and a :class:`~yolov9lite.nn.gelan.Neck` (FPN then PAN,
  ``P3``, ``P4``, ``P5``). GELAN-E additionally runs a second backbone fed from the first one
  through CBLinear/CBFuse links ("+DHLC", Table 6), a :class:`~yolov9lite.nn.gelan.ReversibleBranch`;
* a head from :mod:`yolov9lite.nn.head` on (``P3``, ``P4``, ``P5``);
* for YOLOv9 = GELAN + PGI, an auxiliary branch from :mod:`yolov9lite.nn.pgi` and an auxiliary head,
  used for training only. :func:`yolov9lite.nn.deployment.deploy` removes them; :func:`main_branch_keys`
  says which weights are which.

Every size is a :class:`ModelConfig` preset in :data:`PRESETS`; the numbers are those of the
official yaml files (WongKinYiu/yolov9, ``models/detect``), and ``tests/test_models.py`` checks
that the parameter counts equal the official integers. The ablation knobs of Tables 2-5 are fields
of the same config: ``block`` (computational block), ``depth_elan`` (D_ELAN), ``depth_csp``
(D_CSP), ``pgi`` (auxiliary-branch variant) and ``pgi_neck`` (Table 4's G_neck column).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from .gelan import Backbone, MainFeatures, Neck, ReversibleBranch
from .head import DDetect, DualDDetect
from .pgi import PGI_NECK_VARIANTS, PGI_VARIANTS, build_aux_branch
from .yolov7 import YOLOv7AF

__all__ = ["AUX_PREFIXES", "BASELINES", "OFFICIAL_MODELS", "PRESETS", "STRIDES",
           "DetectionModel", "ModelConfig", "build_model", "list_models", "main_branch_keys"]

STRIDES = (8, 16, 32)


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
    pgi_neck: str = "none"  # auxiliary reversible branch on the neck: none | icn (Table 4 G_neck)
    paper: dict = field(default_factory=dict, compare=False)  # published numbers, for tables

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def without_pgi(self) -> ModelConfig:
        """The inference model's config: the same main branch, no auxiliary branch."""
        return self.replace(pgi="none", pgi_neck="none")


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

# Published numbers (paper Table 1; YOLOv9-T's from the official README.md).
_PAPER = {
    "t": {"params_m": 2.0, "gflops": 7.7, "ap": 38.3},
    "s": {"params_m": 7.1, "gflops": 26.4, "ap": 46.8},
    "m": {"params_m": 20.0, "gflops": 76.3, "ap": 51.4},
    "c": {"params_m": 25.3, "gflops": 102.1, "ap": 53.0},
    "e": {"params_m": 57.3, "gflops": 189.0, "ap": 55.6},
}
_GELAN_AP = {"s": 46.7, "m": 51.1, "c": 52.5, "e": 55.0}

# PGI flavour of each released yolov9 model (official models/detect/yolov9-*.yaml):
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
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if cfg.pgi not in PGI_VARIANTS:
            raise ValueError(f"unknown PGI variant {cfg.pgi!r}; choose from {PGI_VARIANTS}")
        if cfg.pgi_neck not in PGI_NECK_VARIANTS:
            raise ValueError(f"unknown neck PGI variant {cfg.pgi_neck!r}; choose from "
                             f"{PGI_NECK_VARIANTS}")
        self.cfg, self.name, self.nc = cfg, name, num_classes
        self.strides = STRIDES
        self.backbone = Backbone(cfg)
        main_ch = self.backbone.out_channels
        if cfg.dhlc:  # GELAN-E: the neck reads a second backbone linked to the first (DHLC)
            self.dhlc = ReversibleBranch(cfg, main_ch, levels=Backbone.LEVELS)
            main_ch = self.dhlc.backbone.out_channels
        self.neck = Neck(cfg, main_ch)
        # PGI's auxiliary branch (training only, nn/pgi.py); None for a GELAN model (pgi 'none')
        self.aux = build_aux_branch(cfg, self.backbone.out_channels, main_ch, self.neck.out_channels)
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
        first = self.backbone(x)
        neck_input = self.dhlc(x, first) if self.cfg.dhlc else first
        neck: dict[str, torch.Tensor] = {}
        self.neck(neck_input["B3"], neck_input["B4"], neck_input["B5"], features=neck)
        feats = {f"bb1.{k}": v for k, v in first.items()} if self.cfg.dhlc else {}
        feats.update(neck_input)
        feats.update(neck)
        if with_aux and self.aux is not None:
            a3, a4, a5 = self.aux(MainFeatures(x, first, neck_input, neck))
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
        neck = f", pgi_neck={self.cfg.pgi_neck!r}" if self.cfg.pgi_neck != "none" else ""
        return f"name={self.name!r}, nc={self.nc}, pgi={self.cfg.pgi!r}{neck}"


# State-dict keys of the training-only parts: the PGI auxiliary branch and the auxiliary head.
AUX_PREFIXES = ("aux.", "head.aux.")


def main_branch_keys(model: nn.Module) -> dict[str, str]:
    """The main (inference) branch's state-dict keys: ``{key in the plain GELAN model: key here}``.

    The one answer to "which weights survive deployment" (paper Sec. 4.1: PGI costs nothing at
    inference). Keys under :data:`AUX_PREFIXES` are auxiliary and left out. In a dual-head (YOLOv9)
    model the main head is ``head.main.*``; in the GELAN model it becomes ``head.*``, so the
    left-hand names are the same for a yolov9-X model and its gelan-X. Everything else, GELAN-E's
    DHLC second backbone (``dhlc.*``) included, is main branch.
    """
    dual = getattr(model, "has_aux", False)
    keys = {}
    for key in model.state_dict():
        if key.startswith(AUX_PREFIXES):
            continue
        keys[key.replace("head.main.", "head.", 1) if dual else key] = key
    return keys


# Baselines that are not GELAN models (Table 6's first steps): name -> model class.
BASELINES = {"yolov7-af": YOLOv7AF}


def build_model(name: str | ModelConfig = "gelan-c", num_classes: int = 80,
                **overrides) -> DetectionModel | YOLOv7AF:
    """Build a model from a preset name (``gelan-t`` ... ``yolov9-e``, ``gelan-nano``, ...) or a
    :class:`ModelConfig`. Keyword ``overrides`` change config fields, e.g. the ablation knobs
    ``pgi="ds"``, ``block="res"``, ``depth_elan=3``, ``depth_csp=2``.

    ``"yolov7-af"`` is the anchor-free YOLOv7 baseline of Table 6 (:mod:`yolov9lite.nn.yolov7`); it
    has no knobs."""
    if isinstance(name, ModelConfig):
        cfg, label = name, "custom"
    else:
        key = str(name).lower()
        if key in BASELINES:
            if overrides:
                raise ValueError(f"{key} has no model options (got {sorted(overrides)})")
            return BASELINES[key](num_classes, name=key)
        if key not in PRESETS:
            raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
        cfg, label = PRESETS[key], key
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
        if unknown:
            raise ValueError(f"unknown model option(s) {sorted(unknown)}")
        cfg = cfg.replace(**overrides)
        label = f"{label}({', '.join(f'{k}={v}' for k, v in overrides.items())})"
    return DetectionModel(cfg, num_classes, name=label)


def list_models() -> list[str]:
    return [*PRESETS, *BASELINES]
