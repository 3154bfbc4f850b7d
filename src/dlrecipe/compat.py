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


def one_based_rich_progress_bar(**kwargs: Any) -> Any:
    """Lightning's RichProgressBar reading "Epoch 1/30" for the first of 30 epochs.

    The bar writes its epoch label in the private `_get_train_description(current_epoch)`
    ("Epoch 0/29": 0-based); no public option changes it. dlrecipe counts epochs from 1
    everywhere (the summary's best epoch, checkpoint names best-epoch001 for the first).
    """
    from lightning.pytorch.callbacks import RichProgressBar

    class OneBasedRichProgressBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            text = f"Epoch {current_epoch + 1}"
            if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
                text += f"/{self.trainer.max_epochs}"
            return f"{text:{len(self.validation_description)}}"  # padded as Lightning does

    return OneBasedRichProgressBar(**kwargs)


@contextmanager
def hf_hub_offline(offline: bool = True) -> Iterator[None]:
    """huggingface_hub offline for the calls inside (timm's create_model asks the hub otherwise).

    huggingface_hub reads the HF_HUB_OFFLINE environment variable once, at import, into
    `huggingface_hub.constants.HF_HUB_OFFLINE`, which its download functions read on every call;
    there is no public switch per call. dlrecipe checks the cache itself, and when the weights
    are there, this skips the hub's network round trips (and their ~50 s of retries offline).
    """
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
