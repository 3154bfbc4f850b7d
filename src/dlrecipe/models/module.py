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
from dlrecipe.models.regularization import Regularization
from dlrecipe.models.schedules import ScheduleContext
from dlrecipe.models.speed import check_compile, compile_net, use_channels_last
from dlrecipe.models.tasks import (
    MAIN_METRIC,
    batch_score,
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
        channels_last: bool = False,
        compile: bool | dict = False,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        finetuning: Callable[[], pl.Callback] | None = None,
        regularization: dict | None = None,
    ):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "finetuning"])
        self.info = DataInfo.from_dict(info)
        check_optimizer(optimizer)
        self.net = initialize(
            net(input_shape=self.info.input_shape, num_outputs=self.info.num_outputs), init
        )
        if channels_last:  # GPU speed options (models/speed.py); the weights stay the same
            use_channels_last(self.net)
        self._compile_options = check_compile(compile)  # no C compiler: fail now, not at step 1
        # Extra penalties / max-norm (models/regularization.py); None when all off: nothing per step.
        self.regularization = Regularization.from_config(self, regularization)
        self._penalized = self.regularization is not None and self.regularization.penalizes
        self.loss_fn = build_loss(loss, self.info, label_smoothing)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.main_metric = MAIN_METRIC[self.info.task]
        metrics = build_metrics(self.info)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.run_config: dict[str, Any] | None = None  # set by train.py, saved with checkpoints
        # model=finetune brings its own freeze / unfreeze schedule (models/finetuning.py).
        self.finetuning = finetuning() if finetuning is not None else None

    def configure_callbacks(self) -> list[pl.Callback]:
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        return [self.finetuning] if self.finetuning is not None and fitting else []

    def configure_model(self) -> None:
        # Lightning calls this before fit, validate and test alike: compile once, lazily (the
        # first step compiles); in place, so checkpoints keep plain state-dict keys.
        if self._compile_options is not None and not getattr(self, "_compiled", False):
            compile_net(self.net, self._compile_options)
            self._compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        loss = self.loss_fn(*loss_inputs(out, y, self.info.task))
        # Epoch means summed on the device and logged once, at the epoch's last batch: a
        # self.log call or a torchmetrics update per step costs more than a small model's step.
        n = len(y)
        score = batch_score(out.detach(), hard_targets(y, self.info.task), self.info.task)
        self._loss_sum.add_(loss.detach(), alpha=n)  # in place: no new tensors per step
        self._score_sum.add_(score, alpha=n)
        self._count += n
        if self._penalized:  # train/loss stays the data loss, comparable with val/loss
            penalty = self.regularization.penalty()
            self._penalty_sum += penalty.detach()
            loss = loss + penalty
        if batch_idx + 1 >= self.trainer.num_training_batches:
            # sync_dist: every rank saw its own share of the epoch; average them (once per epoch)
            once = {"on_step": False, "on_epoch": True, "sync_dist": True}
            self.log("train/loss", self._loss_sum / self._count, prog_bar=True, **once)
            self.log(f"train/{self.main_metric}", self._score_sum / self._count, **once)
            if self._penalized:
                self.log("train/penalty", self._penalty_sum / (batch_idx + 1), **once)
        return loss

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._score_sum = torch.zeros((), device=self.device)
        self._count = 0
        self._penalty_sum = torch.zeros((), device=self.device)

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
        main = f"{stage}/{self.main_metric}"
        # During fit, validation tracks the loss and the main metric only: the full set (AUROC
        # sorts every prediction) is computed once, when the best checkpoint is validated/tested.
        during_fit = self.trainer.state.fn == "fit"
        chosen = {main: metrics[main]} if during_fit else dict(metrics.items())
        probs = predict_proba(out, self.info.task)
        for name, metric in chosen.items():
            metric.update(probs, y)
            self.log(name, metric, on_epoch=True, prog_bar=name == main)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.regularization is not None and self.regularization.max_norm is not None:
            optimizer.register_step_post_hook(self.regularization.constrain)
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = (
            self.trainer.max_epochs
            if self.trainer.max_epochs and self.trainer.max_epochs > 0
            else 1
        )
        if getattr(self.trainer.datamodule, "epoch_schedules", None):  # a curriculum grows epochs
            from dlrecipe.callbacks.data_schedule import planned_train_batches

            planned = planned_train_batches(self.trainer.datamodule, epochs)
            total = max(1, planned // max(1, self.trainer.accumulate_grad_batches))
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
