"""dlrecipe without other libraries' private internals: the seams that replaced them, and a
check that keeps private access out of every module but dlrecipe.compat.

    python -m pytest tests/test_compat.py -q

Each replaced hack gets a real run on tiny data (CPU) that shows the public seam does the job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from dlrecipe.builders import compose
from dlrecipe.csv_logs import metrics_files, read_metrics
from dlrecipe.data.datamodule import DataModule
from dlrecipe.eval import evaluate, restore
from dlrecipe.models.module import DATA_KEY
from dlrecipe.train import main, train

WINE = ["experiment=wine_mlp", "data.batch_size=32", "callbacks.early_stopping=null",
        "report.enabled=false", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "extras.lint=false"]  # fmt: skip


def cli(*args: str) -> int:
    """`python -m dlrecipe.train *args` in this process; the exit status."""
    argv, sys.argv = sys.argv, ["dlrecipe.train", *args]
    try:
        main()
        return 0
    except SystemExit as exit:
        return exit.code
    finally:
        sys.argv = argv


def test_a_resumed_run_writes_a_new_csv_version_and_every_epoch_stays_readable(tmp_path):
    run = tmp_path / "run"
    assert cli(*WINE, "trainer.max_epochs=2", f"hydra.run.dir={run}") == 0
    first = (run / "csv" / "metrics.csv").read_bytes()
    assert cli(f"resume={run}", "trainer.max_epochs=3") == 0
    assert (run / "csv" / "metrics.csv").read_bytes() == first  # nothing deleted or rewritten
    assert metrics_files(run / "csv") == [run / "csv" / "metrics.csv",
                                          run / "csv" / "version_0" / "metrics.csv"]  # fmt: skip
    trained = read_metrics(run / "csv").dropna(subset=["train/loss"])
    assert list(trained["epoch"].astype(int)) == [0, 1, 2]  # each epoch once, across the resume


class RenamedData(DataModule):
    """A user's DataModule subclass: Lightning would file its state under "RenamedData"."""


def test_a_datamodule_subclass_keeps_its_normalization_through_eval(make_cfg, tmp_path):
    target = f"{__name__}.RenamedData"
    cfg = make_cfg("data=breast_cancer", "model=mlp", f"data._target_={target}",
                   "trainer.max_epochs=1", "report.enabled=false", "extras.lint=false")  # fmt: skip
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    best = summary["best_checkpoint"]
    saved = torch.load(best, weights_only=True)[DATA_KEY]
    assert "RenamedData" not in torch.load(best, weights_only=True)  # one copy, under our key
    _, datamodule, _ = restore(best)
    assert type(datamodule) is RenamedData
    assert torch.equal(datamodule.normalization.mean, saved["normalization"]["mean"])  # restored
    got = evaluate(compose([f"ckpt_path={best}", "trainer.accelerator=cpu",
                            f"paths.output_dir={tmp_path / 'eval'}", f"trusted_targets=[{target}]",
                            "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    for key, value in summary["test_metrics"].items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
