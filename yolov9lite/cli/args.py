"""One command-line convention for every ``yolov9lite`` command.

Every command builds its parser here, so the common options have one spelling, one default and
one help text, and every ``--help`` shows the defaults:

* :func:`make_parser` -- an ``argparse`` parser whose help shows each default (and lists required
  options as required);
* ``add_*`` -- the shared options: ``--weights``, ``--img/--img-size``, ``--batch/--batch-size``
  (the official repository's names are aliases), ``--device``, ``--project/--name``,
  ``--conf/--iou/--max-det``;
* :func:`run_cli` -- wraps a command's ``main(argv)``: bad input (``ValueError`` and its
  subclasses, ``OSError``, checkpoint errors, YAML errors) and Ctrl-C end with one line
  ``yolov9lite <cmd>: error: ...`` and exit code 2, never a traceback; SIGTERM is handled like
  Ctrl-C (the command's message, its locks released). The library raises
  :class:`~yolov9lite.utils.errors.InputError` (a ``ValueError``) for bad input; output folders
  come from :mod:`yolov9lite.utils.paths`.

How a command uses it (``train`` can do the same with its generated parser)::

    @run_cli("yolov9lite predict")
    def main(argv=None) -> int:
        ap = make_parser("yolov9lite predict", main.__doc__)
        add_weights(ap)
        add_img(ap, 640)
        add_project(ap, "runs/predict")
        args = ap.parse_args(argv)
        save_dir = increment_path(args.project, args.name, args.exist_ok)
        ...

Set ``YOLOV9LITE_TRACEBACK=1`` to get the full traceback of an error (for bug reports).
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import inspect
import os
import re
import signal
import sys
import threading
from collections.abc import Callable

import yaml

from ..utils.safe_pickle import CheckpointError


# --------------------------------------------------------------------------- parser
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default, once: ``none`` for an option without one, ``(required)`` for a
    required one; plain switches (off unless given) and help that already says "default"
    are left as they are; reST markup becomes plain text; keeps the description's line breaks (docstrings are written as paragraphs)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain_text(action.help or "")
        if action.required:
            return text + " (required)"
        if "%(default)" in text or "default" in text.lower():
            return text
        if action.default is argparse.SUPPRESS or not action.option_strings or action.nargs == 0 \
                and not isinstance(action, argparse.BooleanOptionalAction):
            return text  # --help, positionals, plain switches (off unless given)
        if isinstance(action, argparse.BooleanOptionalAction):
            shown = {True: "True", False: "False", None: "decided at run time"}[action.default]
            return f"{text} (default: {shown})"
        if action.default is None:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """``argparse`` with short errors: the error line, a "did you mean" for a misspelt flag,
    and a one-line hint instead of the whole usage block (``--help`` still shows everything)."""

    def parse_args(self, args=None, namespace=None):
        # unknown flags first: a misspelt --weigths should not be reported as "--weights is
        # required" (argparse checks required options before it names unknown ones)
        args = list(sys.argv[1:] if args is None else args)
        known = list(self._option_string_actions)
        unknown = [a for a in args if a.startswith("--") and a != "--"
                   and not any(k.startswith(a.split("=")[0]) for k in known)]
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return super().parse_args(args, namespace)

    def error(self, message: str):
        hint = ""
        if message.startswith("unrecognized arguments:"):
            flags = [a for a in message.split(":", 1)[1].split() if a.startswith("-")]
            close = [m for f in flags for m in
                     difflib.get_close_matches(f.split("=")[0], list(self._option_string_actions),
                                               n=1, cutoff=0.6)]
            hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
        self.exit(2, f"usage: {self.prog} [options] ('{self.prog} --help' lists them)\n"
                     f"{self.prog}: error: {message}{hint}\n")


def make_parser(prog: str, description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the shared help style; ``prog`` is e.g. ``"yolov9lite val"``."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return Parser(prog=prog, description=_dedent(description), **kwargs)


def _dedent(text: str | None) -> str | None:
    return plain_text(inspect.cleandoc(text)) if text else text


def plain_text(text: str) -> str:
    """reST markup as plain text for a terminal: ``:func:`~a.b.c``` -> ``c``, ``:mod:`a.b``` ->
    ``a.b``, double and single backticks dropped."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1]
                  if m.group(0).count("~") else m.group(1), text)
    return text.replace("``", "").replace("`", "")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--img 0``, ``--batch -4`` are refused by the parser)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (thresholds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def image_size(text: str) -> int:
    """argparse type: an input size in pixels; 0, negatives and absurd sizes are refused."""
    value = positive_int(text)
    if value > 8192:
        raise argparse.ArgumentTypeError(f"{value} pixels is larger than any supported input")
    return value


# --------------------------------------------------------------------------- shared options
def add_weights(ap: argparse.ArgumentParser, required: bool = True, help: str | None = None):
    ap.add_argument("--weights", required=required, default=None, metavar="PT", help=help or (
        "checkpoint: ours (train/convert/deploy output) or an official YOLOv9/GELAN .pt"))


def add_img(ap: argparse.ArgumentParser, default: int = 640, help: str | None = None):
    ap.add_argument("--img", "--img-size", "--imgsz", dest="img", type=image_size, default=default,
                    metavar="PIXELS", help=help or "input size: longest image side, in pixels")


def add_batch(ap: argparse.ArgumentParser, default: int = 16, help: str | None = None):
    ap.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=default,
                    metavar="N", help=help or "images per batch")


