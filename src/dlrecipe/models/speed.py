"""GPU speed options for the net: channels_last memory format and torch.compile.

    python -m dlrecipe.train trainer=gpu trainer.precision=bf16-mixed model.channels_last=true model.compile=true

Both change how the net computes, never what: the parameters and their state-dict keys stay
the same, so checkpoints load into a plain net in eval, predict and reports.
"""

from __future__ import annotations

import shutil
from typing import Any

import torch
from torch import nn

from dlrecipe.errors import ConfigError


def use_channels_last(net: nn.Module) -> nn.Module:
    """4-D weights and inputs in NHWC order: the layout tensor-core convolutions run fastest in.

    Parameters are converted in place (the module moves to the GPU later with its layout kept);
    a forward pre-hook converts each 4-D input, so training, evaluation, prediction and reports
    all feed the same layout. Tables (2-D inputs) pass through unchanged.
    """
    net.to(memory_format=torch.channels_last)

    def to_channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            return (x.contiguous(memory_format=torch.channels_last), *args[1:])
        return args

    net.register_forward_pre_hook(to_channels_last)
    return net


def check_compile(option: bool | dict[str, Any]) -> dict[str, Any] | None:
    """model.compile -> keyword arguments for nn.Module.compile, or None when off.

    torch.compile's default backend (inductor) writes and builds C++ (CPU) or Triton (GPU)
    kernels, which needs a C compiler: without one it fails deep inside the first training
    step, so say it here, before any time is spent.
    """
    if option is False or option is None:
        return None
    if option is not True and not isinstance(option, dict):
        raise ConfigError(
            f"model.compile={option!r}: use true, false, or a dict of torch.compile options "
            "(e.g. model.compile={mode: max-autotune})"
        )
    options = {} if option is True else dict(option)
    uses_inductor = options.get("backend", "inductor") == "inductor"
    if uses_inductor and not any(shutil.which(c) for c in ("cc", "gcc", "clang", "c++")):
        raise ConfigError(
            "model.compile=true needs a C compiler for torch.compile's inductor backend and none "
            "is on PATH (cc, gcc, clang); install one (e.g. apt-get install g++), choose another "
            "backend (model.compile={backend: aot_eager}), or set model.compile=false"
        )
    return options


def compile_net(net: nn.Module, options: dict[str, Any]) -> None:
    """Compile in place (nn.Module.compile): state-dict keys keep no `_orig_mod.` prefix."""
    net.compile(**options)
