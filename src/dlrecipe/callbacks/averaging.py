"""Stochastic weight averaging on Lightning's WeightAveraging: checkpoints hold the average.

    python -m dlrecipe.train callbacks=swa
    python -m dlrecipe.train callbacks=swa callbacks.swa.start_epoch=0.5

Lightning's older `StochasticWeightAveraging` swaps the average in only when training ends,
after every checkpoint was written, so a run that tests its best checkpoint (as dlrecipe does)
would never see it. `WeightAveraging` (Lightning >= 2.6) validates and checkpoints the averaged
weights themselves; this subclass adds the SWA timing: an equal-weight mean of the weights at
the end of every epoch from `start_epoch` on. EMA needs no glue: conf/callbacks/ema.yaml uses
Lightning's EMAWeightAveraging directly.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import WeightAveraging

from dlrecipe.errors import ConfigError


class SWA(WeightAveraging):
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
