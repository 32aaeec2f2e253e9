"""The shared CLI layer (``yolov9lite/cli/args.py``): one line and exit code 2 for bad input, never
a traceback; new run folders; outputs never over inputs."""
from __future__ import annotations

import pytest
from helpers import run_cli_cases

from yolov9lite.cli.args import run_cli
from yolov9lite.utils.errors import InputError
from yolov9lite.utils.paths import increment_path, refuse_inside, refuse_overwrite


def test_run_cli_turns_known_errors_into_one_line(capsys, monkeypatch):
    def failing(exc):
        @run_cli("yolov9lite demo", interrupted="interrupted; resume with yolov9lite demo --resume")
        def main(argv=None):
            raise exc
        return main

    assert failing(ValueError("--lr0 -1: must be positive\n(second line)"))([]) == 2
    assert capsys.readouterr().err == (
        "yolov9lite demo: error: --lr0 -1: must be positive (second line)\n")
    assert failing(FileNotFoundError(2, "No such file or directory", "x.yaml"))([]) == 2
    assert capsys.readouterr().err.endswith("error: x.yaml: No such file or directory\n")
    assert failing(OSError(28, "No space left on device"))([]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert failing(KeyboardInterrupt())([]) == 2
    assert capsys.readouterr().err.strip() == (
        "yolov9lite demo: interrupted; resume with yolov9lite demo --resume")
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        failing(ZeroDivisionError())([])
    monkeypatch.setenv("YOLOV9LITE_TRACEBACK", "1")
    with pytest.raises(ValueError):  # on request, every traceback
        failing(ValueError("x"))([])


def test_increment_path(tmp_path):
    assert increment_path(tmp_path, "exp") == tmp_path / "exp"
    assert increment_path(tmp_path, "exp") == tmp_path / "exp2"
    assert increment_path(tmp_path, "exp") == tmp_path / "exp3"
    assert increment_path(tmp_path, "exp", exist_ok=True) == tmp_path / "exp"
    assert increment_path(tmp_path, "run1") == tmp_path / "run1"
    assert increment_path(tmp_path, "run1") == tmp_path / "run12"
    assert all(p.is_dir() for p in (tmp_path / "exp2", tmp_path / "run12"))
    for bad in ("a/b", "..", ""):
        with pytest.raises(InputError, match="plain folder name"):
            increment_path(tmp_path, bad)


def test_outputs_never_replace_inputs(tmp_path):
    src = tmp_path / "in.pt"
    src.write_bytes(b"x")
    with pytest.raises(InputError, match="is the input file"):
        refuse_overwrite(tmp_path / "." / "in.pt", [src])
    link = tmp_path / "link.pt"
    link.symlink_to(src)
    with pytest.raises(InputError, match="is the input file"):
        refuse_overwrite(link, [src])
    with pytest.raises(InputError, match="existing folder"):
        refuse_overwrite(tmp_path, [src])
    assert refuse_overwrite(tmp_path / "out.pt", [src]) == tmp_path / "out.pt"
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for inside in (tmp_path / "imgs", tmp_path / "imgs" / "sub" / "exp"):
        with pytest.raises(InputError, match="sources are never written to"):
            refuse_inside(inside, [tmp_path / "imgs"])
    refuse_inside(tmp_path / "runs", [tmp_path / "imgs"])




def test_bad_input_through_the_console_entry_point(tmp_path):
    """The cases of the reliability review, through ``yolov9lite.cli.main`` in a fresh process:
    each ends with exit code 2 and one ``yolov9lite <cmd>: error:`` line, no traceback."""
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")  # a 0-byte checkpoint
    (tmp_path / "dir").mkdir()
    w, d = str(weights), str(tmp_path / "dir")
    cases = [
        ["val", "--weights", str(tmp_path / "missing.pt")],
        ["val", "--weights", w, "--device", "cpu"],
        ["val", "--weights", w, "--batch", "0"],
        ["val", "--weights", w, "--img", "-64"],
        ["val", "--weights", w, "--device", "banana"],
        ["val", "--weights", w, "--device", "cuda:7"],
        ["predict", "--weights", w, "--source", "https://example.com/a.jpg"],
        ["predict", "--weights", w, "--source", d, "--img", "0"],
        ["export", "--weights", w, "--format", "onnx", "--project", d],
        ["deploy", "--weights", w, "--out", d],
        ["convert", w, w],
        ["convert", w, d],
    ]
    for argv, code, err in run_cli_cases(cases, cwd=tmp_path):
        where = f"yolov9lite {' '.join(argv)} -> {code}: {err}"
        assert code == 2 and "Traceback" not in err, where
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"yolov9lite {argv[0]}: error:"), where
