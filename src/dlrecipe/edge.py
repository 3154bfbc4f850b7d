"""The edge of every command: a user's mistake ends as one line on stderr and exit 2.

    python -m dlrecipe.train foo=1        # error: unknown key 'foo' (foo=1): ...   (exit 2)

Errors that Hydra, OmegaConf, pandas, PIL, scikit-learn or the OS raise for something the
user typed or pointed at are translated here into one line that names the key or file and
the fix. Everything else is a bug and keeps its traceback. docs/bad-input.md lists the
categories, tests/test_bad_input_catalogue.py holds one case per mistake.
"""

from __future__ import annotations

import argparse
import errno
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from dlrecipe.errors import ConfigError, unwrap_instantiation

T = TypeVar("T")
# The environment's fault whatever the path: no permission, read-only disk, disk full.
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
# A missing or wrong-kind path is the user's only when they typed it; otherwise it is a bug.
PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}
# Keys that must be whole numbers; checked before any data is read (int('abc') deep inside
# a builder would otherwise end in a traceback that names no key).
WHOLE_NUMBER_KEYS = (
    "seed",
    "trainer.max_epochs",
    "trainer.min_epochs",
    "trainer.max_steps",
    "trainer.accumulate_grad_batches",
    "trainer.num_nodes",
    "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps",
    "data.batch_size",
    "data.num_workers",
    "preview.samples",
    "preview.versions",
)


def one_line(message: str) -> str:
    """Messages from libraries (and the linter's list) span lines; the user gets exactly one."""
    text = ""
    for line in (" ".join(part.split()) for part in str(message).splitlines()):
        if line:
            text = line if not text else f"{text}{' ' if text.endswith(':') else '; '}{line}"
    return text


def print_error(message: str) -> None:
    """`error: <message>` on stderr; no rich markup, so `[height, width]` survives as typed."""
    from rich.console import Console
    from rich.text import Text

    line = Text.assemble(("error:", "bold red"), " ", one_line(message))
    Console(stderr=True, soft_wrap=True, highlight=False).print(line)


def user_message(err: BaseException, argv: Sequence[str] = ()) -> str | None:
    """One line for an error that is the user's mistake; None for anything that is a bug."""
    inner = unwrap_instantiation(err) if isinstance(err, Exception) else err
    if isinstance(inner, ConfigError):  # also when Hydra wrapped it (a sweeper's constructor)
        return str(inner)
    from dlrecipe.extras import message_for

    missing_extra = message_for(err)  # an optional stack that is not installed: name its extra
    if missing_extra:
        return missing_extra
    for translate in (_hydra, _omegaconf, _os, _libraries):
        message = translate(err, argv)
        if message:
            return message
    return None


def _hydra(err: BaseException, argv: Sequence[str]) -> str | None:
    from hydra.errors import (
        CompactHydraException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
    )

    text = str(err)
    if isinstance(err, OverrideParseException):
        return (
            f"cannot read the override {err.override!r}: {text.splitlines()[0]}; quote values "
            "with special characters (see https://hydra.cc/docs/advanced/override_grammar/basic)"
        )
    if isinstance(err, MissingConfigException):
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        if group and err.options:
            return (
                f"{group}={name}: there is no such option; choose one of {', '.join(err.options)}"
            )
        return f"no config {err.missing_cfg_file or text.splitlines()[0]!r}: {one_line(text.split('Config search path')[0])}"
    if isinstance(err, InstantiationException):
        # Only a config that does not fit its target's signature; a constructor's own crash is a bug.
        if not any(s in text for s in ("unexpected keyword", "required positional", "Error locating target")):  # fmt: skip
            return None
        return one_line(
            text.replace("set env var HYDRA_FULL_ERROR=1 to see chained exception.", "")
        )
    if not isinstance(err, CompactHydraException):
        return None
    first = text.splitlines()[0] if text else ""
    if first.startswith("Could not override '") and "To append" in text:
        key = first.split("'")[1]
        override = text.rsplit("use +", 1)[-1].strip()
        return (
            f"unknown key '{key}' ({override}): check its spelling (add --cfg job to see every "
            f"key), or add a new key on purpose with +{override}"
        )
    if first.startswith("Ambiguous value for argument"):
        override = first.split("'", 1)[1].rsplit("'", 1)[0]
        return (
            f"{override} lists several values: add --multirun (-m) to sweep over them, write "
            "[a,b] for a list, or quote the value for a string"
        )
    if first.startswith("Could not append to config. An item is already at"):
        key = first.split("'")[1]
        return f"+{key}: {key} already exists; drop the + ({key}=...) or use ++{key}=... to set it"
    cause = err.__cause__
    if first.startswith("Error merging override") and cause is not None:
        override = first.removeprefix("Error merging override").strip()
        return f"{override}: {str(cause).splitlines()[0]}; fix the value"
    return one_line(f"{text} {cause}" if cause is not None else text)


def _omegaconf(err: BaseException, argv: Sequence[str]) -> str | None:
    from omegaconf.errors import (
        InterpolationResolutionError,
        MissingMandatoryValue,
        ValidationError,
    )

    key = getattr(err, "full_key", None)
    if isinstance(err, MissingMandatoryValue):
        return f"{key} is required: add {key}=<value> to the command"
    if isinstance(err, ValidationError | InterpolationResolutionError):
        where = f"{key}: " if key else ""
        return f"{where}{str(err).splitlines()[0]}; fix the value given for it"
    return None


