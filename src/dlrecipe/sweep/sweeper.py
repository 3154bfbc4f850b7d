"""The sweep loop behind the `dlrecipe_optuna` Hydra sweeper: ask, launch, tell, repeat.

    python -m dlrecipe.train hparams_search=digits_lr_bs hydra.sweeper.n_trials=12
    scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs     # two workers, one study

The study lives in its storage, so re-running the same command resumes it, and several
sweeper processes on one storage share the work: `n_trials` is a budget of results (COMPLETE
or PRUNED, counting trials in flight), taken under a file lock so that workers never overshoot
it; queued (WAITING) trials, such as a killed trial's retry, run first in the places left. A
trial that raises is recorded as FAIL with its error and the sweep goes on, until failures
exceed `max_failure_rate` of the budget; a trial pruned inside the job (sweep/pruning.py) is
PRUNED; a trial whose worker was killed is failed and run again (sweep/liveness.py). A storage
password never reaches a file or the console (sweep/storage.py).
"""

from __future__ import annotations

import fcntl
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from dlrecipe.compat import hydra_job_error, optuna_stop_requested, optuna_study_loop
from dlrecipe.errors import ConfigError
from dlrecipe.sweep.identity import check_identity, fixed_identity, space_identity
from dlrecipe.sweep.liveness import Liveness, retried_numbers
from dlrecipe.sweep.report import write_sweep_report
from dlrecipe.sweep.space import build_space, override_value
from dlrecipe.sweep.storage import StorageSpec, hide_secret, jobs_see, make_storage, resolve_storage
from dlrecipe.tasks import direction as metric_direction
from dlrecipe.tasks import metric_names

