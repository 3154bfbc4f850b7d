"""Search spaces in Hydra's sweep grammar -> Optuna distributions.

    hydra.sweeper.params:
      model.optimizer.lr: tag(log, interval(1e-4, 1e-1))   # log-uniform float
      data.batch_size: choice(16, 32, 64, 128, 256)         # categorical
      model.net.convs_per_block: range(1, 4)                # integers 1..3
      trainer.max_epochs: tag(int, interval(5, 30))         # integers, uniform

Grid search (`hydra/sweeper/sampler=grid`) needs a finite grid: each continuous interval is cut
into `hydra.sweeper.sampler.steps` points (log-spaced under `tag(log, ...)`); choice and range
keys keep their values.

Command-line sweep overrides (`model.net.dropout=interval(0,0.5)`) join the space; plain
overrides are passed unchanged to every trial. Keys are checked against the composed config
before the first trial, so a typo fails in a second, not after the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from dlrecipe.configs import code_defaults
from dlrecipe.errors import ConfigError

log = logging.getLogger(__name__)


def to_distribution(override: Override) -> BaseDistribution:
    key, value = override.key_or_group, override.value()
    tags = getattr(value, "tags", set()) or set()
    if isinstance(value, ChoiceSweep):
        # Optuna stores scalars only: lists such as [64, 32] travel as their override text.
        return CategoricalDistribution([_scalar(_plain(v)) for v in value.list])
    if isinstance(value, RangeSweep):
        if value.start is None or value.stop is None or value.stop <= value.start:
            raise ConfigError(
                f"search space {key}={override.input_line.split('=', 1)[1]}: range is empty"
            )
        step = value.step or 1
        return IntDistribution(
            int(value.start), int(value.stop - step), step=int(step), log="log" in tags
        )
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None or not low < high:
            raise ConfigError(
                f"search space {key}: interval({low}, {high}) is empty or inverted; give interval(low, high) with low < high"
            )
        if "log" in tags and low <= 0:
            raise ConfigError(f"search space {key}: a log interval needs low > 0, got {low}")
        if "int" in tags:
            return IntDistribution(int(low), int(high), log="log" in tags)
        if _looks_like_lr(key) and "log" not in tags and high / max(low, 1e-12) >= 100:
            log.warning(
                "search space %s: a learning rate over %g..%g searched uniformly spends almost every "
                "trial near the top; use tag(log, interval(%g, %g))", key, low, high, low, high,
            )  # fmt: skip
        return FloatDistribution(float(low), float(high), log="log" in tags)
    raise ConfigError(f"search space {key}: {override.input_line} is not interval, choice or range")


def _parse(parser: OverridesParser, lines: Iterable[str], prefix: str) -> list[Override]:
    """Hydra's parse of each line; grammar mistakes named by their key, in one line."""
    parsed = []
    for line in lines:
        try:
            parsed += parser.parse_overrides([line])
        except OverrideParseException as err:
            key, _, value = line.partition("=")
            details = [s.strip() for s in str(err).splitlines()[1:] if s.strip()]
            raise ConfigError(
                f"{prefix}{key}={value} is not sweep grammar ({details[0] if details else err}); "
                "use interval(low, high), tag(log, interval(low, high)), choice(a, b) or range(start, stop)"
            ) from None
    return parsed


def build_space(params: dict[str, Any] | None, arguments: Iterable[str], config: DictConfig) -> tuple[dict[str, BaseDistribution], list[str]]:  # fmt: skip
    """(distributions by key, fixed overrides) from the preset's params and the command line."""
    parser = OverridesParser.create()
    lines = [f"{k}={v}" for k, v in (params or {}).items()]
    searched: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    parsed = _parse(parser, lines, "hydra.sweeper.params.") + _parse(parser, arguments, "")
    for override in parsed:
        key = override.key_or_group
        if override.is_sweep_override():
            check_key(key, config)
            searched[key] = to_distribution(override)
            fixed = [f for f in fixed if not f.startswith(f"{key}=")]
        elif key in searched:  # a plain value on the command line pins a searched key
            del searched[key]
            fixed.append(override.input_line)
        else:
            fixed.append(override.input_line)
    if not searched:
        raise ConfigError(
            "the search space is empty: set hydra.sweeper.params or pass key=interval(...) overrides"
        )
    steps = grid_steps(config)
    if steps is not None:
        searched = {k: on_grid(k, d, steps) for k, d in searched.items()}
    return searched, fixed


def grid_sampler(seed: int | None = None, steps: int = 4) -> Any:
    """Optuna's BruteForceSampler; `steps` is read by build_space, which makes the grid."""
    from optuna.samplers import BruteForceSampler

    if not isinstance(steps, int) or steps < 2:
        raise ConfigError(
            f"hydra.sweeper.sampler.steps={steps!r}: a grid needs >= 2 points per interval"
        )
    return BruteForceSampler(seed=seed)


def grid_steps(config: DictConfig) -> int | None:
    """Points per continuous interval when the sampler enumerates a grid; None for other samplers."""
    node = OmegaConf.select(config, "hydra.sweeper.sampler")
    target = str(node.get("_target_", "")) if isinstance(node, DictConfig) else ""
    if target == f"{__name__}.grid_sampler":
        return int(node.get("steps", 4))
    if target.endswith("BruteForceSampler"):  # Optuna's own class: no steps, intervals refused
        return 0
    return None


def on_grid(key: str, dist: BaseDistribution, steps: int) -> BaseDistribution:
    """A continuous float interval as `steps` grid points; finite distributions unchanged."""
    if not isinstance(dist, FloatDistribution) or dist.step is not None:
        return dist
    if steps < 2:
        raise ConfigError(
            f"search space {key}: grid search needs finite values; use "
            f"hydra/sweeper/sampler=grid (its steps cut intervals) or give {key} as choice(...)"
        )
    space = np.geomspace if dist.log else np.linspace
    points = sorted({float(f"{v:.4g}") for v in space(dist.low, dist.high, steps)})
    return CategoricalDistribution(points)


def check_key(key: str, config: DictConfig) -> None:
    """A searched key must exist in the composed config (or be a config group like model/optimizer)."""
    if "/" in key or key.startswith(("+", "~")):  # group choices and appended keys
        return
    clean = key
    if OmegaConf.select(config, clean, default="__missing__") == "__missing__":
        parent = clean.rsplit(".", 1)[0] if "." in clean else ""
        node = OmegaConf.select(config, parent) if parent else config
        known = sorted(node.keys()) if isinstance(node, DictConfig) else []
        name = clean.rsplit(".", 1)[-1]
        if isinstance(node, DictConfig) and name in code_defaults(str(node.get("_target_", ""))):
            return  # an argument left at its code default (e.g. model.net.dropout): set per trial
        raise ConfigError(
            f"search space key {key!r} is not in the config"
            + (f"; {parent or 'top level'} has {known}" if known else "")
        )


def _scalar(value: Any) -> Any:
    return override_value(value) if isinstance(value, list | tuple | dict) else value


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _looks_like_lr(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf in ("lr", "learning_rate", "max_lr")


def override_value(value: Any) -> str:
    """A sampled value as Hydra override text."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return value  # a list choice, kept as override text (see _scalar)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)
