"""Killed trials are retried: heartbeats while a trial runs, stale trials failed and queued again.

    python -m dlrecipe.train hparams_search=wine_mlp_search   # after a worker was killed: its trial runs again

A worker marks each of its RUNNING trials alive every `heartbeat_interval` seconds while the
trial runs. A RUNNING trial whose mark is older than `grace_period` belongs to a dead worker,
on any host: any worker marks it FAIL and queues a copy with the same parameters (up to
`max_retry` times), so the study still reaches n_trials results.
- SQLite / PostgreSQL: Optuna's own heartbeat (RDBStorage(heartbeat_interval, grace_period,
  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback)), timed by the server clock.
- Journal file: Optuna has no heartbeat there, so each trial has a lease file beside the
  journal (`<journal>.leases/<trial id>`) whose modification time the worker refreshes. Ages
  are measured against a file touched on the same filesystem, so the hosts' clocks need not agree.
- Either way, a trial whose worker process is gone from this very machine is stale at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from dlrecipe.sweep.storage import StorageSpec

log = logging.getLogger(__name__)
HOST = socket.gethostname()


def worker_name() -> str:
    return f"{HOST}:{os.getpid()}"


def _pid_space() -> str:
    """This machine's boot and pid namespace: a pid means the same process only within it."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


class Liveness:
    """Heartbeats for this worker's trials and the stale-trial check for one study."""

    def __init__(self, study: optuna.Study, storage: BaseStorage, spec: StorageSpec,
                 interval: int | None, grace: int | None, max_retry: int | None):  # fmt: skip
        self.study, self.storage = study, storage
        self.interval = interval or None  # None: no heartbeats; only dead local workers are found
        self.grace = grace or 2 * (interval or 0)
        self.max_retry = max_retry
        self.rdb = isinstance(storage, RDBStorage) and self.interval is not None
        self.leases: Path | None = None
        if spec.is_journal and self.interval is not None:
            journal = Path(spec.url).expanduser()
            self.leases = journal.with_name(journal.name + ".leases")
            self.leases.mkdir(parents=True, exist_ok=True)
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.pid_space = _pid_space()
        self._warned = False

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def claim(self, trial: optuna.Trial) -> None:
        """A trial this worker just took: whose it is, and its first heartbeat."""
        trial.set_user_attr("worker", worker_name())
        trial.set_user_attr("pid_space", self.pid_space)
        self.beat([self.trial_id(trial.number)])

    def beat(self, trial_ids: Iterable[int]) -> None:
        for trial_id in trial_ids:
            try:
                if self.rdb:
                    self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
                if self.leases is not None:
                    (self.leases / str(trial_id)).touch()
            except Exception as err:  # a hiccup of the database or filesystem: try next beat
                if not self._warned:
                    log.warning("could not record the heartbeat of trial id %s: %s", trial_id, err)
                    self._warned = True

    def release(self, trial_ids: Iterable[int]) -> None:
        if self.leases is not None:
            for trial_id in trial_ids:
                (self.leases / str(trial_id)).unlink(missing_ok=True)

    @contextmanager
    def beating(self, trial_ids: list[int]) -> Iterator[None]:
        """Heartbeats in a thread while the launcher runs these trials."""
        if self.interval is None:
            yield
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.interval):
                self.beat(trial_ids)

        thread = threading.Thread(target=run, name="dlrecipe-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.release(trial_ids)

    def running_elsewhere(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def fail_stale(self) -> list[int]:
        """Fail RUNNING trials whose worker is gone and queue their retries; their numbers."""
        running = self.running_elsewhere()
        if not running:
            return []
        now = self._fs_now()
        stale = []
        for trial in running:
            reason = self._stale_reason(trial, now)
            if reason and self._fail(trial, reason):
                stale.append(trial.number)
        if self.rdb:  # Optuna's check: heartbeats older than grace_period, by the server's clock
            before = {
                t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            after = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            stale += [t.number for t in after if t.number not in before]
        if stale:
            log.warning("trials %s were RUNNING with no live worker: marked FAIL and queued again "
                        "with the same parameters (hydra.sweeper.max_retry=%s)", stale, self.max_retry)  # fmt: skip
        return stale

    def _stale_reason(self, trial: FrozenTrial, now: float | None) -> str | None:
        worker = str(trial.user_attrs.get("worker", ""))
        host, _, pid = worker.rpartition(":")
        same_space = trial.user_attrs.get("pid_space", self.pid_space) == self.pid_space
        if host == HOST and same_space and pid.isdigit() and not _alive(int(pid)):
            return f"its worker {worker} died while the trial ran"
        if self.leases is None or now is None:
            return None
        try:
            age = now - (self.leases / str(self.trial_id(trial.number))).stat().st_mtime
        except FileNotFoundError:  # killed between ask and its first heartbeat
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            age = time.time() - started
        if age > self.grace:
            return (
                f"no heartbeat from its worker {worker} for {age:.0f} s (grace_period={self.grace})"
            )
        return None

    def _fail(self, trial: FrozenTrial, reason: str) -> bool:
        trial_id = self.trial_id(trial.number)
        try:
            self.storage.set_trial_user_attr(trial_id, "error", reason)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            return False
        self.release([trial_id])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            Retry(max_retry=self.max_retry)(self.study, trial)  # the same params, WAITING
        return True

    def _fs_now(self) -> float | None:
        """'Now' by the clock of the filesystem that holds the leases."""
        if self.leases is None:
            return None
        probe = self.leases / f".now-{HOST}-{os.getpid()}"
        probe.touch()
        try:
            return probe.stat().st_mtime
        finally:
            probe.unlink(missing_ok=True)


def retried_numbers(trials: Iterable[FrozenTrial]) -> dict[int, int]:
    """{stale trial number: the number of the trial that retried it}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {n: t.number for t in trials for n in Retry.retry_history(t)[-1:]}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
