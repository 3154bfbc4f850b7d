"""Batches for in-memory data: index a tensor by a permutation instead of collating samples.

    python -c "import torch; from dlrecipe.data.loaders import TensorBatches as T; print(len(T(torch.zeros(10,2), torch.zeros(10), torch.arange(10), 4)))"

For data sets that fit in memory this skips the DataLoader's per-sample `__getitem__` and
collate, the main per-step cost of small models. Under DDP each rank takes every world_size-th
sample of the shared permutation, so ranks see disjoint data and, for evaluation, every sample
is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler


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
    ):
        self.inputs, self.targets = inputs, targets
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
            yield self.inputs[idx], self.targets[idx]


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
