"""Checkpoint names that count epochs from 1, like the progress bar and the summary.

    python -m dlrecipe.train trainer.max_epochs=2   # checkpoints/best-epoch001.ckpt .. -epoch002

Lightning fills `{epoch}` in a checkpoint's file name with the 0-based `trainer.current_epoch`;
the summary says "best epoch 2 of 2" and the bar "Epoch 2/2". One numbering everywhere: 1-based.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class OneBasedModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `{epoch}` in `filename` is the 1-based epoch number."""

    def format_checkpoint_name(self, metrics: dict[str, Any], *args: Any, **kwargs: Any) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": int(metrics["epoch"]) + 1}
        return super().format_checkpoint_name(metrics, *args, **kwargs)
