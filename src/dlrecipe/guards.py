"""Runs whose result would be garbage: refused before training, or stopped when the loss diverges.

    python -m dlrecipe.train data=csv data.source.path=t.csv data.source.target=y model=mlp model.optimizer.lr=1e30   # exit 3

`trainer.max_epochs=0` (or a negative / fractional count) would report an untrained model's
metrics as the result: refused as a ConfigError (exit 2). A training loss that becomes NaN or
inf makes every later weight NaN; Lightning would go on and save a "best" checkpoint and NaN
metrics with exit 0. `DivergenceGuard` stops the fit instead; train.py writes a summary.json
with `status: diverged` and the diagnosis (no metrics, no best checkpoint) and the command
exits with DIVERGED_EXIT = 3 (2 is kept for config mistakes, 1 for crashes).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from dlrecipe.errors import ConfigError
from dlrecipe.report.summary import RunSummary
from dlrecipe.tasks import task_named, task_names

T = TypeVar("T")
DIVERGED_EXIT = 3  # non-zero for scripts and schedulers, and distinct from exit 2 (bad config)


class Diverged(RuntimeError):
    """The loss became NaN / inf; the message names the likely causes and the overrides to try."""


def check_training_length(cfg: DictConfig) -> None:
    """trainer.max_epochs / max_steps that train nothing (or cannot be counted) are refused."""
    trainer = cfg.trainer
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)):
        raise ConfigError(
            f"trainer.max_epochs={epochs!r} must be a whole number of epochs, e.g. trainer.max_epochs=10"
        )
    if isinstance(epochs, int) and (epochs == 0 or epochs < -1):
        raise ConfigError(
            f"trainer.max_epochs={epochs} trains nothing, so the untrained model's metrics would be "
            "reported as the result; use trainer.max_epochs=1 or more"
        )
    if epochs == -1 and not (isinstance(steps, int) and steps > 0):
        raise ConfigError(
            "trainer.max_epochs=-1 trains for ever unless +trainer.max_steps=N (N > 0) ends it; "
            "set both, or trainer.max_epochs=<epochs>"
        )
    if steps is not None and (not isinstance(steps, int) or steps == 0 or steps < -1):
        raise ConfigError(
            f"trainer.max_steps={steps!r} trains nothing; use a positive number of steps, or -1 "
            "for no step limit (trainer.max_epochs ends the run)"
        )


def diagnosis(what: str, value: float, epoch: int, step: int, lr: float | None, task: str) -> str:
    """One line: what went non-finite, where, the likely causes and the overrides to try."""
    # A tenth of the rate; from an absurd rate (above 0.1) straight to a usual one.
    lower = (lr / 10 if lr <= 0.1 else 1e-3) if lr else None
    lower_lr = f"model.optimizer.lr={lower:g}" if lower else "model.optimizer.lr=<10x lower>"
    causes = "a learning rate too high, extreme or unscaled inputs (data/normalization=standardize)"
    if task in task_names() and task_named(task).scales_targets:  # a value target, on its own scale
        causes += ", unscaled regression targets (rescale the target column to about 0..1 or use model.loss=huber)"
    return (
        f"training diverged: {what} became {value} at epoch {epoch} (step {step}). Likely causes: "
        f"{causes}. Try {lower_lr} and/or trainer.gradient_clip_val=1.0. "
        "summary.json says status: diverged; no metrics or checkpoint of this run are a result"
    )


class DivergenceGuard(pl.Callback):
    """Raises Diverged when the training loss (or, after an epoch, val/loss) is NaN or inf.

    The loss is checked every `every_n_steps` steps and at each epoch's last batch (before
    validation and last.ckpt), not at every step: reading a GPU value forces a synchronization.
    A NaN loss makes every weight NaN, so it stays NaN until the next check.
    """

    def __init__(self, every_n_steps: int = 25):
        self.every_n_steps = every_n_steps

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        last = batch_idx + 1 >= trainer.num_training_batches
        if not last and (batch_idx + 1) % self.every_n_steps:
            return
        # LitModel sums the epoch's losses on the device: a NaN at any step since the epoch began
        # is in the sum. Other modules: the step's own loss.
        loss = getattr(pl_module, "epoch_loss_sum", None)
        if loss is None:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(bad, all=False):  # any rank: all stop together
            value = float(loss.detach().sum()) if bad else math.nan  # another rank's NaN
            raise Diverged(self._message(trainer, pl_module, "the training loss", value))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val/loss")
        if value is not None and not math.isfinite(float(value)):
            raise Diverged(self._message(trainer, pl_module, "val/loss", float(value)))

    @staticmethod
    def _message(
        trainer: pl.Trainer, pl_module: pl.LightningModule, what: str, value: float
    ) -> str:
        lr = None
        if trainer.optimizers and trainer.optimizers[0].param_groups:
            group = trainer.optimizers[0].param_groups[0]
            lr = group.get("initial_lr") or group.get("lr")  # initial: before the schedule moved it
        task = getattr(getattr(pl_module, "info", None), "task", "")
        # 1-based, like the progress bar, the summary and the checkpoint names
        return diagnosis(what, value, trainer.current_epoch + 1, trainer.global_step, lr, task)


def write_diverged_summary(
    trainer: pl.Trainer, model: Any, run_dir: Path, message: str, fit_seconds: float,
    fold: str | None = None,
) -> RunSummary:  # fmt: skip
    """summary.json of a diverged fit: the diagnosis, how far it got, and no result at all."""
    total, trainable = model.parameter_counts()
    summary = RunSummary(
        run_dir=str(run_dir), task=model.info.task, main_metric=model.main_metric,
        status="diverged", diagnosis=message, epochs_run=trainer.current_epoch, fold=fold,
        params_total=total, params_trainable=trainable, fit_seconds=fit_seconds,
        train_steps=trainer.global_step, info=model.info.to_dict(),
        notes=list(getattr(getattr(trainer.datamodule, "data", None), "notes", [])),
    )  # fmt: skip
    if trainer.is_global_zero:
        summary.write(run_dir / "summary.json")
    return summary


def exit_on_divergence(task: Callable[[Any], T]) -> Callable[[Any], T]:
    """Show Diverged as one line and exit DIVERGED_EXIT; in a multirun, re-raise (failed trial)."""

    @functools.wraps(task)
    def run(cfg: Any) -> T:
        try:
            return task(cfg)
        except Diverged as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True, soft_wrap=True).print(
                f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False
            )
            raise SystemExit(DIVERGED_EXIT) from None

    return run
