"""Hydra sweeper plugin `dlrecipe_optuna`: Optuna 5 studies with pruning, failure tolerance and resume.

    python -m dlrecipe.train hparams_search=digits_lr_bs hydra.sweeper.n_trials=12

Hydra imports every module under hydra_plugins on every start, so this file stays light: the
config schema and a thin class; optuna and the sweep loop (dlrecipe.sweep.sweeper) load only
when a sweep actually runs. No `from __future__ import annotations` here: Hydra's plugin scan
executes the module before it is registered, which breaks postponed dataclass annotations.
"""

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class DlrecipeOptunaSweeperConf:
    _target_: str = "hydra_plugins.dlrecipe_sweeper.dlrecipe_sweeper.DlrecipeOptunaSweeper"
    study_name: str = "dlrecipe"
    # null: a journal file in the sweep directory; or sqlite:///x.db, postgresql://..., a .journal path
    storage: Optional[str] = None
    direction: Any = "minimize"  # or maximize, or a list for several objectives
    n_trials: int = 20  # a global budget: all workers on this study together
    n_jobs: int = 1  # trials launched per batch (parallel only with a parallel launcher)
    sampler: Any = None  # hydra/sweeper/sampler=tpe|random|gp|cmaes|grid (null: TPE)
    pruner: Any = (
        None  # hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|threshold|none
    )
    max_failure_rate: float = 0.5  # stop once failed trials exceed this share of n_trials
    params: Optional[dict] = None  # key -> sweep grammar: interval, tag(log, ...), choice, range
    fail_stale_running: bool = (
        True  # RUNNING trials of dead workers on this host are marked FAIL at start
    )


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="dlrecipe_optuna",
    node=DlrecipeOptunaSweeperConf,
    provider="dlrecipe",
)


class DlrecipeOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from dlrecipe.extras import require

        require("optuna", "a sweep (hparams_search / the dlrecipe_optuna sweeper)")
        from dlrecipe.sweep.sweeper import OptunaSweep

        self.sweep_impl = OptunaSweep(**settings)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.sweep_impl.setup(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list) -> Any:
        return self.sweep_impl.sweep(arguments)
