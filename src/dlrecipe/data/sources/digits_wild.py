"""Digits "in the wild": scikit-learn's digits, enlarged and each one moved, scaled and turned.

    python -m dlrecipe.train data=digits_wild model=cnn

The bundled 8x8 digits are centred and size-normalised, so a few labels per class already
cover them (random convolutions classify them at 0.94 from 10 labels per class). Real images are
not like that: the object sits anywhere, at any size and angle. This source enlarges every
digit to `size` x `size` and gives it its own fixed random affine pose (shift, scale,
rotation), drawn once from `pose_seed`, so the data set is the same on every run and machine and
splits, folds and caches stay valid. It is still offline (the pixels ship with scikit-learn),
and it is where pretraining pays: features learned from many posed 0-4s carry over to 5-9s
that 10 labels per class cannot teach (see README, "Transfer learning, offline").
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from dlrecipe.data.sources.base import SourceData
from dlrecipe.data.sources.sklearn_sets import load_sklearn
from dlrecipe.errors import ConfigError


def load_digits_wild(
    size: int = 16,
    shift: float = 0.15,
    scale: float = 0.15,
    rotate: float = 20.0,
    pose_seed: int = 1234,
) -> SourceData:
    if size < 8:
        raise ConfigError(
            f"data.source.size={size}: digits are 8x8 already; give 8 or more (16 is the default)"
        )
    if not 0.0 <= shift < 0.5 or not 0.0 <= scale < 1.0 or rotate < 0:
        raise ConfigError(
            f"data.source.shift={shift} (a fraction of the width, < 0.5), data.source.scale={scale} (< 1) and "
            f"data.source.rotate={rotate} (degrees, >= 0) set how far each digit is posed"
        )
    digits = load_sklearn("digits")
    enlarged = v2.functional.resize(digits.inputs, [size, size], antialias=True)
    pose = v2.RandomAffine(
        degrees=rotate, translate=(shift, shift), scale=(1 - scale, 1 + scale),
        interpolation=v2.InterpolationMode.BILINEAR,
    )  # fmt: skip
    with torch.random.fork_rng():  # the poses come from pose_seed, never from the run's seed
        torch.manual_seed(pose_seed)
        posed = torch.stack([pose(image) for image in enlarged])
    return SourceData(
        posed.clamp(0, 1), digits.targets, digits.task, class_names=digits.class_names
    )