log = logging.getLogger(__name__)
# The budget counts results and trials that may still give one (running). Not WAITING: a retry
# queued after a re-run asked a trial in the killed one's place would take the last place and
# never run. ask() pops WAITING trials first, under the lock: they run within the budget.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class SweepStopped(RuntimeError):
    """The sweep gave up (too many failed trials): not a config mistake, one line all the same."""


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
        connect_timeout: float = 5,
        heartbeat_interval: int | None = 30,
        grace_period: int | None = 120,
        max_retry: int | None = 2,
    ):
        _check_settings(n_trials, n_jobs, max_failure_rate, connect_timeout, heartbeat_interval, grace_period, max_retry)  # fmt: skip
        self.study_name, self.storage_value = study_name, storage
        self.directions = _directions(direction)
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler = _build(
            "sampler", sampler, optuna.samplers.BaseSampler, optuna.samplers.TPESampler
        )
        self.pruner = _build(
            "pruner", pruner, optuna.pruners.BasePruner, optuna.pruners.MedianPruner
        )
        self.max_failure_rate, self.params = max_failure_rate, params
        self.fail_stale_running, self.connect_timeout = fail_stale_running, connect_timeout
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.max_retry = max_retry
        self._waiting_since: float | None = None
        self._place = 1  # "trial 3/8": the last batch's place in the budget, not its number

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
        spec = resolve_storage(self.storage_value, sweep_dir / "study.journal")
        self.spec = spec
        hide_secret(self.config, spec)
        log.info("study %s in %s (from %s)", self.study_name, spec.shown, spec.source)
        storage = make_storage(spec, connect_timeout=self.connect_timeout, max_retry=self.max_retry,
                               heartbeat_interval=self.heartbeat_interval if self.fail_stale_running else None,
                               grace_period=self.grace_period)  # fmt: skip
        study = optuna.create_study(
            study_name=self.study_name, storage=storage, sampler=self.sampler,
            pruner=self.pruner, directions=self.directions, load_if_exists=True,
        )  # fmt: skip
        _check_same_directions(study, self.directions)
        lock = (Path(spec.url).expanduser().parent if spec.is_journal else sweep_dir) / ".ask.lock"
        with _lock(lock):  # two workers starting a new study record one identity
            check_identity(study, space_identity(space), fixed_identity(self.config, list(space)))
        live = Liveness(study, storage, spec, self.heartbeat_interval if self.fail_stale_running else None,
                        self.grace_period, self.max_retry)  # fmt: skip
        identity = [f"++optuna.study_name={override_value(self.study_name)}",
                    f"++optuna.storage={override_value(spec.shown)}"]  # fmt: skip
        returns: list[JobReturn] = []
        with jobs_see(spec):
            while True:
                batch = self._next_batch(study, space, live, lock)
                if batch is None:
                    break
                if not batch:  # budget taken; trials of other workers still running
                    time.sleep(min(live.interval or 1, 5))
                    continue
                ids = [live.trial_id(t.number) for t in batch]
                jobs = [
                    tuple([*fixed, *(f"{k}={override_value(v)}" for k, v in trial.params.items()), *identity,
                           f"++optuna.trial_number={trial.number}", f"++optuna.trial_id={trial_id}"])
                    for trial, trial_id in zip(batch, ids, strict=True)
                ]  # fmt: skip
                log.info(
                    "trials %s: %s", [t.number for t in batch], [dict(t.params) for t in batch]
                )
                trial_progress(self, self._place)  # "trial 3/8 - elapsed ..., ... left"
                with live.beating(ids):
                    results = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
                # Like Study.optimize: samplers may call study.stop() (a grid that is exhausted).
                with optuna_study_loop(study):
                    for trial, result in zip(batch, results, strict=True):
                        _tell(study, trial, result, spec)
                returns += results
                self._check_failures(study)
                if optuna_stop_requested(study):
                    log.info("the sampler stopped the study (every grid point was tried)")
                    break
        write_sweep_report(study, sweep_dir, fixed, spec.shown)
        if not returns and not optuna_stop_requested(study):  # say why nothing ran, last
            _say_budget_used(study, self.n_trials)
        return returns

    def _next_batch(
        self, study: optuna.Study, space: dict, live: Liveness, lock: Path
    ) -> list | None:
        """Trials to run now; [] to wait for other workers' running trials; None when done."""
        with _lock(lock):
            if self.fail_stale_running:
                live.fail_stale()
            trials = study.get_trials(deepcopy=False)
            taken = sum(t.state in COUNTED for t in trials)
            left = self.n_trials - taken
            if left > 0:
                self._waiting_since, self._place = None, taken + 1  # numbers count FAILs too
                with warnings.catch_warnings():  # we beat for the trials ourselves (liveness.py)
                    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed")
                    batch = [study.ask(space) for _ in range(min(self.n_jobs, left))]
                for trial in batch:
                    live.claim(trial)
                return batch
        # Budget used. A trial RUNNING elsewhere may belong to a dead worker: wait until it
        # would be stale (grace_period), so a re-run after a kill always completes the study.
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if not running or live.interval is None:
            return None
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
            log.info("all %d trials are taken; waiting up to %d s for trials %s of other workers "
                     "(a dead worker's trial is run again)", self.n_trials, live.grace + live.interval, running)  # fmt: skip
        return [] if now - self._waiting_since <= live.grace + live.interval else None

    def _check_failures(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        # A killed trial that runs again is no failure of the config.
        retried = retried_numbers(trials)
        failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried]
        if len(failed) > self.max_failure_rate * self.n_trials:
            last = " ".join(str(failed[-1].user_attrs.get("error", "unknown error")).split())
            raise SweepStopped(
                f"{len(failed)} of {self.n_trials} trials failed (more than hydra.sweeper.max_failure_rate="
                f"{self.max_failure_rate}); last error: {last[:500]}. Fix the cause, then re-run the same "
                "command to resume the study."
            )  # fmt: skip


def _say_budget_used(study: optuna.Study, n_trials: int) -> None:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    have, queued = sum(s in COUNTED for s in states), states.count(TrialState.WAITING)
    waiting = f"; {queued} queued trial(s) wait for a larger n_trials" if queued else ""
    log.info(f"study {study.study_name!r} already has {have} of hydra.sweeper.n_trials={n_trials} "
             f"trials (n_trials counts the whole study){waiting}; raise hydra.sweeper.n_trials to run more")  # fmt: skip


