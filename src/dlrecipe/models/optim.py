"""Optimizer parameter groups: weight decay on weight matrices and kernels only.

    python -m dlrecipe.train model/optimizer=sgd model.optimizer.lr=0.05 model.optimizer.weight_decay=5e-4

Decaying biases and batch-norm scales only fights the normalization, so (as in nanoGPT and
timm) every parameter with fewer than two dimensions goes into a group with weight_decay=0.
The optimizer itself comes from conf/model/optimizer/ as a `_partial_` torch.optim class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch
from torch import nn

from dlrecipe.errors import ConfigError


def optimizer_settings(optimizer: Callable[..., torch.optim.Optimizer]) -> dict:
    return dict(optimizer.keywords) if isinstance(optimizer, partial) else {}


def check_optimizer(optimizer: Callable[..., torch.optim.Optimizer]) -> None:
    settings = optimizer_settings(optimizer)
    lr = settings.get("lr")
    if lr is not None and not (isinstance(lr, int | float) and lr > 0):
        raise ConfigError(f"model.optimizer.lr={lr!r} must be a positive number (e.g. 1e-3)")
    wd = settings.get("weight_decay", 0.0)
    if wd < 0:
        raise ConfigError(f"model.optimizer.weight_decay={wd} must be >= 0")


def is_decayed(param: torch.Tensor) -> bool:
    """Weight matrices and kernels; biases and normalization scales (ndim < 2) are left alone."""
    return param.ndim >= 2


def param_groups(params: Iterable[torch.Tensor], weight_decay: float) -> list[dict]:
    """The trainable `params` in two groups: decayed weights, and the rest with no decay."""
    decay, no_decay = [], []
    for param in params:
        if param.requires_grad:
            (decay if is_decayed(param) else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    optimizer: Callable[..., torch.optim.Optimizer], module: nn.Module
) -> torch.optim.Optimizer:
    weight_decay = optimizer_settings(optimizer).get("weight_decay", 0.0)
    return optimizer(param_groups(module.parameters(), weight_decay))


LR_RULES = ("none", "linear", "sqrt")


def rescale_lr(
    optimizer: Callable[..., torch.optim.Optimizer],
    effective_batch: int,
    base_batch: int,
    rule: str,
) -> Callable[..., torch.optim.Optimizer]:
    """The optimizer with lr x (effective / base) (linear, Goyal et al.) or its square root."""
    if rule not in LR_RULES:
        raise ConfigError(f"lr_scaling.rule={rule!r}: choose one of {list(LR_RULES)}")
    if base_batch < 1:
        raise ConfigError(f"lr_scaling.base_batch_size={base_batch} must be >= 1")
    settings = optimizer_settings(optimizer)
    if rule == "none" or "lr" not in settings:
        return optimizer
    ratio = effective_batch / base_batch
    factor = ratio if rule == "linear" else ratio**0.5
    return partial(optimizer.func, *optimizer.args, **{**settings, "lr": settings["lr"] * factor})
