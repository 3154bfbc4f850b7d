"""last.ckpt at every validation, and also every N training steps when asked.

    python -m dlrecipe.train callbacks.last_checkpoint.every_n_train_steps=500   # last.ckpt at step 500, 1000, ... and each epoch end

Lightning's ModelCheckpoint treats `every_n_train_steps` and its per-epoch save as mutually
exclusive: given N steps it stops saving at epoch ends, so a run shorter than N steps wrote no
last.ckpt and `resume=` had nothing to continue from. Here the per-epoch save stays Lightning's
and the step saves are added on top through the public `Trainer.save_checkpoint`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from dlrecipe.errors import ConfigError


class LastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that saves after every validation and, if `every_n_train_steps`, every N steps too."""

    def __init__(self, *args: Any, every_n_train_steps: int | None = None, **kwargs: Any) -> None:
        # No step trigger for Lightning: given one, it would switch the epoch saves off.
        super().__init__(*args, **kwargs)
        n = every_n_train_steps
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ConfigError(
                f"callbacks.last_checkpoint.every_n_train_steps={n!r}: use a step count >= 1, or null"
            )
        self.step_every = n or 0
        # With gradient accumulation several batches end on the same step: save it once.
        self.step_saved = -1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        step = trainer.global_step
        due = self.step_every >= 1 and step % self.step_every == 0 and step != self.step_saved
        if not due or trainer.fast_dev_run:
            return
        self.step_saved = step
        # Every rank calls save_checkpoint (it gathers sharded state); only rank 0 writes the file.
        trainer.save_checkpoint(self.format_checkpoint_name({}))
