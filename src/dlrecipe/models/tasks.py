"""Loss and metrics of the data's task, for the model (the tasks themselves: dlrecipe/tasks/).

    python -m dlrecipe.train experiment=diabetes_mlp model.loss=huber

Thin functions over `DataInfo.task_obj`, kept so code written against them keeps working; new
code asks the task object directly (`info.task_obj.loss_inputs(...)`).
"""

from __future__ import annotations

import torch
import torchmetrics as tm
from torch import nn

from dlrecipe.data.info import DataInfo
from dlrecipe.tasks import Task, as_task, task_named, task_names

# The metric a run is judged by in its summary and learning curves, by task name.
MAIN_METRIC = {name: task_named(name).main_metric for name in task_names()}


def build_loss(name: str | None, info: DataInfo, label_smoothing: float = 0.0) -> nn.Module:
    return info.task_obj.build_loss(name, label_smoothing)


def build_metrics(info: DataInfo) -> tm.MetricCollection:
    return info.task_obj.metric_collection()


def loss_inputs(outputs: torch.Tensor, targets: torch.Tensor, task: str | Task):
    """Shape and dtype the loss expects: one-unit outputs squeezed, float targets for BCE/MSE."""
    return as_task(task).loss_inputs(outputs, targets)


def hard_targets(targets: torch.Tensor, task: str | Task) -> torch.Tensor:
    """Class labels from soft MixUp / CutMix targets, for metrics that need hard ones."""
    return as_task(task).hard_targets(targets)


def batch_score(outputs: torch.Tensor, targets: torch.Tensor, task: str | Task) -> torch.Tensor:
    """The main metric of one batch as a device tensor: accuracy, or MAE for regression."""
    return as_task(task).score_sum(outputs, targets) / len(targets)


def batch_score_sum(outputs: torch.Tensor, targets: torch.Tensor, task: str | Task) -> torch.Tensor:
    """The main metric summed over a batch (correct predictions, or absolute errors)."""
    return as_task(task).score_sum(outputs, targets)


def predict_proba(outputs: torch.Tensor, task: str | Task) -> torch.Tensor:
    """Probabilities for classification (sigmoid / softmax), the value itself for regression."""
    return as_task(task).predict(outputs)
