"""The common shape every source returns, so the DataModule never cares where data came from.

python -c "from dlrecipe.data.sources.sklearn_sets import load_sklearn; print(load_sklearn('wine'))"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from dlrecipe.data.info import Task


@dataclass
class SourceData:
    """A whole data set: inputs, targets and what they mean.

    `inputs` is a tensor when the data fits in memory (tables: float32 (N, F); images: uint8 or
    float32 (N, C, H, W)), which enables the fast batch-by-index path; or a `Dataset` that yields
    `(x, y)` lazily (large image folders). `test_indices` / `val_indices` mark splits the source
    already defines (MNIST's official test set, an image folder's test/ directory). `groups`
    tie samples that must stay on the same side of a split (one patient's many scans).
    """

    inputs: torch.Tensor | Dataset
    targets: torch.Tensor
    task: Task
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    test_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None
    groups: np.ndarray | None = None  # one group id per sample, for grouped K-fold

    def __post_init__(self) -> None:
        if not self.input_shape:
            if not isinstance(self.inputs, torch.Tensor):
                raise TypeError("a lazy source must give input_shape")
            self.input_shape = tuple(self.inputs.shape[1:])
        if self.task == "regression":
            self.targets = self.targets.float()
        else:
            self.targets = self.targets.long()

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        return (
            f"SourceData(n={len(self)}, task={self.task}, input_shape={self.input_shape}, "
            f"classes={len(self.class_names)})"
        )


def encode_labels(labels: np.ndarray, task: Task) -> tuple[torch.Tensor, list[str]]:
    """Map labels of any dtype to 0..C-1 (sorted), or to floats for regression."""
    if task == "regression":
        return torch.as_tensor(labels.astype(np.float32)), []
    classes, codes = np.unique(labels, return_inverse=True)
    return torch.as_tensor(codes, dtype=torch.long), [str(c) for c in classes]
