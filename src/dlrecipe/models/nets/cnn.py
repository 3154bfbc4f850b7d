"""Convolutional net for images: conv blocks, then global pooling and a dense head.

    python -m dlrecipe.train experiment=digits_cnn model.net.channels=[32,64,128] model.net.pool=avg

A block is `convs_per_block` x (Conv -> (BatchNorm) -> activation), then 2x2 pooling (or a
stride-2 convolution with pool=stride). Dropout sits in the dense head only by default: conv
layers share weights and rarely need it. The net checks that the image is large enough for the
number of down-sampling blocks before any training starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.layers import activation as make_activation

POOLS = ("max", "avg", "stride", "none")


class CNN(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        convs_per_block: int = 2,
        pool: str = "max",
        batch_norm: bool = True,
        activation: str = "relu",
        conv_dropout: float = 0.0,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.3,
        global_pool: bool = True,
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"model=cnn needs images (C, H, W) but the data has shape {tuple(input_shape)}; "
                "use model=mlp for tables"
            )
        if pool not in POOLS:
            raise ConfigError(f"model.net.pool={pool!r}: choose one of {list(POOLS)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(
                f"model.net.kernel_size={kernel_size} must be odd and positive (3, 5)"
            )
        for key, value in (("dropout", dropout), ("conv_dropout", conv_dropout)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model.net.{key}={value} must be in [0, 1)")
        in_ch, height, width = (int(s) for s in input_shape)
        smallest = min(height, width)
        downs = len(channels) if pool != "none" else 0
        if smallest >> downs < 1:
            raise ConfigError(
                f"model.net.channels={list(channels)} halves the image {len(channels)} times, but "
                f"{height}x{width} allows at most {smallest.bit_length() - 1} halvings; "
                "use fewer blocks or model.net.pool=none"
            )
        blocks: list[nn.Module] = []
        for out_ch in channels:
            for i in range(convs_per_block):
                stride = 2 if pool == "stride" and i == convs_per_block - 1 else 1
                blocks += [
                    nn.Conv2d(
                        in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=not batch_norm
                    ),
                    *([nn.BatchNorm2d(out_ch)] if batch_norm else []),
                    make_activation(activation),
                ]
                in_ch = out_ch
            if pool in ("max", "avg"):
                blocks.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
            if conv_dropout > 0:
                blocks.append(nn.Dropout2d(conv_dropout))
        self.features = nn.Sequential(*blocks)
        self.features.eval()  # probe the output size without touching batch-norm statistics
        with torch.no_grad():
            out_shape = self.features(torch.zeros(1, *input_shape)).shape
        self.features.train()
        flat = out_shape[1] if global_pool else out_shape[1] * out_shape[2] * out_shape[3]
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        head: list[nn.Module] = [nn.Flatten()]
        for units in hidden:
            head += [nn.Linear(flat, int(units)), make_activation(activation)]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            flat = int(units)
        head.append(nn.Linear(flat, num_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))
