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


class TargetScaling:
    """Regression targets as (y - mean) / std of the training split, so the net learns numbers near 0.

    A net whose outputs start near 0 needs hundreds of epochs to reach targets around 250,000
    (and a Huber delta of 1 is then plain MAE); on the scaled target it starts at the mean.
    `kind="none"` keeps the raw target. The model trains on the scaled target and reports every
    metric and prediction in the original units (models/module.py); the statistics are saved
    in the DataModule's state and in the model's buffers, so every checkpoint carries them.
    """

    KINDS = ("standardize", "none")

    def __init__(self, kind: str = "standardize"):
        if kind not in self.KINDS:
            from dlrecipe.errors import ConfigError

            raise ConfigError(
                f"data.target_scaling={kind!r} is unknown; use one of {list(self.KINDS)}"
            )
        self.kind = kind
        self.mean, self.std = 0.0, 1.0
        self.fitted = kind == "none"

    def fit(self, targets: torch.Tensor) -> TargetScaling:
        if self.kind == "standardize":
            y = targets.double()
            if len(y) == 0:
                raise ValueError("target scaling needs at least one training sample")
            std = float(y.std(unbiased=False))
            self.mean = float(y.mean())
            self.std = std if std > 1e-12 else 1.0  # a constant target: centre it only
        self.fitted = True
        return self

    def state_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        self.kind = str(state.get("kind", self.kind))
        self.mean, self.std = float(state["mean"]), float(state["std"])
        self.fitted = True
