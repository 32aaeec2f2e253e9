"""``yolov9lite export``: each exported file computes what the deployed PyTorch model computes.

The model is the tiny gelan-nano preset with PGI (yolov9-nano), at 64x64 pixels, so each export
takes seconds; the architecture (blocks, DFL head, anchor decoding) is that of the full models.
ONNX is run through onnxruntime; the criterion: relative error <= 1e-4 in float32.
"""
from __future__ import annotations

import pytest
import torch

from yolov9lite import build_model, deploy
from yolov9lite.cli.export import main
from yolov9lite.inference.export import check_export, export, load_exported
from yolov9lite.weights.checkpoint import save_checkpoint

IMG = 64
TOL = 1e-4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("yolov9-nano", 3)  # training model: export must deploy it first
    return save_checkpoint(tmp_path_factory.mktemp("w") / "nano.pt", model, names=["a", "b", "c"])


@pytest.fixture(scope="module")
def deployed(weights):
    from yolov9lite.weights.checkpoint import load_model

    return load_model(weights, deploy=True)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).abs().max() / ref.abs().max())


def test_onnx_cli_dynamic_batch_matches_pytorch(weights, deployed, tmp_path, capsys):
    assert main(["--weights", str(weights), "--format", "onnx", "--img", str(IMG), "--dynamic",
                 "--project", str(tmp_path), "--name", "run"]) == 0
    path = tmp_path / "run" / "nano.onnx"
    assert path.is_file() and "check: max relative difference" in capsys.readouterr().out
    run = load_exported(path)
    for batch in (1, 3):  # dynamic batch axis: any batch size at run time
        x = torch.rand(batch, 3, IMG, IMG, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = deployed(x)
        got = run(x)
        assert got.shape == ref.shape == (batch, 4 + 3, ref.shape[2])
        assert relative_error(got, ref) <= TOL
    # the graph's names are the documented ones
    import onnx

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == ["output0"]
    assert not graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # symbolic


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".torchscript"), ("torch-export", ".pt2")])
def test_torchscript_and_program_match_pytorch(fmt, suffix, deployed, tmp_path):
    path = export(deployed, fmt, IMG, batch=1, dynamic=True, out=tmp_path / f"m{suffix}")
    assert path.suffix == suffix
    assert check_export(deployed, path, IMG, batch=3) <= TOL


def test_training_model_is_deployed_before_export(tmp_path):
    torch.manual_seed(1)
    model = build_model("yolov9-nano", 2)  # aux branch present
    path = export(model, "torchscript", IMG, out=tmp_path / "m.torchscript")
    reference = deploy(model)
    assert check_export(reference, path, IMG) <= TOL


def test_bad_requests_are_one_line(weights, tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such file" in capsys.readouterr().err
    assert main(["--weights", str(weights), "--out", str(weights), "--format", "torchscript"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert main(["--weights", str(weights), "--out", str(tmp_path), "--format", "torchscript"]) == 2
    assert "existing folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--weights", str(weights), "--format", "tflite"])
    assert exc.value.code == 2
