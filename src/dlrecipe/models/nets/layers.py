"""Building blocks shared by the nets: activations by name.

python -c "from dlrecipe.models.nets.layers import activation; print(activation('gelu'))"
"""

from __future__ import annotations

from torch import nn

from dlrecipe.errors import ConfigError

# Names a user types on the command line -> module class. sigmoid and tanh are here for the
# "why do deep sigmoid stacks learn slowly" experiment; relu-like units are the sane default.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation={name!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
