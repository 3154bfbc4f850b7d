"""The two K-fold paths give the same summary: one command, or one job per fold + cv_report.

pytest tests/test_kfold_paths.py -q
"""

from __future__ import annotations

import json

from dlrecipe.cv_report import main as cv_report
from dlrecipe.train import train

WINE_2FOLD = ["experiment=wine_mlp", "data/split=stratified_kfold", "data.split.k=2",
              "trainer.max_epochs=1", "report.enabled=false", "logger=none"]  # fmt: skip


def _numbers(summary: dict) -> dict:
    """Every metric of the summary (folds, mean, std, ensemble), without paths or timings."""
    keep = ("folds", "mean", "std", "ensemble", "optimized_value")
    folds = [{k: v for k, v in f.items() if "/" in k or k == "fold"} for f in summary["folds"]]
    return {**{k: summary[k] for k in keep}, "folds": folds}


def test_cv_report_over_fold_jobs_reproduces_the_one_command_summary(make_cfg, tmp_path):
    one = tmp_path / "one_command"
    train(make_cfg(*WINE_2FOLD, run_dir=one))
    jobs = tmp_path / "multirun"
    for fold in (0, 1):  # what `-m data.split.fold=0,1` runs, one job directory each
        train(make_cfg(*WINE_2FOLD, f"data.split.fold={fold}", run_dir=jobs / str(fold)))
    assert cv_report([str(jobs)]) == 0
    expected = json.loads((one / "cv_summary.json").read_text())
    got = json.loads((jobs / "cv_summary.json").read_text())
    assert [f["fold"] for f in got["folds"]] == ["fold0", "fold1"]
    assert _numbers(got) == _numbers(expected)  # exactly: same split, same seed per fold
