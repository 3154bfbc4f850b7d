"""Real few-epoch runs on CPU: every bundled data set and task, CSV and image folders, eval, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from dlrecipe.builders import compose
from dlrecipe.eval import evaluate
from dlrecipe.train import train

pytestmark = pytest.mark.slow


def _summary(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())


def _run(make_cfg, *overrides):
    cfg = make_cfg(*overrides)
    value = train(cfg)
    return cfg, value, _summary(cfg)


@pytest.mark.parametrize(
    ("experiment", "task", "metric"),
    [
        ("digits_cnn", "multiclass", "test/acc"),
        ("digits_mlp", "multiclass", "test/acc"),
        ("breast_cancer_mlp", "binary", "test/auroc"),
        ("wine_mlp", "multiclass", "test/f1"),
        ("iris_mlp", "multiclass", "test/acc"),
        ("diabetes_mlp", "regression", "test/mae"),
    ],
)
def test_each_bundled_experiment_trains_and_reports(make_cfg, experiment, task, metric):
    cfg, value, summary = _run(make_cfg, f"experiment={experiment}", "report.enabled=true")
    assert summary["task"] == task
    assert metric in summary["test_metrics"]
    assert value == pytest.approx(summary["val_metrics"]["val/loss"])
    assert summary["params_total"] > 0 and summary["train_steps"] > 0
    run = cfg.paths.output_dir
    for name in ("history.csv", "learning_curves.png", "csv/metrics.csv"):
        assert (Path(run) / name).is_file(), name


def test_csv_regression_and_classification(make_cfg, table_csv):
    for target, task in (("value", "regression"), ("label", "binary"), ("kind", "multiclass")):
        cfg = make_cfg("data=csv", f"data.source.path={table_csv}", f"data.source.target={target}", "model=mlp",
                       "data.source.features=[a,b,colour]", "data.split.stratify=false",
                       f"paths.output_dir={table_csv.parent}/run_{target}")  # fmt: skip
        train(cfg)
        summary = _summary(cfg)
        assert summary["task"] == task


def test_image_folder_trains_a_cnn(make_cfg, image_dir):
    cfg = make_cfg("data=image_folder", f"data.source.root={image_dir}", "data.num_workers=0",
                   "model.net.channels=[8,16]", "trainer.max_epochs=10", "data.batch_size=8")  # fmt: skip
    train(cfg)
    summary = _summary(cfg)
    assert summary["test_metrics"]["test/acc"] > 0.5  # the bars are easy; chance is 1/3


def _best_ckpt(cfg):
    summary = _summary(cfg)
    return summary["best_checkpoint"], summary["test_metrics"]


@pytest.mark.parametrize("experiment", ["digits_cnn", "diabetes_mlp", "breast_cancer_mlp"])
def test_eval_reproduces_the_test_metrics_exactly(make_cfg, tmp_path, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    train(cfg)
    ckpt, expected = _best_ckpt(cfg)
    eval_cfg = compose([f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'eval'}",
                        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval")  # fmt: skip
    got = evaluate(eval_cfg)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_eval_uses_the_checkpoints_own_config_when_the_run_dir_is_gone(make_cfg, tmp_path):
    cfg = make_cfg("experiment=wine_mlp")
    train(cfg)
    ckpt, expected = _best_ckpt(cfg)
    moved = tmp_path / "elsewhere" / "checkpoints"
    moved.mkdir(parents=True)
    target = moved / "model.ckpt"
    target.write_bytes(Path(ckpt).read_bytes())
    got = evaluate(compose([f"ckpt_path={target}", f"paths.output_dir={tmp_path / 'ev'}",
                            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    assert got["test/acc"] == pytest.approx(expected["test/acc"], abs=1e-6)


def test_predict_writes_one_row_per_csv_row(make_cfg, tmp_path, table_csv):
    cfg = make_cfg("data=csv", f"data.source.path={table_csv}", "data.source.target=kind", "model=mlp",
                   "data.source.features=[a,b,colour]")  # fmt: skip
    train(cfg)
    ckpt, _ = _best_ckpt(cfg)
    new_rows = pd.read_csv(table_csv).head(17)
    new_path = tmp_path / "new.csv"
    new_rows.to_csv(new_path, index=False)
    out_dir = tmp_path / "pred"
    evaluate(compose([f"ckpt_path={ckpt}", f"paths.output_dir={out_dir}", f"predict.input={new_path}",
                      "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    table = pd.read_csv(out_dir / "predictions.csv")
    assert len(table) == 17
    assert {"prediction", "prob_x", "prob_y", "prob_z", "target"} <= set(table.columns)
    probs = table[["prob_x", "prob_y", "prob_z"]].to_numpy().sum(1)
    assert torch.allclose(torch.as_tensor(probs), torch.ones(17, dtype=torch.float64), atol=1e-5)


def test_predict_writes_one_row_per_image(make_cfg, tmp_path, image_dir):
    cfg = make_cfg("data=image_folder", f"data.source.root={image_dir}", "data.num_workers=0",
                   "model.net.channels=[8]")  # fmt: skip
    train(cfg)
    ckpt, _ = _best_ckpt(cfg)
    out_dir = tmp_path / "pred"
    evaluate(compose([f"ckpt_path={ckpt}", f"paths.output_dir={out_dir}", f"predict.input={image_dir / 'bars'}",
                      "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    table = pd.read_csv(out_dir / "predictions.csv")
    assert len(table) == 20 and set(table["prediction"]) <= {"bars", "cols", "dots"}
