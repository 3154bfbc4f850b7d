"""The one exception type users see for bad input.

    python -m dlrecipe.train data.val_frac=0.9 data.test_frac=0.2   # -> ConfigError naming both keys

Raised before any training step, always naming the offending key or value and the fix, so a
mistyped override costs seconds, not a training run.
"""


class ConfigError(ValueError):
    """A configuration value or input file that cannot work; the message says how to fix it."""
