"""Checkpoint names that count epochs from 1, like the progress bar and the summary.

    python -m dlrecipe.train trainer.max_epochs=2   # checkpoints/best-epoch001.ckpt .. -epoch002

Lightning fills `{epoch}` in a checkpoint's file name with the 0-based `trainer.current_epoch`;
the summary says "best epoch 2 of 2" and the bar "Epoch 2/2". One numbering everywhere: 1-based.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from dlrecipe.callbacks.state_key import FixedStateKey


class OneBasedModelCheckpoint(FixedStateKey, ModelCheckpoint):
    """ModelCheckpoint whose `{epoch}` in `filename` is the 1-based epoch number.

    Defaults that conf/callbacks/model_checkpoint.yaml no longer repeats: `filename`
    best-epoch{epoch:03d} (best-epoch014 is the summary's "best epoch 14"; the metric name has a
    "/", so it stays out of the file name) with `auto_insert_metric_name` off; Lightning's own
    save_top_k=1 (keep the best: test and eval use it) and no save_last (last.ckpt is
    callbacks.last_checkpoint's: Lightning's save_last lags at the best).
    """

    def __init__(
        self,
        filename: str = "best-epoch{epoch:03d}",
        auto_insert_metric_name: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filename=filename, auto_insert_metric_name=auto_insert_metric_name, **kwargs
        )
        # Lightning's per-batch check acts only on a step or time trigger: without one it would
        # cost every step for nothing.
        self.per_step = bool(kwargs.get("every_n_train_steps")) or (
            kwargs.get("train_time_interval") is not None
        )
        # Saves at Lightning's default moment (epoch or validation end): LastCheckpoint may then
        # link last.ckpt to the file written instead of writing the same state again.
        self.default_moment = kwargs.get("save_on_train_epoch_end") is None

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        if self.per_step:
            super().on_train_batch_end(*args, **kwargs)

    def format_checkpoint_name(self, metrics: dict[str, Any], *args: Any, **kwargs: Any) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": int(metrics["epoch"]) + 1}
        return super().format_checkpoint_name(metrics, *args, **kwargs)
