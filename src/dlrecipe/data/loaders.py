"""Batches for in-memory data: index a tensor by a permutation instead of collating samples.

    python -c "import torch; from dlrecipe.data.loaders import TensorBatches as T; print(len(T(torch.zeros(10,2), torch.zeros(10), torch.arange(10), 4)))"

For data sets that fit in memory this skips the DataLoader's per-sample `__getitem__` and
collate, the main per-step cost of small models. Under DDP each rank takes every world_size-th
sample of the shared permutation, so ranks see disjoint data and, for evaluation, every sample
is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

# Float inputs up to this size are normalized once, for the whole data set, instead of per batch
# (DataModule.inputs_prepared_once): the copy costs as much memory as the data (tables, float
# images such as digits). uint8 images stay uint8 and are normalized per batch: their float
# copy would be four times their size.
PREPARE_ONCE_BYTES = 512 * 2**20


class ModelInputs(NamedTuple):
    """A batch whose inputs are already model input (normalized): the DataModule's
    on_after_batch_transfer leaves them as they are. A tuple, so `x, y = batch` still works."""

    inputs: torch.Tensor
    targets: torch.Tensor


class OnceNormalized:
    """In-memory float inputs normalized once, for every batch of every loader of the data.

    Equal to normalizing each batch (the same element-wise operations); made again when the
    inputs or the normalization's statistics change (refitted, loaded from a checkpoint).
    """

    def __init__(self) -> None:
        self.made_from: tuple = (None, None, None)
        self.normalized: torch.Tensor | None = None

    def inputs(self, inputs: torch.Tensor, normalization: Any) -> torch.Tensor | None:
        """The normalized inputs, or None where per batch is better (uint8, very large data)."""
        if not inputs.is_floating_point() or inputs.nbytes > PREPARE_ONCE_BYTES:
            return None
        key = (inputs, normalization, getattr(normalization, "mean", None))
        if any(a is not b for a, b in zip(self.made_from, key, strict=True)):
            self.made_from, self.normalized = key, normalization(to_float(inputs))
        return self.normalized


class TensorBatches:
    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_of: Callable[[], int] | None = None,
        prepared: bool = False,
    ):
        self.inputs, self.targets = inputs, targets
        # inputs already normalized: batches are ModelInputs, which are not normalized again
        self.prepared = prepared
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        # Where the epoch number comes from at each pass (the trainer's, which a resumed fit
        # restores only after the loader is built); None: count passes from 0.
        self.epoch_of = epoch_of

    def _local_count(self) -> int:
        n = len(self.indices)
        if self.shuffle:  # training: equal shares so ranks step in lockstep
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self._local_count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices
        if self.shuffle:
            if self.epoch_of is not None:
                self.epoch = self.epoch_of()
            order = order[epoch_permutation(len(order), self.seed, self.epoch)]
            order = order[: len(order) // self.world_size * self.world_size]
            self.epoch += 1
        order = order[self.rank :: self.world_size]
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            idx = order[start : start + self.batch_size]
            x, y = self.inputs[idx], self.targets[idx]
            yield ModelInputs(x, y) if self.prepared else (x, y)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of one epoch: a function of (seed, epoch) only, so resumes continue it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


class EpochPermutation(DistributedSampler):
    """TensorBatches' order and rank shares for a DataLoader (data.fast_path=false).

    A DistributedSampler, so that Lightning calls its set_epoch and, under DDP, keeps it instead
    of wrapping it in its own (which would reshuffle and never advance this epoch).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.n = n

    def __len__(self) -> int:
        return self.n // self.num_replicas  # equal shares, so ranks step in lockstep

    def __iter__(self) -> Iterator[int]:
        order = epoch_permutation(self.n, self.seed, self.epoch)
        order = order[: len(self) * self.num_replicas][self.rank :: self.num_replicas]
        return iter(order.tolist())


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [0, 1]; float inputs unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class IndexedSamples(Dataset):
    """Rows `indices` of in-memory tensors as a map-style dataset, without copying them."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor):
        self.inputs, self.targets, self.indices = inputs, targets, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.indices[i]
        return self.inputs[j], self.targets[j]


class AugmentedSamples(Dataset):
    """Per-sample augmentation inside DataLoader workers, in parallel with the training step."""

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        return self.transform(to_float(x)), y


class UnrepeatedSampler(DistributedSampler):
    """Evaluation under DDP: rank r takes samples r, r + world, r + 2 world, ... in order.

    torch's DistributedSampler pads the last round with repeated samples so that every rank
    gets as many; counted twice, they would shift the metrics. Here ranks may differ by one
    sample, which evaluation allows (no gradient sync). A DistributedSampler, so that Lightning
    keeps it under DDP instead of wrapping it in its own.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        super().__init__(range(n), num_replicas=world_size, rank=rank, shuffle=False)
        self.n = n
        self.num_samples = len(range(rank, n, world_size))
        self.total_size = n

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))


