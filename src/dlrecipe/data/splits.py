"""Hold-out split: train / validation / test indices, deterministic by seed, stratified by class.

    python -m dlrecipe.train data.split.val_frac=0.2 data.split.test_frac=0.2 data.split.seed=1

A split object turns a `SourceData` into a list of `Fold`s; hold-out gives one fold. K-fold
splitters (conf/data/split/kfold*.yaml) return several folds with the same interface, and
train.py runs one fit per fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from dlrecipe.data.sources.base import SourceData
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import task_named


@dataclass(frozen=True)
class Fold:
    """Index sets into the source; `name` labels the fold's run sub-directory and logs."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str = "holdout"

    def __post_init__(self) -> None:
        self.check_disjoint()

    def check_disjoint(self) -> None:
        """Leakage guard: no sample may be in two of train, validation and test."""
        parts = {"train": self.train, "val": self.val, "test": self.test}
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = np.intersect1d(parts[a], parts[b])
                if len(shared):
                    raise AssertionError(f"{a} and {b} indices overlap ({len(shared)} samples)")


class HoldoutSplit:
    def __init__(
        self,
        val_frac: float = 0.15,
        test_frac: float = 0.15,
        stratify: bool = True,
        seed: int = 0,
        train_per_class: int | None = None,
    ):
        for key, value in (("val_frac", val_frac), ("test_frac", test_frac)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"data.split.{key}={value} must be in [0, 1)")
        if val_frac + test_frac >= 1.0:
            raise ConfigError(
                f"data.split.val_frac + data.split.test_frac = {val_frac + test_frac:g} leaves no "
                "training data; make their sum < 1 (e.g. val_frac=0.15 test_frac=0.15)"
            )
        if val_frac == 0:
            raise ConfigError(
                "data.split.val_frac=0: early stopping and checkpoints need a validation set"
            )
        self.val_frac, self.test_frac, self.stratify, self.seed = (
            val_frac,
            test_frac,
            stratify,
            seed,
        )
        if train_per_class is not None and train_per_class < 1:
            raise ConfigError(
                f"data.split.train_per_class={train_per_class} must be >= 1 (or null)"
            )
        self.train_per_class = train_per_class
        self.fold = None  # one fold only; K-fold splits use this to pick one of theirs

    def folds(self, data: SourceData) -> list[Fold]:
        rest = np.arange(len(data))
        labels = data.targets.numpy()
        if data.val_indices is not None:  # a fixed validation folder never feeds the test cut
            rest = np.setdiff1d(rest, data.val_indices)
        test = data.test_indices
        if test is None:
            rest, test = self._cut(rest, labels, self.test_frac, data.task, data.groups)
        else:
            rest = np.setdiff1d(rest, test)
        val = data.val_indices
        if val is None:
            # val_frac is a share of the whole data set, so the test cut does not shrink it.
            share = self.val_frac / (1.0 - (len(test) / len(data)))
            train, val = self._cut(rest, labels, min(share, 0.9), data.task, data.groups)
        else:
            train = np.setdiff1d(rest, val)
        if self.train_per_class is not None:
            train = per_class_sample(train, labels, self.train_per_class, self.seed, data.task)
        return [Fold(np.sort(train), np.sort(val), np.sort(test))]

    def _cut(self, idx: np.ndarray, labels: np.ndarray, frac: float, task: str, groups: np.ndarray | None = None):  # fmt: skip
        stratify = self.stratify and task_named(task).has_classes
        return hold_out(idx, labels, frac, self.seed, stratify, groups)


def hold_out(
    idx: np.ndarray,
    labels: np.ndarray,
    frac: float,
    seed: int,
    stratify: bool,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (keep, cut) with `frac` of it cut: by group, stratified, or at random."""
    if frac == 0:
        return idx, np.array([], dtype=np.int64)
    if groups is not None:  # whole groups go to one side, so no group leaks into the test set
        splitter = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
        keep, cut = next(splitter.split(idx, groups=groups[idx]))
        return idx[keep], idx[cut]
    strata = labels[idx] if stratify else None
    if strata is not None:
        counts = np.bincount(strata)
        if counts[counts > 0].min() < 2:
            raise ConfigError(
                "a class has fewer than 2 samples, so a stratified split is impossible; "
                "add data or set data.split.stratify=false"
            )
        n_classes, n_cut = int((counts > 0).sum()), int(np.ceil(frac * len(idx)))
        if n_cut < n_classes or len(idx) - n_cut < n_classes:
            raise ConfigError(
                f"a stratified cut of {frac:g} x {len(idx)} samples cannot hold all {n_classes} "
                "classes; raise data.split.val_frac / test_frac or set data.split.stratify=false"
            )
    keep, cut = train_test_split(idx, test_size=frac, random_state=seed, stratify=strata)
    return keep, cut


def per_class_sample(
    idx: np.ndarray, labels: np.ndarray, n: int, seed: int, task: str
) -> np.ndarray:
    """At most `n` random samples of each class: a small labelled set, the rest left unused."""
    if not task_named(task).has_classes:
        raise ConfigError(f"data.split.train_per_class needs classes; this data is {task}")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(idx)
    return np.concatenate([shuffled[labels[shuffled] == c][:n] for c in np.unique(labels[idx])])
