"""The one exception type users see for bad input.

    python -m dlrecipe.train data.val_frac=0.9 data.test_frac=0.2   # -> ConfigError naming both keys

Raised as early as the value can be checked (almost always before the first training step),
always naming the offending key or value and the fix, so a mistyped override costs seconds.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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


def exit_on_config_error(task: Callable[[Any], T]) -> Callable[[Any], T]:
    """Show a user's mistake (a ConfigError, or a library's error that dlrecipe.edge knows to be
    one) as one clear line and exit 2, instead of a stack trace; a bug keeps its traceback.

    In a multirun the error is re-raised, so the sweeper can record the failed job and go on;
    except under Hydra's basic sweeper and launcher, which stop the multirun at a failed job
    anyway (and would print a second line, the job's overrides, before ours).
    """

    @functools.wraps(task)
    def run(cfg: Any) -> T:
        try:
            return task(cfg)
        except Exception as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            from dlrecipe.edge import print_error, user_message

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                hydra = HydraConfig.get()
                basic = str(hydra.sweeper.get("_target_", "")).endswith(".BasicSweeper") and str(
                    hydra.launcher.get("_target_", "")
                ).endswith(".BasicLauncher")
                if not basic:
                    raise
            message = user_message(err, sys.argv[1:])
            if message is None:
                raise
            print_error(message)
            raise SystemExit(2) from None

    return run