def _check_settings(n_trials: Any, n_jobs: Any, max_failure_rate: Any, connect_timeout: Any,
                    heartbeat_interval: Any, grace_period: Any, max_retry: Any) -> None:  # fmt: skip
    def whole(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not whole(n_trials, 1):
        raise ConfigError(f"hydra.sweeper.n_trials={n_trials} must be a whole number >= 1")
    if not whole(n_jobs, 1):
        raise ConfigError(f"hydra.sweeper.n_jobs={n_jobs} must be a whole number >= 1")
    if not 0.0 <= max_failure_rate <= 1.0:
        raise ConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1]")
    if not connect_timeout > 0:
        raise ConfigError(f"hydra.sweeper.connect_timeout={connect_timeout} must be > 0 seconds")
    if heartbeat_interval is not None and not whole(heartbeat_interval, 1):
        raise ConfigError(f"hydra.sweeper.heartbeat_interval={heartbeat_interval} must be whole seconds >= 1, or null (off)")  # fmt: skip
    if heartbeat_interval is not None and grace_period is not None and not (whole(grace_period, 1) and grace_period > heartbeat_interval):  # fmt: skip
        raise ConfigError(f"hydra.sweeper.grace_period={grace_period} must be whole seconds > heartbeat_interval={heartbeat_interval}")  # fmt: skip
    if max_retry is not None and not whole(max_retry, 0):
        raise ConfigError(f"hydra.sweeper.max_retry={max_retry} must be a whole number >= 0, or null (no limit)")  # fmt: skip


def _directions(direction: Any) -> list[str]:
    many = isinstance(direction, list | tuple) or OmegaConf.is_list(direction)
    directions = [str(d) for d in direction] if many else [str(direction)]
    bad = [d for d in directions if d not in ("minimize", "maximize")]
    if bad or not directions:
        raise ConfigError(
            f"hydra.sweeper.direction={direction} must be minimize or maximize (a list of them for several objectives)"
        )
    return directions


def _build(key: str, node: Any, kind: type, default: type) -> Any:
    """The sampler or pruner from its config, mistakes named by their key."""
    if node is None:
        return default()
    if isinstance(node, kind):
        return node
    from hydra.utils import instantiate

    from dlrecipe.builders import CONF_DIR

    presets = "|".join(
        sorted(p.stem for p in (CONF_DIR / "hydra" / "sweeper" / key).glob("*.yaml"))
    )
    target = node.get("_target_") if OmegaConf.is_dict(node) or isinstance(node, dict) else None
    if not target:
        raise ConfigError(
            f"hydra.sweeper.{key} needs a _target_; choose hydra/sweeper/{key}={presets}"
        )
    try:
        built = instantiate(node)
    except Exception as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):  # the target's own check already names the key
            raise cause from None
        if "Error locating target" in str(err) or isinstance(cause, ImportError | AttributeError):
            raise ConfigError(
                f"hydra.sweeper.{key}._target_={target} does not exist; choose hydra/sweeper/{key}={presets}"
            ) from None
        reason = " ".join(str(cause).split())[:300]
        raise ConfigError(
            f"hydra.sweeper.{key} ({target}) refused its settings: {reason}"
        ) from None
    if not isinstance(built, kind):
        raise ConfigError(f"hydra.sweeper.{key}._target_={target} is not an Optuna {kind.__name__}")
    return built


def _check_same_directions(study: optuna.Study, wanted: list[str]) -> None:
    """Optuna silently keeps an existing study's directions: optimizing backwards is refused."""
    have = [d.name.lower() for d in study.directions]
    if have != wanted:
        raise ConfigError(
            f"study {study.study_name!r} was created with direction={have}, not hydra.sweeper.direction={wanted}; "
            "pick a new hydra.sweeper.study_name (or the study's direction)"
        )


def check_objective(metric: Any, directions: list[str]) -> None:
    """Select on validation data only, in the direction the metric improves."""
    metrics = metric_names(metric) or [metric]  # [None]: refused below with the fix
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
        wants = "maximize" if metric_direction(name) == "max" else "minimize"
        if direction != wants:
            raise ConfigError(
                f"optimized_metric={name} improves when it goes {'up' if wants == 'maximize' else 'down'}: set hydra.sweeper.direction={wants}"
            )


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn, spec: StorageSpec) -> None:
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
    error = hydra_job_error(result)
    if isinstance(error, optuna.TrialPruned):
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        return
    message = spec.scrub(f"{type(error).__name__}: {error}")[:2000]
    trial.set_user_attr("error", message)
    log.warning("trial %d failed: %s", trial.number, message)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def trial_progress(sweeper: Any, number: int) -> None:
    """Says "trial n/N" with elapsed and estimated time left, before each batch of trials."""
    from dlrecipe.console import Countdown

    if getattr(sweeper, "trial_countdown", None) is None:
        sweeper.trial_countdown = Countdown("trial", sweeper.n_trials)
    sweeper.trial_countdown.start(number)
