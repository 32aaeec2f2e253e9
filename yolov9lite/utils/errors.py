"""The library's error for bad input.

Library functions raise it (or another ``ValueError``/``OSError``, or
:class:`~yolov9lite.utils.safe_pickle.CheckpointError`) with one line that names the flag or file
and what to do; :func:`yolov9lite.cli.args.run_cli` turns it into ``yolov9lite <cmd>: error: ...``
and exit code 2. The library itself never prints or exits.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input (a flag, a file, an argument); the message names it and what to do. The command
    line prints it as one line and exits with code 2."""


__all__ = ["InputError"]
