"""The sweep loop behind the `dlrecipe_optuna` Hydra sweeper: ask, launch, tell, repeat.

    python -m dlrecipe.train hparams_search=digits_lr_bs hydra.sweeper.n_trials=12
    scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs     # two workers, one study

The study lives in its storage, so re-running the same command resumes it, and several
sweeper processes on one storage share the work: `n_trials` is a budget for the whole study,
taken under a file lock in the sweep directory so that workers never overshoot it. A trial
that raises is recorded as FAIL with its error and the sweep goes on, until failures exceed
`max_failure_rate` of the budget; a trial pruned inside the job (sweep/pruning.py) is PRUNED.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from dlrecipe.errors import ConfigError
from dlrecipe.sweep.report import write_sweep_report
from dlrecipe.sweep.space import build_space, override_value
from dlrecipe.sweep.storage import make_storage

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class OptunaSweep:
    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: str | Sequence[str],
        n_trials: int,
        n_jobs: int,
        sampler: Any,
        pruner: Any,
        max_failure_rate: float,
        params: dict[str, Any] | None,
        fail_stale_running: bool = True,
    ):
        if n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={n_trials} must be >= 1")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1]"
            )
        self.study_name, self.storage_url = study_name, storage
        self.directions = [direction] if isinstance(direction, str) else list(direction)
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.sampler = sampler or optuna.samplers.TPESampler()
        self.pruner = pruner or optuna.pruners.MedianPruner()
        self.max_failure_rate, self.params = max_failure_rate, params
        self.fail_stale_running = fail_stale_running

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        check_objective(self.config.get("optimized_metric"), self.directions)
        space, fixed = build_space(self.params, arguments, self.config)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage_url or str(sweep_dir / "study.journal")
        study = optuna.create_study(
            study_name=self.study_name, storage=make_storage(url), sampler=self.sampler,
            pruner=self.pruner, directions=self.directions, load_if_exists=True,
        )  # fmt: skip
        if self.fail_stale_running:
            fail_stale_trials(study)
        identity = [
            f"optuna.study_name={override_value(self.study_name)}",
            f"optuna.storage={override_value(url)}",
        ]
        returns: list[JobReturn] = []
        while True:
            with _lock(sweep_dir / ".ask.lock"):
                left = self.n_trials - len(study.get_trials(deepcopy=False))
                if left <= 0:
                    break
                batch = [study.ask(space) for _ in range(min(self.n_jobs, left))]
                for trial in batch:
                    trial.set_user_attr("worker", WORKER)
            jobs = [
                tuple([*fixed, *(f"{k}={override_value(v)}" for k, v in trial.params.items()), *identity,
                       f"optuna.trial_number={trial.number}", f"optuna.trial_id={trial._trial_id}"])
                for trial in batch
            ]  # fmt: skip
            log.info("trials %s: %s", [t.number for t in batch], [dict(t.params) for t in batch])
            results = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            # Like Study.optimize: samplers may call study.stop() (a grid that is exhausted).
            study._thread_local.in_optimize_loop = True
            try:
                for trial, result in zip(batch, results, strict=True):
                    _tell(study, trial, result)
            finally:
                study._thread_local.in_optimize_loop = False
            returns += results
            self._check_failures(study)
            if study._stop_flag:
                log.info("the sampler stopped the study (every grid point was tried)")
                break
        write_sweep_report(study, sweep_dir, fixed, url)
        return returns

    def _check_failures(self, study: optuna.Study) -> None:
        failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
        if len(failed) > self.max_failure_rate * self.n_trials:
            last = failed[-1].user_attrs.get("error", "unknown error")
            raise RuntimeError(
                f"{len(failed)} of {self.n_trials} trials failed (more than max_failure_rate="
                f"{self.max_failure_rate}); last error: {last}. Fix the cause, then re-run the same "
                "command to resume the study."
            )


HIGHER_IS_BETTER = ("acc", "auroc", "f1", "precision", "recall", "r2")


def check_objective(metric: Any, directions: list[str]) -> None:
    """Select on validation data only, in the direction the metric improves."""
    metrics = metric if isinstance(metric, list | tuple) or OmegaConf.is_list(metric) else [metric]
    if len(metrics) != len(directions):
        raise ConfigError(
            f"optimized_metric has {len(metrics)} value(s) but hydra.sweeper.direction has {len(directions)}"
        )
    for name, direction in zip(metrics, directions, strict=True):
        if not name:
            raise ConfigError("a sweep needs optimized_metric (e.g. val/loss)")
        if str(name).startswith("test/"):
            raise ConfigError(
                f"optimized_metric={name}: choosing hyperparameters on the test set leaks it into "
                "the model; optimize a val/ metric and report test/ once at the end"
            )
        wants = "maximize" if str(name).rsplit("/", 1)[-1] in HIGHER_IS_BETTER else "minimize"
        if direction != wants:
            raise ConfigError(
                f"optimized_metric={name} improves when it goes {'up' if wants == 'maximize' else 'down'}: set hydra.sweeper.direction={wants}"
            )


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
    if result.status == JobStatus.COMPLETED:
        values = result.return_value
        values = list(values) if isinstance(values, list | tuple) else [values]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            trial.set_user_attr(
                "error", f"the job returned {values}: set optimized_metric to a logged metric"
            )
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return
        study.tell(
            trial,
            [float(v) for v in values] if len(values) > 1 else float(values[0]),
            skip_if_finished=True,
        )
        return
    error = result._return_value
    if isinstance(error, optuna.TrialPruned):
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        return
    trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:2000])
    log.warning("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """RUNNING trials whose worker process on this host is gone can never finish: mark them FAIL."""
    host = socket.gethostname()
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_user_attr(
                trial._trial_id, "error", f"worker {worker} died while the trial ran"
            )
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            stale.append(trial.number)
    if stale:
        log.warning("marked stale RUNNING trials %s as FAIL (their worker died)", stale)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
