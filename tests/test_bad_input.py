"""Bad input fails with a ConfigError naming the key and the fix, before any training step."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrecipe.builders import compose
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.train import train


def _fails(make_cfg, match: str, *overrides: str) -> None:
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError, match=match):
        train(cfg)
    # Nothing was trained: no checkpoint and no summary in the run directory.
    assert not (Path(cfg.paths.output_dir) / "summary.json").exists()


def test_missing_csv(make_cfg, tmp_path):
    _fails(make_cfg, r"data.source.path=.*does not exist", "data=csv", f"data.source.path={tmp_path}/no.csv",
           "data.source.target=y", "model=mlp")  # fmt: skip


def test_unknown_target_column(make_cfg, table_csv):
    _fails(make_cfg, r"data.source.target='price' is not a column", "data=csv", f"data.source.path={table_csv}",
           "data.source.target=price", "model=mlp")  # fmt: skip


def test_missing_image_folder(make_cfg, tmp_path):
    _fails(
        make_cfg,
        r"does not exist. Fix: data.source.root",
        "data=image_folder",
        f"data.source.root={tmp_path}/nothing",
    )


def test_missing_torchvision_files_say_how_to_get_them(make_cfg, tmp_path):
    _fails(make_cfg, r"data.source.download=true", "data=mnist", f"paths.data_dir={tmp_path}")


def test_split_fractions_leave_no_training_data(make_cfg):
    _fails(
        make_cfg,
        r"val_frac \+ data.split.test_frac",
        "data.split.val_frac=0.6",
        "data.split.test_frac=0.4",
    )


@pytest.mark.parametrize("value", [0, -8])
def test_non_positive_batch_size(make_cfg, value):
    _fails(make_cfg, r"data.batch_size=.* must be a positive integer", f"data.batch_size={value}")


@pytest.mark.parametrize("value", [0, -0.1])
def test_non_positive_learning_rate(make_cfg, value):
    _fails(
        make_cfg, r"model.optimizer.lr=.* must be a positive number", f"model.optimizer.lr={value}"
    )


def test_cnn_deeper_than_the_image_allows(make_cfg):
    _fails(make_cfg, r"model.net.channels=\[8, 8, 8, 8\] halves the image 4 times.*at most 3",
           "model.net.channels=[8,8,8,8]")  # fmt: skip


def test_cnn_on_a_table(make_cfg):
    _fails(make_cfg, r"model=cnn needs images.*model=mlp", "data=wine")


def test_regression_loss_on_a_classification_target(make_cfg):
    _fails(make_cfg, r"model.loss=mse is for regression targets, but this data is multiclass",
           "experiment=wine_mlp", "model.loss=mse")  # fmt: skip


def test_classification_loss_on_a_regression_target(make_cfg):
    _fails(make_cfg, r"model.loss=cross_entropy is for multiclass.*regression",
           "experiment=diabetes_mlp", "model.loss=cross_entropy")  # fmt: skip


def test_start_checkpoint_that_does_not_exist(make_cfg, tmp_path):
    _fails(make_cfg, r"ckpt_path=.*does not exist", f"ckpt_path={tmp_path}/missing.ckpt")


@pytest.mark.slow
def test_start_checkpoint_from_another_model(make_cfg, tmp_path):
    first = make_cfg("experiment=wine_mlp", run_dir=tmp_path / "wine")
    train(first)
    ckpt = tmp_path / "wine" / "checkpoints" / "last.ckpt"
    _fails(make_cfg, r"comes from another model", "experiment=digits_cnn", f"ckpt_path={ckpt}")


def test_eval_of_a_missing_checkpoint(tmp_path):
    cfg = compose([f"ckpt_path={tmp_path}/gone.ckpt", f"paths.output_dir={tmp_path}/ev"], "eval")
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(cfg)
