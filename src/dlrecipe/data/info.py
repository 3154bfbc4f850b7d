"""What the data knows and the model needs: task, number of outputs, input shape, class names.

    python -c "from dlrecipe.data.info import infer_task; import numpy as np; print(infer_task(np.array([0, 1, 1])))"

The model is built from a `DataInfo`, so no config repeats what the data already says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from dlrecipe.tasks import Binary, Multiclass, Regression, task_named
from dlrecipe.tasks import Task as TaskObject

Task = str  # a task's registered name (dlrecipe.tasks); the name is what files store

# More distinct integer labels than this and an integer target is more likely a count to regress.
MAX_INFERRED_CLASSES = 50


@dataclass(frozen=True)
class DataInfo:
    task: Task
    input_shape: tuple[int, ...]
    class_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def task_obj(self) -> TaskObject:
        """The task as an object (loss, metrics, predictions); `task` stays its plain name so
        summary.json and checkpoints (weights_only=True) hold only a string."""
        return task_named(self.task, self.num_classes)

    @property
    def num_outputs(self) -> int:
        """Width of the net's last layer: one unit for regression and binary, C logits otherwise."""
        return self.task_obj.num_outputs

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        return cls(d["task"], tuple(d["input_shape"]), list(d.get("class_names", [])))


def infer_task(targets: np.ndarray) -> Task:
    """Float values -> regression; two distinct values -> binary; a few labels -> multiclass."""
    values = (
        np.unique(targets[~_isnan(targets)]) if targets.dtype.kind == "f" else np.unique(targets)
    )
    if targets.dtype.kind in "OUSb":
        return classification_task(len(values))
    if targets.dtype.kind == "f" and not np.all(np.equal(np.mod(values, 1), 0)):
        return Regression.name
    if len(values) == 2:
        return Binary.name
    return Multiclass.name if len(values) <= MAX_INFERRED_CLASSES else Regression.name


def classification_task(num_classes: int) -> Task:
    """The task of class labels: binary for two classes (one logit), multiclass otherwise."""
    return Binary.name if num_classes == 2 else Multiclass.name


def _isnan(a: np.ndarray) -> np.ndarray:
    return np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
