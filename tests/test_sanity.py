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


# -- "beats a baseline": a one-sided test with the variance of the validation samples ---------
def _predictions(per_class_correct: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced true labels, `size` per class; class c has per_class_correct[c] right answers."""
    k = len(per_class_correct)
    y_true = np.repeat(np.arange(k), size)
    y_pred = (y_true + 1) % k  # wrong ...
    for c, right in enumerate(per_class_correct):
        y_pred[c * size : c * size + right] = c  # ... except the first `right` of each class
    return y_true, y_pred


def test_chance_criterion_on_numbers():
    from dlrecipe.sanity.baseline import beats_chance, beats_mean, chance_rate

    assert chance_rate(np.array([0, 0, 1, 2])) == 0.5  # the largest class share
    # digits: 270 validation images, 27 per class. 41 right (0.152, what a model on shuffled
    # labels reached at seed 42) spread over the classes: above the old bar of chance + 2 SE
    # (0.1365), but not beyond noise at p < 0.001 (binomial z = 2.9)
    spread = _predictions([4, 4, 4, 4, 4, 4, 4, 4, 4, 5], 27)
    assert (spread[0] == spread[1]).sum() == 41 and not beats_chance(*spread)[0]
    # 47 right (0.174) is beyond binomial noise (z = 4.1) when spread evenly over the classes ...
    assert beats_chance(*_predictions([5, 5, 5, 5, 5, 5, 5, 4, 4, 4], 27))[0]
    # ... but not when three classes carry them: whole groups of similar images go one way
    # together, which is how a model on shuffled labels gets lucky (clustered standard error)
    clustered = _predictions([20, 15, 9, 1, 1, 1, 0, 0, 0, 0], 27)
    ok, p_value, se = beats_chance(*clustered)
    assert not ok and p_value > 0.01 and se > 2 * np.sqrt(0.1 * 0.9 / 270)
    assert beats_chance(*_predictions([26, 27, 27, 25, 27, 26, 27, 27, 26, 27], 27))[0]  # healthy
    # wine: 27 samples in 3 classes of 9; 26 right passes, 16 right may be luck
    assert beats_chance(*_predictions([9, 9, 8], 9))[0]
    assert not beats_chance(*_predictions([9, 5, 2], 9))[0]
    rng = np.random.default_rng(0)
    base = np.abs(rng.normal(size=100))
    assert beats_mean(0.3 * base, base)[0]
    assert not beats_mean(base + 0.01 * rng.normal(size=100), base)[0]


def test_shuffled_labels_on_digits_at_the_default_seed_fail_the_baseline(make_cfg):
    # The whole suite at its defaults and seed 42, as `debug=sanity sanity.shuffle_labels=true`
    # runs it: a model on shuffled labels reached 0.15 here and passed the old bar (0.1365).
    checks = _failing_run(
        make_cfg("experiment=digits_cnn", "debug=sanity", "sanity.shuffle_labels=true")
    )
    baseline = checks["beats a baseline"]
    assert baseline["status"] == "fail", baseline["measured"]
    assert baseline["values"]["p_value"] >= baseline["values"]["alpha"]
    assert {c["status"] for n, c in checks.items() if n != "beats a baseline"} <= {"pass", "warn"}


def test_balanced_shuffle_leaves_no_agreement_with_the_true_labels():
    from dlrecipe.sanity import balanced_shuffle

    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=397, p=[0.63, 0.3, 0.07])
    for seed in range(5):
        shuffled = balanced_shuffle(labels, np.random.default_rng(seed))
        assert np.array_equal(np.sort(shuffled), np.sort(labels))  # the same labels, moved
        table = np.zeros((3, 3))
        np.add.at(table, (labels, shuffled), 1)
        counts = np.bincount(labels)
        assert np.abs(table - np.outer(counts, counts) / len(labels)).max() < 2.0
    # a plain permutation of these labels misses independence by more (here by 3-7 samples)
    plain = labels[np.random.default_rng(1).permutation(len(labels))]
    table = np.zeros((3, 3))
    np.add.at(table, (labels, plain), 1)
    assert np.abs(table - np.outer(counts, counts) / len(labels)).max() > 2.0