def _os(err: BaseException, argv: Sequence[str]) -> str | None:
    if not isinstance(err, OSError) or err.errno is None or not err.filename:
        return None
    name = str(err.filename)
    given = next((arg for arg in argv if name in arg), None)  # the override that named it
    where = given or name
    if err.errno in ENVIRONMENT_ERRNOS:
        return (
            f"{where}: {err.strerror}; choose a file or directory you may use (outputs go under "
            "the current directory: run from a writable one, or set hydra.run.dir=<dir>)"
        )
    if err.errno in PATH_ERRNOS and given:
        return f"{where}: {err.strerror}; check the path you gave"
    return None


def _libraries(err: BaseException, argv: Sequence[str]) -> str | None:
    import pandas as pd

    if isinstance(err, pd.errors.EmptyDataError | pd.errors.ParserError):
        return (
            f"a CSV file cannot be read ({one_line(str(err))}); check the file given as "
            "data.source.path (or predict.input): one header row, comma-separated"
        )
    origin = _raised_in(err)
    if origin.startswith("PIL.") and isinstance(err, OSError | SyntaxError | ValueError):
        return (
            f"an image cannot be read ({one_line(str(err))}); remove or replace that file under "
            "data.source.root (or predict.input)"
        )
    if origin.startswith("sklearn.model_selection") and isinstance(err, ValueError):
        return (
            f"data.split cannot split this data: {one_line(str(err))} (n_splits is data.split.k); "
            "choose fewer folds or more data"
        )
    return None


def _raised_in(err: BaseException) -> str:
    """The module of the frame that raised `err`."""
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", ""))


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


@contextmanager
def edge(argv: Sequence[str] = ()) -> Iterator[None]:
    """Around a whole command: a user's mistake -> one line and exit 2; a bug -> its traceback."""
    try:
        yield
    except Exception as err:
        message = user_message(err, argv)
        if message is None:
            raise
        print_error(message)
        raise SystemExit(2) from None


def user_error(err: Exception, argv: Sequence[str] | None = None) -> int:
    """For argparse commands, inside `except Exception`: one line and exit code 2 for a user's
    mistake; anything else is re-raised with its traceback."""
    message = user_message(err, sys.argv[1:] if argv is None else argv)
    if message is None:
        raise err
    print_error(message)
    return 2


def check_whole_numbers(cfg: Any) -> None:
    """`seed=abc` or `trainer.max_epochs=1.5` named now, before any data is read."""
    from omegaconf import OmegaConf

    for key in WHOLE_NUMBER_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key}={value!r} must be a whole number, e.g. {key}=3")


@contextmanager
def _hydra_errors_raised() -> Iterator[None]:
    """Hydra prints its own errors (with a traceback, exit 1) unless HYDRA_FULL_ERROR is set;
    with it set they reach `edge`, and bugs still print their full traceback."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def hydra_command(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """`@hydra.main` for a dlrecipe command, with the same one-line errors inside and outside it."""
    import hydra

    from dlrecipe.builders import CONF_DIR
    from dlrecipe.configs import check_conf_dir
    from dlrecipe.extras import check_argv
    from dlrecipe.failures import record_failure

    def wrap(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def checked(cfg: Any) -> Any:
            check_whole_numbers(cfg)
            return task(cfg)

        # record_failure: error.txt in the run directory, or no directory for a mistake caught
        # at once (seed=abc included: the checks above run inside it)
        hydra_main = hydra.main(
            version_base="1.3", config_path=str(CONF_DIR), config_name=config_name
        )(exit_on_config_error(record_failure(checked, user_message)))

        @functools.wraps(task)
        def main() -> Any:
            freeze_imported_objects()  # the libraries are loaded: the command line starts here
            with edge(sys.argv[1:]), _hydra_errors_raised():
                check_conf_dir(CONF_DIR)  # DLRECIPE_CONF or the install has no train.yaml
                check_argv(sys.argv[1:])  # a launcher or sweeper whose extra is missing
                return hydra_main()

        return main

    return wrap


def freeze_imported_objects() -> None:
    """Once per process, as a command starts: move every object alive now (what importing
    torch, Lightning, torchvision and scipy made, ~500,000 of them) out of the garbage
    collector's reach.

    The interpreter's final collections at exit walked them all: 1.1-1.7 s after every command
    had finished, on a 2-core VM (scripts/bench_process.py). Frozen, they are skipped; the
    objects the command itself makes are collected as before, so their finalizers still run at
    exit (a callback's unclosed file still gets flushed). Only the first call freezes: in a
    process that runs several commands (tests), later runs' objects stay collectable.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (argparse prints usage and error on two); a
    command line (not a call from Python with its own arguments) starts with the imported
    objects frozen (freeze_imported_objects)."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        if args is None:  # sys.argv: a command, not main([...]) from a notebook or a test
            freeze_imported_objects()
        return parsed

    def error(self, message: str) -> Any:
        usage = " ".join(self.format_usage().removeprefix("usage: ").split())  # unwrapped
        print_error(f"{message} (usage: {usage})")
        raise SystemExit(2)
