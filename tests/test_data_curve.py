"""python -m dlrecipe.data_curve: the curve rises on digits, the doubling estimate made from the
runs up to half the data predicts the full-data score, subsets train on train data only."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dlrecipe.builders import build_data, compose
from dlrecipe.data.loaders import to_float
from dlrecipe.data_curve import data_curve, train_subset
from dlrecipe.edge import exit_on_config_error
from dlrecipe.report.data_curve import extrapolate, size_means
from tests.conftest import QUICK

CURVE = ["experiment=digits_mlp", "logger=none", "trainer.max_epochs=8", "data.split.val_frac=0.3",
         "data.split.test_frac=0.1", "data_curve.fractions=[0.125,0.25,0.5,1.0]",
         "data_curve.seeds=2"]  # fmt: skip


def curve_cfg(tmp_path, *overrides):
    return compose([*QUICK, f"paths.output_dir={tmp_path}", *CURVE, *overrides], "data_curve")


@pytest.mark.slow
def test_digits_curve_rises_and_the_half_data_estimate_predicts_full_data(tmp_path):
    result = data_curve(curve_cfg(tmp_path))
    rows = pd.read_csv(tmp_path / "data_curve.csv")
    assert (tmp_path / "data_curve.png").stat().st_size > 10_000
    assert len(rows) == 8 and set(rows.fraction) == {0.125, 0.25, 0.5, 1.0}
    val = size_means(result["rows"], "val_score")
    means = [m for _, m, _, _ in val]
    assert means == sorted(means) and means[-1] - means[0] > 0.02  # rises with size
    # same_steps: every subset trained for about as many optimizer steps as the full set
    assert rows.steps.max() <= 1.5 * rows.steps.min()
    # The estimator, given only the runs up to 50 %, predicts the 100 % runs' mean score.
    half = rows[rows.fraction <= 0.5]
    full_size, full_mean = val[-1][0], val[-1][1]
    estimate = extrapolate(half.train_size.to_numpy(), half.val_score.to_numpy(), full_size,
                           higher_is_better=True, seeds=2, floor=0.5 / 540)  # fmt: skip
    assert estimate.low <= full_mean <= estimate.high, (estimate, full_mean)
    assert estimate.high - estimate.low < 0.1  # an interval that says something
    verdict = " ".join(json.loads((tmp_path / "data_curve.json").read_text())["verdict"])
    assert f"doubling the training data ({full_size} -> {2 * full_size} samples)" in verdict
    assert "prediction interval" in verdict and "straight line" in verdict


def test_subsets_are_stratified_and_drawn_from_train_only(tmp_path):
    cfg = compose([*QUICK, f"paths.output_dir={tmp_path}", "data=digits"], "data_curve")
    datamodule = build_data(cfg)
    fold, labels = datamodule.fold, datamodule.data.targets.numpy()
    subset = train_subset(datamodule, 0.25, seed=3)
    assert set(subset) <= set(fold.train) and len(subset) == len(fold.train) - math.ceil(
        0.75 * len(fold.train)
    )
    shares = np.bincount(labels[subset], minlength=10) / len(subset)
    assert np.abs(shares - np.bincount(labels[fold.train]) / len(fold.train)).max() < 0.01
    twin = datamodule.with_train(subset, seed=5)
    twin.setup("fit")  # normalization refitted on the subset, val and test untouched
    assert np.array_equal(twin.fold.train, np.sort(subset))
    assert np.array_equal(twin.fold.val, fold.val) and np.array_equal(twin.fold.test, fold.test)
    x = to_float(datamodule.data.inputs[torch.as_tensor(subset)])
    assert np.allclose(twin.normalization.mean.squeeze(), x.mean(), atol=1e-4)


def test_straight_power_law_is_recovered_exactly():
    sizes = np.repeat([100, 200, 400, 800], 2)
    scores = 1 - 2.0 * sizes**-0.5
    est = extrapolate(sizes, scores, 1600, higher_is_better=True, seeds=2)
    assert est.score == pytest.approx(1 - 2.0 * 1600**-0.5, abs=1e-9)
    assert est.slope == pytest.approx(0.5, abs=1e-9) and est.low <= est.score <= est.high


@pytest.mark.parametrize(
    ("override", "key"),
    [("data_curve.fractions=[0.5,1.5]", "data_curve.fractions"),
     ("data_curve.fractions=[0,1.0]", "data_curve.fractions"),
     ("data_curve.fractions=[1.0]", "data_curve.fractions"),
     ("data_curve.seeds=0", "data_curve.seeds"),
     ("data_curve.fractions=[0.001,1.0]", "data_curve.fractions")],
)  # fmt: skip
def test_bad_settings_exit_2_with_one_line_naming_the_key(tmp_path, capsys, override, key):
    with pytest.raises(SystemExit) as exit_info:
        exit_on_config_error(data_curve)(curve_cfg(tmp_path, override))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("frac*"))  # refused before any training
