"""W&B specifics of a run: the summary in the W&B run summary, and one W&B run per fit.

    python -m dlrecipe.train logger=wandb    # WANDB_MODE=offline works without an account

A run hook (`hooks:` in conf/train.yaml); without logger=wandb it does nothing.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from dlrecipe.summary import RunSummary


def _wandb_loggers(trainer: pl.Trainer) -> list[Any]:
    # by class name: importing WandbLogger would import wandb in runs that never use it
    return [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]


def summary_to_wandb(trainer: pl.Trainer, summary: RunSummary) -> None:
    """The run's summary (best epoch, test metrics, timings) in the W&B run summary."""
    for logger in _wandb_loggers(trainer):
        facts = {
            k: v
            for k, v in summary.to_dict().items()
            if isinstance(v, int | float | str) and v is not None
        }
        logger.experiment.summary.update({**facts, **summary.val_metrics, **summary.test_metrics})


def close_wandb(trainer: pl.Trainer) -> None:
    if _wandb_loggers(trainer):
        import wandb

        wandb.finish()


class WandbRun:
    """Run hook: the summary goes to W&B (before the report); each fold and trial its own run."""

    def on_summary(self, ctx: Any, summary: RunSummary) -> None:
        summary_to_wandb(ctx.trainer, summary)

    def teardown(self, ctx: Any) -> None:
        if ctx.trainer is not None:
            close_wandb(ctx.trainer)
