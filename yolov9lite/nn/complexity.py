"""Parameter and FLOP counts with the official convention (paper Table 1 columns).

* ``params``: every parameter, frozen ones included (each DFL layer's 16 fixed weights count), as
  the official ``model_info`` does.
* ``gflops``: 2 x multiply-accumulates of the convolutions (and any matmul) for one image, at the
  given size (640x640 for the paper). Counted by :class:`torch.utils.flop_counter.FlopCounterMode`
  on a copy of the model on the ``meta`` device, so no arithmetic is actually done and the count
  costs milliseconds even for GELAN-E. BatchNorm, activations, pooling, upsampling, NMS, the
  assigner and the loss are not counted (neither are they by the official thop-based count for
  fused models; for unfused models thop also counts BN, which is why the official unfused GFLOPs
  are a little higher than ours, see ``yolov9lite models``).
* A model with a PGI branch is profiled in train mode (both branches run); otherwise in eval mode.
"""
from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from .deployment import deploy
from .models import OFFICIAL_MODELS, build_model


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(model: torch.nn.Module, imgsz: int | tuple[int, int] = 640) -> float:
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    meta = copy.deepcopy(model).to("meta")
    meta.train(bool(getattr(model, "has_aux", False)))
    x = torch.empty(1, 3, h, w, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        meta(x)
    return counter.get_total_flops() / 1e9


def profile(model: torch.nn.Module, imgsz: int = 640) -> dict:
    """``{"params": int, "gflops": float}`` for one ``imgsz`` x ``imgsz`` image."""
    return {"params": count_params(model), "gflops": count_gflops(model, imgsz)}


def model_zoo_table(names=None, imgsz: int = 640) -> list[dict]:
    """One row per model: training and deployed params/GFLOPs (ours) and the paper's numbers."""
    rows = []
    for name in names or OFFICIAL_MODELS:
        with torch.device("meta"):  # counting needs shapes only: no memory, no initialisation
            model = build_model(name)
        train_stats = profile(model, imgsz)
        deploy_stats = profile(deploy(model), imgsz)
        paper = model.cfg.paper if hasattr(model, "cfg") else model.paper
        rows.append({
            "model": name,
            "train_params": train_stats["params"], "train_gflops": train_stats["gflops"],
            "deploy_params": deploy_stats["params"], "deploy_gflops": deploy_stats["gflops"],
            "paper_params_m": paper.get("params_m"), "paper_gflops": paper.get("gflops"),
            "paper_ap": paper.get("ap"),
        })
    return rows


# Paper Table 6: the steps from YOLOv7 to YOLOv9-E, (step, #Param (M), FLOPs (G), AP), and the
# official configuration of each step where one was released (official models/detect/*.yaml).
TABLE6_PAPER = (
    ("YOLOv7", 36.9, 104.7, 51.2),
    ("+ AF", 43.6, 130.5, 53.0),
    ("+ GELAN", 41.2, 126.4, 53.2),
    ("+ DHLC", 57.3, 189.0, 55.0),
    ("+ PGI", 57.3, 189.0, 55.6),
)
TABLE6_MODELS = {"+ AF": "yolov7-af", "+ DHLC": "gelan-e", "+ PGI": "yolov9-e"}
TABLE6_UNRELEASED = {
    "YOLOv7": "anchor-based YOLOv7: no configuration in the YOLOv9 repository",
    "+ GELAN": "the intermediate GELAN model of this step has no released configuration",
}


def table6_rows(imgsz: int = 640) -> list[dict]:
    """Paper Table 6 (YOLOv7 -> YOLOv9-E): our params/GFLOPs next to the paper's for each step.

    Steps with an official configuration are built and counted: "+ AF" = ``yolov7-af``,
    "+ DHLC" = ``gelan-e``, "+ PGI" = ``yolov9-e``. ``params``/``gflops`` are the deployed
    (inference) model's, as the paper reports; ``train_params`` includes PGI's auxiliary branch.
    Rows without a released configuration keep ``None`` for our numbers and say so in ``note``.
    """
    rows = []
    for step, params_m, gflops, ap in TABLE6_PAPER:
        row = {"step": step, "model": TABLE6_MODELS.get(step), "params": None, "gflops": None,
               "train_params": None, "paper_params_m": params_m, "paper_gflops": gflops,
               "paper_ap": ap, "note": TABLE6_UNRELEASED.get(step, "")}
        if row["model"] is not None:
            with torch.device("meta"):  # shapes only
                model = build_model(row["model"])
            stats = profile(deploy(model), imgsz)
            row.update(params=stats["params"], gflops=stats["gflops"],
                       train_params=count_params(model))
        rows.append(row)
    return rows


def format_model_table(rows: list[dict]) -> str:
    """Markdown table of :func:`model_zoo_table` rows."""
    def num(v, fmt):
        return "–" if v is None else format(v, fmt)

    header = ("| model | train params | train GFLOPs | deployed params | deployed GFLOPs "
              "| paper params (M) | paper GFLOPs | paper AP |")
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['train_params']:,} | {r['train_gflops']:.2f} | "
            f"{r['deploy_params']:,} | {r['deploy_gflops']:.2f} | {num(r['paper_params_m'], '.1f')} | "
            f"{num(r['paper_gflops'], '.1f')} | {num(r['paper_ap'], '.1f')} |")
    return "\n".join(lines)
