"""The sweep's run hook: inside an Optuna trial, W&B runs named after it and pruning.

    python -m dlrecipe.train -m hparams_search=wine_mlp_search

Outside a sweep (no optuna.trial_id) it does nothing.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlrecipe.failures import is_child_rank
from dlrecipe.summary import RunSummary
from dlrecipe.sweep.pruning import OptunaPruning, name_trial_runs, raise_pruned, trial_for


class SweepTrial:
    def __init__(self) -> None:
        self.pruning: OptunaPruning | None = None  # this fit's; a K-fold trial has one per fold

    def configure(self, cfg: DictConfig) -> DictConfig:
        return name_trial_runs(cfg)

    def callbacks(self, ctx: Any) -> list[OptunaPruning]:
        trial, cfg = trial_for(ctx.cfg), ctx.cfg
        if trial is None or OmegaConf.is_list(cfg.optimized_metric):
            self.pruning = None  # Optuna prunes single objectives only
            return []
        steps_before = ctx.datamodule.fold_index * int(cfg.trainer.max_epochs)  # K-fold: count on
        self.pruning = OptunaPruning(trial, cfg.optimized_metric, steps_before)
        return [self.pruning]

    def after_fit(self, ctx: Any) -> RunSummary | None:
        if self.pruning is None or self.pruning.pruned_at is None:
            return None
        if is_child_rank():  # rank 0 reports the pruning; other ranks just end
            return RunSummary(str(ctx.run_dir), ctx.model.info.task, ctx.model.main_metric)
        raise_pruned(self.pruning)
