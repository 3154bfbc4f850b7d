"""Normalization fitted on training indices only: per feature for tables, per channel for images.

    python -m dlrecipe.train data/normalization=none     # raw inputs, to see why it matters

The statistics are part of the DataModule's `state_dict`, so they travel inside every checkpoint
and eval.py applies exactly the numbers the model was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Standardize:
    """(x - mean) / std with the training set's statistics; constant features are left unscaled."""

    def __init__(self, eps: float = 1e-6):
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def fit(self, batches: Iterable[torch.Tensor]) -> Standardize:
        """Streams batches (N, F) or (N, C, H, W) in float64, so huge folders never sit in memory."""
        total = total_sq = None
        count = 0
        for x in batches:
            x = x.double()
            dims = [0, *range(2, x.ndim)]  # every axis but features / channels
            s, sq = x.sum(dims), (x * x).sum(dims)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += x.numel() // x.shape[1]
        if total is None:
            raise ValueError("normalization needs at least one training sample")
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std > self.eps, std, torch.ones_like(std))
        self.mean, self.std = mean.float(), std.float()
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.mean.to(x.device).view(shape)
        std = self.std.to(x.device).view(shape)
        return (x - mean) / std

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.std = state["mean"], state["std"]


class NoNormalization:
    """Inputs pass through unchanged (images are still scaled from uint8 to [0, 1])."""

    fitted = True

    def fit(self, batches: Iterable[torch.Tensor]) -> NoNormalization:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
