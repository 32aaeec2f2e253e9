"""The README's commands (README.md and notebooks/README.md) run as written on a fresh clone.

Every ``yolov9lite ...`` command in the README (shell blocks and inline code, including the ones
behind ``torchrun ... -m yolov9lite``) must parse with that command's real parser: a renamed
flag or command fails here. Every ``papermill ...`` command is run as written, plus
``--prepare-only`` (parameters injected, nothing executed), in a copy of ``notebooks/`` without a
``runs/`` folder, as a fresh clone has it.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from yolov9lite.cli import COMMANDS
from yolov9lite.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
# the project README and the notebooks' README (its commands are indented code blocks)
README = (ROOT / "README.md").read_text() + "\n" + (ROOT / "notebooks" / "README.md").read_text()


def shell_lines() -> list[str]:
    """Commands of the ```bash blocks (continuations joined, comments dropped) and inline code."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    joined = README.replace("\\\n", " ")
    lines += [line.split(" #")[0].strip() for line in joined.splitlines()
              if re.match(r" {4,}(mkdir -p runs && )?(papermill|yolov9lite) ", line)]
    lines += [" ".join(c.split()) for c in
              re.findall(r"`((?:mkdir -p runs && )?papermill [^`]+)`", README)]
    # inline mentions with flags (a bare `yolov9lite export` names the command, it is no call)
    lines += re.findall(r"`((?:python -m )?yolov9lite [a-z]+ -[^`]*)`", README)
    return lines


def yolov9lite_calls() -> list[list[str]]:
    """argv after ``yolov9lite`` for each command line that runs it."""
    calls = []
    for line in shell_lines():
        words = shlex.split(line)
        for k, word in enumerate(words):
            if word.endswith("yolov9lite") and (k == 0 or words[k - 1] in ("-m", "&&")
                                                or "=" in words[k - 1]
                                                or word.endswith("/yolov9lite")):
                rest = words[k + 1:]
                if rest and not rest[0].startswith("-"):
                    calls.append(rest)
                break
    return calls


def papermill_lines() -> list[str]:
    return [line for line in shell_lines() if re.search(r"(^|&& )papermill ", line)
            and "--help-notebook" not in line]  # a placeholder name, not a run


def parser_of(command: str, monkeypatch) -> argparse.ArgumentParser:
    seen = []
    monkeypatch.setattr(argparse.ArgumentParser, "print_help",
                        lambda self, file=None: seen.append(self))
    with pytest.raises(SystemExit):
        cli_main([command, "--help"])
    return seen[-1]


def test_the_readme_has_the_commands_we_check():
    commands = {argv[0] for argv in yolov9lite_calls()}
    assert {"train", "val", "predict", "export", "convert", "deploy"} <= commands
    assert len(papermill_lines()) >= 4


@pytest.mark.parametrize("argv", yolov9lite_calls(), ids=" ".join)
def test_yolov9lite_command_parses(argv, monkeypatch):
    assert argv[0] in COMMANDS, f"README uses `yolov9lite {argv[0]}`, which does not exist"
    parser = parser_of(argv[0], monkeypatch)
    parser.parse_args(argv[1:])  # an unknown flag or bad value exits with code 2


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    """notebooks/ (and their params) without runs/: what papermill sees in a new clone."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.cache"))
    return root


@pytest.mark.parametrize("line", papermill_lines(), ids=lambda s: s.split()[-1][:40])
def test_papermill_command_prepares(line, fresh_clone):
    runs = fresh_clone / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", f"{line} --prepare-only"], cwd=fresh_clone, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"{line}\n{out.stderr[-2000:]}"
    target = next(w for w in shlex.split(line) if w.startswith("runs/") and w.endswith(".ipynb"))
    assert (fresh_clone / target).is_file()


def test_pre_commit_strips_notebook_outputs():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert "nbstripout" in hooks
