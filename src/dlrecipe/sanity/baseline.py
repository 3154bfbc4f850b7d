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
from omegaconf import DictConfig
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score, mean_absolute_error

from dlrecipe.builders import build_model
from dlrecipe.data.datamodule import DataModule
from dlrecipe.sanity.result import Check


def baseline_score(datamodule: DataModule) -> tuple[str, float, float]:
    """(what, score, noise) of scikit-learn's DummyClassifier / DummyRegressor on validation.

    `noise` is two standard errors of that score over the validation samples: a model has to
    beat the baseline by more than this to show that it learned something from the inputs.
    """
    targets = datamodule.data.targets.numpy()
    fold = datamodule.fold
    y_train, y_val = targets[fold.train], targets[fold.val]
    blank_train, blank_val = np.zeros((len(y_train), 1)), np.zeros((len(y_val), 1))
    if datamodule.info.task == "regression":  # dummies ignore the inputs by construction
        guess = DummyRegressor(strategy="mean").fit(blank_train, y_train).predict(blank_val)
        errors = np.abs(y_val - guess)
        return (
            "mean predictor",
            float(mean_absolute_error(y_val, guess)),
            2 * float(errors.std() / np.sqrt(len(y_val))),
        )
    guess = DummyClassifier(strategy="most_frequent").fit(blank_train, y_train).predict(blank_val)
    acc = float(accuracy_score(y_val, guess))
    return "majority class", acc, 2 * float(np.sqrt(acc * (1 - acc) / len(y_val)))


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
    regression = datamodule.info.task == "regression"
    metric = "val/mae" if regression else "val/acc"
    score = float(trainer.validate(model, datamodule=datamodule, verbose=False)[0][metric])
    ok = score < base - noise if regression else score > base + noise
    name = "MAE" if regression else "accuracy"
    return Check(
        "beats a baseline",
        "pass" if ok else "fail",
        f"model {score:.4g} after {epochs} epochs vs {what} {base:.4g} (val {name})",
        f"{'below' if regression else 'above'} {what} {'-' if regression else '+'} 2 standard errors "
        f"({base - noise if regression else base + noise:.4g})",
        hint=f"the model does no better than a {what} that ignores the inputs. Usual causes: "
        "labels that do not belong to their inputs (misaligned after a shuffle, sort or join), "
        "inputs that carry no signal after preprocessing, a learning rate far off, or a fit too "
        "short to leave the starting point (sanity.short_fit_epochs; for regression, raw "
        "targets far from 0 take many epochs to reach)",
        values={
            "model": score,
            "baseline": base,
            "baseline_kind": what,
            "noise": noise,
            "metric": metric,
            "epochs": epochs,
        },
    )
