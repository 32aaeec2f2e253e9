"""`draw_batch`: a grid of a batch's images with boxes and class names, for notebooks."""

from __future__ import annotations

import math

import numpy as np


def draw_batch(images, targets, names, max_images: int = 16, cols: int | None = None,
               scores=None, figsize_per_image: float = 3.0, title: str | None = None):
    """Return a matplotlib Figure of up to `max_images` images of a batch.

    images: uint8 or float (B, 3, H, W) RGB tensor/array (float in [0, 1]);
    targets: (N, 6) `[image_index, class, cx, cy, w, h]` normalised (the collate layout);
    names: class names; scores: optional (N,) confidences shown after the name.
    """
    import matplotlib.pyplot as plt  # imported here: the data pipeline itself never plots

    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    targets = np.asarray(targets.detach().cpu() if hasattr(targets, "detach") else targets)
    if images.dtype != np.uint8:
        images = (images.clip(0, 1) * 255).astype(np.uint8)
    n = min(len(images), max_images)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * figsize_per_image,
                                                  rows * figsize_per_image), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        h, w = images[k].shape[1:]
        ax.imshow(images[k].transpose(1, 2, 0))
        rows_k = np.nonzero(targets[:, 0] == k)[0]
        for r in rows_k:
            c, cx, cy, bw, bh = targets[r, 1:6]
            colour = cmap(int(c) % 10)
            x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
            ax.add_patch(plt.Rectangle((x0, y0), bw * w, bh * h, fill=False, lw=1.2,
                                       edgecolor=colour))
            label = names[int(c)] if int(c) < len(names) else str(int(c))
            if scores is not None:
                label += f" {float(scores[r]):.2f}"
            ax.text(x0, y0, label, fontsize=6, color="white", va="bottom",
                    bbox={"facecolor": colour, "alpha": 0.8, "pad": 0.5, "lw": 0})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
