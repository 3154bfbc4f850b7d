"""The training monitor on real short runs: CSV columns, TensorBoard histograms, the LR warning."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from dlrecipe.callbacks.monitor import UpdateRatioWarning
from dlrecipe.train import train

NO_REPORT = ["report.enabled=false"]


def test_monitor_writes_dynamics_to_csv_and_tensorboard(make_cfg):
    cfg = make_cfg("callbacks=monitor", "logger=many", "trainer.max_epochs=1",
                   "callbacks.monitor.every_n_steps=5", "callbacks.progress_bar=null", *NO_REPORT)  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    metrics = pd.read_csv(run / "csv" / "metrics.csv")
    monitored = metrics.dropna(subset=["monitor/grad_norm"])
    assert list(monitored["step"]) == [0, 5, 10, 15]  # 19 steps of 64 digits, every 5th
    for prefix in ("monitor/grad_norm", "monitor/update_ratio/net.features.0",
                   "monitor/update_ratio_median", "monitor/act_mean/net.features.2",
                   "monitor/act_std/net.head.2", "monitor/act_dead/net.head.2"):  # fmt: skip
        values = monitored[prefix]
        assert values.map(math.isfinite).all(), prefix
    assert (monitored["monitor/update_ratio_median"] > 0).all()
    assert monitored["monitor/act_dead/net.head.2"].between(0, 1).all()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = events.Tags()
    for tag in ("monitor/weights/net.features.0", "monitor/grads/net.head.4",
                "monitor/activations/net.features.2"):  # fmt: skip
        assert tag in tags["histograms"], tag
        assert [e.step for e in events.Histograms(tag)] == [0, 5, 10, 15]
    assert "monitor/first_filters" in tags["images"]
    assert "monitor/grad_norm" in tags["scalars"]


def test_update_ratio_warning_fires_with_a_huge_learning_rate(make_cfg):
    cfg = make_cfg("experiment=wine_mlp", "callbacks=monitor", "model.optimizer.lr=20",
                   "trainer.max_epochs=4", "callbacks.monitor.every_n_steps=1",
                   "callbacks.early_stopping=null", *NO_REPORT)  # fmt: skip
    with pytest.warns(UpdateRatioWarning, match=r"lower the learning rate, model\.optimizer\.lr"):
        train(cfg)


def test_no_warning_at_the_default_learning_rate(make_cfg, recwarn):
    cfg = make_cfg("experiment=wine_mlp", "callbacks=monitor", "trainer.max_epochs=4",
                   "callbacks.monitor.every_n_steps=1", "callbacks.early_stopping=null", *NO_REPORT)  # fmt: skip
    train(cfg)
    assert not [w for w in recwarn if issubclass(w.category, UpdateRatioWarning)]
