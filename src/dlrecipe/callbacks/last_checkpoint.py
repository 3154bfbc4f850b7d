"""last.ckpt at every validation, and also every N training steps when asked.

    python -m dlrecipe.train callbacks.last_checkpoint.every_n_train_steps=500   # last.ckpt at step 500, 1000, ... and each epoch end

Lightning's ModelCheckpoint treats `every_n_train_steps` and its per-epoch save as mutually
exclusive: given N steps it stops saving at epoch ends, so a run shorter than N steps wrote no
last.ckpt and `resume=` had nothing to continue from. Here the per-epoch save stays Lightning's
and the step saves are added on top through the public `Trainer.save_checkpoint`.

Written once when the best checkpoint was written at the same moment: the best ModelCheckpoint
saves first (Lightning runs checkpoint callbacks last, in their order), and nothing can change
between its write and this one, so last.ckpt becomes a hard link to that file instead of a
second pickling of the same state (a tiny model's write is ~5 ms, a visible share of its
epoch). A hard link, not Lightning's `save_last="link"` symlink: save_top_k=1 deletes the older
best file, and the link keeps the data; every later write replaces last.ckpt by a rename, so
the best file is never changed through it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dlrecipe.callbacks.state_key import FixedStateKey
from dlrecipe.errors import ConfigError


class LastCheckpoint(FixedStateKey, ModelCheckpoint):
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
        # Lightning's per-batch check does something only with a time trigger: skip it otherwise.
        self.timed = kwargs.get("train_time_interval") is not None
        # Linking assumes the best callback decides where to save (epoch end or validation end)
        # as this one does: both with Lightning's default choice.
        self.default_moment = kwargs.get("save_on_train_epoch_end") is None
        self.dumped = False  # a full checkpoint was made since this callback's last hook
        self.scores: dict[int, Any] = {}  # each monitoring callback's current_score seen then

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.dumped = True  # called while any full checkpoint is assembled, whoever writes it

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self.timed:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        step = trainer.global_step
        due = self.step_every >= 1 and step % self.step_every == 0 and step != self.step_saved
        if due and not trainer.fast_dev_run:
            self.step_saved = step
            # Every rank calls save_checkpoint (it gathers sharded state); rank 0 writes the file.
            # weights_only=False: the full state, which is what resume= needs.
            trainer.save_checkpoint(self.format_checkpoint_name({}), weights_only=False)
        if self.dumped:  # a step save (ours or the best's): not something to link to later
            self.forget_saves(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.link_fresh_best(trainer):
            super().on_validation_end(trainer, pl_module)
        self.forget_saves(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.link_fresh_best(trainer):
            super().on_train_epoch_end(trainer, pl_module)
        self.forget_saves(trainer)

    def forget_saves(self, trainer: pl.Trainer) -> None:
        """From here on, only checkpoints made after this moment count as fresh."""
        self.dumped = False
        self.scores = {
            id(c): c.current_score for c in trainer.checkpoint_callbacks if c is not self
        }

    def fresh_best(self, trainer: pl.Trainer) -> str | None:
        """The file a monitoring ModelCheckpoint wrote in this same hook, with this one's settings."""
        if not self.dumped or not self.default_moment or trainer.fast_dev_run:
            return None
        if self.every_n_epochs < 1 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return None  # this callback would not save now
        # Another CheckpointIO (asynchronous, remote, ...) may not have the file in place yet.
        if type(trainer.strategy.checkpoint_io) is not TorchCheckpointIO:
            return None
        for best in trainer.checkpoint_callbacks:
            if best is self or not isinstance(best, ModelCheckpoint) or best.monitor is None:
                continue
            score = best.current_score
            if score is None or score is self.scores.get(id(best)):
                continue  # nothing written by it since this callback last looked
            if best.save_weights_only != self.save_weights_only:
                continue
            if getattr(best, "default_moment", False) is not True:
                continue  # it may save at another moment than this callback
            # current_score is set just before the write, and is the written file's value
            return next((p for p, v in best.best_k_models.items() if v is score), None)
        return None

    def link_fresh_best(self, trainer: pl.Trainer) -> bool:
        """last.ckpt as a hard link to the best file written a moment ago; False: save it instead."""
        source = self.fresh_best(trainer)
        if source is None:
            return False
        target = self.format_checkpoint_name({})
        if "://" in source + target or self.best_model_path not in ("", target):
            return False  # remote storage, or a file name that changes: Lightning's own save
        # rank 0's view, so that every rank takes the same branch (a save is collective)
        if not trainer.strategy.broadcast(os.path.isfile(source)):
            return False
        if trainer.is_global_zero:
            link_or_copy(source, target)
        trainer.strategy.barrier("LastCheckpoint.link")
        self.best_model_path = target  # what Lightning's save sets (it is part of later states)
        if trainer.is_global_zero:
            for logger in trainer.loggers:  # as after Lightning's own write
                logger.after_save_checkpoint(proxy(self))
        return True


def link_or_copy(source: str, target: str) -> None:
    """Atomically make `target` the same file as `source`: a hard link, or a copy where the
    file system has none; a half-made target never replaces the old one."""
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
