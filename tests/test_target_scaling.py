"""Regression on a real-scale target (data.target_scaling): trained on the scaled target,
reported in the target's own units, the statistics of the training split kept in the checkpoint.

    pytest tests/test_target_scaling.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlrecipe.builders import build_data, compose
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.lint import lint
from dlrecipe.train import train


@pytest.fixture
def price_csv(tmp_path: Path) -> Path:
    """400 houses, 5 features, price ≈ 250,000 ± 50,000: linear in the features plus small noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    w = np.array([1.0, -0.8, 0.6, 0.4, -0.3])
    price = 250_000 + 50_000 * 0.995 * (x @ (w / np.linalg.norm(w)))
    price += rng.normal(scale=3_500, size=400)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)]).assign(price=price)
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path


def _price_cfg(make_cfg, price_csv, *overrides, out="run"):
    return make_cfg("data=csv", f"data.source.path={price_csv}", "data.source.target=price", "model=mlp",
                    "trainer.max_epochs=30", f"paths.output_dir={price_csv.parent / out}",
                    *overrides)  # fmt: skip


def _summary(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())


def test_linear_regression_fits_the_price_table(price_csv):
    from sklearn.linear_model import LinearRegression

    frame = pd.read_csv(price_csv)
    x, y = frame.drop(columns="price"), frame["price"]
    assert 240_000 < y.mean() < 260_000 and 40_000 < y.std() < 60_000
    assert LinearRegression().fit(x, y).score(x, y) >= 0.99


def test_price_regression_reaches_r2_095_in_the_targets_units(make_cfg, price_csv, tmp_path):
    cfg = _price_cfg(make_cfg, price_csv)  # the default settings (30 epochs), scaling on
    train(cfg)
    summary = _summary(cfg)
    assert summary["test_metrics"]["test/r2"] >= 0.95
    assert summary["test_metrics"]["test/mae"] < 15_000  # in dollars, not in standard deviations
    assert not any("< 0" in note for note in summary["notes"])
    run = Path(cfg.paths.output_dir)
    predictions = pd.read_csv(run / "test_predictions.csv")
    assert predictions["prediction"].mean() == pytest.approx(250_000, rel=0.05)
    mae = (predictions["prediction"] - predictions["target"]).abs().mean()
    assert mae == pytest.approx(summary["test_metrics"]["test/mae"], rel=1e-4)

    # the checkpoint carries the training split's statistics, in the DataModule and the model
    checkpoint = torch.load(summary["best_checkpoint"], weights_only=True)
    datamodule = build_data(cfg)
    datamodule.setup("fit")
    train_targets = datamodule.data.targets[torch.as_tensor(datamodule.fold.train)].double()
    scaling = checkpoint["dlrecipe_data"]["target_scaling"]
    assert scaling["mean"] == pytest.approx(float(train_targets.mean()))
    assert scaling["std"] == pytest.approx(float(train_targets.std(unbiased=False)))
    assert float(checkpoint["state_dict"]["target_mean"]) == pytest.approx(scaling["mean"])
    assert float(checkpoint["state_dict"]["target_std"]) == pytest.approx(scaling["std"])
    all_targets = datamodule.data.targets.double()
    assert scaling["mean"] != pytest.approx(float(all_targets.mean()), abs=1e-3)  # train only

    eval_cfg = compose([f"ckpt_path={summary['best_checkpoint']}", "trainer.accelerator=cpu",
                        f"paths.output_dir={tmp_path / 'eval'}",
                        "trainer.enable_progress_bar=false"], "eval")  # fmt: skip
    got = evaluate(eval_cfg)
    for key, value in summary["test_metrics"].items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_raw_targets_end_with_a_note_on_negative_r2(make_cfg, price_csv):
    cfg = _price_cfg(make_cfg, price_csv, "data.target_scaling=none", "trainer.max_epochs=2",
                     "report.enabled=false", out="raw")  # fmt: skip
    train(cfg)
    summary = _summary(cfg)
    assert summary["test_metrics"]["test/r2"] < 0
    assert any("test/r2" in note and "target_scaling" in note for note in summary["notes"])


def test_unknown_target_scaling_is_refused(make_cfg, price_csv):
    with pytest.raises(ConfigError, match=r"data\.target_scaling"):
        build_data(_price_cfg(make_cfg, price_csv, "data.target_scaling=minmax"))


def test_huber_on_raw_targets_is_linted():
    found = lint(compose(["experiment=diabetes_mlp", "model.loss=huber",
                          "data.target_scaling=none"]))  # fmt: skip
    assert any(f.key == "data.target_scaling" and "delta" in f.message for f in found)
    scaled = lint(compose(["experiment=diabetes_mlp", "model.loss=huber"]))
    assert not any(f.key == "data.target_scaling" for f in scaled)


def test_diabetes_passes_the_sanity_checks_it_failed_on_raw_targets(make_cfg):
    from dlrecipe.sanity import run_checks

    cfg = make_cfg("experiment=diabetes_mlp", "debug=sanity", "sanity.gradcheck_samples=1")
    report = run_checks(cfg, build_data(cfg))
    status = {c.name: c.status for c in report.checks}
    assert status["overfit one batch"] == "pass" and status["beats a baseline"] == "pass", status
    assert report.passed


def test_a_checkpoint_from_before_target_scaling_still_evaluates(make_cfg, price_csv, tmp_path):
    """Older regression checkpoints have no target statistics: they trained on the raw target."""
    cfg = _price_cfg(make_cfg, price_csv, "data.target_scaling=none", "trainer.max_epochs=1",
                     "report.enabled=false", out="old")  # fmt: skip
    train(cfg)
    summary = _summary(cfg)
    checkpoint = torch.load(summary["best_checkpoint"], weights_only=True)
    for key in ("target_mean", "target_std"):
        del checkpoint["state_dict"][key]
    del checkpoint["dlrecipe_data"]["target_scaling"]
    old = tmp_path / "old" / "checkpoints" / "old.ckpt"
    torch.save(checkpoint, old)
    got = evaluate(compose([f"ckpt_path={old}", "trainer.accelerator=cpu",
                            f"paths.output_dir={tmp_path / 'eval_old'}",
                            "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    assert got["test/mae"] == pytest.approx(summary["test_metrics"]["test/mae"], abs=1e-6)
