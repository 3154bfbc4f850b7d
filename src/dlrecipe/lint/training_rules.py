"""Lint rules on optimization and model selection: learning rate, weight decay, monitors,
early stopping, DDP.

    python -m dlrecipe.train monitor.metric=val/acc monitor.mode=min    # -> error naming both keys
"""

from __future__ import annotations

from omegaconf import DictConfig

from dlrecipe.lint.core import Finding, error, get, rule, target, warning
from dlrecipe.tasks import direction, metric_names

# Learning rates outside these ranges (by optimizer class) almost never train well.
LR_RANGES: dict[str, tuple[float, float]] = {
    "Adam": (1e-6, 0.1), "AdamW": (1e-6, 0.1), "Adamax": (1e-6, 0.1), "NAdam": (1e-6, 0.1),
    "RAdam": (1e-6, 0.1), "RMSprop": (1e-6, 0.1), "Adagrad": (1e-4, 1.0), "SGD": (1e-5, 2.0),
    "Adadelta": (1e-2, 10.0),
}  # fmt: skip


def lr_range(optimizer_target: str) -> tuple[str, tuple[float, float] | None]:
    name = optimizer_target.rsplit(".", 1)[-1]
    return name, LR_RANGES.get(name)


@rule
def learning_rate_range(cfg: DictConfig) -> list[Finding]:
    lr = get(cfg, "model.optimizer.lr")
    name, bounds = lr_range(target(cfg, "model.optimizer"))
    if not isinstance(lr, int | float) or bounds is None:
        return []
    low, high = bounds
    if lr > high:
        return [warning(
            "model.optimizer.lr",
            f"{lr:g} is above the range where {name} trains ({low:g}..{high:g}): the loss "
            f"will oscillate or diverge. Try model.optimizer.lr={min(high, 3e-3 if high <= 0.1 else 0.05):g}, "
            "or search it: hparams_search=digits_lr_bs",
        )]  # fmt: skip
    if lr < low:
        return [warning(
            "model.optimizer.lr",
            f"{lr:g} is below the range where {name} trains ({low:g}..{high:g}): weights "
            "barely move. Raise it by 10-100x",
        )]  # fmt: skip
    return []


@rule
def weight_decay_in_adam(cfg: DictConfig) -> list[Finding]:
    """Adam's weight_decay is L2 in the gradient, which the adaptive step scales away."""
    wd = float(get(cfg, "model.optimizer.weight_decay", 0.0) or 0.0)
    if (
        target(cfg, "model.optimizer").rsplit(".", 1)[-1] in ("Adam", "Adamax", "NAdam", "RAdam")
        and wd > 0
    ):
        decoupled = get(cfg, "model.optimizer.decoupled_weight_decay", False)
        if not decoupled:
            return [warning(
                "model.optimizer.weight_decay",
                f"{wd:g} with {target(cfg, 'model.optimizer')}: coupled L2, divided by the "
                "adaptive step size, so weights with large gradients are barely decayed. Use "
                "model/optimizer=adamw (decoupled weight decay, Loshchilov & Hutter)",
            )]  # fmt: skip
    return []


@rule
def nesterov_needs_momentum(cfg: DictConfig) -> list[Finding]:
    if get(cfg, "model.optimizer.nesterov", False) and not get(cfg, "model.optimizer.momentum", 0):
        return [error(
            "model.optimizer.nesterov",
            "Nesterov momentum with model.optimizer.momentum=0 (torch refuses it). Set "
            "model.optimizer.momentum=0.9 or model.optimizer.nesterov=false",
        )]  # fmt: skip
    return []


@rule
def monitor_mode_matches_metric(cfg: DictConfig) -> list[Finding]:
    metric, mode = str(get(cfg, "monitor.metric", "")), get(cfg, "monitor.mode", "min")
    leaf = metric.rsplit("/", 1)[-1]
    if mode not in ("min", "max"):
        return [error("monitor.mode", f"{mode!r}: choose min or max")]
    wanted = direction(metric) or mode
    if wanted != mode:
        return [error(
            "monitor.mode",
            f"{mode} with monitor.metric={metric}: {leaf} is better when {'higher' if wanted == 'max' else 'lower'}, "
            f"so checkpoints and early stopping would keep the worst epoch. Set monitor.mode={wanted}",
        )]  # fmt: skip
    return []


@rule
def no_model_selection_on_test(cfg: DictConfig) -> list[Finding]:
    found = []
    wanted = get(cfg, "optimized_metric")
    metrics = [("monitor.metric", get(cfg, "monitor.metric"))]
    metrics += [("optimized_metric", m) for m in metric_names(wanted) or [wanted]]
    for key, metric in metrics:
        if isinstance(metric, str) and metric.startswith("test/"):
            found.append(error(
                key,
                f"{metric} selects checkpoints / hyperparameters on the test set, which then "
                "no longer measures generalization. Use the val/ metric of the same name",
            ))  # fmt: skip
    return found


@rule
def early_stopping_can_trigger(cfg: DictConfig) -> list[Finding]:
    patience, epochs = get(cfg, "callbacks.early_stopping.patience"), get(cfg, "trainer.max_epochs")
    if isinstance(patience, int) and isinstance(epochs, int) and epochs > 0 and patience >= epochs:
        return [warning(
            "callbacks.early_stopping.patience",
            f"{patience} >= trainer.max_epochs={epochs}: early stopping can never trigger. Lower "
            f"the patience (e.g. {max(1, epochs // 5)}) or set callbacks.early_stopping=null",
        )]  # fmt: skip
    return []


def _distributed(cfg: DictConfig) -> bool:
    devices = get(cfg, "trainer.devices", 1)
    many = (isinstance(devices, int) and devices > 1) or (
        isinstance(devices, list | tuple) and len(devices) > 1
    )
    strategy = str(get(cfg, "trainer.strategy._target_", get(cfg, "trainer.strategy", "")))
    return many or "ddp" in strategy.lower() or int(get(cfg, "trainer.num_nodes", 1)) > 1


@rule
def batch_size_finder_without_ddp(cfg: DictConfig) -> list[Finding]:
    if not _distributed(cfg):
        return []
    callbacks = get(cfg, "callbacks", {}) or {}
    return [
        error(
            f"callbacks.{name}",
            "Lightning's BatchSizeFinder does not run under distributed strategies, and the "
            "size it finds is per device while data.batch_size is the global batch. Find the "
            "batch on one device (trainer=gpu), then set data.batch_size to it x devices",
        )
        for name, spec in callbacks.items()
        if spec and str(get(spec, "_target_", "")).endswith("BatchSizeFinder")
    ]


@rule
def one_checkpoint_per_role(cfg: DictConfig) -> list[Finding]:
    # Lightning refuses two ModelCheckpoints with the same settings (their saved states would
    # collide) with an error that names no config key. A monitor-less model_checkpoint repeats
    # last_checkpoint, which already keeps the latest epoch.
    best, last = get(cfg, "callbacks.model_checkpoint"), get(cfg, "callbacks.last_checkpoint")
    if best is None or last is None or get(cfg, "callbacks.model_checkpoint.monitor") is not None:
        return []
    return [error(
        "callbacks.model_checkpoint.monitor",
        "null makes it a second copy of callbacks.last_checkpoint (the latest epoch, last.ckpt). "
        "To test the final weights instead of the best ones, set callbacks.model_checkpoint=null",
    )]  # fmt: skip
