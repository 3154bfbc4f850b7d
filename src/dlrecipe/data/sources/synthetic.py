"""Synthetic images or tables of any size: benchmarks and smoke tests without downloads.

    python -m dlrecipe.train data=synthetic data.source.shape=[3,32,32] data.source.samples=5000

Each class has its own random template; samples are template + noise, so a model can learn
something (losses fall) while the cost per step equals that of real data of the same shape.
"""

from __future__ import annotations

import torch

from dlrecipe.data.info import classification_task
from dlrecipe.data.sources.base import SourceData


def load_synthetic(
    samples: int = 2000,
    shape: list[int] | None = None,
    num_classes: int = 10,
    noise: float = 0.5,
    data_seed: int = 0,
) -> SourceData:
    shape = list(shape or [3, 32, 32])
    generator = torch.Generator().manual_seed(data_seed)
    templates = torch.rand(num_classes, *shape, generator=generator)
    labels = torch.randint(num_classes, (samples,), generator=generator)
    x = templates[labels] + noise * torch.randn(samples, *shape, generator=generator)
    if len(shape) == 3:  # images as uint8 pixels, like real image sets
        x = (x.clamp(0, 1) * 255).to(torch.uint8)
    task = classification_task(num_classes)
    return SourceData(x, labels, task, class_names=[f"c{i}" for i in range(num_classes)])
