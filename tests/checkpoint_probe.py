"""A callback for the checkpoint tests: which training step last.ckpt holds, as training goes.

python -m dlrecipe.train +callbacks.probe._target_=tests.checkpoint_probe.LastCkptSteps +callbacks.probe.path=<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class LastCkptSteps(pl.Callback):
    """Reads last.ckpt's stored global_step before every batch and after every epoch; `seen`
    keeps each new value once, `at_epoch_end` the value once each epoch's saves are done (read
    when the next epoch starts or training ends: checkpoint callbacks run after all others). The
    newest instance is `LastCkptSteps.last`: Hydra builds it inside the run, the test reads it."""

    last: LastCkptSteps | None = None

    def __init__(self, path: str):
        self.path = Path(path)
        self.seen: list[int] = []
        self.at_epoch_end: list[int | None] = []
        self.batches_per_epoch = 0
        LastCkptSteps.last = self

    def _stored_step(self) -> int | None:
        if not self.path.is_file():
            return None
        step = torch.load(self.path, map_location="cpu", weights_only=True)["global_step"]
        if not self.seen or self.seen[-1] != step:
            self.seen.append(step)
        return step

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches_per_epoch = trainer.num_training_batches
        if trainer.current_epoch > 0:
            self.at_epoch_end.append(self._stored_step())

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._stored_step()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.at_epoch_end.append(self._stored_step())
