"""The three built-in tasks: regression, binary and multiclass classification.

    python -m dlrecipe.train experiment=diabetes_mlp model.loss=huber

The net always ends in raw outputs (a value or logits); losses that fuse the sigmoid / softmax
(BCEWithLogits, CrossEntropy) keep training numerically stable, and probabilities are computed
only for metrics and predictions. Metrics are torchmetrics, so they accumulate on the device and
synchronise across DDP ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.tasks.base import Task, register_task

Losses = dict[str, Callable[[], nn.Module]]
EPS = 1e-7  # clip probabilities away from 0 and 1 before a log in per-sample losses


@register_task
class Regression(Task):
    name = "regression"
    losses: ClassVar[Losses] = {"mse": nn.MSELoss, "huber": nn.HuberLoss, "mae": nn.L1Loss}
    main_metric = "mae"
    has_classes = False
    scales_targets = True  # the net learns (y - mean) / std; metrics stay in y's units
    report_figures = ("predicted_vs_true",)

    def cast_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.float()

    def metrics(self) -> dict[str, Any]:
        import torchmetrics as tm

        return {
            "mae": tm.MeanAbsoluteError(),
            "rmse": tm.MeanSquaredError(squared=False),
            "r2": tm.R2Score(),
        }

    def score_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.squeeze(-1) - targets).abs().sum()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)

    def per_sample_loss(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return (probs - targets) ** 2

    def prior_outputs(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.full((len(targets), 1), float(targets.float().mean()))

    def prediction_columns(self, probs: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        return {"prediction": probs.numpy()}

    def from_value_columns(self, values: torch.Tensor) -> torch.Tensor:
        return values[:, 0]

    def label(self, probs: np.ndarray, target: Any, i: int, names: list[str]) -> tuple:
        return f"{probs[i]:.3g}", f"{target:.3g}", float("nan")

    def baseline(self, y_train: np.ndarray, y_val: np.ndarray) -> tuple[str, float, float]:
        from sklearn.dummy import DummyRegressor
        from sklearn.metrics import mean_absolute_error

        blank_train, blank_val = np.zeros((len(y_train), 1)), np.zeros((len(y_val), 1))
        guess = DummyRegressor(strategy="mean").fit(blank_train, y_train).predict(blank_val)
        errors = np.abs(y_val - guess)
        return (
            "mean predictor",
            float(mean_absolute_error(y_val, guess)),
            2 * float(errors.std() / np.sqrt(len(y_val))),
        )


@register_task
class Binary(Task):
    name = "binary"
    losses: ClassVar[Losses] = {"bce": nn.BCEWithLogitsLoss}
    main_metric = "acc"

    def metrics(self) -> dict[str, Any]:
        from torchmetrics import classification as c

        return {
            "acc": c.BinaryAccuracy(),
            "precision": c.BinaryPrecision(),
            "recall": c.BinaryRecall(),
            "f1": c.BinaryF1Score(),
            "auroc": c.BinaryAUROC(),
        }

    def hard_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets > 0.5).long() if targets.is_floating_point() else targets

    def mixed_targets(self, mixed: torch.Tensor) -> torch.Tensor:
        return mixed[:, 1]  # BCE takes the soft probability of the positive class

    def score_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs.squeeze(-1) > 0) == targets).sum()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1).sigmoid()

    def predicted_labels(self, probs: np.ndarray) -> np.ndarray:
        return (probs >= 0.5).astype(int)

    def per_sample_loss(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        p = np.clip(probs, EPS, 1 - EPS)
        return -(targets * np.log(p) + (1 - targets) * np.log(1 - p))

    def prior_outputs(self, targets: torch.Tensor) -> torch.Tensor:
        p = float(targets.float().mean().clamp(1e-6, 1 - 1e-6))
        return torch.full((len(targets), 1), float(np.log(p / (1 - p))))

    def prediction_columns(self, probs: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        # one column per class, as for multiclass: users look up the class they care about
        return {
            "prediction": [class_names[int(p >= 0.5)] for p in probs],
            f"prob_{class_names[0]}": 1.0 - probs.numpy(),
            f"prob_{class_names[1]}": probs.numpy(),
        }

    def value_columns(self, columns: list[str], class_names: list[str]) -> list[str]:
        return [f"prob_{class_names[1]}"]  # the positive class's column

    def from_value_columns(self, values: torch.Tensor) -> torch.Tensor:
        return values[:, 0]

    def label(self, probs: np.ndarray, target: Any, i: int, names: list[str]) -> tuple:
        k = int(probs[i] >= 0.5)
        return names[k], names[int(target)], float(probs[i] if k else 1 - probs[i])


@register_task
class Multiclass(Task):
    name = "multiclass"
    losses: ClassVar[Losses] = {"cross_entropy": nn.CrossEntropyLoss}
    main_metric = "acc"

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def build_loss(self, name: str | None, label_smoothing: float = 0.0) -> nn.Module:
        loss = super().build_loss(name)
        if not label_smoothing:
            return loss
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing={label_smoothing} must be in [0, 1)")
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def metrics(self) -> dict[str, Any]:
        from torchmetrics import classification as c

        n = self.num_classes
        return {
            "acc": c.MulticlassAccuracy(n, average="micro"),
            "precision": c.MulticlassPrecision(n, average="macro"),
            "recall": c.MulticlassRecall(n, average="macro"),
            "f1": c.MulticlassF1Score(n, average="macro"),
            "auroc": c.MulticlassAUROC(n, average="macro"),
        }

    def loss_inputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple:
        return outputs, targets

    def hard_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.argmax(-1) if targets.ndim == 2 else targets

    def score_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.argmax(-1) == targets).sum()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(-1)

    def per_sample_loss(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        picked = probs[np.arange(len(targets)), targets.astype(int)]
        return -np.log(np.clip(picked, EPS, 1.0))

    def prior_outputs(self, targets: torch.Tensor) -> torch.Tensor:
        shares = torch.bincount(targets.long(), minlength=self.num_classes).double() / len(targets)
        return shares.clamp_min(1e-12).log().float().expand(len(targets), -1)

    def prediction_columns(self, probs: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        columns: dict[str, Any] = {"prediction": [class_names[i] for i in probs.argmax(-1)]}
        for c, name in enumerate(class_names):
            columns[f"prob_{name}"] = probs[:, c].numpy()
        return columns
