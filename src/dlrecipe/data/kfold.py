"""K-fold cross-validation splits: plain, stratified, grouped and repeated, from scikit-learn.

    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold data.split.k=5
    python -m dlrecipe.train experiment=breast_cancer_mlp data/split=repeated_stratified_kfold \\
        data.split.k=3 data.split.n_repeats=2

An outer test set (`test_frac`) is held out once and kept fixed; the rest is cut into k folds,
each in turn the validation part. Every repeat reshuffles with its own seed (iterated K-fold).
With `test=folds` each fold's held-out part is instead its test set and `val_frac` of the
fold's training part its validation set: every sample is tested exactly once, by a model that
never saw it, so the folds' test scores average to a cross-validated test estimate.

    python -m dlrecipe.train experiment=breast_cancer_mlp data/split=stratified_kfold data.split.test=folds
The splitter is any scikit-learn class with `n_splits`, `shuffle` and `random_state`
(`KFold`, `StratifiedKFold`, `GroupKFold`, `StratifiedGroupKFold`), given as a `_partial_`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dlrecipe.data.sources.base import SourceData
from dlrecipe.data.splits import Fold, hold_out
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import task_named


class KFoldSplit:
    def __init__(
        self,
        splitter: Callable,
        k: int = 5,
        n_repeats: int = 1,
        seed: int = 0,
        test_frac: float = 0.15,
        fold: int | None = None,
        groups: str | list | None = None,
        stratify: bool | None = None,
        test: str = "fixed",
        val_frac: float = 0.15,
    ):
        if not isinstance(k, int) or k < 2:
            raise ConfigError(f"data.split.k={k!r}: K-fold needs k >= 2 (5 or 10 are usual)")
        if not isinstance(n_repeats, int) or n_repeats < 1:
            raise ConfigError(f"data.split.n_repeats={n_repeats!r} must be >= 1")
        if not 0.0 <= test_frac < 1.0:
            raise ConfigError(f"data.split.test_frac={test_frac} must be in [0, 1)")
        if test not in ("fixed", "folds"):
            raise ConfigError(f"data.split.test={test!r}: choose fixed or folds")
        if not 0.0 < val_frac < 1.0:
            raise ConfigError(f"data.split.val_frac={val_frac} must be in (0, 1)")
        if fold is not None and not 0 <= fold < k * n_repeats:
            raise ConfigError(
                f"data.split.fold={fold}: folds are numbered 0..{k * n_repeats - 1} "
                f"(k={k} x n_repeats={n_repeats}); null runs them all"
            )
        self.splitter, self.k, self.n_repeats, self.seed = splitter, k, n_repeats, seed
        self.test_frac, self.fold, self.groups = test_frac, fold, groups
        self.test, self.val_frac = test, val_frac
        # stratify (set by hold-out experiments) must agree with the splitter's choice.
        if stratify is not None and bool(stratify) != self.stratified:
            wanted = "stratified_kfold" if stratify else "kfold"
            raise ConfigError(
                f"data.split.stratify={stratify} contradicts this splitter; use data/split={wanted}"
            )

    @property
    def uses_groups(self) -> bool:
        target = getattr(self.splitter, "func", self.splitter)
        return "Group" in getattr(target, "__name__", "")

    @property
    def stratified(self) -> bool:
        target = getattr(self.splitter, "func", self.splitter)
        return "Stratified" in getattr(target, "__name__", "")

    def folds(self, data: SourceData) -> list[Fold]:
        has_classes = task_named(data.task).has_classes
        if self.stratified and not has_classes:
            raise ConfigError(
                f"stratified K-fold needs class labels; use data/split=kfold for {data.task}"
            )
        if data.groups is not None and not self.uses_groups:
            raise ConfigError(
                "data.source.groups is set but this splitter ignores groups, so a group could land on "
                "both sides; use data/split=group_kfold"
            )
        if data.val_indices is not None:
            raise ConfigError("K-fold makes its own validation folds; drop data.source.val_root")
        labels = data.targets.numpy()
        groups = self._groups(data)
        stratify = self.stratified and has_classes
        everything = np.arange(len(data))
        if self.test == "folds":
            if data.test_indices is not None:
                raise ConfigError(
                    "data.split.test=folds makes each fold's test set; drop data.source.test_root or "
                    "use data.split.test=fixed"
                )
            rest, test = everything, None
        elif data.test_indices is not None:
            test = np.sort(data.test_indices)
            rest = np.setdiff1d(everything, test)
        else:
            rest, test = hold_out(everything, labels, self.test_frac, self.seed, stratify, groups)
        if len(rest) < self.k:  # sklearn would say n_splits, a name no config has
            raise ConfigError(
                f"data.split.k={self.k} is larger than the {len(rest)} samples outside the test "
                f"set; lower data.split.k (at most {len(rest)}) or data.split.test_frac"
            )
        if stratify:
            self._check_class_sizes(labels[rest])
        folds = []
        for repeat in range(self.n_repeats):
            splitter = self.splitter(n_splits=self.k, shuffle=True, random_state=self.seed + repeat)
            parts = splitter.split(rest, labels[rest], None if groups is None else groups[rest])
            for i, (train, held) in enumerate(parts):
                name = f"fold{i}" if self.n_repeats == 1 else f"repeat{repeat}_fold{i}"
                train, val = rest[train], rest[held]
                fold_test = test
                if test is None:  # test=folds: the held-out part is the test set; val from train
                    fold_test, seed = val, self.seed + 1000 * repeat + i
                    train, val = hold_out(train, labels, self.val_frac, seed, stratify, groups)
                fold = Fold(np.sort(train), np.sort(val), np.sort(fold_test), name)
                if groups is not None:
                    check_groups_apart(fold, groups)
                folds.append(fold)
        return folds

    def _groups(self, data: SourceData) -> np.ndarray | None:
        if not self.uses_groups:
            return None
        groups = data.groups if self.groups is None else _read_groups(self.groups)
        if groups is None:
            raise ConfigError(
                "group K-fold needs a group per sample: data.source.groups=<column> for a CSV, or "
                "data.split.groups=<file.npy|file.csv> / a list with one id per sample"
            )
        groups = np.asarray(groups)
        if len(groups) != len(data):
            raise ConfigError(
                f"data.split.groups has {len(groups)} entries for {len(data)} samples"
            )
        if len(np.unique(groups)) < self.k:
            raise ConfigError(
                f"{len(np.unique(groups))} groups cannot make k={self.k} folds; lower data.split.k"
            )
        return groups

    def _check_class_sizes(self, labels: np.ndarray) -> None:
        counts = np.bincount(labels)
        smallest = int(counts[counts > 0].min())
        if smallest < self.k:
            raise ConfigError(
                f"data.split.k={self.k} is larger than the smallest class ({smallest} samples "
                f"outside the test set); stratified K-fold needs k <= {smallest}"
            )


def check_groups_apart(fold: Fold, groups: np.ndarray) -> None:
    """Leakage guard: a group never appears on two sides of a fold."""
    sides = {"train": fold.train, "val": fold.val, "test": fold.test}
    names = list(sides)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(groups[sides[a]], groups[sides[b]])
            if len(shared):
                raise AssertionError(f"groups {shared[:5].tolist()} are in both {a} and {b}")


def _read_groups(groups: str | list) -> np.ndarray:
    if not isinstance(groups, str):
        return np.asarray(groups)
    path = Path(groups).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"data.split.groups={groups!r} does not exist; give a .npy or one-column .csv file"
        )
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, dtype=str, delimiter=",", ndmin=1)
