"""What batch growth and curricula share: a training DataLoader rebuilt between two epochs.

    python -m dlrecipe.train callbacks=batch_growth model/scheduler=none

Lightning builds the training DataLoader once and rebuilds it only at the epochs that
`trainer.reload_dataloaders_every_n_epochs` names. A schedule raises that flag to 1 at the end
of an epoch whose successor needs a different loader, and puts the user's value back as soon
as the new loader is built, so the epochs in between reuse theirs (a rebuild also re-runs
every callback's on_train_start, which Lightning's Timer, for one, takes as a new start).
"""

from __future__ import annotations

import lightning.pytorch as pl

from dlrecipe.errors import ConfigError


class DataSchedule(pl.Callback):
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._user_reload = trainer.reload_dataloaders_every_n_epochs
        if stage == "fit" and not hasattr(trainer.datamodule, "epoch_train_indices"):
            raise ConfigError(
                f"callbacks: {type(self).__name__} changes dlrecipe's DataModule between epochs; "
                "it needs the run's data to come from cfg.data"
            )

    def reload_next_epoch(self, trainer: pl.Trainer) -> None:
        trainer.reload_dataloaders_every_n_epochs = 1

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.reload_dataloaders_every_n_epochs = (
            self._user_reload
        )  # this epoch's loader is built