def add_device(ap: argparse.ArgumentParser):
    ap.add_argument("--device", default="auto",
                    help="auto (a GPU if there is one), cpu, cuda, 0 (= cuda:0), cuda:1, mps")


def add_nms(ap: argparse.ArgumentParser, conf: float, iou: float, max_det: int):
    ap.add_argument("--conf", "--conf-thres", dest="conf", type=unit_float, default=conf,
                    help="confidence threshold")
    ap.add_argument("--iou", "--iou-thres", dest="iou", type=unit_float, default=iou,
                    help="NMS IoU threshold")
    ap.add_argument("--max-det", type=positive_int, default=max_det,
                    help="most boxes kept per image")


def add_project(ap: argparse.ArgumentParser, project: str, name: str = "exp"):
    """``--project/--name/--exist-ok``: output goes to ``project/name``, or ``name2``, ``name3``...
    when that exists (never into an earlier run's folder unless ``--exist-ok``)."""
    ap.add_argument("--project", default=project, help="parent folder of the run folders")
    ap.add_argument("--name", default=name,
                    help="run folder name; exists already -> name2, name3, ...")
    ap.add_argument("--exist-ok", action="store_true",
                    help="reuse project/name if it exists instead of incrementing")


# --------------------------------------------------------------------------- errors
# bad input: InputError and every other ValueError, files, checkpoints, YAML
KNOWN_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, CheckpointError,
                                                 yaml.YAMLError)


def error_line(prog: str, err: BaseException) -> str:
    """``yolov9lite <cmd>: error: <message>`` on one line."""
    text = str(err).strip() or type(err).__name__
    if isinstance(err, OSError) and err.strerror:  # "[Errno 2] ...: 'x'" -> "x: No such file ..."
        text = f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    text = " ".join(text.split())  # one line, whatever the message
    return f"{prog}: error: {text}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM, Kubernetes and ``kill`` send), raised in the main thread so that it
    unwinds like Ctrl-C: ``finally`` blocks run, locks are released, the message is printed."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_cli(prog: str, interrupted: str | Callable[[], str] = "interrupted"):
    """Decorator for a command's ``main(argv) -> int``: known errors become one line + exit 2.

    ``interrupted`` is the message for Ctrl-C (a string, or a function returning one, e.g.
    ``"interrupted; resume with yolov9lite train --resume runs/train/exp/weights/last.pt"``).
    Anything else (a bug) keeps its traceback. ``YOLOV9LITE_TRACEBACK=1`` re-raises everything.
    """

    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapper(argv: list[str] | None = None) -> int:
            if os.environ.get("YOLOV9LITE_TRACEBACK"):
                return fn(argv)
            try:
                with sigterm_as_interrupt():
                    return fn(argv)
            except KeyboardInterrupt as err:
                message = interrupted() if callable(interrupted) else interrupted
                cause = "terminated (SIGTERM); " if isinstance(err, Terminated) else ""
                print(f"\n{prog}: {cause}{message}", file=sys.stderr)
                return 2
            except KNOWN_ERRORS as err:
                print(error_line(prog, err), file=sys.stderr)
                return 2

        wrapper.prog = prog
        return wrapper

    return decorate


__all__ = [
    "HelpFormatter", "Parser", "Terminated", "add_batch", "add_device", "add_img", "add_nms",
    "add_project", "add_weights", "error_line", "image_size", "make_parser", "plain_text",
    "positive_int", "run_cli", "unit_float",
]
