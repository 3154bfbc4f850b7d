"""The common shape every source returns, so the DataModule never cares where data came from.

python -c "from dlrecipe.data.sources.sklearn_sets import load_sklearn; print(load_sklearn('wine'))"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from dlrecipe.data.info import Task, classification_task
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import task_named


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
    notes: list[str] = field(default_factory=list)  # what loading changed (rows dropped, modes)

    def __post_init__(self) -> None:
        if not self.input_shape:
            if not isinstance(self.inputs, torch.Tensor):
                raise TypeError("a lazy source must give input_shape")
            self.input_shape = tuple(self.inputs.shape[1:])
        self.targets = task_named(self.task).cast_targets(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        return (
            f"SourceData(n={len(self)}, task={self.task}, input_shape={self.input_shape}, "
            f"classes={len(self.class_names)})"
        )


def encode_labels(labels: np.ndarray, task: Task) -> tuple[torch.Tensor, list[str]]:
    """Map labels of any dtype to 0..C-1 (sorted), or to floats for regression."""
    if not task_named(task).has_classes:
        return torch.as_tensor(labels.astype(np.float32)), []
    classes, codes = np.unique(labels, return_inverse=True)
    return torch.as_tensor(codes, dtype=torch.long), [str(c) for c in classes]


def select_classes(data: SourceData, classes: list) -> SourceData:
    """Only the samples of `classes` (names or labels), relabelled 0..k-1 in the order given."""
    if not task_named(data.task).has_classes:
        raise ConfigError(
            f"data.classes selects classes of a classification set; this one is {data.task}"
        )
    if isinstance(classes, str | int | float) or not hasattr(classes, "__iter__"):
        raise ConfigError(
            f"data.classes={classes!r} must be a list of classes, e.g. data.classes=[5,6,7,8,9] "
            "(data=synthetic sets its number of classes with data.source.num_classes)"
        )
    names = [str(c) for c in classes]
    unknown = [n for n in names if n not in data.class_names]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f"data.classes={names}: give two or more distinct classes of {data.class_names}"
            + (f" ({unknown} are not among them)" if unknown else "")
        )
    if not isinstance(data.inputs, torch.Tensor):
        raise ConfigError(
            "data.classes works on in-memory data; for a folder, keep only those sub-folders"
        )
    codes = torch.tensor([data.class_names.index(n) for n in names])
    keep = torch.isin(data.targets, codes).nonzero().flatten()
    relabel = torch.full((len(data.class_names),), -1, dtype=torch.long)
    relabel[codes] = torch.arange(len(codes))
    position = np.full(len(data), -1)
    position[keep.numpy()] = np.arange(len(keep))

    def moved(indices: np.ndarray | None) -> np.ndarray | None:
        return None if indices is None else position[indices][position[indices] >= 0]

    return SourceData(
        data.inputs[keep], relabel[data.targets[keep]], classification_task(len(names)),
        class_names=names, feature_names=data.feature_names, input_shape=data.input_shape,
        test_indices=moved(data.test_indices), val_indices=moved(data.val_indices),
        groups=None if data.groups is None else data.groups[keep.numpy()], notes=data.notes,
    )  # fmt: skip
