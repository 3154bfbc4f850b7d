"""Guards added after a review: leakage, early errors for mistakes that used to surface late."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from dlrecipe.builders import build_data
from dlrecipe.data.sources.csv_table import load_csv
from dlrecipe.data.sources.image_folder import load_image_folder
from dlrecipe.data.splits import HoldoutSplit
from dlrecipe.errors import ConfigError
from dlrecipe.sweep.sweeper import check_objective
from dlrecipe.train import train


def test_fixed_validation_folder_stays_out_of_the_test_cut(image_dir, tmp_path):
    val_root = tmp_path / "val_images"
    shutil.copytree(image_dir, val_root)
    data = load_image_folder(str(image_dir), val_root=str(val_root))
    fold = HoldoutSplit().folds(data)[0]
    assert set(fold.val) == set(data.val_indices)
    assert not set(fold.test) & set(fold.val)


def test_holdout_keeps_groups_on_one_side(make_cfg, table_csv):
    frame = pd.read_csv(table_csv)
    frame["patient"] = np.arange(len(frame)) // 5
    path = table_csv.parent / "g.csv"
    frame.to_csv(path, index=False)
    datamodule = build_data(
        make_cfg(
            "data=csv",
            f"data.source.path={path}",
            "data.source.target=label",
            "data.source.groups=patient",
            "model=mlp",
        )
    )
    fold, groups = datamodule.fold, datamodule.data.groups
    for a, b in ((fold.train, fold.val), (fold.train, fold.test), (fold.val, fold.test)):
        assert not set(groups[a]) & set(groups[b])


def test_groups_with_a_splitter_that_ignores_them(make_cfg, table_csv):
    frame = pd.read_csv(table_csv).assign(patient=lambda f: np.arange(len(f)) // 5)
    path = table_csv.parent / "g2.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match="use data/split=group_kfold"):
        train(
            make_cfg(
                "data=csv",
                f"data.source.path={path}",
                "data.source.target=label",
                "data.source.groups=patient",
                "model=mlp",
                "data/split=kfold",
            )
        )


def test_stratified_kfold_on_regression(make_cfg):
    with pytest.raises(ConfigError, match="use data/split=kfold"):
        train(make_cfg("experiment=diabetes_mlp", "data/split=stratified_kfold"))


def test_constant_target_and_missing_text_values(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [1, 1, 1]}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="has a single value"):
        load_csv(str(path), "y")
    pd.DataFrame({"a": ["x", None, "z"], "y": [0, 1, 0]}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match=r"columns \['a'\] have missing values"):
        load_csv(str(path), "y")


def test_stratified_cut_too_small_for_the_classes(make_cfg):
    with pytest.raises(ConfigError, match="cannot hold all 3 classes"):
        train(make_cfg("experiment=iris_mlp", "data.split.val_frac=0.01"))


def test_mistyped_metrics_fail_before_training(make_cfg):
    with pytest.raises(ConfigError, match="optimized_metric='val/accuracy' is not logged"):
        train(make_cfg("optimized_metric=val/accuracy"))
    with pytest.raises(
        ConfigError, match=r"monitor\.metric='val/mae' is not logged for this multiclass task"
    ):
        train(make_cfg("monitor.metric=val/mae"))


def test_checkpoint_with_several_folds(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="with K-fold pick its fold"):
        train(make_cfg("experiment=wine_mlp", "data/split=kfold", f"ckpt_path={tmp_path}/x.ckpt"))


def test_sweeps_select_on_validation_in_the_right_direction():
    check_objective("val/loss", ["minimize"])
    check_objective("val/acc", ["maximize"])
    with pytest.raises(ConfigError, match="leaks it into the model"):
        check_objective("test/acc", ["maximize"])
    with pytest.raises(ConfigError, match=r"set hydra\.sweeper\.direction=maximize"):
        check_objective("val/acc", ["minimize"])


@pytest.mark.slow
def test_predict_refuses_missing_feature_columns(make_cfg, table_csv, tmp_path):
    from dlrecipe.builders import compose
    from dlrecipe.eval import evaluate

    cfg = make_cfg(
        "data=csv",
        f"data.source.path={table_csv}",
        "data.source.target=kind",
        "model=mlp",
        "data.source.features=[a,b,colour]",
    )
    train(cfg)
    import json
    from pathlib import Path

    ckpt = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())["best_checkpoint"]
    new = tmp_path / "new.csv"
    pd.read_csv(table_csv).drop(columns=["b"]).head(5).to_csv(new, index=False)
    eval_cfg = compose([f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'p'}", f"predict.input={new}",
                        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval")  # fmt: skip
    with pytest.raises(ConfigError, match=r"lacks the training features \['b'\]"):
        evaluate(eval_cfg)
