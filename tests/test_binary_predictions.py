"""Binary predictions carry one probability column per class, like multiclass ones.

pytest tests/test_binary_predictions.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrecipe.builders import compose
from dlrecipe.cv.summary import aggregate, fold_run_dirs
from dlrecipe.eval import evaluate
from dlrecipe.train import train


def test_binary_runs_write_a_probability_per_class(make_cfg, table_csv, tmp_path):
    cfg = make_cfg("data=csv", f"data.source.path={table_csv}", "data.source.target=label", "model=mlp",
                   "data.source.features=[a,b,colour]", "report.enabled=false", "logger=none",
                   "data/split=stratified_kfold", "data.split.k=2")  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    fold = pd.read_csv(run / "fold0" / "val_predictions.csv")
    assert {"prob_no", "prob_yes"} <= set(fold.columns)
    np.testing.assert_allclose(fold["prob_no"] + fold["prob_yes"], 1.0, atol=1e-6)
    assert (fold["prediction"] == np.where(fold["prob_yes"] >= 0.5, "yes", "no")).all()
    # the fold ensemble still scores the positive class's column
    (tmp_path / "again").mkdir()
    again = aggregate(fold_run_dirs(run), tmp_path / "again", "val/loss")
    tests = [
        pd.read_csv(run / f / "test_predictions.csv").sort_values("index")
        for f in ("fold0", "fold1")
    ]
    mean_yes = (tests[0]["prob_yes"].to_numpy() + tests[1]["prob_yes"].to_numpy()) / 2
    expected = np.mean(np.where(mean_yes >= 0.5, "yes", "no") == tests[0]["target"].to_numpy())
    assert again.ensemble["test/acc"] == pytest.approx(expected, abs=1e-6)

    rows = tmp_path / "rows.csv"
    pd.read_csv(table_csv).head(5).to_csv(rows, index=False)
    out = tmp_path / "pred"
    ckpt = sorted((run / "fold0" / "checkpoints").glob("best-*.ckpt"))[-1]
    evaluate(compose([f"ckpt_path={ckpt}", f"paths.output_dir={out}", f"predict.input={rows}",
                      "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    table = pd.read_csv(out / "predictions.csv")
    assert {"prob_no", "prob_yes"} <= set(table.columns)
