"""Sweeps under faults: a password never leaks, a silent database fails fast, a sweeper mistake
is one line, and a killed worker's trial runs again.

    python -m pytest tests/test_sweep_faults.py -q

Real sweeps (wine MLP, one epoch, one to three trials) against a real PostgreSQL server with
password authentication, a real SQLite file and the default journal file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from dlrecipe.errors import ConfigError
from dlrecipe.sweep.liveness import Liveness
from dlrecipe.sweep.space import to_distribution
from dlrecipe.sweep.storage import ENV, job_storage, make_storage, redact, resolve_storage
from tests.conftest import run_main

pytest_plugins = ["tests.postgres"]
ROOT = Path(__file__).resolve().parents[1]
FAST = ["hparams_search=wine_mlp_search", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.early_stopping=null",
        "report.enabled=false"]  # fmt: skip
STUDY = "wine_mlp_search"
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def command(tmp_path: Path, *overrides: str) -> list[str]:
    sweep_dir = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    return [sys.executable, "-m", "dlrecipe.train", *FAST, sweep_dir, *overrides]


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    # Only what a test passes: a DLRECIPE_STORAGE of the developer's shell must not interfere.
    environment = {k: v for k, v in os.environ.items() if k != ENV}
    environment.update({"WANDB_MODE": "offline", **(env or {})})
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=600, env=environment
    )


# --- secrets -------------------------------------------------------------------------------


def test_redact_hides_the_password_wherever_it_sits():
    assert (
        redact("postgresql+psycopg://bob:s3cr@t/x@db:5432/s")
        == "postgresql+psycopg://bob:***@db:5432/s"
    )
    assert redact("postgresql://bob@db/s?password=hunter22&sslmode=require") == (
        "postgresql://bob@db/s?password=***&sslmode=require"
    )
    assert redact("sqlite:///outputs/s.db") == "sqlite:///outputs/s.db"
    assert redact("outputs/sweeps/s.journal") == "outputs/sweeps/s.journal"


def in_process(monkeypatch, tmp_path: Path, *overrides: str) -> int:
    """`python -m dlrecipe.train ...` inside this process (no second import of torch): exit code."""
    from dlrecipe.train import main

    monkeypatch.delenv(ENV, raising=False)  # only what the test passes, as in run()
    return run_main(main, command(tmp_path, *overrides)[2:], cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("way", ["override", "environment", "file"])
def test_storage_password_reaches_no_output_and_no_file(
    tmp_path,
    tmp_path_factory,
    monkeypatch,
    capfd,
    postgres_password_url,
    postgres_password_role,
    way,
):
    _, password = postgres_password_role
    url, shown = postgres_password_url, redact(postgres_password_url)
    if way == "environment":  # through scripts/sweep_workers.sh, as on a cluster (a subprocess)
        env = {ENV: url, "PYTHON": sys.executable, "LOG_DIR": str(tmp_path / "logs")}
        script = ["bash", str(ROOT / "scripts" / "sweep_workers.sh"), "1"]
        result = run([*script, *command(tmp_path, "hydra.sweeper.n_trials=1")[3:]], tmp_path, env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        console = result.stdout + result.stderr + (tmp_path / "logs" / "worker_0.log").read_text()
    else:
        if way == "override":  # the riskiest: Hydra saves its overrides in every trial
            storage = f"hydra.sweeper.storage='{url}'"
        else:
            secret = tmp_path_factory.mktemp("secret") / "storage.url"  # outside the working dir
            secret.write_text(url + "\n")
            secret.chmod(0o600)
            storage = f"hydra.sweeper.storage=file:{secret}"
        code = in_process(monkeypatch, tmp_path, storage, "hydra.sweeper.n_trials=1")
        out, err = capfd.readouterr()
        assert code == 0, err[-3000:]
        console = out + err
        assert password not in " ".join(sys.argv)  # what W&B and DDP re-launches would record
    assert password not in console
    assert shown in console  # the redacted URL is what people see
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []
    searched = list(tmp_path.rglob("*.ckpt")) + list(tmp_path.rglob("hydra.yaml"))
    assert len(searched) >= 3  # checkpoints and Hydra's files were there to be searched
    saved = tmp_path / "sweep" / "trial_0" / ".hydra"
    assert shown in (saved / "config.yaml").read_text()
    if way == "override":
        assert shown in (saved / "hydra.yaml").read_text()
    # The trial really ran against the password-protected server (its job reopened the study).
    study = optuna.load_study(study_name=STUDY, storage=make_storage(url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_password_check_is_real(postgres_password_url, postgres_password_role):
    _, password = postgres_password_role
    wrong = postgres_password_url.replace(password, "not-the-password")
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.storage") as err:
        make_storage(wrong, connect_timeout=5)
    assert "not-the-password" not in str(err.value) and "***" in str(err.value)


def test_storage_from_a_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "url.txt"
    secret.write_text("postgresql+psycopg://u:hunter22@db/s\n")
    spec = resolve_storage(f"file:{secret}", tmp_path / "d.journal")
    assert (spec.url, spec.shown) == (
        "postgresql+psycopg://u:hunter22@db/s",
        "postgresql+psycopg://u:***@db/s",
    )
    monkeypatch.setenv(ENV, "sqlite:///x.db")
    assert resolve_storage(None, tmp_path / "d.journal").url == "sqlite:///x.db"
    assert resolve_storage("other.journal", tmp_path / "d.journal").url == "other.journal"
    monkeypatch.delenv(ENV)
    assert resolve_storage(None, tmp_path / "d.journal").url == str(tmp_path / "d.journal")
    # A job sees the redacted URL; the real one comes from the environment its sweeper set.
    with pytest.raises(ConfigError, match=ENV):
        job_storage("postgresql+psycopg://u:***@db/s")
    monkeypatch.setenv(ENV, f"file:{secret}")
    assert (
        job_storage("postgresql+psycopg://u:***@db/s").url == "postgresql+psycopg://u:hunter22@db/s"
    )
    secret.write_text("two\nlines hunter22\n")
    with pytest.raises(ConfigError, match="one storage URL on one line") as err:
        resolve_storage(f"file:{secret}", tmp_path / "d.journal")
    assert "hunter22" not in str(err.value)  # the file's content is never quoted


# --- sweeper mistakes: one line, exit 2 -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0"),
        (["hydra.sweeper.direction=sideways"], "hydra.sweeper.direction=sideways"),
        (["hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler"], "hydra.sweeper.sampler._target_"),
        (["+hydra.sweeper.sampler.no_such_setting=1"], "hydra.sweeper.sampler"),
        (["hydra.sweeper.pruner.n_startup_trials=-4"], "hydra.sweeper.pruner"),
        (["hydra.sweeper.storage=file:/no/such/storage.url"], "hydra.sweeper.storage=file:/no/such/storage.url"),
        (["hydra.sweeper.storage='postgresql+psycopg://u:hunter22@127.0.0.1:1/s'"], "hydra.sweeper.storage=postgresql+psycopg://u:***@"),
        (["hydra.sweeper.heartbeat_interval=30", "hydra.sweeper.grace_period=10"], "hydra.sweeper.grace_period=10"),
        (["model.net.dropout=interval(0.5,0.1)"], "model.net.dropout"),
        (["hydra.sweeper.params={model.net.dropout: 'between(0,1)'}"], "hydra.sweeper.params.model.net.dropout"),
    ],
)  # fmt: skip
def test_a_sweeper_mistake_is_one_line_and_exit_2(monkeypatch, capfd, tmp_path, overrides, named):
    code = in_process(monkeypatch, tmp_path, *overrides)
    err = capfd.readouterr().err
    assert code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], err[-3000:]
    assert "Traceback" not in err and "hunter22" not in err
    assert not list((tmp_path / "sweep").glob("trial_*"))  # before any trial


def test_resuming_a_study_in_the_other_direction_is_refused(monkeypatch, capfd, tmp_path):
    journal = make_storage(str(tmp_path / "sweep" / "study.journal"))
    optuna.create_study(study_name=STUDY, storage=journal, direction="maximize")
    assert in_process(monkeypatch, tmp_path) == 2  # Optuna alone would silently keep maximize
    (line,) = [s for s in capfd.readouterr().err.splitlines() if s.startswith("error:")]
    assert "created with direction=['maximize']" in line and "hydra.sweeper.study_name" in line


# --- nothing hangs -------------------------------------------------------------------------


def test_a_server_that_accepts_but_never_answers_fails_naming_the_key():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))  # loopback only
    server.listen(8)
    held = []
    threading.Thread(
        target=lambda: held.extend(server.accept() for _ in range(8)), daemon=True
    ).start()
    port = server.getsockname()[1]
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            make_storage(f"postgresql+psycopg://u:hunter22@127.0.0.1:{port}/s", connect_timeout=1)
        except BaseException as err:
            outcome.append(err)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(120)  # a guard for the hang this test is about, not a speed limit
    server.close()
    assert not worker.is_alive(), "make_storage hung on a server that never answers"
    assert isinstance(outcome[0], ConfigError)
    message = str(outcome[0])
    assert "hydra.sweeper.storage=postgresql+psycopg://u:***@127.0.0.1" in message
    assert "hunter22" not in message and "\n" not in message


# --- killed trials run again ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_dead_workers_trial_from_any_host_fails_and_is_queued_again(tmp_path, kind):
    value = str(tmp_path / "s.journal") if kind == "journal" else f"sqlite:///{tmp_path / 's.db'}"
    spec = resolve_storage(value, tmp_path / "unused.journal")
    storage = make_storage(spec, heartbeat_interval=1, grace_period=2, max_retry=1)
    study = optuna.create_study(study_name="s", storage=storage)
    live = Liveness(study, storage, spec, interval=1, grace=2, max_retry=1)
    space = {"x": FloatDistribution(0, 1)}
    alive, dead = study.ask(space), study.ask(space)
    for trial in (alive, dead):
        live.claim(trial)
        trial.set_user_attr("worker", "elsewhere:1")  # another machine: no pid to check here
    with live.beating([live.trial_id(alive.number)]):
        time.sleep(3.5)  # past the grace period: only `alive` is still marked alive
        assert live.fail_stale() == [dead.number]
    trials = study.get_trials()
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[dead.number].state == TrialState.FAIL
    (queued,) = [t for t in trials if t.state == TrialState.WAITING]
    assert queued.params == trials[dead.number].params
    if kind == "journal":  # max_retry=1: the retry dies too and is not queued again
        retry = study.ask(space)
        assert retry.params == queued.params
        live.claim(retry)
        retry.set_user_attr("worker", "elsewhere:2")
        with live.beating([live.trial_id(alive.number)]):
            time.sleep(3.5)
            assert live.fail_stale() == [retry.number]
        assert not study.get_trials(states=(TrialState.WAITING,))


def wine_space() -> dict[str, BaseDistribution]:
    """The distributions a wine_mlp_search sweep asks with, from the preset's own lines."""
    preset = OmegaConf.load(ROOT / "conf" / "hparams_search" / "wine_mlp_search.yaml")
    params = preset.hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.key_or_group: to_distribution(o) for o in parsed}


