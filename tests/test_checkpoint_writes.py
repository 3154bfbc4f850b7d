"""Cheaper checkpoint writes keep what they save: last.ckpt linked to the best file written in the
same epoch, the History state as one string, and Lightning's per-batch checks only with a trigger.

    pytest tests/test_checkpoint_writes.py -q

Real in-process runs of `python -m dlrecipe.train` on wine (a few epochs, CPU).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from dlrecipe.builders import compose
from dlrecipe.callbacks.epochs import OneBasedModelCheckpoint
from dlrecipe.callbacks.history import History
from dlrecipe.callbacks.last_checkpoint import LastCheckpoint
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.train import main
from tests.conftest import run_main

COMMON = ["experiment=wine_mlp", "data.batch_size=16", "callbacks.early_stopping=null",
          "model/scheduler=none",  # a schedule would follow max_epochs, which resume= raises
          "report.enabled=false", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
          "callbacks.progress_bar=null", "callbacks.model_summary=null", "extras.lint=false"]  # fmt: skip


def cli(*args: str) -> int | str:
    return run_main(main, ["dlrecipe.train", *args])


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def results(run: Path) -> dict[str, float]:
    return {**summary(run)["val_metrics"], **summary(run)["test_metrics"]}


def same_file(a: Path, b: Path) -> bool:
    return a.stat().st_ino == b.stat().st_ino and a.stat().st_dev == b.stat().st_dev


def test_last_ckpt_links_the_best_file_and_resumes_and_evaluates_after_that_file_is_gone(tmp_path):
    reference = tmp_path / "reference"  # three epochs, uninterrupted
    assert cli(*COMMON, "trainer.max_epochs=3", f"hydra.run.dir={reference}") == 0
    best = Path(summary(reference)["best_checkpoint"])
    assert summary(reference)["best_epoch"] > 1  # precondition: a later epoch improves on the first
    last = reference / "checkpoints" / "last.ckpt"
    # one write when both were due in the last epoch, two separate files otherwise
    assert same_file(best, last) == (summary(reference)["best_epoch"] == 3)

    run = tmp_path / "run"  # one epoch: the first epoch always saves a best checkpoint
    assert cli(*COMMON, "trainer.max_epochs=1", f"hydra.run.dir={run}") == 0
    first_best, last = Path(summary(run)["best_checkpoint"]), run / "checkpoints" / "last.ckpt"
    assert same_file(first_best, last)
    # A better epoch makes save_top_k=1 delete this file before last.ckpt is replaced; a killed
    # run can stop in between. last.ckpt keeps the data (a symlink would now point at nothing).
    first_best.unlink()
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0 and saved["dlrecipe_config"]["trainer"]["max_epochs"] == 1
    assert lightning_key("OneBasedModelCheckpoint", monitor="val/loss") in saved["callbacks"]
    cfg = compose([f"ckpt_path={last}", f"paths.output_dir={tmp_path / 'eval'}",
                   "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval")  # fmt: skip
    test = evaluate(cfg)
    for key, value in summary(run)["test_metrics"].items():
        assert test[key] == pytest.approx(value, abs=1e-6), key

    assert cli(f"resume={run}", "trainer.max_epochs=3") == 0  # continues from the linked file
    expected, got = results(reference), results(run)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()


def lightning_key(name: str, **settings) -> str:
    """The state key Lightning itself builds for a ModelCheckpoint with these settings."""
    return ModelCheckpoint(**settings).state_key.replace("ModelCheckpoint", name, 1)


@pytest.mark.parametrize(
    "settings", [{}, {"monitor": "val/acc", "mode": "max"}, {"every_n_epochs": 2}]
)
def test_checkpoint_callbacks_build_lightnings_state_key_once(settings):
    # Built once (not at every hook call), but the very key Lightning files the state under:
    # checkpoints written before, and by plain ModelCheckpoints, still resume.
    for cls in (OneBasedModelCheckpoint, LastCheckpoint):
        callback = cls(**settings)
        assert callback.state_key == lightning_key(cls.__name__, **settings)
        assert callback.state_key is callback.state_key


def test_asynchronous_writes_are_never_linked(tmp_path):
    # The background thread may not have written the best file when last.ckpt is due.
    run = tmp_path / "run"
    assert cli(*COMMON, "trainer=async_checkpoint", "trainer.max_epochs=1",
               f"hydra.run.dir={run}") == 0  # fmt: skip
    best, last = Path(summary(run)["best_checkpoint"]), run / "checkpoints" / "last.ckpt"
    assert not same_file(best, last) and last.stat().st_nlink == 1
    assert torch.load(last, weights_only=True)["epoch"] == 0


def test_a_step_trigger_on_the_best_checkpoint_still_saves_between_epochs(tmp_path):
    # Its per-batch check is skipped only when there is no step or time trigger.
    run = tmp_path / "run"
    assert cli(*COMMON, "trainer.max_epochs=2", "+callbacks.model_checkpoint.every_n_train_steps=3",
               "+callbacks.model_checkpoint.save_top_k=-1", f"hydra.run.dir={run}") == 0  # fmt: skip
    steps = {torch.load(p, weights_only=True)["global_step"]
             for p in (run / "checkpoints").glob("best-*.ckpt")}  # fmt: skip
    per_epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 2
    assert any(step % per_epoch for step in steps), steps  # saves inside an epoch, not only at ends


def test_history_state_is_one_string_that_restores_every_row_exactly():
    rows = [
        {"epoch": 0, "step": 5, "train/loss": 1 / 3, "lr": 0.1},
        {"epoch": 1, "step": 10, "train/loss": math.inf, "val/loss": 0.1 + 0.2},  # column appears
        {"epoch": 2, "step": 15, "train/loss": math.nan, "lr": 1e-300},
    ]
    history = History()
    history.rows = [dict(r) for r in rows]
    state = history.state_dict()
    assert list(state) == ["rows_json"] and isinstance(state["rows_json"], str)  # one object
    buffer = io.BytesIO()
    torch.save({"History": state}, buffer)
    buffer.seek(0)
    restored = History()
    restored.load_state_dict(torch.load(buffer, weights_only=True)["History"])
    assert [list(r) for r in restored.rows] == [list(r) for r in rows]  # keys, in order
    for got, want in zip(restored.rows, rows, strict=True):
        for key, value in want.items():
            assert type(got[key]) is type(value), key  # epoch and step stay ints
            assert got[key] == value or (math.isnan(got[key]) and math.isnan(value)), key
    older = History()  # checkpoints written before: a list of dicts
    older.load_state_dict({"rows": [{"epoch": 0, "step": 5}]})
    assert older.rows == [{"epoch": 0, "step": 5}]


@pytest.mark.parametrize("state", [{"rows_json": "not json"}, {"rows_json": '[{"loss": "x"}]'},
                                   {"rows_json": '{"epoch": 0}'}, {"rows": [["epoch", 0]]}])  # fmt: skip
def test_a_malformed_history_state_is_refused_by_name(state):
    with pytest.raises(ConfigError, match="History state"):
        History().load_state_dict(state)
