"""Basic residual blocks for the project's CNN: out = F(x) + shortcut(x), two 3x3 convolutions.

    python -m dlrecipe.train data=digits_wild model.net.block=residual model.net.preact=true

Post-activation (He et al. 2015): conv-BN-act-conv-BN, add the shortcut, then act.
Pre-activation (He et al. 2016): BN-act-conv-BN-act-conv, add the shortcut, nothing after; the
identity path stays clean, which is what lets very deep stacks train. The shortcut is the
identity when F keeps the shape, else a 1x1 projection (strided when F strides down); with
valid padding F shrinks the image, and the shortcut crops its centre to match.
"""

from __future__ import annotations

import torch
from torch import nn

from dlrecipe.models.nets.layers import activation as make_activation


class CenterCrop(nn.Module):
    """Cut `shrink` pixels from each side: the shortcut of a valid-padded block."""

    def __init__(self, shrink: int):
        super().__init__()
        self.shrink = shrink

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shrink
        return x[..., s:-s, s:-s] if s else x


class ResidualBlock(nn.Module):
    """post(residual(x) + shortcut(x)); the three parts are separate modules so hooks see each."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        preact: bool = False,
        batch_norm: bool = True,
        activation: str = "relu",
        padding: str = "same",
    ):
        super().__init__()
        pad = kernel_size // 2 if padding == "same" else 0

        def norm(ch: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(ch)] if batch_norm else []

        conv1 = nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad, bias=not batch_norm)
        conv2 = nn.Conv2d(out_ch, out_ch, kernel_size, 1, pad, bias=not batch_norm)
        if preact:
            layers = [*norm(in_ch), make_activation(activation), conv1,
                      *norm(out_ch), make_activation(activation), conv2]  # fmt: skip
        else:
            layers = [conv1, *norm(out_ch), make_activation(activation), conv2, *norm(out_ch)]
        self.residual = nn.Sequential(*layers)
        shrink = (
            0 if padding == "same" else kernel_size - 1
        )  # two valid convs: (k-1)/2 each side, twice
        shortcut: list[nn.Module] = [CenterCrop(shrink)] if shrink else []
        if stride != 1 or in_ch != out_ch:  # a projection only where the shape changes
            shortcut += [nn.Conv2d(in_ch, out_ch, 1, stride, bias=not batch_norm), *norm(out_ch)]
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()
        self.post = nn.Identity() if preact else make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.residual(x) + self.shortcut(x))
