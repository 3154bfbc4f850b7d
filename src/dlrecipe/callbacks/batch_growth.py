"""Increase the batch size instead of decaying the learning rate (Smith et al., ICLR 2018).

    python -m dlrecipe.train callbacks=batch_growth model/scheduler=none
    python -m dlrecipe.train callbacks=batch_growth model/scheduler=none \
        'callbacks.batch_growth.milestones=[5,10,15]' callbacks.batch_growth.factor=2

SGD's noise scale is about lr * N / B, so multiplying the batch B by f at a milestone cools
training as much as dividing the learning rate by f, in f times fewer steps. The rule applied
here is theirs: the learning rate stays as configured and the batch grows instead, so a
decaying schedule is refused (it would count on the starting batch's number of steps);
model/scheduler=none (a constant LR, with an optional warm-up) is what it runs with. The
DataLoader itself gets the bigger batch (`data.batch_size`, the global batch, grows), not only
gradient accumulation; `train/batch_size` is logged every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np

from dlrecipe.callbacks.data_schedule import DataSchedule
from dlrecipe.errors import ConfigError
from dlrecipe.models.schedules import constant


class BatchGrowth(DataSchedule):
    def __init__(self, milestones: Sequence[int] = (10, 20), factor: int = 2):
        milestones = sorted(int(m) for m in milestones)
        if not milestones or milestones[0] < 1:
            raise ConfigError(
                f"callbacks.batch_growth.milestones={list(milestones)}: give epochs >= 1, e.g. [10,20]"
            )
        if not isinstance(factor, int) or factor < 2:
            raise ConfigError(
                f"callbacks.batch_growth.factor={factor!r} must be an integer >= 2 (2 doubles the batch)"
            )
        self.milestones, self.factor = milestones, factor
        self._base: int | None = None

    def batch_size_at(self, epoch: int) -> int:
        assert self._base is not None, "batch_size_at() is known once fit has started"
        return self._base * self.factor ** sum(epoch >= m for m in self.milestones)

    def for_epoch(self, datamodule, train: np.ndarray, epoch: int) -> np.ndarray:
        assert self._base is not None
        datamodule.batch_size = self.batch_size_at(epoch)
        return train

    def changes_after(self, epoch: int) -> bool:
        return self.batch_size_at(epoch + 1) != self.batch_size_at(epoch)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            schedule = getattr(pl_module, "scheduler_factory", None)
            if schedule is not None and getattr(schedule, "func", None) is not constant:
                raise ConfigError(
                    "callbacks=batch_growth replaces learning-rate decay with a growing batch; "
                    "add model/scheduler=none (the learning rate stays model.optimizer.lr)"
                )
            if self._base is None:
                self._base = trainer.datamodule.batch_size
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        # Logged at the start, so that history.csv's row of this epoch holds it.
        batch = float(trainer.datamodule.batch_size)
        pl_module.log("train/batch_size", batch, on_step=False, on_epoch=True)
