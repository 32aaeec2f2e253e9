"""``yolov9lite models``: the model-zoo table (:func:`yolov9lite.nn.complexity.model_zoo_table`)."""
from __future__ import annotations

from ..nn.complexity import format_model_table, model_zoo_table
from .args import make_parser


def main(argv: list[str] | None = None) -> int:
    """``yolov9lite models``: the model-zoo table."""
    parser = make_parser("yolov9lite models", main.__doc__)
    parser.add_argument("names", nargs="*", help="models to show (default: the ten official ones)")
    parser.add_argument("--img", type=int, default=640, help="image side for GFLOPs (default 640)")
    args = parser.parse_args(argv)
    print(format_model_table(model_zoo_table(args.names or None, args.img)))
    print("\nGFLOPs = 2 x MACs of one image at the given size. 'train' includes the PGI auxiliary\n"
          "branch (yolov9-*); 'deployed' = yolov9lite.deploy(model): auxiliary branch removed,\n"
          "RepConvN merged, BatchNorm folded. The paper reports the deployed numbers (YOLOv9-T's\n"
          "2.0M / 7.7G come from the official README and match no official configuration).")
    return 0


__all__ = ["main"]
