"""The model's worst mistakes: the test samples with the highest loss.

    python -m dlrecipe.report outputs/train/<date>/<time>

Looking at them is the fastest way to find label noise, a missing class of examples or a
preprocessing bug. The per-sample loss is the task's own loss on the predicted probabilities
(cross-entropy, binary cross-entropy or squared error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def per_sample_loss(probs: np.ndarray, targets: np.ndarray, task: str) -> np.ndarray:
    eps = 1e-7
    if task == "multiclass":
        return -np.log(np.clip(probs[np.arange(len(targets)), targets.astype(int)], eps, 1.0))
    if task == "binary":
        p = np.clip(probs, eps, 1 - eps)
        return -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    return (probs - targets) ** 2


def worst(losses: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest losses, highest first."""
    k = min(k, len(losses))
    return np.argsort(-losses, kind="stable")[:k]


def image_grid(images: np.ndarray, titles: list[str], path: Path, columns: int = 8, overlays: np.ndarray | None = None) -> Path:  # fmt: skip
    """Images (N, C, H, W) in [0, 1], each with a title; optional heat maps (N, H, W) on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    columns = min(columns, max(n, 1))
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        image = np.clip(images[i], 0, 1)
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image.transpose(1, 2, 0))
        if overlays is not None:
            ax.imshow(overlays[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
