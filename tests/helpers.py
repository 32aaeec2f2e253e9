"""Small helpers shared by several test modules (imported as ``from helpers import ...``; pytest
puts this folder on ``sys.path``)."""
import json
import subprocess
import sys
from pathlib import Path

import torch

SYNC_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero")


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (in place), so that BN
    folding and weight mapping are really exercised; returns the model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) * 0.4 + 0.8)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model


def count_host_syncs(monkeypatch) -> list[str]:
    """CPU proxy for GPU host syncs: from now on, record the name of every Tensor -> Python
    conversion (``item``, ``tolist``, ``bool(t)``, ...) in the returned list."""
    calls: list[str] = []
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


_CLI_CASES_SCRIPT = """
import contextlib, io, json, sys
from yolov9lite.cli import main
report = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    report.append([argv, code, err.getvalue()])
print(json.dumps(report))
"""


def run_cli_cases(argvs: list[list[str]], cwd) -> list[tuple[list[str], int, str]]:
    """Each argv through ``yolov9lite.cli.main`` (the console script), all in one fresh process:
    ``[(argv, exit code, stderr), ...]``."""
    out = subprocess.run([sys.executable, "-c", _CLI_CASES_SCRIPT, json.dumps(argvs)],
                         capture_output=True, text=True, timeout=300, check=False, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return [tuple(r) for r in json.loads(out.stdout.splitlines()[-1])]


def write_yolo_split(root: Path) -> Path:
    """Four 32x40 noise images with one box each (classes 0, 1, 0, 1), YOLO layout under
    ``root/images/train`` and ``root/labels/train``; returns ``root``."""
    import cv2
    import numpy as np

    img, lab = root / "images" / "train", root / "labels" / "train"
    img.mkdir(parents=True)
    lab.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(4):
        cv2.imwrite(str(img / f"{k:06d}.jpg"), rng.integers(0, 255, (32, 40, 3), np.uint8))
        (lab / f"{k:06d}.txt").write_text(f"{k % 2} 0.5 0.5 0.25 0.5\n")
    return root
