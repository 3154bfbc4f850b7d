"""Checks on the data alone: split leakage, class balance and duplicated samples across splits.

    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold debug=sanity

They run before any model exists: a leak between train and test or a class missing from the
validation set makes every number after it meaningless.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from dlrecipe.data.datamodule import DataModule
from dlrecipe.sanity.result import Check

PARTS = ("train", "val", "test")


def disjoint_splits(datamodule: DataModule) -> Check:
    """Every fold: train, val and test share no index, and no index repeats inside a part."""
    problems, n = [], len(datamodule.data)
    for fold in datamodule.folds:
        parts = {p: np.asarray(getattr(fold, p)) for p in PARTS}
        for i, a in enumerate(PARTS):
            if len(np.unique(parts[a])) != len(parts[a]):
                problems.append(f"{fold.name}: {a} repeats indices")
            if len(parts[a]) and (parts[a].min() < 0 or parts[a].max() >= n):
                problems.append(f"{fold.name}: {a} has indices outside 0..{n - 1}")
            for b in PARTS[i + 1 :]:
                shared = len(np.intersect1d(parts[a], parts[b]))
                if shared:
                    problems.append(f"{fold.name}: {a} and {b} share {shared} samples")
    sizes = ", ".join(f"{p} {len(getattr(datamodule.fold, p))}" for p in PARTS)
    return Check(
        "splits disjoint",
        "fail" if problems else "pass",
        "; ".join(problems) if problems else f"{len(datamodule.folds)} fold(s); {sizes}",
        "no index in two parts of any fold",
        hint="samples in two splits inflate validation and test scores. Usually a hand-made split "
        "or a fixed val/test folder that overlaps data.source.root; use data/split=holdout or a *kfold "
        "split, which derive all parts from one permutation",
        values={"folds": len(datamodule.folds), "problems": problems},
    )


def class_balance(datamodule: DataModule, max_ratio: float) -> Check:
    """Class counts per split (classification) or target mean / std (regression)."""
    targets = datamodule.data.targets
    fold = datamodule.fold
    if not datamodule.info.task_obj.has_classes:
        stats = {p: _moments(targets[torch.as_tensor(getattr(fold, p))]) for p in PARTS}
        text = "; ".join(f"{p} {m:.3g} ± {s:.3g}" for p, (m, s) in stats.items() if s == s)
        return Check("target distribution", "pass", text, "similar mean ± std in every split",
                     values={p: list(v) for p, v in stats.items()})  # fmt: skip
    classes = datamodule.info.num_classes or 2
    counts = {
        p: np.bincount(targets[torch.as_tensor(getattr(fold, p))].numpy(), minlength=classes)
        for p in PARTS
        if len(getattr(fold, p))
    }
    train = counts["train"]
    ratio = float(train.max() / max(train.min(), 1))
    missing = [p for p, c in counts.items() if (c == 0).any()]
    status = "warn" if ratio > max_ratio or missing else "pass"
    text = "; ".join(
        f"{p} {int(c.sum())}: {c.min() / c.sum():.0%}..{c.max() / c.sum():.0%} per class"
        for p, c in counts.items()
    )
    return Check(
        "class balance",
        status,
        f"{text}; train max/min {ratio:.1f}"
        + (f"; a class is missing from {missing}" if missing else ""),
        f"max/min class count ≤ {max_ratio:g} in train; every class in every split",
        hint="strong imbalance lets a model score well by predicting the majority class: watch F1 "
        "and AUROC rather than accuracy, compare with the majority baseline, consider class "
        "weights or resampling; a class missing from a split needs data.split.stratify=true or "
        "more data",
        values={"counts": {p: c.tolist() for p, c in counts.items()}, "train_ratio": ratio},
    )


def duplicates_across_splits(datamodule: DataModule) -> Check:
    """Exact copies of a training sample in val or test: a memorizing model scores on them."""
    inputs = datamodule.data.inputs
    if not isinstance(inputs, torch.Tensor):
        return Check("duplicates across splits", "pass", "skipped (lazy data set)", "-")
    fold = datamodule.fold
    train = {_digest(inputs[int(i)]) for i in fold.train}
    found = {
        p: int(sum(_digest(inputs[int(i)]) in train for i in getattr(fold, p)))
        for p in ("val", "test")
    }
    total = sum(found.values())
    return Check(
        "duplicates across splits",
        "warn" if total else "pass",
        ", ".join(f"{p} {k} of {len(getattr(fold, p))}" for p, k in found.items()),
        "no val / test input identical to a training input",
        hint="identical inputs on both sides measure memory, not generalization: de-duplicate "
        "the data before splitting, or group copies with data.source.groups and data/split=group_kfold",
        values=found,
    )


def _moments(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std()) if len(values) > 1 else 0.0


def _digest(sample: torch.Tensor) -> bytes:
    return hashlib.blake2b(sample.contiguous().numpy().tobytes(), digest_size=16).digest()
