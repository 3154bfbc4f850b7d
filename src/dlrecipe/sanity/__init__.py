"""The sanity suite: checks that a config can learn at all, before a long run is spent on it.

    python -m dlrecipe.train experiment=digits_cnn debug=sanity
    python -m dlrecipe.train experiment=digits_cnn debug=sanity model.optimizer.lr=10   # fails overfit
    python -m dlrecipe.train experiment=wine_mlp debug=sanity sanity.shuffle_labels=true

Runs instead of the fit when the config has a `sanity:` block (conf/debug/sanity.yaml): split
leakage, class balance and duplicates; the initial loss against chance; float64 gradient checks;
batch independence; memorizing one batch with regularization off; and a short fit against a
majority-class / mean baseline. Prints a pass/fail table, writes sanity.json to the run
directory and exits with status 1 when a check fails.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig

from dlrecipe.builders import build_model
from dlrecipe.data.augmentation import Augmentation
from dlrecipe.data.datamodule import DataModule
from dlrecipe.sanity.baseline import beats_baseline
from dlrecipe.sanity.data_checks import class_balance, disjoint_splits, duplicates_across_splits
from dlrecipe.sanity.gradients import batch_independence, gradcheck_layers
from dlrecipe.sanity.loss_checks import initial_loss, overfit_one_batch, train_batch
from dlrecipe.sanity.result import Check, SanityReport


def run_checks(cfg: DictConfig, datamodule: DataModule) -> SanityReport:
    """Every check on the current fold of `datamodule`; nothing is printed or written."""
    options = cfg.sanity
    pl.seed_everything(cfg.seed, workers=True)
    if options.get("shuffle_labels"):
        datamodule = with_shuffled_training_labels(datamodule, int(cfg.seed))
    datamodule.setup("fit")
    fed = copy.copy(datamodule)  # batch-level checks look at the data the model is fed, unaugmented
    fed.augmentation = Augmentation()
    fed.setup("fit")
    report = SanityReport(datamodule.info.task)
    report.add(disjoint_splits(datamodule))
    report.add(class_balance(datamodule, float(options.imbalance_ratio)))
    report.add(duplicates_across_splits(datamodule))
    # 256+ samples: the initial loss of one small batch varies too much to compare with chance
    batch = train_batch(fed, max(int(datamodule.batch_size), 256), int(cfg.seed))
    model = build_model(cfg, datamodule.info)
    model.use_target_scaling(datamodule)  # regression: the net learns the scaled target
    report.add(initial_loss(model, batch, float(options.initial_loss_tol)))
    report.add(gradcheck_layers(model, batch, int(options.gradcheck_samples)))
    report.add(batch_independence(model, batch))
    small = train_batch(fed, int(options.overfit_batch_size), int(cfg.seed))
    report.add(overfit_one_batch(cfg, fed, small, int(options.overfit_max_steps),
                                 float(options.overfit_regression_tol)))  # fmt: skip
    fit = int(options.short_fit_epochs), int(options.get("short_fit_min_steps", 0))
    report.add(beats_baseline(cfg, datamodule, *fit))
    return report


def run_suite(cfg: DictConfig, datamodule: DataModule) -> None:
    """run_checks, then the table and sanity.json; SystemExit(1) when a check failed."""
    # A diverging run (an LR far too high) fills tensors with subnormal floats, which make CPU
    # math ~10x slower; flushing them to zero changes nothing a check measures.
    torch.set_flush_denormal(True)
    try:
        report = run_checks(cfg, datamodule)
    finally:
        torch.set_flush_denormal(False)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    report.write(run_dir / "sanity.json")
    report.print()
    if not report.passed:
        raise SystemExit(1)


def with_shuffled_training_labels(datamodule: DataModule, seed: int) -> DataModule:
    """The classic check: with training labels permuted, nothing should beat the baseline.

    A plain random permutation leaves its own chance agreement with the true labels (on 400
    binary labels often 5 points above independence): real signal, from which a model on
    separable data learns the task, or its inverse. For classes the permutation is balanced
    instead: every true class gets each label in proportion to that label's share (±2), so
    the shuffled labels carry no information about the inputs at all.
    """
    data = datamodule.data
    train = torch.as_tensor(datamodule.fold.train)
    targets = data.targets.clone()
    if not datamodule.info.task_obj.has_classes:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        targets[train] = targets[train[order]]
    else:
        rng = np.random.default_rng(seed)
        shuffled = balanced_shuffle(targets[train].numpy(), rng)
        targets[train] = torch.as_tensor(shuffled, dtype=targets.dtype)
    return datamodule.with_targets(targets)  # the split stays the one of the true labels


def balanced_shuffle(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of `labels` whose cross-table with them is independence's, within 2 a cell."""
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by true class, random within
    classes, counts = np.unique(labels, return_counts=True)
    # Each label's occurrences spread evenly along that sequence (stride scheduling, random
    # phase): any stretch of m positions holds m x its share of each label, within 2.
    keys = np.concatenate([(np.arange(k) + rng.random()) / k for k in counts])
    spread = np.repeat(classes, counts)[np.argsort(keys, kind="stable")]
    shuffled = np.empty_like(labels)
    shuffled[order] = spread
    return shuffled


__all__ = ["Check", "SanityReport", "run_checks", "run_suite"]
