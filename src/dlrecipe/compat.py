"""The only place that touches other libraries' private internals: one function per need.

    python -m pytest tests/test_compat.py tests/test_compat_libraries.py tests/test_compat_optuna.py -q

Each function says which private detail it relies on and why no public API does the job, so
a library upgrade that breaks one breaks here, visibly, and in its test.
"""

from __future__ import annotations

import sys
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


# -- Lightning: DDP ranks re-launched inside a Hydra multirun ----------------------------------
def relaunch_ranks_as(module: str, args: list[str]) -> None:
    """Make Lightning start the extra DDP ranks as `python -m <module> <args>`.

    Lightning's launcher (`_basic_subprocess_cmd` / `_hydra_subprocess_cmd` in
    lightning.fabric.strategies.launchers.subprocess_script) re-runs `sys.argv[1:]` under
    `__main__.__spec__`; it takes no command of its own. Inside a multirun that would be the
    whole sweep, so dlrecipe.distributed points both at one job's run.
    """
    import importlib.util

    import __main__

    sys.argv = [sys.argv[0], *args]
    __main__.__spec__ = importlib.util.find_spec(module)


# -- Lightning: a training loader rebuilt between two epochs ---------------------------------
def reload_train_loader_every(trainer: Any, epochs: int) -> None:
    """Set how often the fit loop rebuilds the training loader, mid-fit.

    `reload_dataloaders_every_n_epochs` is a Trainer argument; the fit loop reads the attribute
    it is stored in at each epoch start (`_FitLoop._should_reload_train_dl`), which is what lets
    batch growth and curricula (callbacks/data_schedule.py) ask for one rebuild at a time.
    """
    trainer.reload_dataloaders_every_n_epochs = epochs


# -- Lightning: WeightAveraging's average, gated and updated before validation ---------------
def weight_average(callback: Any) -> Any:
    """The `AveragedModel` a WeightAveraging callback keeps (private `_average_model`): None
    before fit and after `end_weight_average`. Lightning has no accessor for it, and dlrecipe
    must know whether an average exists (n_averaged > 0) before it is validated or saved."""
    return callback._average_model


def end_weight_average(callback: Any) -> None:
    """Drop the average after fit (the model then holds it): nothing left to swap at test."""
    callback._average_model = None


def update_weight_average_at_epoch_end(callback: Any, pl_module: Any, epoch: int) -> None:
    """WeightAveraging's end-of-epoch update, done now (before validation), and marked done so
    its own `on_train_epoch_end` skips it (private `_latest_update_epoch`)."""
    average = callback._average_model
    if average is None or epoch <= callback._latest_update_epoch:
        return
    if callback.should_update(epoch_idx=epoch):
        average.update_parameters(pl_module)
        callback._latest_update_epoch = epoch


# -- Hydra: a failed job's exception without Hydra's stderr line -----------------------------
def hydra_job_error(result: Any) -> BaseException | None:
    """The exception a failed Hydra job raised (JobReturn's private `_return_value`).

    The public `JobReturn.return_value` re-raises it, but first writes "Error executing job
    with overrides: ..." to stderr: the overrides may hold a storage URL with a password.
    """
    error = result._return_value
    return error if isinstance(error, BaseException) else None


# -- huggingface_hub: offline for one call ----------------------------------------------------
@contextmanager
def hf_hub_offline(offline: bool = True) -> Iterator[None]:
    """huggingface_hub offline for the calls inside (cached weights load without a request).

    The hub reads HF_HUB_OFFLINE once, at import, into `huggingface_hub.constants`; setting the
    environment variable later changes nothing, so the constant is switched for the block.
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


# -- torch: layer kinds with no public base class ---------------------------------------------
def is_batch_norm(module: Any) -> bool:
    """BatchNorm1d/2d/3d, SyncBatchNorm and the lazy ones: torch's common base `_BatchNorm` is
    private, and a tuple of the public classes would miss the lazy variants."""
    from torch import nn

    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def is_dropout(module: Any) -> bool:
    """Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout (private base `_DropoutNd`)."""
    from torch import nn

    return isinstance(module, nn.modules.dropout._DropoutNd)
