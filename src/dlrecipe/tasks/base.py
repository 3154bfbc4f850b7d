"""The Task seam: what a kind of target means for loss, metrics, predictions and checks.

    python -c "from dlrecipe.tasks import task_named; print(task_named('binary').main_metric)"

A task is one class (tasks/builtin.py holds regression, binary and multiclass). The data infers
or names the task; everything downstream asks the task object instead of comparing its name,
so a new kind of target (multi-label, ordinal, ...) is one class registered with
`register_task`, with no edit to the model, the run or the report. `DataInfo.task` stays the
plain name (summary.json, checkpoints loadable with weights_only=True); `DataInfo.task_obj`
gives the object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dlrecipe.errors import ConfigError

if TYPE_CHECKING:  # this module stays light (compare, lint, sweeps read directions): torch,
    import numpy as np  # numpy and torchmetrics (~3 s) load only where a task is used
    import torch
    import torchmetrics as tm
    from torch import nn

# The one table of which metrics improve upwards: metric leaf name -> "max" | "min". Sweeps,
# K-fold, the linter, monitor checks, data curves and comparisons all read it; a registered task
# adds its own metrics' directions (Task.directions).
DIRECTIONS: dict[str, str] = {
    "loss": "min", "mae": "min", "rmse": "min", "mse": "min", "r2": "max",
    "acc": "max", "precision": "max", "recall": "max", "f1": "max", "auroc": "max",
}  # fmt: skip
REGISTRY: dict[str, type[Task]] = {}


class Task:
    """One kind of target. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    # loss name -> factory; the first entry is the task's default (model.loss=null)
    losses: ClassVar[dict[str, Callable[[], nn.Module]]]
    main_metric: ClassVar[str]  # what the summary, learning curves and the fit-time sums report
    directions: ClassVar[dict[str, str]] = {}  # metrics not in DIRECTIONS -> "max" | "min"
    # Targets are class labels: stratified splits, class counts, MixUp / CutMix apply.
    has_classes: ClassVar[bool] = True
    scales_targets: ClassVar[bool] = False  # the net learns (y - mean) / std (regression)
    # Which report figures apply, by name (report/build.py draws them).
    report_figures: ClassVar[tuple[str, ...]] = ("confusion", "roc_pr", "calibration")

    def __init__(self, num_classes: int = 0):
        self.num_classes = num_classes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"

    @property
    def num_outputs(self) -> int:
        """Width of the net's last layer."""
        return 1

    def cast_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as the data keeps them: class indices (long) unless the task says otherwise."""
        return targets.long()

    def build_loss(self, name: str | None, label_smoothing: float = 0.0) -> nn.Module:
        name = name or next(iter(self.losses))
        known = sorted({n for cls in REGISTRY.values() for n in cls.losses})
        if name not in known:
            raise ConfigError(f"model.loss={name!r} is unknown; choose one of {known} or null")
        if name not in self.losses:
            owners = "/".join(t.name for t in REGISTRY.values() if name in t.losses)
            raise ConfigError(
                f"model.loss={name} is for {owners} targets, but this data is {self.name}; "
                f"use one of {list(self.losses)} (or model.loss=null for the default)"
            )
        if label_smoothing:
            raise ConfigError("model.label_smoothing needs the multiclass cross_entropy loss")
        return self.losses[name]()

    def metrics(self) -> dict[str, tm.Metric]:
        raise NotImplementedError

    def metric_collection(self) -> tm.MetricCollection:
        import torchmetrics as tm

        return tm.MetricCollection(self.metrics())

    def loss_inputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple:
        """Shape and dtype the loss expects: one-unit outputs squeezed, float targets."""
        return outputs.squeeze(-1), targets.float()

    def hard_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets the metrics take, from soft MixUp / CutMix ones."""
        return targets

    def mixed_targets(self, mixed: torch.Tensor) -> torch.Tensor:
        """MixUp / CutMix's soft (B, C) targets in the form this task's loss takes."""
        return mixed

    def score_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The main metric summed over a batch: the epoch mean is the sum over the sample
        count, with no per-batch mean and multiply (must equal the torchmetrics value)."""
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Probabilities (or values) from the net's outputs, as metrics and predictions take."""
        raise NotImplementedError

    def predicted_labels(self, probs: np.ndarray) -> np.ndarray:
        """Class indices from predicted probabilities (report, mistakes)."""
        return probs.argmax(1)

    def per_sample_loss(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The task's loss per sample on predicted probabilities (report's worst mistakes)."""
        raise NotImplementedError

    def prior_outputs(self, targets: torch.Tensor) -> torch.Tensor:
        """Raw outputs of the best predictor that ignores the inputs (class shares, mean)."""
        raise NotImplementedError

    def prediction_columns(self, probs: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        """The predictions CSV's columns after the id: prediction, then probabilities."""
        raise NotImplementedError

    def target_column(self, targets: torch.Tensor, class_names: list[str]) -> Any:
        """The predictions CSV's true-target column: class names, or the values themselves."""
        return targets.numpy() if not class_names else [class_names[int(t)] for t in targets]

    def value_columns(self, columns: list[str], class_names: list[str]) -> list[str]:
        """The columns of a predictions CSV a model's output is read back from."""
        return [c for c in columns if c.startswith("prob_")] or ["prediction"]

    def from_value_columns(self, values: torch.Tensor) -> torch.Tensor:
        """Output read back from value_columns (N, k) in the shape predict() returns."""
        return values

    def label(self, probs: np.ndarray, target: Any, i: int, names: list[str]) -> tuple:
        """(predicted, true, probability of the prediction) for sample i, for the report."""
        k = int(probs[i].argmax())
        return names[k], names[int(target)], float(probs[i, k])

    def baseline(self, y_train: np.ndarray, y_val: np.ndarray) -> tuple[str, float, float]:
        """(what, score, two standard errors) of a predictor that ignores the inputs
        (scikit-learn's dummies ignore the inputs by construction), scored on validation."""
        import numpy as np
        from sklearn.dummy import DummyClassifier
        from sklearn.metrics import accuracy_score

        blank_train, blank_val = np.zeros((len(y_train), 1)), np.zeros((len(y_val), 1))
        guess = (
            DummyClassifier(strategy="most_frequent").fit(blank_train, y_train).predict(blank_val)
        )
        acc = float(accuracy_score(y_val, guess))
        return "majority class", acc, 2 * float(np.sqrt(acc * (1 - acc) / len(y_val)))


def register_task(cls: type[Task]) -> type[Task]:
    """Make a Task class known by its name (a class decorator); its metrics get directions."""
    for metric, way in cls.directions.items():
        if way not in ("max", "min"):
            raise ValueError(f"{cls.__name__}.directions[{metric!r}] must be 'max' or 'min'")
        DIRECTIONS.setdefault(metric, way)
    REGISTRY[cls.name] = cls
    return cls


def direction(metric: str) -> str | None:
    """ "max" when a higher value of this metric (any stage prefix: val/acc) is better, "min"
    when lower is, None for a name no task knows."""
    return DIRECTIONS.get(str(metric).rsplit("/", 1)[-1])


def metric_names(value: Any) -> list[str]:
    """optimized_metric (a string, a list of them, or unset) as a list of names; anything else
    (a value read from a summary.json on disk) as the one name it prints as."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):  # a list, tuple or omegaconf ListConfig
        return [str(v) for v in value]
    return [str(value)]
