"""Hydra sweeper plugin `dlrecipe_optuna`: Optuna 5 studies with pruning, failure tolerance and resume.

    python -m dlrecipe.train hparams_search=digits_lr_bs hydra.sweeper.n_trials=12

Hydra imports every module under hydra_plugins on every start, so this file stays light: the
config schema and a thin class; optuna and the sweep loop (dlrecipe.sweep.sweeper) load only
when a sweep actually runs. No `from __future__ import annotations` here: Hydra's plugin scan
executes the module before it is registered, which breaks postponed dataclass annotations.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class DlrecipeOptunaSweeperConf:
    _target_: str = "hydra_plugins.dlrecipe_sweeper.dlrecipe_sweeper.DlrecipeOptunaSweeper"
    # false: the sweeper builds sampler and pruner itself, so a mistake there is one clear line
    _recursive_: bool = False
    study_name: str = "dlrecipe"
    # null: $DLRECIPE_STORAGE if set, else a journal file in the sweep directory; or a .journal
    # path, sqlite:///x.db, postgresql+psycopg://user@host/db, or file:<path> of a file holding
    # the URL (a password is shown and saved as ***: pass it by file or $DLRECIPE_STORAGE)
    storage: Optional[str] = None
    direction: Any = "minimize"  # or maximize, or a list for several objectives
    n_trials: int = 20  # a global budget of results (complete or pruned), all workers together
    n_jobs: int = 1  # trials launched per batch (parallel only with a parallel launcher)
    sampler: Any = None  # hydra/sweeper/sampler=tpe|random|gp|cmaes|grid (null: TPE)
    pruner: Any = (
        None  # hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|threshold|none
    )
    max_failure_rate: float = 0.5  # stop once failed trials exceed this share of n_trials
    params: Optional[dict] = None  # key -> sweep grammar: interval, tag(log, ...), choice, range
    fail_stale_running: bool = True  # find trials of dead workers (any host) and run them again
    # seconds to reach a database server: a dead or silent one fails in seconds, never hangs
    connect_timeout: float = 5.0
    # seconds between "still running" marks of each trial (Optuna's RDB heartbeat, or a lease
    # file beside a journal); null: off, only dead workers on this machine are found
    heartbeat_interval: Optional[int] = 30
    grace_period: Optional[int] = 120  # unmarked this long: its worker is dead; failed, retried
    max_retry: Optional[int] = 2  # how often one killed trial runs again (null: no limit)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="dlrecipe_optuna",
    node=DlrecipeOptunaSweeperConf,
    provider="dlrecipe",
)


class DlrecipeOptunaSweeper(Sweeper):
    """The Hydra face of dlrecipe.sweep.sweeper.OptunaSweep; a mistake ends as one line, exit 2."""

    def __init__(self, **settings: Any) -> None:
        from dlrecipe.extras import require

        # before _one_line, which imports the sweep module (and so optuna) to catch its errors
        require("optuna", "a sweep (hparams_search / the dlrecipe_optuna sweeper)")

        def build() -> Any:
            from dlrecipe.sweep.sweeper import OptunaSweep

            return OptunaSweep(**settings)

        self.sweep_impl = _one_line(build)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        _one_line(
            lambda: self.sweep_impl.setup(
                hydra_context=hydra_context, task_function=task_function, config=config
            )
        )

    def sweep(self, arguments: list) -> Any:
        return _one_line(lambda: self.sweep_impl.sweep(arguments), self.sweep_impl)


def _one_line(step: Callable[[], Any], impl: Any = None) -> Any:
    """Hydra prints a sweeper's errors after a long traceback, exit 1: translate at this edge.

    A config mistake (ConfigError) exits 2 and a sweep that gave up exits 1, each with one line
    on stderr (the storage password hidden); anything else is a bug and keeps its traceback.
    """
    from dlrecipe.errors import ConfigError
    from dlrecipe.sweep.sweeper import SweepStopped

    try:
        return step()
    except (ConfigError, SweepStopped) as err:
        message = " ".join(str(err).split())
        spec = getattr(impl, "spec", None)
        if spec is not None:
            message = spec.scrub(message)
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None
