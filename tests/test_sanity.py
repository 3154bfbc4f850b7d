"""The sanity suite (debug=sanity): it passes on the default experiment, and each deliberately
broken config fails the check that should catch it, with a hint that names the cause."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dlrecipe.builders import build_data, build_model
from dlrecipe.sanity.data_checks import class_balance, disjoint_splits
from dlrecipe.sanity.gradients import batch_independence, gradcheck_layers
from dlrecipe.sanity.loss_checks import initial_loss, train_batch
from dlrecipe.train import train

FAST = [
    "debug=sanity",
    "sanity.overfit_max_steps=30",
    "sanity.short_fit_epochs=1",
    "sanity.short_fit_min_steps=10",
]


def _checks(cfg) -> dict[str, dict]:
    report = json.loads((Path(cfg.paths.output_dir) / "sanity.json").read_text())
    return {c["name"]: c for c in report["checks"]}


def _failing_run(cfg) -> dict[str, dict]:
    with pytest.raises(SystemExit) as exit_info:
        train(cfg)
    assert exit_info.value.code == 1
    return _checks(cfg)


def test_digits_cnn_passes_every_check(make_cfg):
    cfg = make_cfg("experiment=digits_cnn", *FAST, "sanity.gradcheck_samples=1")
    assert train(cfg) is None  # the suite replaces the fit: no metric, no checkpoints
    checks = _checks(cfg)
    assert {c["status"] for c in checks.values()} == {"pass"}, checks
    assert set(checks) >= {"splits disjoint", "class balance", "initial loss", "overfit one batch",
                           "gradient check (float64)", "beats a baseline"}  # fmt: skip
    assert checks["initial loss"]["values"]["chance_loss"] == pytest.approx(np.log(10), rel=1e-4)
    assert checks["beats a baseline"]["values"]["baseline"] < 0.2  # majority class of 10
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


@pytest.mark.slow  # a diverging CNN computes on subnormal floats: ~20-50 s on a busy 2-core CPU
def test_learning_rate_10_fails_overfit_and_says_the_lr_is_too_high(make_cfg):
    checks = _failing_run(
        make_cfg(
            "experiment=digits_cnn", *FAST, "model.optimizer.lr=10", "sanity.gradcheck_samples=1"
        )
    )
    overfit = checks["overfit one batch"]
    assert overfit["status"] == "fail"
    assert "model.optimizer.lr=10" in overfit["hint"] and "too high" in overfit["hint"]
    assert checks["gradient check (float64)"]["status"] == "pass"  # the code is fine; the LR is not


def test_shuffled_labels_fail_the_baseline(make_cfg):
    checks = _failing_run(make_cfg("experiment=wine_mlp", *FAST, "sanity.shuffle_labels=true"))
    assert checks["beats a baseline"]["status"] == "fail"
    assert "labels" in checks["beats a baseline"]["hint"]
    assert checks["splits disjoint"]["status"] == "pass"


def test_unscaled_inputs_fail_the_initial_loss(make_cfg):
    checks = _failing_run(make_cfg("experiment=wine_mlp", *FAST, "data/normalization=none",
                                   "model.net.batch_norm=false"))  # fmt: skip
    check = checks["initial loss"]
    assert check["status"] == "fail" and check["values"]["ratio"] > 10
    assert "normalized" in check["hint"]


def test_regression_initial_loss_is_the_loss_of_predicting_zero(make_cfg):
    cfg = make_cfg("experiment=diabetes_mlp", "debug=sanity")
    dm = build_data(cfg)
    dm.setup("fit")
    x, y = train_batch(dm, 64, 0)
    check = initial_loss(build_model(cfg, dm.info), (x, y), 1.0)
    assert check.values["chance_loss"] == pytest.approx(float((y**2).mean()), rel=1e-5)
    assert check.status == "pass"  # outputs start near 0; raw targets keep the ratio ~1


class _WrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 3  # the bug: d(2x)/dx is 2


class _MixesTheBatch(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)  # every output depends on every sample


def _digits_model(make_cfg):
    cfg = make_cfg("experiment=digits_mlp", "debug=sanity")
    dm = build_data(cfg)
    dm.setup("fit")
    return build_model(cfg, dm.info), train_batch(dm, 8, 0)


def test_gradcheck_catches_a_wrong_backward_and_batch_mixing(make_cfg):
    model, batch = _digits_model(make_cfg)
    assert gradcheck_layers(model, batch, 2).status == "pass"
    assert batch_independence(model, batch).status == "pass"

    class Broken(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return _WrongBackward.apply(self.net(x))

    model.net = Broken(model.net)
    check = gradcheck_layers(model, batch, 2)
    assert check.status == "fail" and "net" in check.values["failures"]
    model.net = nn.Sequential(nn.Flatten(), _MixesTheBatch(), nn.Linear(64, 10))
    assert batch_independence(model, batch).status == "fail"


def test_overlapping_splits_and_imbalance_are_reported(make_cfg):
    cfg = make_cfg("experiment=breast_cancer_mlp", "data/split=stratified_kfold", "data.split.k=3")
    dm = build_data(cfg)
    check = disjoint_splits(dm)
    assert check.status == "pass" and check.values["folds"] == 3
    leaky = dataclasses.replace(dm.folds[0])
    object.__setattr__(leaky, "test", np.concatenate([leaky.test, leaky.train[:5]]))
    dm._folds = [leaky, *dm.folds[1:]]
    check = disjoint_splits(dm)
    assert check.status == "fail" and "share 5 samples" in check.measured
    assert class_balance(dm, max_ratio=3.0).status == "pass"  # 63 % / 37 %: ratio 1.7
    balance = class_balance(dm, max_ratio=1.5)
    assert balance.status == "warn" and "majority" in balance.hint
