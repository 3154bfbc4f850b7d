"""The LightningModule: trains any net from models/nets for the data's task.

    python -m dlrecipe.train model=mlp data=wine model/optimizer=sgd model/scheduler=step

It owns what is common to every experiment (loss, metrics, optimizer groups, schedule,
initialization) and nothing about a particular architecture: the net is a `_partial_` that
gets `input_shape` and `num_outputs` from the data's `DataInfo`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from dlrecipe.data.info import DataInfo
from dlrecipe.models.init import initialize
from dlrecipe.models.optim import build_optimizer, check_optimizer
from dlrecipe.models.schedules import ScheduleContext
from dlrecipe.models.tasks import (
    MAIN_METRIC,
    build_loss,
    build_metrics,
    hard_targets,
    loss_inputs,
    predict_proba,
)

CONFIG_KEY = "dlrecipe_config"  # where the resolved run config is kept inside a checkpoint


class LitModel(pl.LightningModule):
    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., dict] | None,
        info: dict,
        loss: str | None = None,
        label_smoothing: float = 0.0,
        init: str = "default",
        monitor: str = "val/loss",
        monitor_mode: str = "min",
    ):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.info = DataInfo.from_dict(info)
        check_optimizer(optimizer)
        self.net = initialize(
            net(input_shape=self.info.input_shape, num_outputs=self.info.num_outputs), init
        )
        self.loss_fn = build_loss(loss, self.info, label_smoothing)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.main_metric = MAIN_METRIC[self.info.task]
        metrics = build_metrics(self.info)
        self.train_metric = metrics[self.main_metric].clone()
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.run_config: dict[str, Any] | None = None  # set by train.py, saved with checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        loss = self.loss_fn(*loss_inputs(out, y, self.info.task))
        # Epoch-level logging accumulates on the device: no host sync per step.
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.train_metric.update(
            predict_proba(out.detach(), self.info.task), hard_targets(y, self.info.task)
        )
        self.log(f"train/{self.main_metric}", self.train_metric, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return predict_proba(self.net(x), self.info.task)

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metrics) -> None:
        x, y = batch
        out = self.net(x)
        loss = self.loss_fn(*loss_inputs(out, y, self.info.task))
        self.log(
            f"{stage}/loss",
            loss,
            on_epoch=True,
            prog_bar=stage == "val",
            batch_size=len(y),
            sync_dist=True,
        )
        metrics.update(predict_proba(out, self.info.task), y)
        main = f"{stage}/{self.main_metric}"
        for name, metric in metrics.items():
            self.log(name, metric, on_epoch=True, prog_bar=name == main)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = (
            self.trainer.max_epochs
            if self.trainer.max_epochs and self.trainer.max_epochs > 0
            else 1
        )
        context = ScheduleContext(
            total_steps=total,
            steps_per_epoch=max(1, total // epochs),
            monitor=self.hparams.monitor,
            mode=self.hparams.monitor_mode,
        )
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer, context)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config

    def parameter_counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.net.parameters())
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return total, trainable
