"""The command line as a user types it: real processes, run directories, W&B offline, exit codes.

    pytest tests/test_cli.py -q

Real processes where the process is the point (`make train`'s run, the console scripts, W&B's
offline files; test_bad_input_catalogue has the exit 2 of real processes); the rest runs the
same `main()` in this process (tests.conftest's run_main), which saves a Python start and the
imports of torch and Lightning per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlrecipe.report.__main__ import main as report_main
from dlrecipe.train import main as train_main
from tests.conftest import run_main

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
QUIET = ["trainer.enable_progress_bar=false", "callbacks.progress_bar=null"]


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)


def run_dirs(cwd: Path, task: str) -> list[Path]:
    return sorted(p for p in (cwd / "outputs" / task).glob("*/*") if p.is_dir())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """What `make train` runs (the digits CNN, offline), through the dlrecipe-train console
    script: one full run that the tests below share. The process and the folder it ran in."""
    cwd = tmp_path_factory.mktemp("default")
    return run([str(BIN / "dlrecipe-train"), *QUIET], cwd), cwd


def test_default_experiment_reaches_097_and_prints_the_summary(default_run):
    result, cwd = default_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dlrecipe run summary" in result.stdout and "best checkpoint" in result.stdout
    (run_dir,) = run_dirs(cwd, "train")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_metrics"]["test/acc"] >= 0.97
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_two_runs_never_share_a_run_directory(tmp_path):
    # Back to back in one process: within the same second, as two quick runs from a script.
    for _ in range(2):
        args = ["dlrecipe-train", "debug=fdr", "report.enabled=false", *QUIET]  # directories only
        assert run_main(train_main, args, cwd=tmp_path) == 0
    runs = run_dirs(tmp_path, "debug")
    assert len(runs) == 2 and all((r / ".hydra" / "config.yaml").is_file() for r in runs)


def test_console_scripts_train_and_eval(default_run, tmp_path):
    result, cwd = default_run  # trained by the dlrecipe-train script
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(cwd, "train")
    summary = json.loads((run_dir / "summary.json").read_text())
    result = run([str(BIN / "dlrecipe-eval"), f"ckpt_path={summary['best_checkpoint']}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = summary["test_metrics"]["test/acc"]
    assert f"{acc:.6f}" in result.stdout  # eval prints the run's own test accuracy
    (run_dir / "report" / "index.html").unlink()  # python -m dlrecipe.report rebuilds it
    assert report_main([str(run_dir)]) == 0
    assert (run_dir / "report" / "index.html").is_file()


def test_wandb_logger_works_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_DISABLE_GIT="true", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    args = [sys.executable, "-m", "dlrecipe.train", "experiment=breast_cancer_mlp", "logger=wandb",
            "trainer.max_epochs=2", *QUIET]  # fmt: skip
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path, "breast_cancer_mlp")
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb"))  # the run's data, ready for `wandb sync`


def test_bad_input_exits_2_with_one_clear_line(tmp_path, capfd):
    # In this process: test_bad_input_catalogue's real-process cases show a console script and
    # `python -m` print the same line and exit code as main() does here.
    args = ["dlrecipe-train", "data=csv", "data.source.path=missing.csv", "data.source.target=y",
            "model=mlp"]  # fmt: skip
    assert run_main(train_main, args, cwd=tmp_path) == 2
    err = capfd.readouterr().err
    assert "error: data.source.path='missing.csv' does not exist" in err
    assert "Traceback" not in err


def test_user_csv_from_the_command_line(tmp_path, table_csv):
    args = ["dlrecipe-train", "data=csv", f"data.source.path={table_csv}", "data.source.target=label",
            "model=mlp", "trainer.max_epochs=3", *QUIET]  # fmt: skip
    assert run_main(train_main, args, cwd=tmp_path) == 0
    (run_dir,) = run_dirs(tmp_path, "train")
    assert json.loads((run_dir / "summary.json").read_text())["task"] == "binary"
