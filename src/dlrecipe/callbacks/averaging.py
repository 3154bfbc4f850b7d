"""Weight averaging (SWA, EMA) on Lightning's WeightAveraging, tested on the averaged weights.

    python -m dlrecipe.train callbacks=swa
    python -m dlrecipe.train callbacks=ema callbacks.ema.decay=0.995

`WeightAveraging` (Lightning >= 2.6) validates and checkpoints the averaged weights; Lightning's
older `StochasticWeightAveraging` swaps the average in only when training ends, after every
checkpoint was written, so a run that tests its best checkpoint (as dlrecipe does) would never
see it. Two pieces of glue:

- SWA timing: an equal-weight mean of the weights at the end of every epoch from `start_epoch`
  on (`EMA` is Lightning's EMAWeightAveraging: a moving average after every step);
- after fit, a checkpoint's `state_dict` (the average) is the model. Lightning's callback would
  load the raw weights it also keeps there when `trainer.test(ckpt_path=...)` runs after fit,
  so the test, the predictions and the report would score the weights that were not averaged.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging

from dlrecipe.compat import end_weight_average, update_weight_average_at_epoch_end, weight_average
from dlrecipe.errors import ConfigError


class _EvaluateTheAverage(WeightAveraging):
    # Until the first update the average is the untrained weights: validating, checkpointing
    # or keeping those would let early stopping pick epoch 0 and test an untrained model.
    def _has_average(self) -> bool:
        average = weight_average(self)
        return average is not None and int(average.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._update_for_finished_epoch(trainer, pl_module)
        if self._has_average():
            super().on_validation_epoch_start(trainer, pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(self, "_swapped", False):
            super().on_validation_epoch_end(trainer, pl_module)
            self._swapped = False

    def _update_for_finished_epoch(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        # Lightning validates inside the training epoch, before on_train_epoch_end, where an
        # epoch-based update (SWA, EMA's update_starting_at_epoch) happens: validation would
        # score the average without this epoch's weights, and a checkpoint written at the
        # epoch's end would hold another average than the one validated. Do the update first;
        # the parent's on_train_epoch_end then skips it (dlrecipe.compat marks it done).
        loop = trainer.fit_loop.epoch_loop
        if (
            trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and loop.batch_progress.is_last_batch
        ):
            update_weight_average_at_epoch_end(self, pl_module, trainer.current_epoch)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:  # fmt: skip
        if self._has_average():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._has_average():
            super().on_train_end(trainer, pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # fit ended with the average copied into the model; nothing to swap now
            end_weight_average(self)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Resuming: restore both the average and the raw weights (when the average had begun).
        if trainer.state.fn == "fit" and "current_model_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class SWA(_EvaluateTheAverage):
    def __init__(
        self,
        start_epoch: int | float = 0.75,
        device: torch.device | str | None = None,
        use_buffers: bool = True,
    ):
        if isinstance(start_epoch, float) and not 0.0 <= start_epoch < 1.0:
            raise ConfigError(
                f"callbacks.swa.start_epoch={start_epoch}: a fraction of max_epochs in [0, 1) "
                "or a whole epoch number"
            )
        if start_epoch < 0:
            raise ConfigError(f"callbacks.swa.start_epoch={start_epoch} must be >= 0")
        super().__init__(device=device, use_buffers=use_buffers)  # default avg_fn: equal mean
        self.start_epoch = start_epoch
        self._first_epoch = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(self.start_epoch, float):
            epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
            self._first_epoch = int(self.start_epoch * epochs)
        else:
            self._first_epoch = int(self.start_epoch)
        super().setup(trainer, pl_module, stage)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self._first_epoch


class EMA(_EvaluateTheAverage, EMAWeightAveraging):
    """Lightning's EMAWeightAveraging (decay, update_every_n_steps, update_starting_at_*)."""