def test_a_queued_retry_is_run_and_counts_once_toward_n_trials(tmp_path, monkeypatch, capfd):
    # The study a re-run within grace_period leaves behind: it counted the killed trial 1 as
    # running, asked trial 2 instead; then trial 1 was failed and its retry queued (WAITING).
    storage = make_storage(str(tmp_path / "sweep" / "study.journal"))
    study = optuna.create_study(study_name=STUDY, storage=storage)
    first, killed, last = (study.ask(wine_space()) for _ in range(3))
    study.tell(first, 0.5)
    study.tell(last, 0.4)
    study.tell(killed, state=TrialState.FAIL)
    with warnings.catch_warnings():  # queued the way liveness.py queues a stale trial's retry
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=2)(study, study.trials[killed.number])
    assert [t.state for t in study.trials][-1] == TrialState.WAITING

    assert in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=3") == 0
    out = capfd.readouterr().out
    trials = study.get_trials()
    assert len(trials) == 4  # the retry ran; no new trial was asked beside it
    retry = trials[3]
    assert retry.state in DONE and retry.params == trials[killed.number].params
    assert sum(t.state in DONE for t in trials) == 3
    assert (tmp_path / "sweep" / "trial_3" / ".hydra").is_dir()
    assert any(x.startswith("trial 3/3 ") for x in out.splitlines())  # its place in the budget

    # The budget is spent: a second re-run runs nothing and says so.
    assert in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=3") == 0
    out, err = capfd.readouterr()
    assert len(study.get_trials()) == 4
    assert f"study '{STUDY}' already has 3 of hydra.sweeper.n_trials=3 trials" in out + err


