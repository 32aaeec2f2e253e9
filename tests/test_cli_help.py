"""Every ``yolov9lite`` command's ``--help``: it parses, shows every default, marks what is required.

The parser of each command is captured when it prints its help, so the check reads the parser
itself (each option's default) rather than guessing from the text.
"""
from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from yolov9lite.cli import COMMANDS, main

HIDDEN = (None, False, argparse.SUPPRESS)


def help_of(command: str, monkeypatch) -> tuple[str, argparse.ArgumentParser]:
    seen = []
    original = argparse.ArgumentParser.print_help

    def spy(self, file=None):
        seen.append(self)
        original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", spy)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and seen, f"`yolov9lite {command} --help` did not print help"
    return out.getvalue(), seen[-1]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_every_default(command, monkeypatch):
    text, parser = help_of(command, monkeypatch)
    flat = " ".join(text.split())  # argparse wraps long lines
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if action.default in HIDDEN or isinstance(action, argparse._HelpAction):
            continue
        default = action.default
        shown = ", ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        assert "default" in (action.help or "").lower() or f"default: {default}" in flat or (
            shown in flat), f"{command} {action.option_strings[0]}: default {default!r} not shown"


@pytest.mark.parametrize("command", ["val", "predict", "deploy", "export"])
def test_weights_is_marked_required(command, monkeypatch):
    _, parser = help_of(command, monkeypatch)
    (weights,) = [a for a in parser._actions if "--weights" in a.option_strings]
    assert weights.required, f"{command}: --weights must be shown as required"


@pytest.mark.parametrize("command", ["val", "predict", "export"])
def test_official_spellings_are_accepted(command, monkeypatch):
    _, parser = help_of(command, monkeypatch)
    options = {s for a in parser._actions for s in a.option_strings}
    assert "--img-size" in options and "--img" in options
    assert {"--project", "--name"} <= options
    if command != "predict":
        assert "--batch-size" in options and "--batch" in options


def test_every_writing_command_takes_project_and_name(monkeypatch):
    for command in ("train", "val", "predict", "deploy", "export", "convert"):
        _, parser = help_of(command, monkeypatch)
        options = {s for a in parser._actions for s in a.option_strings}
        assert {"--project", "--name"} <= options, command
