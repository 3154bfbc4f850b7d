"""The one exception type users see for bad input.

    python -m dlrecipe.train data.val_frac=0.9 data.test_frac=0.2   # -> ConfigError naming both keys

Raised as early as the value can be checked (almost always before the first training step),
always naming the offending key or value and the fix, so a mistyped override costs seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value or input file that cannot work; the message says how to fix it."""


def read_json(path: Path) -> Any:
    """A JSON file read back from disk, where a truncated or edited file is the user's to fix."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err}); restore it or delete it and re-run the command "
            "that writes it"
        ) from None


def unwrap_instantiation(err: Exception) -> Exception:
    """Hydra wraps errors raised in a `_target_`'s constructor; return ours if it is inside."""
    cause = err
    while cause is not None:
        if isinstance(cause, ConfigError):
            return cause
        cause = cause.__cause__
    return err
