"""``yolov9lite convert`` and ``yolov9lite deploy``: where they write, and never over an input."""
from __future__ import annotations

import pytest
import torch

from yolov9lite import build_model
from yolov9lite.cli.checkpoints import convert_main, deploy_main
from yolov9lite.weights.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("w") / "nano.pt", build_model("yolov9-nano", 2))


def test_deploy_writes_a_new_run_folder_or_the_named_file(ours, tmp_path, capsys):
    assert deploy_main(["--weights", str(ours), "--project", str(tmp_path)]) == 0
    assert deploy_main(["--weights", str(ours), "--project", str(tmp_path)]) == 0
    assert load_checkpoint(tmp_path / "exp" / "nano.pt")["deployed"]
    assert (tmp_path / "exp2" / "nano.pt").is_file()  # a second run never replaces the first
    assert deploy_main(["--weights", str(ours), "--out", str(tmp_path / "d.pt")]) == 0
    assert load_checkpoint(tmp_path / "d.pt")["deployed"]


@pytest.mark.parametrize("main, argv, message", [
    (convert_main, ["{w}", "{w}"], "is the input file"),
    (convert_main, ["--weights", "{w}", "--out", "{w}"], "is the input file"),
    (convert_main, ["{w}", "{dir}"], "is an existing folder"),
    (convert_main, ["{dir}/missing.pt", "{dir}/o.pt"], "missing.pt: no such file"),
    (deploy_main, ["--weights", "{w}", "--out", "{w}"], "is the input file"),
    (deploy_main, ["--weights", "{w}", "--out", "{dir}"], "is an existing folder"),
])
def test_inputs_are_never_overwritten(ours, tmp_path, capsys, main, argv, message):
    before = ours.read_bytes()
    argv = [a.format(w=ours, dir=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert ours.read_bytes() == before


def test_convert_names_its_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        convert_main([])
    assert exc.value.code == 2 and "the source file (SOURCE or --weights) is required" in (
        capsys.readouterr().err)
