"""The console at COLUMNS=80: counters, once-only noise, one epoch numbering, whole paths, train.log.

    PYTHONPATH=src python -m pytest tests/test_console.py -q

Each run here is the real command (`python -m dlrecipe.train ...`) called in-process, so Hydra's
job logging writes train.log as it does for a user; output is captured at the file descriptors.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from dlrecipe import quiet
from dlrecipe.console import Countdown, say, status
from dlrecipe.cv.summary import CVSummary
from dlrecipe.report.summary import RunSummary
from dlrecipe.sweep.report import short_names
from tests.conftest import run_main

QUICK = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "extras.lint=false"]


@pytest.fixture
def console80(monkeypatch):
    """An 80-column console and a process that has not printed its model summary yet."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(quiet, "_summary_shown", False)


def in_process(tmp_path: Path, *overrides: str) -> int:
    """`python -m dlrecipe.train ...` inside this process, from tmp_path: its exit code."""
    from dlrecipe.train import main

    return run_main(main, ["dlrecipe-train", *overrides], cwd=tmp_path)


@pytest.mark.slow
def test_kfold_run_counts_folds_prints_once_numbers_epochs_from_1_and_logs_to_train_log(
    tmp_path, monkeypatch, capfd, console80
):
    run = tmp_path / "a_directory_name_long_enough_that_paths_pass_80_columns" / "kfold"
    with warnings.catch_warnings(record=True) as caught:
        code = in_process(tmp_path, *QUICK, "experiment=wine_mlp",
                          "data/split=stratified_kfold", "data.split.k=2", f"hydra.run.dir={run}",
                          "report.in_trials_and_folds=true")  # fmt: skip
    captured = capfd.readouterr()
    out, everything = captured.out, captured.out + captured.err
    assert code == 0
    lines = out.splitlines()
    # 1. progress: "fold i/k" before each fold, with the time left from the second on
    counters = [line for line in lines if line.startswith("fold ") and "/2 - " in line]
    assert counters[0] == "fold 1/2 - time left known after the first fold"
    assert counters[1].startswith("fold 2/2 - elapsed 0:00:") and counters[1].endswith(" left")
    assert "building the report..." in lines  # a fold's report, asked for here
    # 2. the model summary once per process, without a FLOPs column of zeros
    assert out.count("┃ Name ") == 1 and "FLOPs" not in out
    # 6. known noise filtered at the source
    assert "Tip: For seamless cloud logging" not in everything
    assert "Skipping setting a default `ModelSummary`" not in everything
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "LeafSpec" in m or "log_every_n_steps" in m]
    # 3. one epoch numbering: 1 epoch -> best-epoch001.ckpt, "best epoch 1 of 1"
    best = run / "fold0" / "checkpoints" / "best-epoch001.ckpt"
    assert best.is_file() and not list(best.parent.glob("best-epoch000*"))
    assert "best epoch       1 of 1" in out
    # 4. paths whole on one line (copyable), tables not cut
    assert len(str(best)) > 80 and f"best checkpoint  {best}" in lines
    assert f"run directory    {run / 'fold1'}" in lines
    assert "…" not in out
    summary = json.loads((run / "fold0" / "summary.json").read_text())
    assert summary["report_seconds"] > 0  # the report's time is in the summary...
    assert summary["total_seconds"] >= summary["fit_seconds"] + summary["report_seconds"]
    # 5. train.log holds the counters and the summaries
    log = (run / "train.log").read_text()
    for text in ("fold 2/2 - elapsed", "dlrecipe run summary (multiclass, fold1)", str(best),
                 "cross-validation: 2 folds", "val/loss over folds", "building the report: "):  # fmt: skip
        assert text in log


@pytest.mark.slow
def test_sweep_counts_trials_numbers_epochs_from_1_and_fits_its_table_in_80_columns(
    tmp_path, monkeypatch, capfd, console80
):
    code = in_process(tmp_path, *QUICK, "hparams_search=wine_mlp_search",
                      "hydra.sweeper.n_trials=2", "report.enabled=false",
                      "hydra.sweeper.study_name=console", f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    out = capfd.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert "trial 1/2 - time left known after the first trial" in lines
    assert any(line.startswith("trial 2/2 - elapsed 0:00:") for line in lines)
    assert out.count("┃ Name ") == 1  # the second trial (same process) prints no model summary
    assert "Epoch 1/1" in out and "Epoch 0/" not in out  # the progress bar counts from 1 too
    start = lines.index(next(x for x in lines if "study console: 2 trials" in x))
    table = lines[start : lines.index("trials: complete 2")]  # the lines after it are paths
    header = next(x for x in table if "trial" in x and "state" in x)
    assert header.split() == ["trial", "state", "seconds", "value", "lr", "weight_decay",
                              "dropout", "hidden"]  # fmt: skip
    assert sum("COMPLETE" in x for x in table) == 2  # the state whole, not "COMPLE…"
    assert all(len(x) <= 80 for x in table) and "…" not in out


def test_countdown_estimates_time_left_from_the_finished_pieces():
    countdown = Countdown("trial", 5)
    assert countdown.line(3) == "trial 3/5 - time left known after the first trial"
    countdown.started -= 10  # 10 s since start, 2 trials (3 and 4) finished in this process
    assert countdown.line(5) == "trial 5/5 - elapsed 0:00:10, about 0:00:05 left"
    # trial 5 failed: its place in the budget runs again, said so rather than a second "5/5"
    assert countdown.line(5).startswith("trial 5/5 again - elapsed 0:00:10")


def test_status_says_what_runs_and_its_time(capsys):
    with status("running the sanity suite") as took:
        time.sleep(0.01)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "running the sanity suite..."
    assert lines[1] == f"running the sanity suite: {took['seconds']:.1f} s" and took["seconds"] > 0


def test_paths_are_printed_whole_at_80_columns(tmp_path):
    deep = tmp_path / ("x" * 60) / "checkpoints" / "best-epoch014.ckpt"
    summary = RunSummary(str(deep.parent.parent), "multiclass", "acc", best_checkpoint=str(deep),
                         best_epoch=14, epochs_run=24, report=str(deep.parent / "report.html"))  # fmt: skip
    console = Console(width=80, record=True, file=io.StringIO())
    summary.print(console)
    text = console.export_text()
    assert f"best checkpoint  {deep}" in text.splitlines()
    assert "best epoch       14 of 24" in text
    say(f"written to {deep}", console)
    assert f"written to {deep}" in console.export_text().splitlines()


def test_cv_table_wraps_mean_and_std_instead_of_cutting_them():
    metrics = {"val/acc": 0.37151, "val/loss": 1.558, "test/acc": 0.37, "test/loss": 1.46452}
    result = CVSummary(folds=[{"fold": "fold0", **metrics}, {"fold": "fold1", **metrics}],
                       mean=metrics, std={k: 0.518 for k in metrics}, main_metric="acc",
                       ensemble={"test/acc": 0.333})  # fmt: skip
    console = Console(width=80, record=True, file=io.StringIO())
    result.print(console)
    text = console.export_text()
    assert "…" not in text and "1.4645 ±" in text and "0.5180" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_short_names_keep_keys_apart():
    keys = ["model.optimizer.lr", "model.net.dropout", "a.lr", "value"]
    assert short_names(keys) == ["optimizer.lr", "dropout", "a.lr", "value"]
