"""Multi-layer perceptron for tables (and flattened images).

    python -m dlrecipe.train experiment=wine_mlp model.net.hidden=[64,64] model.net.dropout=0.3

Each hidden layer is Linear -> (BatchNorm) -> activation -> (Dropout); the last layer is a plain
Linear with `num_outputs` units (logits or a regression value; no sigmoid/softmax here, the loss
applies it in a numerically stable way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.layers import activation as make_activation


class MLP(nn.Module):
    """model.net.<arg>=...: hidden (conf/model/mlp.yaml: [128, 64], two layers are plenty for small
    tables; widen before deepening), activation=relu (relu | leaky_relu | elu | gelu | selu |
    silu | tanh | sigmoid), dropout=0.2 (0.2-0.5 is the classic range: small tables over-fit
    quickly), batch_norm=True (normalizes each layer's inputs: faster, less sensitive to the LR).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.2,
        batch_norm: bool = True,
    ):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.net.dropout={dropout} must be in [0, 1)")
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"model.net.hidden={list(hidden)}: every layer needs >= 1 unit")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for units in hidden:
            layers.append(nn.Linear(width, int(units)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(units)))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(units)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
