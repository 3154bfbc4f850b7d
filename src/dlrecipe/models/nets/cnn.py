"""Convolutional net for images: conv blocks, then global pooling and a dense head.

    python -m dlrecipe.train experiment=digits_cnn model.net.channels=[32,64,128] model.net.pool=avg
    python -m dlrecipe.train experiment=digits_wild_resnet      # block=residual, pre-activation

A plain block is `convs_per_block` x (Conv -> (BatchNorm) -> activation), then 2x2 pooling (or
a stride-2 convolution with pool=stride). With block=residual each block is convs_per_block / 2
basic residual blocks (models/nets/residual.py: two convolutions and a skip connection each).
Padding is "same" (the size only changes by pooling) or "valid" (each k x k convolution cuts
k - 1 pixels). Dropout sits in the dense head only by default: conv layers share weights and
rarely need it. The net checks that the image is large enough for its convolutions and
down-sampling before any training starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.layers import activation as make_activation
from dlrecipe.models.nets.residual import ResidualBlock

POOLS = ("max", "avg", "stride", "none")
BLOCKS = ("plain", "residual")
PADDINGS = ("same", "valid")


class CNN(nn.Module):
    """The defaults are the digits CNN (conf/model/cnn.yaml sets none of them; model.net.<arg>=...):

    channels=(32, 64): one entry per block, each block halves the image (8x8 digits allow 3);
    kernel_size=3: the smallest kernel with a centre, two stacked see 5x5; convs_per_block=2:
    VGG-style pairs see more context per down-sampling step; pool=max (max | avg | stride |
    none); batch_norm=True: faster, more stable training, a larger LR; activation=relu;
    conv_dropout=0.0: conv layers share weights and rarely need dropout; hidden=(128,): the
    dense head after global pooling; dropout=0.3: in the dense head, where CNNs over-fit;
    global_pool=True: fewer parameters than flattening; block=plain (residual: skip connections,
    deeper nets keep training); preact=False (residual only: BN-act-conv, a clean identity path);
    padding=same (only pooling shrinks; valid cuts kernel_size-1 px per convolution).
    """

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
        block: str = "plain",
        preact: bool = False,
        padding: str = "same",
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
        for key, value, allowed in (("block", block, BLOCKS), ("padding", padding, PADDINGS)):
            if value not in allowed:
                raise ConfigError(f"model.net.{key}={value!r}: choose one of {list(allowed)}")
        residual = block == "residual"
        if residual and (convs_per_block < 2 or convs_per_block % 2):
            raise ConfigError(
                f"model.net.convs_per_block={convs_per_block}: a residual block has two "
                "convolutions, so use an even number (2 = one residual block per stage)"
            )
        if residual and padding == "valid" and pool == "stride":
            raise ConfigError(
                "model.net.pool=stride with padding=valid leaves no shortcut size that matches the "
                "residual path; use model.net.pool=max (or padding=same)"
            )
        in_ch, height, width = (int(s) for s in input_shape)
        check_image_size(height, width, channels, kernel_size, convs_per_block, pool, padding)
        pad = kernel_size // 2 if padding == "same" else 0
        blocks: list[nn.Module] = []
        for out_ch in channels:
            if residual:
                for i in range(convs_per_block // 2):
                    stride = 2 if pool == "stride" and i == convs_per_block // 2 - 1 else 1
                    blocks.append(ResidualBlock(in_ch, out_ch, kernel_size, stride, preact,
                                                batch_norm, activation, padding))  # fmt: skip
                    in_ch = out_ch
            for i in range(0 if residual else convs_per_block):
                stride = 2 if pool == "stride" and i == convs_per_block - 1 else 1
                blocks += [
                    nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad, bias=not batch_norm),
                    *([nn.BatchNorm2d(out_ch)] if batch_norm else []),
                    make_activation(activation),
                ]
                in_ch = out_ch
            if pool in ("max", "avg"):
                blocks.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
            if conv_dropout > 0:
                blocks.append(nn.Dropout2d(conv_dropout))
        if residual and preact:  # pre-activation leaves the last sum un-normalized: BN-act once
            blocks += [
                *([nn.BatchNorm2d(in_ch)] if batch_norm else []),
                make_activation(activation),
            ]
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


def check_image_size(
    height: int, width: int, channels: Sequence[int], kernel_size: int, convs_per_block: int,
    pool: str, padding: str,
) -> None:  # fmt: skip
    """The spatial size after every convolution and pooling must stay >= 1: say which keys to change."""
    smallest = min(height, width)
    if padding == "same":  # only pooling shrinks the image
        downs = len(channels) if pool != "none" else 0
        if smallest >> downs < 1:
            raise ConfigError(
                f"model.net.channels={list(channels)} halves the image {len(channels)} times, but "
                f"{height}x{width} allows at most {smallest.bit_length() - 1} halvings; "
                "use fewer blocks or model.net.pool=none"
            )
        return
    size = smallest
    for n, _ in enumerate(channels, start=1):
        for i in range(convs_per_block):
            stride = 2 if pool == "stride" and i == convs_per_block - 1 else 1
            size = (size - kernel_size) // stride + 1 if size >= kernel_size else 0
        if pool in ("max", "avg"):
            size //= 2
        if size < 1:
            raise ConfigError(
                f"model.net.padding=valid: each {kernel_size}x{kernel_size} convolution cuts "
                f"{kernel_size - 1} pixels and pooling halves the rest, so {height}x{width} images "
                f"shrink to nothing in block {n} of model.net.channels={list(channels)}; use fewer "
                "blocks, model.net.padding=same or model.net.pool=none"
            )
