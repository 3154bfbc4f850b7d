"""A toy multi-label task in one file: the Task seam's proof that a new kind of target needs no
edit to dlrecipe (tests/test_task_seam.py trains it through dlrecipe.train).

    python -m dlrecipe.train model=mlp data=synthetic data.source._target_=tests.toy_multilabel.load_multilabel data.source.shape=[6] data.source.num_classes=3

Each sample has several 0/1 labels at once (label k: feature k is positive). Importing this
module registers the task; the source names it in its SourceData.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from dlrecipe.data.sources.base import SourceData
from dlrecipe.tasks import Task, register_task


@register_task
class MultiLabel(Task):
    name = "multilabel"
    losses: ClassVar[dict] = {"bce": nn.BCEWithLogitsLoss}  # one sigmoid per label
    main_metric = "label_acc"  # a name no built-in task has: its direction comes from here
    directions: ClassVar[dict[str, str]] = {"label_acc": "max"}
    has_classes = False  # several labels per sample: no stratified split, no MixUp
    report_figures = ()  # none of the built-in figures reads several labels per sample

    @property
    def num_outputs(self) -> int:
        return self.num_classes  # one logit per label (class_names names the labels)

    def metrics(self) -> dict[str, Any]:
        from torchmetrics import classification as c

        return {
            "label_acc": c.MultilabelAccuracy(self.num_classes, average="micro"),
            "f1": c.MultilabelF1Score(self.num_classes, average="macro"),
        }

    def loss_inputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple:
        return outputs, targets.float()

    def score_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # every sample has the same number of labels, so the per-sample mean summed over the
        # epoch over the sample count is the micro accuracy
        return ((outputs > 0) == targets.bool()).float().mean(-1).sum()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid()

    def target_column(self, targets: torch.Tensor, class_names: list[str]) -> Any:
        return [_joined(class_names, row) for row in targets.numpy() > 0]

    def prior_outputs(self, targets: torch.Tensor) -> torch.Tensor:
        p = targets.float().mean(0).clamp(1e-6, 1 - 1e-6)
        return (p / (1 - p)).log().expand(len(targets), -1)

    def prediction_columns(self, probs: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        columns: dict[str, Any] = {
            "prediction": [_joined(class_names, row) for row in probs.numpy() >= 0.5]
        }
        for k, name in enumerate(class_names):
            columns[f"prob_{name}"] = probs[:, k].numpy()
        return columns


def _joined(names: list[str], on: Any) -> str:
    """The labels that are on, as one CSV cell: label0|label2."""
    return "|".join(n for n, is_on in zip(names, on, strict=True) if is_on)


def load_multilabel(
    samples: int = 300,
    shape: tuple[int, ...] = (6,),
    num_classes: int = 3,
    noise: float = 0.5,
    data_seed: int = 0,
) -> SourceData:
    """A table whose label k is "feature k plus noise > 0" (shape[0] >= num_classes features)."""
    generator = torch.Generator().manual_seed(data_seed)
    x = torch.randn(samples, *shape, generator=generator)
    signal = x[:, :num_classes] + noise * torch.randn(samples, num_classes, generator=generator)
    y = (signal > 0).long()
    names = [f"label{k}" for k in range(num_classes)]
    return SourceData(
        x, y, MultiLabel.name, class_names=names, feature_names=[f"f{i}" for i in range(shape[0])]
    )
