"""The command line: ``yolov9lite <command>`` or ``python -m yolov9lite <command>``.

Each command is a module of this folder that parses its options and calls the library; this
file only dispatches, importing lazily so that
``yolov9lite models`` does not pay for the data or evaluation imports.
"""
from __future__ import annotations

import difflib
import importlib
import sys
import warnings

# command -> (module, function taking argv, one-line help)
COMMANDS = {
    "models": ("yolov9lite.cli.models", "main",
               "print the model zoo: params and GFLOPs, ours vs paper"),
    "figures": ("yolov9lite.cli.figures", "main",
                "regenerate every figure and table (runs the notebooks)"),
    "book": ("yolov9lite.cli.book", "main",
             "the executed notebooks as a static site with verdict badges (runs/book/html/)"),
    "claims": ("yolov9lite.cli.claims", "main",
               "claims ledgers: `claims compare A B` shows two side by side"),
    "train": ("yolov9lite.cli.train", "main",
              "train a model (single GPU, CPU, or under torchrun)"),
    "val": ("yolov9lite.cli.val", "main",
            "COCO evaluation of a checkpoint (metrics, PR curve, confusion matrix)"),
    "predict": ("yolov9lite.cli.predict", "main",
                "detect objects in images, folders, globs and videos"),
    "convert": ("yolov9lite.cli.checkpoints", "convert_main",
                "convert an official .pt into our format"),
    "deploy": ("yolov9lite.cli.checkpoints", "deploy_main",
               "write the deployed (aux-free, fused) model"),
    "export": ("yolov9lite.cli.export", "main",
               "export the deployed model: onnx, torchscript, torch-export"),
}


def usage() -> str:
    lines = ["usage: yolov9lite <command> [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "run `yolov9lite <command> --help` for the options of one command"]
    return "\n".join(lines)


def user_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as a user reads it on the command line: ``warning: <message>``, without the
    file path and source line of the library code that issued it."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    original = warnings.formatwarning
    warnings.formatwarning = user_warning
    try:
        return dispatch(list(sys.argv[1:] if argv is None else argv))
    finally:
        warnings.formatwarning = original


def dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"yolov9lite: unknown command {command!r}{hint}\n"
              f"commands: {', '.join(COMMANDS)} (yolov9lite --help describes them)",
              file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            print(f"yolov9lite: the {command!r} command is not available in this version",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
