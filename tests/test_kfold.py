"""K-fold: leakage guards, fold counts, the CV summary and ensemble, single folds and their report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dlrecipe.builders import build_data, compose
from dlrecipe.cv_report import main as cv_report
from dlrecipe.data.kfold import KFoldSplit, check_groups_apart
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.train import main, train
from tests.conftest import run_main


def test_folds_are_disjoint_cover_the_rest_and_keep_the_test_set_fixed(make_cfg):
    datamodule = build_data(
        make_cfg("experiment=wine_mlp", "data/split=stratified_kfold", "data.split.k=4")
    )
    folds = datamodule.folds
    assert len(folds) == 4
    test = folds[0].test
    assert all(np.array_equal(f.test, test) for f in folds)
    vals = np.concatenate([f.val for f in folds])
    assert (
        len(vals) == len(set(vals)) == len(datamodule.data) - len(test)
    )  # each sample validated once
    for f in folds:
        assert not (set(f.train) & set(f.val)) and not (set(f.train) & set(f.test))
        assert len(f.train) + len(f.val) + len(f.test) == len(datamodule.data)


def test_test_folds_test_every_sample_once_and_validate_inside_the_training_part(make_cfg):
    datamodule = build_data(make_cfg("experiment=wine_mlp", "data/split=stratified_kfold",
                                     "data.split.k=4", "data.split.test=folds"))  # fmt: skip
    folds, n = datamodule.folds, len(datamodule.data)
    tests = np.concatenate([f.test for f in folds])
    assert len(tests) == len(set(tests)) == n  # every sample tested exactly once
    for f in folds:
        assert not (set(f.train) & set(f.val)) and not (set(f.train) & set(f.test))
        assert not set(f.val) & set(f.test)
        assert len(f.train) + len(f.val) + len(f.test) == n
        assert abs(len(f.val) - 0.15 * (n - len(f.test))) <= 1


@pytest.mark.slow
def test_test_folds_pool_the_folds_test_predictions(make_cfg, tmp_path):
    cfg = make_cfg("experiment=wine_mlp", "data/split=stratified_kfold", "data.split.k=3",
                   "data.split.test=folds", "trainer.max_epochs=1", "report.enabled=false")  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    summary = json.loads((run / "cv_summary.json").read_text())
    assert summary["ensemble"] == {}  # disjoint test sets: nothing to average sample by sample
    tables = [pd.read_csv(run / f"fold{i}" / "test_predictions.csv") for i in range(3)]
    pooled = pd.concat(tables)
    assert sorted(pooled["index"]) == list(range(178))
    accuracy = float((pooled["prediction"].astype(str) == pooled["target"].astype(str)).mean())
    assert summary["pooled"]["test/acc"] == pytest.approx(accuracy, abs=1e-6)


def test_repeated_kfold_reshuffles_every_repeat(make_cfg):
    datamodule = build_data(make_cfg("experiment=breast_cancer_mlp", "data/split=repeated_stratified_kfold",
                                     "data.split.k=3", "data.split.n_repeats=2"))  # fmt: skip
    folds = datamodule.folds
    assert [f.name for f in folds] == [f"repeat{r}_fold{i}" for r in range(2) for i in range(3)]
    assert not np.array_equal(folds[0].val, folds[3].val)


def test_each_fold_fits_normalization_on_its_own_training_part(make_cfg):
    datamodule = build_data(make_cfg("experiment=wine_mlp", "data/split=kfold", "data.split.k=3"))
    means = []
    for i, fold in enumerate(datamodule.folds):
        dm = datamodule.for_fold(i)
        dm.setup("fit")
        expected = datamodule.data.inputs[torch.as_tensor(fold.train)].double().mean(0)
        assert torch.allclose(dm.normalization.mean.double(), expected, atol=1e-5)
        means.append(dm.normalization.mean)
    assert not torch.allclose(means[0], means[1])


def test_group_kfold_keeps_every_group_on_one_side(make_cfg, table_csv):
    frame = pd.read_csv(table_csv)
    frame["patient"] = np.arange(len(frame)) // 4  # 50 patients with 4 rows each
    path = table_csv.parent / "groups.csv"
    frame.to_csv(path, index=False)
    datamodule = build_data(make_cfg("data=csv", f"data.source.path={path}", "data.source.target=label",
                                     "data.source.groups=patient", "data/split=group_kfold", "model=mlp"))  # fmt: skip
    groups = datamodule.data.groups
    assert "patient" not in datamodule.data.feature_names
    for fold in datamodule.folds:
        check_groups_apart(fold, groups)  # raises if a group is on two sides
        assert not set(groups[fold.train]) & set(groups[fold.val])
        assert not set(groups[fold.train]) & set(groups[fold.test])


def test_group_guard_catches_a_leak():
    from dlrecipe.data.splits import Fold

    leaky = Fold(np.array([0, 1]), np.array([2]), np.array([3]))
    with pytest.raises(AssertionError, match="groups"):
        check_groups_apart(leaky, np.array([7, 8, 7, 9]))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["data.split.k=1"], r"data.split.k=1: K-fold needs k >= 2"),
        (["data.split.k=80"], r"data.split.k=80 is larger than the smallest class"),
        (["data.split.fold=5"], r"data.split.fold=5: folds are numbered 0..4"),
    ],
)
def test_bad_kfold_settings(make_cfg, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(make_cfg("experiment=wine_mlp", "data/split=stratified_kfold", *overrides))


def test_group_kfold_without_groups(make_cfg):
    with pytest.raises(ConfigError, match="group K-fold needs a group per sample"):
        train(make_cfg("experiment=wine_mlp", "data/split=group_kfold"))


def test_group_kfold_with_a_group_array_file(make_cfg, tmp_path):
    np.save(tmp_path / "g.npy", np.arange(178) % 10)
    datamodule = build_data(make_cfg("experiment=wine_mlp", "data/split=group_kfold",
                                     f"data.split.groups={tmp_path / 'g.npy'}"))  # fmt: skip
    assert len(datamodule.folds) == 5


def test_splitter_classes_come_from_scikit_learn():
    from sklearn.model_selection import StratifiedKFold

    split = KFoldSplit(StratifiedKFold, k=3)
    assert split.stratified and not split.uses_groups


@pytest.mark.slow
def test_kfold_run_summarizes_folds_and_returns_the_fold_mean(make_cfg, tmp_path):
    cfg = make_cfg("experiment=wine_mlp", "data/split=stratified_kfold", "data.split.k=3")
    value = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    cv = json.loads((run_dir / "cv_summary.json").read_text())
    assert [f["fold"] for f in cv["folds"]] == ["fold0", "fold1", "fold2"]
    fold_losses = [json.loads((run_dir / f"fold{i}" / "summary.json").read_text())["val_metrics"]["val/loss"] for i in range(3)]  # fmt: skip
    assert value == pytest.approx(np.mean(fold_losses))
    assert cv["mean"]["val/loss"] == pytest.approx(np.mean(fold_losses))
    assert cv["std"]["val/loss"] == pytest.approx(np.std(fold_losses, ddof=1))
    assert 0 <= cv["ensemble"]["test/acc"] <= 1
    oof = pd.read_csv(run_dir / "oof_predictions.csv")
    test = pd.read_csv(run_dir / "fold0" / "test_predictions.csv")["index"]
    assert sorted(oof["index"]) == sorted(set(range(178)) - set(test))  # every non-test sample once
    hparams = [
        yaml.safe_load((run_dir / f"fold{i}" / "csv" / "hparams.yaml").read_text())
        for i in range(3)
    ]
    assert len({h["seed"] for h in hparams}) == 3  # each fold trains with its own seed
    # A fold's checkpoint evaluates to that fold's own test metrics.
    fold1 = json.loads((run_dir / "fold1" / "summary.json").read_text())
    got = evaluate(compose([f"ckpt_path={fold1['best_checkpoint']}", f"paths.output_dir={tmp_path / 'ev'}",
                            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    assert got["test/loss"] == pytest.approx(fold1["test_metrics"]["test/loss"], abs=1e-6)


@pytest.mark.slow
def test_ensemble_of_identical_folds_scores_like_one_fold(tmp_path):
    from dlrecipe.cv.summary import ensemble_metrics
    from dlrecipe.data.info import DataInfo

    info = DataInfo("binary", (3,), ["a", "b"])
    table = pd.DataFrame({"index": [0, 1, 2, 3], "target": ["a", "b", "b", "a"], "prediction": ["a", "b", "a", "a"],
                          "prob_b": [0.1, 0.9, 0.4, 0.2]})  # fmt: skip
    assert ensemble_metrics([table, table], info)["test/acc"] == pytest.approx(0.75)
    other = table.assign(prob_b=[0.1, 0.9, 0.8, 0.2])
    assert ensemble_metrics([table, other], info)["test/acc"] == pytest.approx(
        1.0
    )  # (0.4+0.8)/2 > 0.5


@pytest.mark.slow
def test_multirun_over_single_folds_aggregates_with_cv_report(tmp_path):
    # `python -m dlrecipe.train -m ...`: its main() in this process (Hydra's basic launcher)
    args = ["dlrecipe-train", "-m", "experiment=iris_mlp", "data/split=stratified_kfold",
            "data.split.k=3", "data.split.fold=0,1,2", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
            "callbacks.progress_bar=null", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    assert run_main(main, args, cwd=tmp_path) == 0
    assert cv_report([str(tmp_path / "sweep")]) == 0
    cv = json.loads((tmp_path / "sweep" / "cv_summary.json").read_text())
    assert sorted(f["fold"] for f in cv["folds"]) == ["fold0", "fold1", "fold2"]
    assert "test/acc" in cv["ensemble"]
    assert (tmp_path / "sweep" / "oof_predictions.csv").is_file()


def test_cv_report_of_a_directory_without_folds(tmp_path, capsys):
    assert cv_report([str(tmp_path)]) == 2
    assert "no fold runs" in capsys.readouterr().err
