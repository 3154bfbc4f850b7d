"""Optuna sweeps through the real `main()`: discovery, pruning, failures, resume, stale trials,
storages, W&B. In this process (tests.conftest.run_main) unless the process is the point:
several sweep workers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dlrecipe.sweep.storage import make_storage
from dlrecipe.train import main
from tests.conftest import run_main

pytest_plugins = ["tests.postgres"]
pytestmark = pytest.mark.slow

# Small trials: the wine MLP, two short epochs.
FAST = ["hparams_search=wine_mlp_search", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null"]  # fmt: skip


@pytest.fixture
def sweep(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> Callable[..., subprocess.CompletedProcess]:
    """The same command's main() in this process (tests.conftest.run_main): its exit code and
    console, as a finished process would give them, without a second import of torch."""

    def run(*overrides: str) -> subprocess.CompletedProcess:
        args = ["dlrecipe-train", *FAST, f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]
        capfd.readouterr()
        code = run_main(main, args, cwd=tmp_path)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def study_of(tmp_path: Path, name: str = "wine_mlp_search", url: str | None = None) -> optuna.Study:
    storage = make_storage(url or str(tmp_path / "sweep" / "study.journal"))
    return optuna.load_study(study_name=name, storage=storage)


def test_plugin_is_discovered():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    assert "DlrecipeOptunaSweeper" in [p.__name__ for p in Plugins.instance().discover(Sweeper)]


def test_sweep_writes_summary_and_resume_adds_exactly_the_missing_trials(sweep, tmp_path):
    result = sweep("hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "sweep"
    for name in (
        "trials.csv",
        "sweep_summary.json",
        "best_overrides.yaml",
        "optimization_history.png",
        "slice.png",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]
    result = sweep("hydra.sweeper.n_trials=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(study_of(tmp_path).trials) == 5  # resumed: 2 more, not 5 more
    best = (out / "best_overrides.yaml").read_text()
    assert "model.optimizer.lr=" in best and "hydra.mode=RUN" in best


def test_pruned_trials_are_recorded_as_pruned_and_stop_early(sweep, tmp_path):
    # A threshold no loss reaches prunes every trial right after its warm-up epoch.
    result = sweep("hydra.sweeper.n_trials=2", "trainer.max_epochs=4", "hydra/sweeper/pruner=threshold",
                   "hydra.sweeper.pruner.upper=1.0e-9")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        history = (
            (tmp_path / "sweep" / f"trial_{t.number}" / "history.csv")
            .read_text()
            .strip()
            .splitlines()
        )
        assert len(history) - 1 == 2  # stopped after epoch 2 of 4


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(sweep, tmp_path):
    # Grid over two learning rates, the other searched keys pinned: one trial must fail.
    result = sweep("hydra.sweeper.n_trials=2", "hydra/sweeper/sampler=grid", "hydra.sweeper.max_failure_rate=1.0",
                   "model.optimizer.lr=choice(-1.0,0.01)", "model.optimizer.weight_decay=0.01",
                   "model.net.dropout=0.1", "model.net.hidden=[32]")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(tmp_path).trials
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "FAIL"]
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert "model.optimizer.lr=-1.0 must be a positive number" in failed.user_attrs["error"]


def test_too_many_failures_stop_the_sweep(sweep, tmp_path):
    result = sweep("hydra.sweeper.n_trials=6", "hydra.sweeper.max_failure_rate=0.2",
                   "model.optimizer.lr=choice(-1.0,-2.0)")  # fmt: skip
    assert result.returncode == 1  # the sweep gave up: one line, no traceback
    assert "max_failure_rate" in result.stderr and "Traceback" not in result.stderr
    assert len(study_of(tmp_path).trials) == 2  # stopped once failures exceeded 0.2 x 6


def test_stale_running_trials_of_dead_workers_are_failed_and_run_again(sweep, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = make_storage(str(tmp_path / "sweep" / "study.journal"))
    study = optuna.create_study(study_name="wine_mlp_search", storage=storage)
    stale = study.ask()
    stale.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    result = sweep("hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(tmp_path).trials
    assert trials[0].state == TrialState.FAIL and "died" in trials[0].user_attrs["error"]
    # The budget counts results: the failed trial's place is taken by its retry, plus one more.
    assert len(trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials[1:])


def test_postgres_storage(sweep, tmp_path, postgres_url):
    result = sweep("hydra.sweeper.n_trials=2", f"hydra.sweeper.storage='{postgres_url}'")
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_of(tmp_path, url=postgres_url)
    assert len(study.trials) == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)


def test_wandb_runs_are_grouped_by_study(sweep, tmp_path, monkeypatch):
    # In this process, as Hydra's basic launcher runs every trial of a sweep: one W&B run per
    # trial all the same, each finished before the next trial starts its own.
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = sweep("hydra.sweeper.n_trials=2", "logger=wandb")
    assert result.returncode == 0, result.stderr[-3000:]
    for n in range(2):
        (run,) = (tmp_path / "sweep" / f"trial_{n}" / "wandb").glob("offline-run-*")
        record = next(run.glob("*.wandb")).read_bytes()
        assert b"wine_mlp_search" in record and f"trial_{n}".encode() in record


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.optimizer.lrr=interval(0.001,0.1)"],
            "search space key 'model.optimizer.lrr' is not in the config",
        ),
        (["model.net.dropout=interval(0.5,0.1)"], "interval(0.5, 0.1) is empty or inverted"),
        (
            ["hydra.sweeper.storage='postgresql+psycopg://postgres@127.0.0.1:1/none'"],
            "cannot be opened",
        ),
    ],
)
def test_bad_sweep_input_fails_before_any_trial(sweep, tmp_path, overrides, message):
    result = sweep("hydra.sweeper.n_trials=2", *overrides)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "sweep").glob("trial_*"))


def test_uniform_learning_rate_range_warns(sweep, tmp_path):
    result = sweep("hydra.sweeper.n_trials=1", "model.optimizer.lr=interval(0.0001,0.1)")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tag(log, interval(0.0001, 0.1))" in result.stdout + result.stderr


def test_two_objectives(sweep, tmp_path):
    result = sweep("hydra.sweeper.n_trials=2", "optimized_metric=[val/loss,val/acc]",
                   "hydra.sweeper.direction=[minimize,maximize]")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(tmp_path).trials
    assert all(len(t.values) == 2 for t in trials if t.state == TrialState.COMPLETE)


def test_parallel_workers_share_the_budget(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "sweep_workers.sh"
    args = [
        "bash",
        str(script),
        "2",
        *FAST,
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    env = {**os.environ, "PYTHON": sys.executable, "LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(study_of(tmp_path).trials) == 4
    assert len(list((tmp_path / "sweep").glob("trial_*"))) == 4
    assert len(list((tmp_path / "logs").glob("worker_*.log"))) == 2
