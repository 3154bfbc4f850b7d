"""Weight initialization schemes for Linear and Conv layers.

    python -m dlrecipe.train model.init=xavier_uniform
    python -m dlrecipe.train model.init=small_normal model.init_scale=0.1

He (Kaiming) keeps the variance of ReLU activations constant through depth; Xavier (Glorot) does
the same for tanh / sigmoid; `small_normal` (init_scale x N(0, 1), 0.01 by default) is the classic example of an
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
    "small_normal": None,  # N(0, scale^2): built in initialize() from model.init_scale
}


def initialize(net: nn.Module, scheme: str = "default", scale: float = 0.01) -> nn.Module:
    if scheme not in SCHEMES:
        raise ConfigError(f"model.init={scheme!r} is unknown; choose one of {sorted(SCHEMES)}")
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not scale > 0:
        raise ConfigError(f"model.init_scale={scale!r} must be a number > 0 (e.g. 0.01)")
    fn = SCHEMES[scheme]
    if scheme == "small_normal":
        fn = lambda w: nn.init.normal_(w, std=float(scale))  # noqa: E731
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
