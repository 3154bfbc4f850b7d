"""Augmentation: named blocks applied per sample to training batches only.

    python -m dlrecipe.train data/augmentation=medium
    python -m dlrecipe.train 'data.augmentation.ops=[hflip,{rotate:{degrees:20}},erase]'
    python -m dlrecipe.preview data/augmentation=strong        # look before you train

Images are augmented as floats in [0, 1] before normalization (so colour, contrast and noise
act on pixel values); tables get `feature_noise` after standardization (so sigma is in units
of each feature's spread). Random parameters are drawn for every sample: a v2 transform
called on a whole batch would draw once for all of it. Validation and test batches are never
augmented. MixUp / CutMix (`mixup_alpha`, `cutmix_alpha`) mix whole batches and give soft
targets, which the cross-entropy and BCE losses accept.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from dlrecipe.data.augment_ops import IMAGE_OPS, TABLE_OPS
from dlrecipe.errors import ConfigError

Op = str | dict[str, dict[str, Any] | None]


class Augmentation:
    def __init__(
        self,
        ops: Sequence[Op] = (),
        extra_ops: Sequence[Op] = (),
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
    ):
        self.ops = [_parse(op, i) for i, op in enumerate([*(ops or []), *(extra_ops or [])])]
        for key, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if value < 0:
                raise ConfigError(f"data.augmentation.{key}={value} must be >= 0 (0 = off)")
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.transform: v2.Transform | None = None
        self.on_tables = bool(self.ops) and all(name in TABLE_OPS for name, _ in self.ops)
        if self.ops:  # fail on a bad parameter now, not at the first training step
            self.build((1, 4) if self.on_tables else (3, 32, 32))

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def build(self, input_shape: Sequence[int]) -> Augmentation:
        """Make the transforms for this input shape (image sizes scale some parameters)."""
        is_image = len(input_shape) == 3
        blocks = []
        for index, (name, params) in enumerate(self.ops):
            table = TABLE_OPS if not is_image else IMAGE_OPS
            if name not in table:
                kind = "images" if name in IMAGE_OPS else "tables"
                have = "a table" if not is_image else "images"
                raise ConfigError(
                    f"data.augmentation.ops[{index}]={name!r} works on {kind}, but this data is "
                    f"{have}; use {sorted(table)} here (or data/augmentation=none)"
                )
            try:
                blocks.append(table[name](tuple(input_shape), **params))
            except (TypeError, ValueError) as err:
                raise ConfigError(f"data.augmentation.ops[{index}] {name}: {err}") from err
        self.transform = v2.Compose(blocks) if blocks else None
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform is None:
            return x
        if self.on_tables:
            return self.transform(x)  # element-wise noise: already independent per sample
        return torch.stack([self.transform(sample) for sample in x])

    def mix(
        self, x: torch.Tensor, y: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp or CutMix (chosen at random per batch when both are on); soft targets (B, C)."""
        choices = []
        if self.mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=self.mixup_alpha, num_classes=num_classes))
        if self.cutmix_alpha > 0 and x.ndim == 4:
            choices.append(v2.CutMix(alpha=self.cutmix_alpha, num_classes=num_classes))
        if not choices:
            return x, y
        mixer = choices[int(torch.randint(len(choices), ()))]
        if x.ndim == 2:  # v2.MixUp wants image batches: view a table as (B, 1, 1, F)
            mixed, soft = mixer(x[:, None, None, :], y)
            return mixed[:, 0, 0, :], soft
        return mixer(x, y)


def _parse(op: Op, index: int) -> tuple[str, dict[str, Any]]:
    if isinstance(op, str):
        name, params = op, {}
    elif isinstance(op, Mapping) and len(op) == 1:
        name, params = next(iter(op.items()))
        params = dict(params or {})
    else:
        raise ConfigError(
            f"data.augmentation.ops[{index}]={op!r}: give a name (hflip) or a one-key map "
            "({rotate: {degrees: 20}})"
        )
    known = {**IMAGE_OPS, **TABLE_OPS}
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ConfigError(
            f"data.augmentation.ops[{index}]={name!r} is not a known transform{hint} Known: {sorted(known)}"
        )
    return name, params
