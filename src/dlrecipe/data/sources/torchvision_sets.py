"""torchvision's MNIST, Fashion-MNIST and CIFAR-10, stored under `data.source.dir`; downloads are opt-in.

python -m dlrecipe.train experiment=digits_cnn data=mnist data.source.download=true
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlrecipe.data.info import classification_task
from dlrecipe.data.sources.base import SourceData
from dlrecipe.errors import ConfigError

_SETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def load_torchvision(name: str, dir: str = "data", download: bool = False) -> SourceData:
    """Train and official test split in one table; the test rows are marked as the test set."""
    import torchvision

    if name not in _SETS:
        raise ConfigError(f"data.source.name={name!r}: choose one of {sorted(_SETS)}")
    cls = getattr(torchvision.datasets, _SETS[name])
    root = Path(dir).expanduser().resolve()
    try:
        parts = [cls(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise ConfigError(
            f"{name} is not in data.source.dir={str(root)!r} ({err}). Set data.source.download=true to fetch it "
            f"(needs network), or copy the {_SETS[name]} files into that directory."
        ) from err
    images, labels = [], []
    for part in parts:
        data = torch.as_tensor(np.asarray(part.data))
        images.append(data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2))
        labels.append(torch.as_tensor(np.asarray(part.targets), dtype=torch.long))
    n_train = len(labels[0])
    x = torch.cat(images).contiguous()  # uint8 (N, C, H, W): 4x smaller than float in memory
    y = torch.cat(labels)
    return SourceData(
        x,
        y,
        classification_task(len(parts[0].classes)),
        class_names=[str(c) for c in parts[0].classes],
        test_indices=np.arange(n_train, len(y)),
    )
