"""The config linter: known mistakes caught at start-up, from the config alone, in milliseconds.

    python -m dlrecipe.train monitor.metric=val/acc                  # error: acc with mode=min
    python -m dlrecipe.train model.net.conv_dropout=0.6              # warning, the run goes on
    python -m dlrecipe.train extras.lint=false ...                   # linter off

train.py calls `run_lint(cfg)` before any data is loaded: warnings are logged, errors raise one
ConfigError that lists them all. Each message names the key and the fix. A new rule is a function
`(cfg) -> list[Finding]` decorated with `@rule` in one of the rule modules below.
"""

from dlrecipe.lint import data_rules, model_rules, training_rules  # noqa: F401  (registers rules)
from dlrecipe.lint.core import RULES, Finding, lint, run_lint

__all__ = ["RULES", "Finding", "lint", "run_lint"]
