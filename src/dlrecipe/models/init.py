"""Weight initialization schemes for Linear and Conv layers.

    python -m dlrecipe.train model.init=xavier_uniform

He (Kaiming) keeps the variance of ReLU activations constant through depth; Xavier (Glorot) does
the same for tanh / sigmoid; `small_normal` (0.01 x N(0, 1)) is the classic example of an
initialization that makes deep nets' activations vanish. `default` keeps PyTorch's own
(Kaiming-uniform with a=sqrt(5)). Biases start at zero for every non-default scheme.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlrecipe.errors import ConfigError

SCHEMES: dict[str, Callable[[torch.Tensor], object] | None] = {
    "default": None,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "he_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "small_normal": lambda w: nn.init.normal_(w, std=0.01),
}


def initialize(net: nn.Module, scheme: str = "default") -> nn.Module:
    if scheme not in SCHEMES:
        raise ConfigError(f"model.init={scheme!r} is unknown; choose one of {sorted(SCHEMES)}")
    fn = SCHEMES[scheme]
    if fn is None:
        return net
    # A pretrained net re-initializes only its new parts (its head), never the loaded weights.
    fresh = net.fresh_modules() if hasattr(net, "fresh_modules") else [net]
    for module in (m for part in fresh for m in part.modules()):
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            fn(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
