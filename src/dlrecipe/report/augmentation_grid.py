"""A picture of what augmentation does: originals in the top row, augmented versions below.

    python -m dlrecipe.preview data/augmentation=strong

The classic advice is to look at augmented samples and check that they are still believable
(a rotated 6 must not become a 9). Every image run with augmentation saves this grid in its
run directory before training starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.loaders import to_float


def pick_samples(labels: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    """Up to n training samples, one per class first, so the grid shows every class it can."""
    chosen, seen = [], set()
    for i in indices:
        if labels[i] not in seen:
            chosen.append(i)
            seen.add(labels[i])
        if len(chosen) == n:
            return np.array(chosen)
    rest = [i for i in indices if i not in set(chosen)]
    return np.array(chosen + rest[: n - len(chosen)])


def save_augmentation_grid(
    datamodule: DataModule, path: Path, n_samples: int = 8, n_versions: int = 5
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info, data = datamodule.info, datamodule.data
    datamodule.prepare_augmentation()
    labels = data.targets.numpy()
    idx = pick_samples(labels, datamodule.fold.train, n_samples)
    originals = to_float(datamodule.raw_inputs(idx))
    rows = [originals] + [datamodule.augmentation(originals.clone()) for _ in range(n_versions)]
    fig, axes = plt.subplots(
        len(rows), len(idx), figsize=(1.3 * len(idx), 1.3 * len(rows)), squeeze=False
    )
    for r, batch in enumerate(rows):
        for c in range(len(idx)):
            ax = axes[r][c]
            image = batch[c].clamp(0, 1)
            if image.shape[0] == 1:
                ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(image.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                name = info.class_names[int(labels[idx[c]])] if info.class_names else ""
                ax.set_title(name, fontsize=9)
        axes[r][0].set_ylabel("original" if r == 0 else f"aug {r}", fontsize=8)
    fig.suptitle("augmentation preview: originals (top) and augmented versions", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
