"""What batch growth and curricula share: a training DataLoader rebuilt between two epochs.

    python -m dlrecipe.train callbacks=batch_growth model/scheduler=none

A schedule joins the DataModule's `epoch_schedules` for the fit; each time the DataModule
builds the training loader it asks every schedule `for_epoch(datamodule, train, epoch)`, which
may set the batch size and narrow the training indices for that epoch. Lightning builds the
loader once and rebuilds it only at the epochs `trainer.reload_dataloaders_every_n_epochs`
names: a schedule raises that flag to 1 at the end of an epoch whose successor needs another
loader (and at the start of fit, for a resumed run), and puts the user's value back once the
loader is built, so the epochs in between reuse theirs. (A rebuild also re-runs every
callback's on_train_start, which Lightning's Timer, for one, takes as a new start.)
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np

from dlrecipe.compat import reload_train_loader_every
from dlrecipe.errors import ConfigError


class DataSchedule(pl.Callback):
    def for_epoch(self, datamodule, train: np.ndarray, epoch: int) -> np.ndarray:
        """Set what this epoch's loader needs on `datamodule`; return its training indices."""
        return train

    def changes_after(self, epoch: int) -> bool:
        """Does epoch + 1 need another loader than `epoch`?"""
        return False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._user_reload = trainer.reload_dataloaders_every_n_epochs
        if stage != "fit":
            return
        if not hasattr(trainer.datamodule, "epoch_schedules"):
            raise ConfigError(
                f"callbacks: {type(self).__name__} changes dlrecipe's DataModule between epochs; "
                "it needs the run's data to come from cfg.data"
            )
        trainer.datamodule.epoch_schedules.append(self)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        schedules = getattr(trainer.datamodule, "epoch_schedules", [])
        if stage == "fit" and self in schedules:
            schedules.remove(self)  # validation / test / predictions see every sample

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A resumed run restores its epoch after this; a loader built before is rebuilt then.
        self.reload_next_epoch(trainer)

    def reload_next_epoch(self, trainer: pl.Trainer) -> None:
        reload_train_loader_every(trainer, 1)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reload_train_loader_every(trainer, self._user_reload)  # this epoch's loader is built

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.changes_after(trainer.current_epoch):
            self.reload_next_epoch(trainer)
