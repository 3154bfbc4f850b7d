"""Learning-rate schedules, each with an optional linear warm-up, all stepped per batch.

    python -m dlrecipe.train model/scheduler=onecycle
    python -m dlrecipe.train model/scheduler=cosine model.scheduler.warmup_frac=0.05

Every entry in conf/model/scheduler/ is a `_partial_` of one function here. The module calls it
with the optimizer and a `ScheduleContext` (total steps, steps per epoch, monitored metric), so
schedules written in epochs (step, exponential) and in steps (cosine, onecycle) work for any
run length. `plateau` is the one schedule stepped per epoch, on the validation metric; its
warm-up is a second, per-step scheduler. `onecycle` warms up by design: `warmup_frac` is its
`pct_start`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim import lr_scheduler as lrs

from dlrecipe.errors import ConfigError


@dataclass(frozen=True)
class ScheduleContext:
    total_steps: int
    steps_per_epoch: int
    monitor: str = "val/loss"
    mode: str = "min"


def _check_warmup(warmup_frac: float) -> None:
    if not 0.0 <= warmup_frac < 1.0:
        raise ConfigError(f"model.scheduler.warmup_frac={warmup_frac} must be in [0, 1)")


def _ramp(optimizer: Optimizer, warmup: int) -> lrs.LinearLR:
    return lrs.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)


def _per_step(optimizer: Optimizer, schedule: lrs.LRScheduler, warmup_frac: float, ctx) -> dict:
    _check_warmup(warmup_frac)
    warmup = int(warmup_frac * ctx.total_steps)
    if warmup > 0:
        schedule = lrs.SequentialLR(optimizer, [_ramp(optimizer, warmup), schedule], [warmup])
    return {"scheduler": schedule, "interval": "step"}


def _after_warmup(ctx: ScheduleContext, warmup_frac: float) -> int:
    return max(1, ctx.total_steps - int(warmup_frac * ctx.total_steps))


def constant(optimizer: Optimizer, ctx: ScheduleContext, warmup_frac: float = 0.0) -> dict | None:
    if warmup_frac == 0.0:  # nothing to schedule: no scheduler stepping every batch for nothing
        return None
    return _per_step(
        optimizer, lrs.ConstantLR(optimizer, factor=1.0, total_iters=0), warmup_frac, ctx
    )


def step(
    optimizer: Optimizer,
    ctx: ScheduleContext,
    step_epochs: int = 10,
    gamma: float = 0.1,
    warmup_frac: float = 0.0,
) -> dict:
    if step_epochs < 1:
        raise ConfigError(f"model.scheduler.step_epochs={step_epochs} must be >= 1")
    sched = lrs.StepLR(optimizer, step_size=step_epochs * ctx.steps_per_epoch, gamma=gamma)
    return _per_step(optimizer, sched, warmup_frac, ctx)


def exponential(
    optimizer: Optimizer, ctx: ScheduleContext, gamma: float = 0.95, warmup_frac: float = 0.0
) -> dict:
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"model.scheduler.gamma={gamma} must be in (0, 1]")
    per_step = gamma ** (1.0 / ctx.steps_per_epoch)  # gamma is the decay per epoch
    return _per_step(optimizer, lrs.ExponentialLR(optimizer, per_step), warmup_frac, ctx)


def cosine(
    optimizer: Optimizer, ctx: ScheduleContext, min_lr_ratio: float = 0.0, warmup_frac: float = 0.0
) -> dict:
    # The closed form, relative to each group's own rate: parameter groups with different rates
    # (discriminative fine-tuning) all end at min_lr_ratio of where they started.
    steps = _after_warmup(ctx, warmup_frac)

    def factor(step: int) -> float:
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * min(step, steps) / steps)
        )

    return _per_step(optimizer, lrs.LambdaLR(optimizer, factor), warmup_frac, ctx)


def linear(
    optimizer: Optimizer, ctx: ScheduleContext, end_ratio: float = 0.0, warmup_frac: float = 0.0
) -> dict:
    sched = lrs.LinearLR(
        optimizer, 1.0, max(end_ratio, 1e-8), total_iters=_after_warmup(ctx, warmup_frac)
    )
    return _per_step(optimizer, sched, warmup_frac, ctx)


def inverse_sqrt(optimizer: Optimizer, ctx: ScheduleContext, warmup_frac: float = 0.05) -> dict:
    """lr * sqrt(w / step) after w warm-up steps (the Transformer schedule)."""
    warmup = max(1, int(warmup_frac * ctx.total_steps))
    sched = lrs.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else (warmup / (s + 1)) ** 0.5
    )
    return {"scheduler": sched, "interval": "step"}


def onecycle(
    optimizer: Optimizer,
    ctx: ScheduleContext,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    warmup_frac: float | None = None,
) -> dict:
    """Warm up to the optimizer's lr, then anneal far below it (Smith's 1cycle).

    The warm-up is the cycle's first phase, so `warmup_frac`, when given, is its length (it
    replaces pct_start); 0 is refused, since a cycle without its rising half is not 1cycle.
    """
    if warmup_frac is not None:
        if not 0.0 < warmup_frac < 1.0:
            raise ConfigError(
                f"model.scheduler.warmup_frac={warmup_frac}: onecycle always warms up (its first "
                "phase); give a share in (0, 1), or use model/scheduler=cosine for no warm-up"
            )
        pct_start = warmup_frac
    max_lr = [g["lr"] for g in optimizer.param_groups]
    sched = lrs.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(ctx.total_steps, 2),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
    return {"scheduler": sched, "interval": "step"}


def plateau(
    optimizer: Optimizer,
    ctx: ScheduleContext,
    factor: float = 0.1,
    patience: int = 5,
    min_lr: float = 0.0,
    warmup_frac: float = 0.0,
) -> dict | list[dict]:
    """Divide the lr by 1/factor when the monitored validation metric stops improving.

    With `warmup_frac`, a per-step linear ramp runs first, as a second scheduler: the plateau
    scheduler steps per epoch and cannot ramp within one. Both scale the current lr, so a cut
    during the ramp is kept.
    """
    _check_warmup(warmup_frac)
    sched = lrs.ReduceLROnPlateau(
        optimizer, mode=ctx.mode, factor=factor, patience=patience, min_lr=min_lr
    )
    on_plateau = {"scheduler": sched, "interval": "epoch", "monitor": ctx.monitor}
    warmup = int(warmup_frac * ctx.total_steps)
    if warmup == 0:
        return on_plateau
    return [{"scheduler": _ramp(optimizer, warmup), "interval": "step"}, on_plateau]
