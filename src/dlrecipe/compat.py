"""The only place that touches other libraries' private internals: one function per need.

    python -m pytest tests/test_compat.py -q      # each function here has a test of its own

Each function says which private detail it relies on and why no public API does the job, so
a library upgrade that breaks one breaks here, visibly, and in its test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def optuna_study_loop(study: Any) -> Iterator[None]:
    """Let samplers call `study.stop()` while we tell results, as inside `Study.optimize`.

    Our sweeper runs Optuna's ask/tell loop itself (trials are Hydra jobs), but `Study.stop()`
    refuses to run outside `optimize` (it checks the private `_thread_local.in_optimize_loop`);
    a grid or brute-force sampler calls it when every point has been tried.
    """
    study._thread_local.in_optimize_loop = True
    try:
        yield
    finally:
        study._thread_local.in_optimize_loop = False


def optuna_stop_requested(study: Any) -> bool:
    """Whether a sampler or callback called `study.stop()` (Optuna keeps it in `_stop_flag`)."""
    return bool(getattr(study, "_stop_flag", False))
