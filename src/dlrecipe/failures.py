"""A failed run says why in its own directory; a mistake caught before it started leaves none.

    python -m dlrecipe.train data=csv data.source.path=missing.csv data.source.target=y model=mlp   # no dir left

Hydra creates the run directory (with .hydra/ and an empty train.log) before dlrecipe reads a
single key, so a mistyped override used to leave an orphan directory that never said what went
wrong. `record_failure` wraps the task:

- a ConfigError (a user's mistake) in a new run that has written nothing but Hydra's own files:
  the directories Hydra made for it are removed again (only those: an explicit hydra.run.dir
  may be the user's); the one-line message on the console is the whole story;
- any other failure (a crash, a mistake found once the run had written files, Ctrl-C, a
  failing sweep trial; the directory of a resumed run or a trial is never removed): error.txt
  in the run directory gets the one-line message, or the traceback of a crash, appended, and
  train.log the same text. A resume= refused before it started adds only the train.log line.
"""

from __future__ import annotations

import functools
import logging
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dlrecipe.errors import ConfigError

T = TypeVar("T")
HYDRA_ONLY = {".hydra", "train.log"}  # what Hydra writes into a new run before the task starts
# Directories the run directory resolver saw missing, i.e. that Hydra creates for this run
# (the run directory and any new outputs/<task>/<date>/ above it); only these may be removed.
_NEW_DIRS: dict[str, list[Path]] = {}


def note_new_run_dir(path: str) -> None:
    """Called by the resolver before Hydra creates `path`: remember which levels are new."""
    run_dir = Path(path).absolute()
    if str(run_dir) in _NEW_DIRS:  # resolved again later: the first answer holds
        return
    new = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    _NEW_DIRS[str(run_dir)] = new  # deepest first


def record_failure(task: Callable[[Any], T]) -> Callable[[Any], T]:
    """Wrap a Hydra task: a failure is written down (or its empty directory removed), then re-raised."""

    @functools.wraps(task)
    def run(cfg: Any) -> T:
        try:
            return task(cfg)
        except BaseException as err:
            if _is_failure(err):
                _handle(err, cfg)
            raise

    return run


def _is_failure(err: BaseException) -> bool:
    if isinstance(err, SystemExit):  # exits say their own reason (the sanity suite's table)
        return False
    return type(err).__name__ != "TrialPruned"  # Optuna's pruning ends a trial, it is no failure


def _handle(err: BaseException, cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig

    from dlrecipe.distributed import in_multirun, is_child_rank

    if not HydraConfig.initialized() or is_child_rank():  # rank 0 speaks for a DDP run
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if not run_dir.is_dir():
        return
    kept = bool(_get(cfg, "resume")) or in_multirun()  # a resumed run or a sweep trial stays
    created = _NEW_DIRS.get(str(run_dir.absolute()), [])
    if isinstance(err, ConfigError) and not kept and created and _only_hydra_files(run_dir):
        _remove_new_dirs(created)
        return
    text = describe(err)
    _to_log_files(text)
    if isinstance(err, ConfigError) and _get(cfg, "resume"):
        return  # resume= refused before it changed anything: its run gets no new file
    try:  # appended: an earlier failure of the same run (resumed since) stays readable
        with (run_dir / "error.txt").open("a") as f:
            f.write(text + "\n")
    except OSError:
        pass  # a read-only or vanished directory: the console still has the message


def describe(err: BaseException) -> str:
    """One line for a user's mistake or an interrupt, the traceback for a crash."""
    if isinstance(err, ConfigError):
        return f"error: {' '.join(str(err).split())}"
    from dlrecipe.edge import user_message

    message = user_message(err) if isinstance(err, Exception) else None
    if message is not None:  # a library's or the OS's words for a user's mistake: one line too
        return f"error: {' '.join(message.split())}"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C or a stop signal); continue it with resume=<this directory>"
    return "crashed:\n" + "".join(traceback.format_exception(err)).rstrip()


def _only_hydra_files(run_dir: Path) -> bool:
    # train.log then holds only what the console showed too (lint warnings, this error)
    return {p.name for p in run_dir.iterdir()} <= HYDRA_ONLY


def _remove_new_dirs(created: list[Path]) -> None:
    for handler in _file_handlers():  # train.log is open; close it before the directory goes
        handler.close()
    shutil.rmtree(created[0], ignore_errors=True)
    for parent in created[1:]:  # outputs/<task>/<date>/ when this run made them and they are empty
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _to_log_files(text: str) -> None:
    """Into train.log only (the console already shows the message or Hydra's traceback)."""
    record = logging.LogRecord("dlrecipe", logging.ERROR, __file__, 0, text, None, None)
    for handler in _file_handlers():
        handler.handle(record)


def _file_handlers() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def _get(cfg: Any, key: str) -> Any:
    try:
        return cfg.get(key)
    except Exception:  # a config too broken to read: treat it as a new run
        return None
