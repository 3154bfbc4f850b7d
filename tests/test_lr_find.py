"""python -m dlrecipe.lr_find: a finite suggestion in range, and a short fit with it trains."""

from __future__ import annotations

import json

import pytest

from dlrecipe.builders import build_data, build_model, compose
from dlrecipe.edge import exit_on_config_error
from dlrecipe.lr_find import lr_find
from dlrecipe.train import train
from tests.conftest import QUICK

# model/finetuning=full would unfreeze everything at epoch 0 of a fit; the range test keeps it frozen
FINETUNE = ["model=finetune", "model.net.backbone.name=test_resnet", "model.net.backbone.weights=none",
            "model.net.input_size=32", "model/finetuning=full", "lr_find.num_training=40",
            "data.batch_size=128"]  # fmt: skip


def find_cfg(tmp_path, *overrides):
    return compose([*QUICK, f"paths.output_dir={tmp_path}", *overrides], "lr_find")


def test_suggestion_is_in_range_and_trains_the_digits_mlp(tmp_path):
    result = lr_find(
        find_cfg(tmp_path / "find", "experiment=digits_mlp", "lr_find.num_training=60")
    )
    lr = result["suggested_lr"]
    assert 1e-6 < lr < 1.0
    assert result["override"] == f"model.optimizer.lr={lr:.3g}"
    assert (tmp_path / "find" / "lr_find.png").stat().st_size > 5_000
    assert json.loads((tmp_path / "find" / "lr_find.json").read_text())["suggested_lr"] == lr
    assert len((tmp_path / "find" / "lr_find.csv").read_text().splitlines()) > 20
    # Train with exactly the printed override: the loss falls and accuracy is far above chance.
    run = tmp_path / "train"
    cfg = compose([*QUICK, f"paths.output_dir={run}", "experiment=digits_mlp", "logger=none",
                   "trainer.max_epochs=3", "report.enabled=false", result["override"]])  # fmt: skip
    train(cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_metrics"]["val/acc"] > 0.8  # chance is 0.1
    history = (run / "history.csv").read_text().splitlines()
    header, first, last = history[0].split(","), history[1].split(","), history[-1].split(",")
    col = header.index("train/loss")
    assert float(last[col]) < float(first[col])


@pytest.mark.parametrize("experiment", ["breast_cancer_mlp", "diabetes_mlp"])
def test_binary_and_regression_get_a_suggestion(tmp_path, experiment):
    result = lr_find(find_cfg(tmp_path, f"experiment={experiment}", "lr_find.num_training=40"))
    assert 1e-6 < result["suggested_lr"] < 1.0


@pytest.mark.slow
def test_finetune_suggests_the_heads_rate(tmp_path, capsys):
    result = lr_find(find_cfg(tmp_path, *FINETUNE))
    assert 1e-6 < result["suggested_lr"] < 1.0
    assert "head's learning rate" in capsys.readouterr().out
    # The rate found is the head's: only the head's parameters were in the optimizer.
    cfg = find_cfg(tmp_path, *FINETUNE)
    head = sum(p.numel() for p in build_model(cfg, build_data(cfg).info).net.head.parameters())
    assert result["trained_parameters"] == head < result["parameters"]


def test_lr_scaling_is_undone_in_the_override(tmp_path):
    result = lr_find(find_cfg(tmp_path, "experiment=wine_mlp", "lr_scaling.rule=linear",
                              "data.batch_size=32", "lr_find.num_training=40"))  # fmt: skip
    # build_model multiplies the configured lr by 32 / 64: the override is twice the rate found
    assert result["override"] == f"model.optimizer.lr={2 * result['suggested_lr']:.3g}"


@pytest.mark.parametrize(
    ("override", "key"),
    [("lr_find.min_lr=0", "lr_find.min_lr"), ("lr_find.max_lr=1e-7", "lr_find.min_lr"),
     ("lr_find.num_training=5", "lr_find.num_training"), ("lr_find.mode=cubic", "lr_find.mode")],
)  # fmt: skip
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, override, key):
    with pytest.raises(SystemExit) as exit_info:
        exit_on_config_error(lr_find)(find_cfg(tmp_path, "experiment=wine_mlp", override))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1
