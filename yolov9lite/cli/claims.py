"""``yolov9lite claims compare A B``: two claims ledgers side by side (estimate, interval,
verdict), e.g. ``figures`` against ``runs/gpu-hour``."""
from __future__ import annotations

import sys

from ..study.compare import compare_table, read_ledgers
from .args import make_parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("yolov9lite claims", "claims ledgers")
    sub = parser.add_subparsers(dest="action", required=True)
    cmp = sub.add_parser("compare", help="two ledgers side by side: estimate, interval, verdict")
    cmp.add_argument("a", help="ledger file or folder (e.g. figures, runs/gpu-hour)")
    cmp.add_argument("b", help="the other ledger file or folder")
    args = parser.parse_args(argv)
    try:
        a, b = read_ledgers(args.a), read_ledgers(args.b)
    except (OSError, ValueError) as err:
        print(f"yolov9lite claims compare: {err}", file=sys.stderr)
        return 2
    print(compare_table(a, b, (str(args.a), str(args.b))))
    return 0
