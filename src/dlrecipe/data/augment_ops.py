"""Named augmentation building blocks on torchvision.transforms.v2, sized to the image.

    python -m dlrecipe.train 'data.augmentation.ops=[hflip,{rotate:{degrees:20}},erase]'

Each block is a function `(image_shape, **params) -> v2 transform`, so parameters that only
make sense relative to the image (crop padding, erased area, translation) scale with it: the
same preset is believable on 8x8 digits and on 224x224 photos. Table data has one block,
`feature_noise`, applied after standardization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2

Shape = Sequence[int]  # (C, H, W)


def hflip(shape: Shape, p: float = 0.5) -> v2.Transform:
    return v2.RandomHorizontalFlip(p)


def vflip(shape: Shape, p: float = 0.5) -> v2.Transform:
    return v2.RandomVerticalFlip(p)


def rotate(shape: Shape, degrees: float = 15.0) -> v2.Transform:
    return v2.RandomRotation(degrees)


def crop(shape: Shape, padding_frac: float = 0.125) -> v2.Transform:
    """Pad by a fraction of the size, then crop back at a random place (the CIFAR recipe: 4 of 32 px)."""
    pad = max(1, round(padding_frac * min(shape[1:])))
    return v2.RandomCrop(tuple(shape[1:]), padding=pad, padding_mode="edge")


def resized_crop(shape: Shape, scale: Sequence[float] = (0.6, 1.0), ratio: Sequence[float] = (0.75, 1.33)) -> v2.Transform:  # fmt: skip
    return v2.RandomResizedCrop(
        tuple(shape[1:]), scale=tuple(scale), ratio=tuple(ratio), antialias=True
    )


def color(shape: Shape, brightness: float = 0.2, saturation: float = 0.2, hue: float = 0.02) -> v2.Transform:  # fmt: skip
    """Colour shift; saturation and hue only exist for RGB, so grayscale gets brightness alone."""
    if shape[0] != 3:
        return v2.ColorJitter(brightness=brightness)
    return v2.ColorJitter(brightness=brightness, saturation=saturation, hue=hue)


def contrast(shape: Shape, factor: float = 0.3, autocontrast_p: float = 0.0) -> v2.Transform:
    parts = [v2.ColorJitter(contrast=factor)]
    if autocontrast_p > 0:
        parts.append(v2.RandomAutocontrast(p=autocontrast_p))
    return v2.Compose(parts)


def noise(shape: Shape, sigma: float = 0.03) -> v2.Transform:
    """Gaussian pixel noise on [0, 1] images, clipped back into range."""
    return v2.GaussianNoise(sigma=sigma, clip=True)


def erase(shape: Shape, p: float = 0.5, scale: Sequence[float] = (0.02, 0.15)) -> v2.Transform:
    """Random erasing (cutout): information loss that forces the net to use the whole object."""
    return v2.RandomErasing(p=p, scale=tuple(scale), value=0)


def affine(shape: Shape, translate: float = 0.1, shear: float = 8.0, scale: Sequence[float] = (0.9, 1.1)) -> v2.Transform:  # fmt: skip
    """Shift (fraction of the size), shear (degrees) and zoom in one resampling."""
    return v2.RandomAffine(
        degrees=0, translate=(translate, translate), shear=shear, scale=tuple(scale)
    )


def randaugment(shape: Shape, num_ops: int = 2, magnitude: int = 9) -> v2.Transform:
    return _at_least_32px(shape, v2.RandAugment(num_ops=num_ops, magnitude=magnitude))


def trivialaugment(shape: Shape) -> v2.Transform:
    return _at_least_32px(shape, v2.TrivialAugmentWide())


def _at_least_32px(shape: Shape, transform: v2.Transform) -> v2.Transform:
    """Policies with absolute pixel ranges (translate up to 32 px) blank small images: run them
    on a 32 px upscale and scale back, so their magnitudes become relative to the image."""
    size = tuple(shape[1:])
    if min(size) >= 32:
        return transform
    factor = -(-32 // min(size))
    big = (size[0] * factor, size[1] * factor)
    return v2.Compose([v2.Resize(big, antialias=True), transform, v2.Resize(size, antialias=True)])


class FeatureNoise(torch.nn.Module):
    """Gaussian noise on standardized table features (per element, so per sample)."""

    def __init__(self, sigma: float = 0.1):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma={sigma} must be >= 0")
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


def feature_noise(shape: Shape, sigma: float = 0.1) -> FeatureNoise:
    return FeatureNoise(sigma)


IMAGE_OPS: dict[str, Callable[..., v2.Transform]] = {
    f.__name__: f
    for f in (
        hflip,
        vflip,
        rotate,
        crop,
        resized_crop,
        color,
        contrast,
        noise,
        erase,
        affine,
        randaugment,
        trivialaugment,
    )
}
TABLE_OPS: dict[str, Callable[..., torch.nn.Module]] = {"feature_noise": feature_noise}
