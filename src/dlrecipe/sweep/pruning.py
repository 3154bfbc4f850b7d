"""In-job pruning: report the optimized metric to the trial every epoch, stop hopeless trials.

    python -m dlrecipe.train hparams_search=digits_lr_bs     # the sweeper passes optuna.* overrides

The sweeper and the job are separate (even separate processes), so the job rebuilds its trial
from the storage and the sweeper's pruner config. Rank 0 decides and broadcasts the decision,
so a DDP trial stops on every rank; after fit, the job raises optuna.TrialPruned and the
sweeper records PRUNED. Under K-fold the step counts on across folds (fold i, epoch e ->
i * max_epochs + e), so trials are compared at the same point of their cross-validation.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig


class OptunaPruning(pl.Callback):
    def __init__(self, trial: Any, monitor: str, step_offset: int = 0):
        self.trial, self.monitor, self.step_offset = trial, monitor, step_offset
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        stop = False
        if trainer.is_global_zero:
            step = self.step_offset + trainer.current_epoch
            self.trial.report(float(trainer.callback_metrics[self.monitor]), step)
            stop = self.trial.should_prune()
        if trainer.strategy.broadcast(stop):
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True


def trial_for(cfg: DictConfig) -> Any | None:
    """The Optuna trial this job runs for, or None outside a sweep."""
    settings = cfg.get("optuna")
    if not settings or settings.get("trial_id") is None:
        return None
    import optuna
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from dlrecipe.sweep.storage import load_study

    pruner, timeout = None, 5.0
    if HydraConfig.initialized():
        sweeper = HydraConfig.get().sweeper
        pruner = instantiate(sweeper.pruner) if sweeper.get("pruner") else None
        timeout = float(sweeper.get("connect_timeout") or timeout)
    # optuna.storage is the URL as shown (password hidden); load_study finds the real one.
    study = load_study(settings.study_name, settings.storage, pruner, connect_timeout=timeout)
    return optuna.trial.Trial(study, int(settings.trial_id))


def raise_pruned(callback: OptunaPruning) -> None:
    import optuna

    raise optuna.TrialPruned(f"pruned after epoch {callback.pruned_at + 1}")


def name_trial_runs(cfg: DictConfig) -> DictConfig:
    """In a sweep, W&B runs are grouped by study and named after their trial."""
    settings = cfg.get("optuna")
    wandb = (cfg.get("logger") or {}).get("wandb")
    if not settings or settings.get("trial_number") is None or not wandb:
        return cfg
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.logger.wandb.group = settings.study_name
        cfg.logger.wandb.name = f"trial_{settings.trial_number}"
    return cfg
