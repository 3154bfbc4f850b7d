"""Head, loss and metrics by task: regression, binary or multiclass.

    python -m dlrecipe.train experiment=diabetes_mlp model.loss=huber

The net always ends in raw outputs (a value or logits); losses that fuse the sigmoid / softmax
(BCEWithLogits, CrossEntropy) keep training numerically stable, and probabilities are computed
only for metrics and predictions. Metrics are torchmetrics, so they accumulate on the device and
synchronise across DDP ranks.
"""

from __future__ import annotations

import torch
import torchmetrics as tm
from torch import nn

from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError

# loss name -> (factory, tasks it fits). The task's default is the first in DEFAULT_LOSS.
LOSSES: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "cross_entropy": (nn.CrossEntropyLoss, ("multiclass",)),
    "bce": (nn.BCEWithLogitsLoss, ("binary",)),
    "mse": (nn.MSELoss, ("regression",)),
    "huber": (nn.HuberLoss, ("regression",)),
    "mae": (nn.L1Loss, ("regression",)),
}
DEFAULT_LOSS = {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}
# The metric a run is judged by in its summary and learning curves.
MAIN_METRIC = {"multiclass": "acc", "binary": "acc", "regression": "mae"}


def build_loss(name: str | None, info: DataInfo, label_smoothing: float = 0.0) -> nn.Module:
    name = name or DEFAULT_LOSS[info.task]
    if name not in LOSSES:
        raise ConfigError(f"model.loss={name!r} is unknown; choose one of {sorted(LOSSES)} or null")
    factory, tasks = LOSSES[name]
    if info.task not in tasks:
        fits = [n for n, (_, t) in LOSSES.items() if info.task in t]
        raise ConfigError(
            f"model.loss={name} is for {'/'.join(tasks)} targets, but this data is {info.task}; "
            f"use one of {fits} (or model.loss=null for the default)"
        )
    if label_smoothing:
        if name != "cross_entropy":
            raise ConfigError("model.label_smoothing needs the multiclass cross_entropy loss")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing={label_smoothing} must be in [0, 1)")
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return factory()


def loss_inputs(outputs: torch.Tensor, targets: torch.Tensor, task: str):
    """Shape and dtype the loss expects: one-unit outputs squeezed, float targets for BCE/MSE."""
    if task == "multiclass":
        return outputs, targets
    return outputs.squeeze(-1), targets.float()


def hard_targets(targets: torch.Tensor, task: str) -> torch.Tensor:
    """Class labels from soft MixUp / CutMix targets, for metrics that need hard ones."""
    if task == "multiclass" and targets.ndim == 2:
        return targets.argmax(-1)
    if task == "binary" and targets.is_floating_point():
        return (targets > 0.5).long()
    return targets


def batch_score(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """The main metric of one batch as a device tensor: accuracy, or MAE for regression."""
    return batch_score_sum(outputs, targets, task) / len(targets)


def batch_score_sum(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """The main metric summed over a batch (correct predictions, or absolute errors): the epoch
    mean is the sum over batches over the sample count, with no per-batch mean and multiply."""
    if task == "regression":
        return (outputs.squeeze(-1) - targets).abs().sum()
    predicted = outputs.argmax(-1) if task == "multiclass" else outputs.squeeze(-1) > 0
    return (predicted == targets).sum()


def predict_proba(outputs: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities for classification (sigmoid / softmax), the value itself for regression."""
    if task == "multiclass":
        return outputs.softmax(-1)
    if task == "binary":
        return outputs.squeeze(-1).sigmoid()
    return outputs.squeeze(-1)


def build_metrics(info: DataInfo) -> tm.MetricCollection:
    if info.task == "regression":
        metrics = {
            "mae": tm.MeanAbsoluteError(),
            "rmse": tm.MeanSquaredError(squared=False),
            "r2": tm.R2Score(),
        }
    elif info.task == "binary":
        metrics = {
            "acc": tm.classification.BinaryAccuracy(),
            "precision": tm.classification.BinaryPrecision(),
            "recall": tm.classification.BinaryRecall(),
            "f1": tm.classification.BinaryF1Score(),
            "auroc": tm.classification.BinaryAUROC(),
        }
    else:
        c = info.num_classes
        metrics = {
            "acc": tm.classification.MulticlassAccuracy(c, average="micro"),
            "precision": tm.classification.MulticlassPrecision(c, average="macro"),
            "recall": tm.classification.MulticlassRecall(c, average="macro"),
            "f1": tm.classification.MulticlassF1Score(c, average="macro"),
            "auroc": tm.classification.MulticlassAUROC(c, average="macro"),
        }
    return tm.MetricCollection(metrics)
