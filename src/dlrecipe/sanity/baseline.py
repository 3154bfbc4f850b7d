"""A baseline to beat: the majority class (or the mean target), fitted on train, scored on val,
next to the real model's validation score after a short fit of the real config.

    python -m dlrecipe.train experiment=breast_cancer_mlp debug=sanity sanity.short_fit_epochs=10

A model that cannot beat a predictor which ignores the inputs has learned nothing from them:
labels disconnected from inputs, a broken pipeline, or far too little training.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig

from dlrecipe.builders import build_model
from dlrecipe.data.datamodule import DataModule
from dlrecipe.predict import split_predictions
from dlrecipe.sanity.result import Check

# How often a predictor that ignores the inputs may pass "beats a baseline" by luck: 1 in 1000.
# 2 standard errors (2.3%) let a model trained on shuffled labels pass on digits at seed 42.
ALPHA = 1e-3


def baseline_score(datamodule: DataModule) -> tuple[str, float, float]:
    """(what, score, noise) of scikit-learn's DummyClassifier / DummyRegressor on validation.

    `noise` is two standard errors of that score over the validation samples, for the table;
    the pass / fail decision is the one-sided test of `beats_chance` / `beats_mean`.
    """
    targets = datamodule.data.targets.numpy()
    fold = datamodule.fold
    return datamodule.info.task_obj.baseline(targets[fold.train], targets[fold.val])


def chance_rate(y_val: np.ndarray) -> float:
    """The highest expected accuracy of any predictor that ignores the inputs: the largest
    class share of the validation labels (sum_c P(predict c) * share_c is at most that)."""
    _, counts = np.unique(np.asarray(y_val), return_counts=True)
    return float(counts.max() / counts.sum())


def beats_chance(
    y_true: np.ndarray, y_pred: np.ndarray, alpha: float = ALPHA
) -> tuple[bool, float, float]:
    """(passed, p-value, standard error): one-sided test that the validation accuracy is above
    chance, the largest class share.

    Under "the model learned nothing" the accuracy has the binomial variance of n samples,
    chance x (1 - chance) / n, only if the predictions are independent. They are not: a model
    on shuffled labels maps similar inputs to the same arbitrary class, so whole groups of a
    true class are right or wrong together (on digits the accuracy of such models spreads
    about 2x wider than binomial). The standard error is therefore the larger of the binomial
    one and the cluster-robust one over the true classes (the spread of per-class accuracies).
    """
    from scipy.stats import norm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    chance = chance_rate(y_true)
    correct = (y_true == y_pred).astype(float)
    accuracy = float(correct.mean())
    classes = np.unique(y_true)
    sizes = np.array([np.sum(y_true == c) for c in classes], dtype=float)
    per_class = np.array([correct[y_true == c].mean() for c in classes])
    k = len(classes)
    robust = (
        (k / (k - 1) if k > 1 else 1.0)
        * float(np.sum(sizes**2 * (per_class - accuracy) ** 2))
        / n**2
    )
    se = float(np.sqrt(max(chance * (1 - chance) / n, robust)))
    p_value = float(norm.sf((accuracy - chance) / se)) if se > 0 else float(accuracy <= chance)
    return p_value < alpha, p_value, se


def beats_mean(model_errors: np.ndarray, base_errors: np.ndarray, alpha: float = ALPHA) -> tuple[bool, float]:  # fmt: skip
    """(passed, p-value): one-sided paired t-test that the model's absolute errors are smaller
    than the mean predictor's on the same validation samples."""
    from scipy.stats import ttest_rel

    diff = np.asarray(base_errors, float) - np.asarray(model_errors, float)
    if len(diff) < 2 or not np.isfinite(diff).all():
        return False, 1.0
    if np.all(diff == diff[0]):  # no spread: the sign decides
        return bool(diff[0] > 0), 0.0 if diff[0] > 0 else 1.0
    p_value = float(ttest_rel(base_errors, model_errors, alternative="greater").pvalue)
    return p_value < alpha, p_value


def beats_baseline(cfg: DictConfig, datamodule: DataModule, epochs: int, min_steps: int = 0) -> Check:  # fmt: skip
    what, base, noise = baseline_score(datamodule)
    steps_per_epoch = max(1, len(datamodule.fold.train) // datamodule.batch_size)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))  # tiny train sets: enough steps
    model = build_model(cfg, datamodule.info)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"), devices=1,
        precision=cfg.trainer.get("precision", "32-true"), max_epochs=epochs, min_epochs=1,
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.trainer.get("gradient_clip_algorithm", "norm"),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    task = datamodule.info.task_obj
    regression = not task.has_classes
    metric = f"val/{task.main_metric}"
    score = float(trainer.validate(model, datamodule=datamodule, verbose=False)[0][metric])
    name = "MAE" if regression else "accuracy"
    y_val = datamodule.data.targets[torch.as_tensor(datamodule.fold.val)].numpy()
    predicted = split_predictions(model, datamodule, datamodule.fold.val)
    if regression:
        guess = float(
            datamodule.data.targets[torch.as_tensor(datamodule.fold.train)].double().mean()
        )
        model_errors = np.abs(predicted["prediction"].to_numpy() - y_val)
        ok, p_value = beats_mean(model_errors, np.abs(y_val - guess))
        bar = f"MAE below the {what}'s, paired one-sided t-test p < {ALPHA:g}"
    else:
        chance = chance_rate(y_val)
        ok, p_value, se = beats_chance(predicted["target"], predicted["prediction"])
        bar = (f"accuracy above chance ({chance:.4g}, the largest class share) by a one-sided "
               f"test, p < {ALPHA:g} (standard error {se:.3g}: binomial or, when larger, "
               "clustered by true class)")  # fmt: skip
    return Check(
        "beats a baseline",
        "pass" if ok else "fail",
        f"model {score:.4g} after {epochs} epochs vs {what} {base:.4g} (val {name}); "
        f"p = {p_value:.2g}",
        bar,
        hint=f"the model does no better than a {what} that ignores the inputs. Usual causes: "
        "labels that do not belong to their inputs (misaligned after a shuffle, sort or join), "
        "inputs that carry no signal after preprocessing, a learning rate far off, or a fit too "
        "short to leave the starting point (sanity.short_fit_epochs; for regression, "
        "data.target_scaling=none leaves raw targets far from 0, which take many epochs to reach)",
        values={
            "model": score,
            "baseline": base,
            "baseline_kind": what,
            "noise": noise,
            "p_value": p_value,
            "alpha": ALPHA,
            "metric": metric,
            "epochs": epochs,
        },
    )