@pytest.mark.slow
def test_sigkill_of_a_worker_mid_trial_then_rerun_completes_n_trials(tmp_path):
    args = command(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.heartbeat_interval=1",
                   "hydra.sweeper.grace_period=2", "trainer.max_epochs=3")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != ENV}
    worker = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    started = tmp_path / "sweep" / "trial_1" / ".hydra" / "config.yaml"
    deadline = time.monotonic() + 300
    while not started.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    journal = make_storage(str(tmp_path / "sweep" / "study.journal"))
    study = optuna.load_study(study_name=STUDY, storage=journal)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    killed = study.trials[1]
    # As if the killed worker had run on another machine: only its stale lease can tell.
    study_id = journal.get_study_id_from_name(STUDY)
    journal.set_trial_user_attr(
        journal.get_trial_id_from_study_id_trial_number(study_id, 1), "worker", "elsewhere:1"
    )
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name=STUDY, storage=journal).trials
    assert sum(t.state in DONE for t in trials) == 3
    assert trials[1].state == TrialState.FAIL and "no heartbeat" in trials[1].user_attrs["error"]
    (retry,) = [t for t in trials[2:] if t.params == killed.params]
    assert retry.state in DONE
    assert f"retried as trial {retry.number}" in (tmp_path / "sweep" / "trials.csv").read_text()
