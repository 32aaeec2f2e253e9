"""Messages of the command line, through the console entry point: a misspelt flag or command
gets a "did you mean" and a two-line hint (not the whole usage block), every ``--help`` is plain
text (no reST markup) with the default of every option that takes a value, and warnings read as
one ``warning: ...`` line, without the library's file path and source line (the same run shows
the progress bar of the validation inside training)."""
from __future__ import annotations

import contextlib
import io

import pytest
from helpers import run_cli_cases

from yolov9lite.cli import COMMANDS
from yolov9lite.cli import main as cli
from yolov9lite.data import make_synthetic


def test_misspelt_flags_and_commands(tmp_path):
    cases = run_cli_cases([["train", "--epohcs", "3"], ["val", "--weigths", "x.pt"],
                           ["trian", "--epochs", "3"], ["predict", "--bogus-flag-xyz"]], tmp_path)
    (_, c1, e1), (_, c2, e2), (_, c3, e3), (_, c4, e4) = cases
    assert c1 == 2 and "did you mean --epochs?" in e1 and e1.count("\n") == 2
    assert e1.startswith("usage: yolov9lite train [options] ('yolov9lite train --help' lists")
    assert c2 == 2 and "did you mean --weights?" in e2 and e2.count("\n") == 2
    assert c3 == 2 and "did you mean 'train'?" in e3 and e3.count("\n") == 2
    assert c4 == 2 and "did you mean" not in e4 and e4.count("\n") == 2


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_text_with_defaults(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli([command, "--help"])
    assert exit_info.value.code == 0
    text = out.getvalue()
    assert "`" not in text and ":func:" not in text and ":mod:" not in text, text
    options = text.split("options:", 1)[1]
    # every option that takes a value or is an on/off pair says its default
    blocks = [b for b in options.split("\n  -")[1:] if not b.startswith("h, --help")]
    for block in blocks:
        head = block.split("  ")[0]
        takes_value = any(part.strip().split(" ")[-1].isupper() or "{" in part
                          for part in head.split(","))
        if takes_value or "--no-" in head:
            said = " ".join(block.split())
            assert "default" in said or "(required)" in said, f"{command}: -{head}"


def test_warnings_are_one_plain_line(tmp_path):
    data = make_synthetic(tmp_path / "syn", num_train=16, num_val=4, imgsz=64, seed=2)
    argv = ["train", "--data", str(data), "--img", "64", "--epochs", "1", "--batch", "16",
            "--max-batches", "1", "--workers", "0", "--device", "cpu", "--project",
            str(tmp_path / "runs"), "--no-tensorboard", "--no-plots"]
    [(_, code, err)] = run_cli_cases([argv], tmp_path)
    assert code == 0
    line = next(x for x in err.splitlines() if "not longer than its warm-up" in x)
    assert line.startswith("warning: the run (1 epochs x 1 batches")
    assert ".py:" not in err and "prepare_run(" not in err
    assert "  val:" in err and "batch" in err  # the validation inside training has its bar
