"""Refit on train + validation: the hold-out fit chose the epoch count, the final model uses all data.

    python -m dlrecipe.train refit=true                  # digits CNN; summary shows both tests

Once the hyperparameters and the number of epochs are chosen on the validation set, that set
has done its job; training the final model on train + validation gives it more data. The refit
is a fresh model (same seed, same config) trained for exactly the hold-out run's best epoch
count on the union, with normalization fitted on the union, and no validation. Its learning-rate
schedule is the hold-out run's (planned over trainer.max_epochs, stopped after the chosen epoch),
so each epoch sees the rate it saw then. It is tested on the same test set, saved as
checkpoints/refit.ckpt, and summary.json names it as `model_to_use`; `refit` holds its epochs,
training-set size and test metrics next to the hold-out model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from dlrecipe.builders import build_callbacks, build_model, instantiate
from dlrecipe.callbacks.history import History
from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.splits import Fold
from dlrecipe.errors import ConfigError
from dlrecipe.guards import DivergenceGuard
from dlrecipe.report.summary import RunSummary


def check_refit(cfg: DictConfig, n_folds: int) -> None:
    """refit=true settings that cannot work fail before any training."""
    if not cfg.get("refit"):
        return
    if n_folds > 1:
        raise ConfigError(
            "refit=true refits one hold-out fit; with a K-fold split use data/split=holdout "
            "(or predict with the fold ensemble: python -m dlrecipe.eval ckpt_path=<K-fold run dir>)"
        )
    target = str(cfg.model.get("scheduler", {}) and cfg.model.scheduler.get("_target_", ""))
    if target.endswith(".plateau"):
        raise ConfigError(
            "refit=true with model/scheduler=plateau: the refit has no validation set for the "
            "plateau schedule to watch; use model/scheduler=cosine (or step) with refit"
        )


class StopAfter(pl.Callback):
    """End the fit after `epochs` epochs, leaving trainer.max_epochs (and the schedule) as planned."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def merged_datamodule(datamodule: DataModule) -> DataModule:
    """The same data with train + validation as the training part, no validation, the same test."""
    fold = datamodule.fold
    merged = Fold(np.sort(np.concatenate([fold.train, fold.val])), fold.val[:0], fold.test,
                  name=f"{fold.name}_refit")  # fmt: skip
    return datamodule.with_fold(merged)  # unfitted normalization; the hold-out keeps its folds


def refit(cfg: DictConfig, datamodule: DataModule, summary: RunSummary) -> dict[str, Any] | None:
    """Train the refit model, test it, save checkpoints/refit.ckpt; the summary's `refit` entry."""
    epochs = summary.best_epoch
    if not epochs:
        summary.notes.append("refit=true: no best epoch was recorded, so nothing was refitted")
        return None
    run_dir = Path(summary.run_dir)
    pl.seed_everything(cfg.seed, workers=True)  # the same start as the hold-out model
    data = merged_datamodule(datamodule)
    model = build_model(cfg, data.info)
    callbacks = [c for c in build_callbacks(cfg, has_logger=False)
                 if not isinstance(c, ModelCheckpoint | EarlyStopping | History)]  # fmt: skip
    history = History("refit_history.csv")
    trainer = instantiate(
        cfg.trainer, callbacks=[*callbacks, history, StopAfter(epochs), DivergenceGuard()],
        logger=False, default_root_dir=str(run_dir), enable_checkpointing=False,
        limit_val_batches=0, num_sanity_val_steps=0, _convert_="all",
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    path = run_dir / "checkpoints" / "refit.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)  # weights, the train+val normalization, config and versions
    test = {}
    if len(data.fold.test):
        results = trainer.test(model, datamodule=data, verbose=False)
        test = {k: float(v) for k, v in results[0].items()} if results else {}
    summary.model_to_use = str(path)
    return {
        "epochs": trainer.current_epoch, "chosen_epochs": epochs, "n_train": len(data.fold.train),
        "train_steps": trainer.global_step, "test_metrics": test, "checkpoint": str(path),
    }  # fmt: skip
