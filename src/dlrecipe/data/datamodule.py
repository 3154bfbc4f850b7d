"""The DataModule: source -> split -> normalization (fitted on train) -> batches.

    python -m dlrecipe.train data=breast_cancer data.batch_size=32

Every data set goes through the same steps: the source loads it once, the split object gives
train/val/test indices, normalization is fitted on the training indices only, and batches are
made on the device side (`on_after_batch_transfer`): uint8 images become floats in [0, 1],
training batches are augmented, then every batch is normalized (in-memory float inputs once, for
all batches). The `DataInfo` it exposes is what the model is built from.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from dlrecipe.data.augmentation import Augmentation
from dlrecipe.data.info import DataInfo
from dlrecipe.data.loaders import (
    ModelInputs,
    OnceNormalized,
    TensorBatches,
    augmenting_loader,
    float_batches,
    raw_inputs,
    subset_loader,
    tensor_dataloader,
    to_float,
)
from dlrecipe.data.normalization import Standardize, TargetScaling
from dlrecipe.data.sources.base import SourceData, select_classes
from dlrecipe.data.splits import Fold, HoldoutSplit
from dlrecipe.errors import ConfigError

log = logging.getLogger(__name__)


class DataModule(pl.LightningDataModule):
    """One data set's pipeline (conf/data/default.yaml; a data set's file sets `source`, the
    loader with its arguments data.source.*). Arguments the YAML leaves at these defaults, set
    with data.<arg>=...:

    eval_batch_size=512: evaluation has no gradients, so bigger batches are just faster.
    num_workers=0: in-memory batches are tensor slices, workers would only add overhead (folders
    read lazily want some). classes=None: e.g. [5,6,7,8,9] keeps only these classes, relabelled
    in this order. similar_to_pretraining=False: do the images look like a backbone's
    pretraining photos? (model/finetuning=auto reads it; cifar10 and image_folder say true).
    target_scaling=standardize: regression learns (y - mean) / std of the train split, metrics
    in y's units; none = raw y. fast_path=True: in-memory tensors are batched by slicing; False
    serves the same batches through a torch DataLoader (the equivalence tests pass it).
    """

    def __init__(
        self,
        source: Callable[[], SourceData],
        split: HoldoutSplit | None = None,
        normalization: Standardize | Any = None,
        augmentation: Augmentation | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        fast_path: bool = True,
        classes: list | None = None,
        similar_to_pretraining: bool = False,
        target_scaling: str = "standardize",
    ):
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key}={value!r} must be a positive integer (e.g. 64)")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers={num_workers} must be >= 0")
        # data.source: the loader with its own arguments (data.source.*), a partial called once.
        self.source = source
        split = split if split is not None else HoldoutSplit(seed=seed)
        normalization = normalization if normalization is not None else Standardize()
        self.split, self.normalization = split, normalization
        self.augmentation = augmentation or Augmentation()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        # Batch growth and curricula (callbacks/data_schedule.py) that shape each epoch's loader.
        self.epoch_schedules: list[Any] = []
        # In-memory tensors are batched by slicing (TensorBatches); false serves them through a
        # torch DataLoader instead, to check the fast path against it (same batches, same order).
        self.fast_path = fast_path
        self.classes = classes  # keep only these classes (e.g. digits 5-9 for transfer learning)
        # Do these images look like the backbone's pretraining data? finetuning=auto reads it.
        self.similar_to_pretraining = similar_to_pretraining
        self._served_features: SourceData | None = None  # the images while features stand in
        self._prepared = OnceNormalized()  # in-memory float inputs, normalized for every batch
        self.seed = seed  # the training seed: batch order, not the split (that is data.split.seed)
        # Hold-out has one fold; a K-fold split may name one (data.split.fold=i), else fold 0
        # until train.py walks through them all with for_fold().
        self.fold_index = getattr(split, "fold", None) or 0
        self._unfitted_normalization = copy.deepcopy(normalization)
        # Regression targets: mean / std of the training split (data/normalization.py).
        self.target_scaling = TargetScaling(target_scaling)
        self._data: SourceData | None = None
        self._folds: list[Fold] | None = None
        self._restored_test: np.ndarray | None = None

    @property
    def source_args(self) -> dict[str, Any]:
        """The source's arguments as configured (data.source.*), e.g. the CSV's path."""
        return dict(getattr(self.source, "keywords", None) or {})

    # -- what the data knows ---------------------------------------------------------------
    @property
    def data(self) -> SourceData:
        if self._data is None:
            try:
                self._data = self.source()
            except TypeError as err:  # an override the source does not take, e.g. data.source.pth=
                raise ConfigError(f"data.source: {err}. Check the data.source.* keys.") from err
            if self.classes is not None:
                self._data = select_classes(self._data, self.classes)
            for note in self._data.notes:  # what loading changed; summary.json repeats them
                log.warning("data: %s", note)
        return self._data

    @property
    def folds(self) -> list[Fold]:
        if self._folds is None:
            self._folds = self.split.folds(self.data)
        return self._folds

    @property
    def fold(self) -> Fold:
        if not 0 <= self.fold_index < len(self.folds):
            raise ConfigError(
                f"data.split.fold={self.fold_index}: this split has {len(self.folds)} fold(s), "
                f"numbered 0..{len(self.folds) - 1}"
            )
        return self.folds[self.fold_index]

    def for_fold(self, index: int, seed: int | None = None) -> DataModule:
        """The same loaded data on another fold, with normalization to be fitted on its own train part."""
        twin = copy.copy(self)
        twin.fold_index = index
        twin.seed = self.seed if seed is None else seed
        twin.normalization = copy.deepcopy(self._unfitted_normalization)
        twin._prepared = OnceNormalized()  # its own: the copy follows this fold's statistics
        twin.target_scaling = TargetScaling(self.target_scaling.kind)
        twin._restored_test = None
        return twin

    def with_train(self, train: np.ndarray, seed: int | None = None) -> DataModule:
        """The same data and fold training on `train` only, a subset of the fold's training part.

        Validation and test stay exactly as they are and normalization is refitted on the
        subset, as a run on that much data would fit it (dlrecipe.data_curve is made of these).
        """
        fold = self.fold
        train = np.sort(np.asarray(train, dtype=np.int64))
        if not np.isin(train, fold.train).all():
            raise ValueError("with_train takes a subset of the fold's own training indices")
        return self.with_fold(dataclasses.replace(fold, train=train), seed)

    def with_fold(self, fold: Fold, seed: int | None = None) -> DataModule:
        """The same data with `fold` in place of the current one, normalization to be refitted."""
        twin = self.for_fold(self.fold_index, seed)
        twin._folds = list(self.folds)
        twin._folds[self.fold_index] = fold
        return twin

    def with_targets(self, targets: torch.Tensor) -> DataModule:
        """The same inputs, split and normalization with other targets (sanity's shuffled labels)."""
        twin = copy.copy(self)
        twin._data = dataclasses.replace(self.data, targets=targets)
        twin._folds = self.folds  # the split stays the one of the true targets
        return twin

    @property
    def info(self) -> DataInfo:
        data = self._served_features if self._served_features is not None else self.data
        return DataInfo(data.task, tuple(data.input_shape), list(data.class_names))

    # -- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        fold = self.fold
        if self._restored_test is not None and not np.array_equal(self._restored_test, fold.test):
            raise ConfigError(
                "the test indices differ from the checkpoint's: the data file or the split "
                "settings changed since training, so its metrics cannot be reproduced"
            )
        if not self.normalization.fitted:
            self.normalization.fit(float_batches(self.data.inputs, fold.train, self.num_workers))
        if not self.target_scaling.fitted and self.info.task_obj.scales_targets:
            self.target_scaling.fit(self.data.targets[torch.as_tensor(fold.train)])
        self.prepare_augmentation()

    def prepare_augmentation(self) -> None:
        """Size the augmentation to this data; a transform that cannot apply fails here."""
        info = self.info
        if self.augmentation.mixes and not info.task_obj.has_classes:
            raise ConfigError(
                f"MixUp / CutMix mix class labels; set their alphas to 0 for {info.task}"
            )
        self.augmentation.build(info.input_shape)

    def train_dataloader(self) -> Iterable:
        train = self.epoch_train_indices()
        batch_size, drop_last = self.train_batching(train)
        # Overfitting one batch (debug=overfit) needs the same batch every epoch.
        shuffle = not (self.trainer is not None and self.trainer.overfit_batches)
        if self.augments_in_workers:
            data = self.data
            return augmenting_loader(data.inputs, data.targets, train, self.augmentation.transform,
                                     batch_size, shuffle, drop_last, self.seed, *self.rank_and_world(),
                                     self._epoch(), self.num_workers)  # fmt: skip
        loader = self._loader(train, batch_size, shuffle, drop_last)
        if isinstance(loader, TensorBatches) and self.trainer is not None:
            # Read at each pass: a resumed fit builds its loader before Lightning restores the
            # epoch, so a number taken now would replay epoch 0's order after a resume.
            trainer = self.trainer
            loader.epoch_of = lambda: trainer.current_epoch
        return loader

    def epoch_train_indices(self, epoch: int | None = None) -> np.ndarray:
        """An epoch's training samples (all, unless a curriculum narrows them); default: now."""
        train, epoch = self.fold.train, self._epoch() if epoch is None else epoch
        for schedule in self.epoch_schedules:
            train = schedule.for_epoch(self, train, epoch)
        return train

    def train_batching(self, train: np.ndarray) -> tuple[int, bool]:
        """(per-device batch size, drop_last) for a training loader over `train`."""
        drop_last = len(train) > self.batch_size  # a 1-sample batch breaks batch norm
        return min(self.per_device_batch_size(), len(train)), drop_last

    def per_device_batch_size(self, world: int | None = None) -> int:
        """data.batch_size is the global batch: each of the world_size processes takes a share."""
        world = self.rank_and_world()[1] if world is None else world
        if self.batch_size % world:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly over "
                f"{world} devices; use a multiple of {world} (e.g. {self.batch_size // world * world or world})"
            )
        return self.batch_size // world

    @property
    def augments_pixels(self) -> bool:
        """Image augmentation acts on pixels, before normalization (table noise acts after it)."""
        return self.augmentation.transform is not None and self.info.is_image

    @property
    def augments_in_workers(self) -> bool:
        """Image augmentation runs per sample in DataLoader workers when there are any."""
        return self.num_workers > 0 and self.augments_pixels

    def val_dataloader(self) -> Iterable:
        return self._loader(self.fold.val, self.eval_batch_size, False, False)

    def test_dataloader(self) -> Iterable:
        return self._loader(self.fold.test, self.eval_batch_size, False, False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        training = self.trainer is not None and self.trainer.training
        x = self.prepare_inputs(x, augment=training, normalized=isinstance(batch, ModelInputs))
        if training and self.augmentation.mixes:
            x, y = self.augmentation.mix(x, y, max(2, self.info.num_classes))
            y = self.info.task_obj.mixed_targets(y)  # binary: the positive class's share
        return x, y

    def prepare_inputs(self, x: torch.Tensor, augment: bool = False, normalized: bool = False) -> torch.Tensor:  # fmt: skip
        """Raw batch -> model input: scale uint8, augment (training only), normalize.

        Images are augmented in pixel space, before normalization; tables after it, so that
        feature noise is measured in standard deviations of each feature.
        """
        if self._served_features is not None:
            return x  # cached backbone features: already model input
        if not normalized:  # else inputs_prepared_once did the three steps below
            x = to_float(x)
            if augment and self.augments_pixels and not self.augments_in_workers:
                x = self.augmentation(x)
            x = self.normalization(x)
        if augment and not self.info.is_image:
            x = self.augmentation(x)
        return x

    def data_state(self) -> dict[str, Any]:
        """What eval and resume need to reproduce this data: normalization, target scaling, split.

        LitModel saves it under a key of dlrecipe's own (Lightning files a DataModule's
        state_dict under its class name, so a subclass would lose it on eval)."""
        return {
            "normalization": self.normalization.state_dict(),
            "target_scaling": self.target_scaling.state_dict(),
            "fold": self.fold_index,
            "test_indices": torch.as_tensor(self.fold.test),
            "info": self.info.to_dict(),
        }

    def load_data_state(self, state: dict[str, Any]) -> None:
        self.normalization.load_state_dict(state["normalization"])
        # Checkpoints from before target scaling trained on the raw target: mean 0, std 1.
        self.target_scaling.load_state_dict(
            state.get("target_scaling", {"kind": "none", "mean": 0.0, "std": 1.0})
        )
        self.fold_index = int(state.get("fold", self.fold_index))
        self._restored_test = np.asarray(state["test_indices"])

    # -- batches -------------------------------------------------------------------------------
    def _loader(
        self, indices: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool
    ) -> Iterable:
        data, (rank, world) = self.data, self.rank_and_world()
        if not isinstance(data.inputs, torch.Tensor):
            return subset_loader(data.inputs, indices, batch_size, shuffle, drop_last, rank, world, self.num_workers)  # fmt: skip
        args = (data.inputs, data.targets, indices, batch_size, shuffle, drop_last, self.seed, rank, world)  # fmt: skip
        if self.fast_path:  # in-memory float inputs: normalized once, not at every batch
            prepared = self.inputs_prepared_once(training=shuffle)
            inputs = data.inputs if prepared is None else prepared
            return TensorBatches(inputs, *args[1:], prepared=prepared is not None)
        return tensor_dataloader(*args, self._epoch(), self.num_workers)

    def inputs_prepared_once(self, training: bool) -> torch.Tensor | None:
        """Every input normalized at once where that equals doing it per batch (OnceNormalized):
        not for cached features, nor while pixel augmentation (before normalization) trains."""
        if self._served_features is not None or (training and self.augments_pixels):
            return None
        return self._prepared.inputs(self.data.inputs, self.normalization)

    def serve_features(self, features: torch.Tensor | None) -> None:
        """Batches of `features` (one row per sample, same indices) instead of the images; None ends it.

        Feature extraction with a frozen backbone computes each image's features once
        (model.finetuning.cache_features) and trains the head on these rows.
        """
        if features is None:
            if self._served_features is not None:
                self._data, self._served_features = self._served_features, None
            return
        images = self._served_features if self._served_features is not None else self.data
        self._data = dataclasses.replace(images, inputs=features, input_shape=tuple(features.shape[1:]))  # fmt: skip
        self._served_features = images

    def raw_inputs(self, indices: np.ndarray) -> torch.Tensor:
        """The samples at `indices` as stored (uint8 or float), from memory or decoded lazily."""
        return raw_inputs(self.data.inputs, indices)

    def batches(self, indices: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every sample of `indices` in order, unsharded (predictions written by rank 0)."""
        data = self.data
        if isinstance(data.inputs, torch.Tensor):
            yield from TensorBatches(data.inputs, data.targets, indices, self.eval_batch_size)
        else:
            yield from subset_loader(data.inputs, indices, self.eval_batch_size, False, False, 0, 1, self.num_workers)  # fmt: skip

    def rank_and_world(self) -> tuple[int, int]:
        """(this process's rank, the number of processes): (0, 1) outside a distributed fit."""
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer else 0
