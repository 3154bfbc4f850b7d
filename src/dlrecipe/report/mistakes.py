"""The model's mistakes: wrong test predictions ranked by loss, and correct but unsure ones.

    python -m dlrecipe.report outputs/train/<date>/<time>

Looking at them is the fastest way to find label noise, a missing class of examples or a
preprocessing bug. The per-sample loss is the task's own loss on the predicted probabilities
(cross-entropy, binary cross-entropy or squared error). Wrong predictions and correct ones are
kept apart: a "worst mistakes" grid of mostly correct samples would say nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.report.layout import inches
from dlrecipe.tasks import Task, as_task


def per_sample_loss(probs: np.ndarray, targets: np.ndarray, task: str | Task) -> np.ndarray:
    return as_task(task).per_sample_loss(probs, targets)


def predicted_class(probs: np.ndarray, task: str | Task) -> np.ndarray:
    return as_task(task).predicted_labels(probs)


def worst(losses: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
    """Positions of the k highest losses, highest first; only where `among` is True if given."""
    candidates = np.arange(len(losses)) if among is None else np.flatnonzero(among)
    order = candidates[np.argsort(-losses[candidates], kind="stable")]
    return order[: min(k, len(order))]


def split_by_correctness(probs: np.ndarray, targets: np.ndarray, losses: np.ndarray, task: str | Task, k: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(wrong predictions by loss, correct predictions by loss): the real mistakes, and the
    correct predictions the model was least sure of. Regression has no "wrong": all its
    samples rank as mistakes by squared error and the second list is empty."""
    if not as_task(task).has_classes:
        return worst(losses, k), np.array([], dtype=int)
    right = predicted_class(probs, task) == targets.astype(int)
    return worst(losses, k, ~right), worst(losses, k, right)


def image_grid(images: np.ndarray, titles: list[str], path: Path, columns: int = 8, overlays: np.ndarray | None = None) -> Path:  # fmt: skip
    """Images (N, C, H, W) in [0, 1], each with a title; optional heat maps (N, h, w) in [0, 1]
    drawn translucently on top, upsampled bilinearly, so the input's own pixels (upsampled
    without smoothing) stay visible under a smooth map; one colour bar for all of them.

    One mosaic in one axes placed by hand, not N small axes under a layout engine (that took
    most of the report's time). The room above each tile is sized for its title's lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, channels, h, w = images.shape
    columns = min(columns, max(n, 1))
    rows = -(-n // columns)
    scale = max(1, 64 // max(h, w))  # display pixels per image pixel
    th, tw = h * scale, w * scale
    inch = 1.35 / max(th, tw)  # inches per mosaic pixel: each tile about 1.35 in wide
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    gap = int(np.ceil((0.13 * lines + 0.08) / inch))  # title room: 7 pt lines plus a margin
    pad = max(2, tw // 10)
    height, width = rows * (gap + th), columns * (tw + pad) - pad
    mosaic = np.ones((height, width, 3), dtype=np.float32)  # white between tiles
    heat = np.full((height, width), np.nan, dtype=np.float32)  # NaN: transparent
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * (gap + th) + gap, c * (tw + pad)
        tile = np.clip(images[i], 0, 1).repeat(scale, 1).repeat(scale, 2)
        mosaic[top : top + th, left : left + tw] = (tile if channels == 3 else tile[:1].repeat(3, 0)).transpose(1, 2, 0)  # fmt: skip
        if overlays is not None:
            heat[top : top + th, left : left + tw] = _upsample(overlays[i], th, tw)
    extra = 1.3 if overlays is not None else 0.0  # the colour bar, its ticks and label
    # Axes placed in inches, not by a layout engine (report/layout.py): the mosaic at its
    # size with a 0.1 in border, the colour bar in the room on the right.
    fig = plt.figure(figsize=(width * inch + extra + 0.2, height * inch + 0.2))
    ax = fig.add_axes(inches(fig, 0.1, 0.1, width * inch, height * inch))
    ax.imshow(mosaic, interpolation="nearest")
    if overlays is not None:
        shown = ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1, interpolation="nearest")
        bar = fig.add_axes(inches(fig, width * inch + 0.35, 0.1 + 0.1 * height * inch, 0.15, 0.8 * height * inch))  # fmt: skip
        fig.colorbar(shown, cax=bar, label="Grad-CAM (relative evidence)")
    for i, text in enumerate(titles[:n]):
        r, c = divmod(i, columns)
        ax.text(c * (tw + pad) + tw / 2, r * (gap + th) + gap - 0.03 / inch, text,
                ha="center", va="bottom", fontsize=7)  # fmt: skip
    ax.set_axis_off()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _upsample(heat: np.ndarray, h: int, w: int) -> np.ndarray:
    import torch
    from torch.nn import functional

    t = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None]
    return functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
