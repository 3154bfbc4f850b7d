"""Augmentation seam: transforms applied to training batches only, before normalization.

    python -m dlrecipe.train data/augmentation=none

`NoAugmentation` is the default; the augmentation presets (conf/data/augmentation/) plug in
objects with the same `__call__(x) -> x` on a float batch in [0, 1] (images) or raw features.
"""

from __future__ import annotations

import torch


class NoAugmentation:
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x
