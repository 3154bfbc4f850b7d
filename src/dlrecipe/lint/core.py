"""The linter's machinery: a finding, the rule registry, and running every rule on a config.

    python -c "from dlrecipe.builders import compose; from dlrecipe.lint import lint; print(lint(compose(['model.net.conv_dropout=0.6'])))"

A rule is a function `(cfg) -> list[Finding]` registered with `@rule`; it only reads the
config (no data, no model), so all of them together cost milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlrecipe.configs import code_defaults
from dlrecipe.errors import ConfigError

log = logging.getLogger("dlrecipe.lint")

Rule = Callable[[DictConfig], list["Finding"]]
RULES: list[Rule] = []
_already_warned: set[str] = set()  # trials of a sweep share a process: warn once, not per trial


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" (logged, the run goes on) | "error" (ConfigError before any data)
    key: str  # the config key at fault
    message: str  # what is wrong and the fix

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def warning(key: str, message: str) -> Finding:
    return Finding("warning", key, message)


def error(key: str, message: str) -> Finding:
    return Finding("error", key, message)


_ABSENT = object()


def get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """The value at a dotted key, `default` when absent or unresolvable (a rule never crashes).

    A key the YAML leaves out of a `_target_` node has its target's code default (the CNN's
    batch_norm=True, not absent): rules see what the run will build.
    """
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is _ABSENT:
            parent, _, name = key.rpartition(".")
            node = OmegaConf.select(cfg, parent, default=None) if parent else None
            if isinstance(node, DictConfig) and isinstance(node.get("_target_"), str):
                value = code_defaults(node["_target_"]).get(name)
    except Exception:  # an interpolation that needs Hydra's runtime (hydra:...) outside a run
        return default
    return default if value is None or value is _ABSENT else value


def target(cfg: DictConfig, key: str) -> str:
    """The `_target_` at `key` ('' when none), e.g. 'torch.optim.AdamW'."""
    return str(get(cfg, f"{key}._target_", ""))


def lint(cfg: DictConfig) -> list[Finding]:
    """Every finding of every registered rule, in registration order."""
    return [finding for check in RULES for finding in check(cfg)]


def run_lint(cfg: DictConfig) -> list[Finding]:
    """Log warnings, raise one ConfigError listing every error; off with extras.lint=false."""
    if not get(cfg, "extras.lint", True):
        return []
    findings = lint(cfg)
    for finding in findings:
        if finding.level == "warning" and str(finding) not in _already_warned:
            _already_warned.add(str(finding))
            log.warning("lint: %s (extras.lint=false silences the linter)", finding)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        lines = "\n  ".join(str(f) for f in errors)
        raise ConfigError(
            f"the config linter found {len(errors)} error(s):\n  {lines}\n"
            "(extras.lint=false skips the linter)"
        )
    return findings
