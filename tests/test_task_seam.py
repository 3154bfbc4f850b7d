"""The Task seam: a new kind of target is one registered class (tests/toy_multilabel.py), the
task names live only where the task is inferred and in the task classes, and one table gives
every metric's direction.

    PYTHONPATH=src python -m pytest tests/test_task_seam.py -q
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.lint import lint
from dlrecipe.tasks import direction, metric_names, task_named
from dlrecipe.train import train
from tests.toy_multilabel import MultiLabel

SRC = Path(__file__).resolve().parents[1] / "src" / "dlrecipe"
TASK_NAMES = {"regression", "binary", "multiclass"}
# Where a task's name may be written: where the task is inferred from the targets, and the
# task classes themselves. Everything else asks the task object.
ALLOWED = {"data/info.py", "tasks/builtin.py"}


def test_task_names_appear_only_where_the_task_is_inferred_or_defined():
    found = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in TASK_NAMES:
                found.setdefault(path.relative_to(SRC).as_posix(), []).append(node.lineno)
    assert set(found) <= ALLOWED, {k: v for k, v in found.items() if k not in ALLOWED}
    assert "tasks/builtin.py" in found  # the scan does see the names where they belong


def test_one_direction_table_feeds_every_reader():
    assert [direction(m) for m in ("val/acc", "test/auroc", "val/r2")] == ["max"] * 3
    assert [direction(m) for m in ("val/loss", "val/mae", "train/rmse")] == ["min"] * 3
    assert direction("val/never_logged") is None
    # the toy task's own metric got its direction when the class was registered
    assert direction("val/label_acc") == "max"


def test_optimized_metric_is_a_list_of_names_whatever_its_form():
    assert metric_names(None) == []
    assert metric_names("val/loss") == ["val/loss"]
    assert metric_names(OmegaConf.create(["val/loss", "val/acc"])) == ["val/loss", "val/acc"]
    assert metric_names(3) == ["3"]  # from a summary.json on disk: a name that matches nothing


def test_a_loss_of_another_task_and_an_unknown_task_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match=r"model.loss=bce is for binary/multilabel.*\['mse'"):
        task_named("regression").build_loss("bce")
    # a checkpoint or summary from disk naming a task nobody registered: one line, the fix
    info = DataInfo.from_dict({"task": "ordinal", "input_shape": [4], "class_names": ["a", "b"]})
    with pytest.raises(ConfigError, match=r"task 'ordinal' is unknown.*register_task"):
        _ = info.task_obj


def test_the_linter_reads_a_registered_task_s_metric_direction(make_cfg):
    cfg = make_cfg("monitor.metric=val/label_acc", "monitor.mode=min")
    findings = [f for f in lint(cfg) if f.key == "monitor.mode"]
    assert len(findings) == 1 and "label_acc is better when higher" in findings[0].message
    assert "Set monitor.mode=max" in findings[0].message


def test_a_toy_multilabel_task_trains_tests_and_predicts_through_dlrecipe_train(make_cfg, tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(
        "model=mlp", "data=synthetic", "data.source._target_=tests.toy_multilabel.load_multilabel",
        "data.source.samples=400", "data.source.shape=[5]", "data.source.num_classes=3", "data.source.noise=0.2",
        "data.batch_size=32", "model.net.hidden=[16]", "model.optimizer.lr=0.03",
        "optimized_metric=val/label_acc", "report.enabled=false",
        run_dir=run,
    )  # fmt: skip
    value = train(cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "multilabel" and summary["main_metric"] == "label_acc"
    assert summary["info"]["class_names"] == ["label0", "label1", "label2"]
    for stage in ("val", "test"):
        assert 0.6 < summary[f"{stage}_metrics"][f"{stage}/label_acc"] <= 1.0  # chance is ~0.5
        assert f"{stage}/f1" in summary[f"{stage}_metrics"]
    assert value == summary["val_metrics"]["val/label_acc"]
    # the fit-time sums (Task.score_sum) agree with torchmetrics on the best checkpoint's epoch
    history = pd.read_csv(run / "history.csv").set_index("epoch")
    fit_time = history.loc[summary["best_epoch"] - 1, "val/label_acc"]
    assert fit_time == pytest.approx(summary["val_metrics"]["val/label_acc"], abs=1e-6)
    table = pd.read_csv(run / "test_predictions.csv")
    assert {"prob_label0", "prob_label1", "prob_label2"} <= set(table.columns)
    # the checkpoint still loads with weights_only=True: the task is stored by name only
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["info"]["task"] == MultiLabel.name