def evaluation_sampler(n: int, rank: int, world: int) -> UnrepeatedSampler | None:
    """Every one of `n` samples on exactly one rank; None in a single process (plain order)."""
    return None if world == 1 else UnrepeatedSampler(n, rank, world)


def tensor_dataloader(
    inputs: torch.Tensor, targets: torch.Tensor, indices: np.ndarray, batch_size: int,
    shuffle: bool, drop_last: bool, seed: int, rank: int, world: int, epoch: int,
    num_workers: int = 0,
) -> DataLoader:  # fmt: skip
    """In-memory tensors through a plain DataLoader: per-sample indexing and collation.

    The order is TensorBatches': a permutation drawn from seed + epoch (Lightning calls the
    sampler's set_epoch). The loader's own generator keeps it from drawing its base seed
    from the global RNG, which would shift dropout's draws away from the fast path's.
    """
    samples = IndexedSamples(inputs, targets, torch.as_tensor(indices))
    if shuffle:
        sampler = EpochPermutation(len(samples), seed, rank, world)
    else:
        sampler = evaluation_sampler(len(samples), rank, world)
    if sampler is not None:
        sampler.set_epoch(epoch)  # a resumed run continues the order
    return DataLoader(
        samples, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=num_workers, persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed), pin_memory=torch.cuda.is_available(),
    )  # fmt: skip


def augmenting_loader(
    inputs: torch.Tensor | Dataset, targets: torch.Tensor, indices: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int, shuffle: bool,
    drop_last: bool, seed: int, rank: int, world: int, epoch: int, num_workers: int,
) -> DataLoader:  # fmt: skip
    """Per-sample augmentation in `num_workers` DataLoader workers over the samples `indices`.

    The order is a function of (seed, epoch), as on the other paths: Lightning sets the
    sampler's epoch before each pass, also after a resume (a generator seeded when the
    loader is built would restart at the resumed run's first epoch).
    """
    if isinstance(inputs, torch.Tensor):
        base: Dataset = IndexedSamples(inputs, targets, torch.as_tensor(indices))
    else:
        base = Subset(inputs, indices.tolist())
    sampler = EpochPermutation(len(base), seed, rank, world) if shuffle else None
    return DataLoader(
        AugmentedSamples(base, transform), batch_size=batch_size, sampler=sampler,
        drop_last=drop_last, num_workers=num_workers, persistent_workers=True,
        generator=torch.Generator().manual_seed(seed + epoch),
        pin_memory=torch.cuda.is_available(),
    )  # fmt: skip


def subset_loader(
    dataset: Dataset, indices: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool,
    rank: int, world: int, num_workers: int,
) -> DataLoader:  # fmt: skip
    """Samples `indices` of a dataset read lazily (e.g. image files), decoded in workers."""
    subset = Subset(dataset, indices.tolist())
    sampler = evaluation_sampler(len(subset), rank, world) if not shuffle else None
    return DataLoader(
        subset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
        drop_last=drop_last, num_workers=num_workers, persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )  # fmt: skip


CHUNK_VALUES = 2**20  # values per chunk when normalization statistics are fitted


def float_batches(inputs: Any, indices: np.ndarray, num_workers: int = 0) -> Iterator[torch.Tensor]:
    """The samples at `indices` as float chunks, for fitting normalization statistics."""
    if isinstance(inputs, torch.Tensor):
        # Chunks of at most 1M values: the float and float64 copies the statistics need stay
        # ~20 MB whatever the sample size (8192 images of 64x64x3 were 2 GB at once).
        step = max(1, min(8192, CHUNK_VALUES // max(1, inputs[:1].numel())))
        for start in range(0, len(indices), step):
            yield to_float(inputs[torch.as_tensor(indices[start : start + step])])
    else:
        loader = DataLoader(
            Subset(inputs, indices.tolist()), batch_size=256, num_workers=num_workers
        )
        for x, _ in loader:
            yield to_float(x)


def raw_inputs(inputs: Any, indices: np.ndarray) -> torch.Tensor:
    """The samples at `indices` as stored (uint8 or float), from memory or decoded lazily."""
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(indices)]
    return torch.stack([inputs[int(i)][0] for i in indices])


def planned_train_batches(datamodule: Any, epochs: int) -> int:
    """Training batches over the whole fit under the datamodule's epoch schedules. Lightning's
    estimate is the first epoch's loader times the epochs: short when a curriculum starts small."""
    saved, total, world = datamodule.batch_size, 0, datamodule.rank_and_world()[1]
    try:
        for epoch in range(epochs):
            train = datamodule.epoch_train_indices(epoch)
            batch, drop_last = datamodule.train_batching(train)
            local = len(train) // world
            total += local // batch if drop_last else -(-local // batch)
    finally:
        datamodule.batch_size = saved
    return total
