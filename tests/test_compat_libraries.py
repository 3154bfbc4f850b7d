"""dlrecipe.compat's Lightning, Hydra and huggingface_hub functions against the installed
libraries: each test fails when the private detail its function relies on moves.

    python -m pytest tests/test_compat_libraries.py -q

Small and in-process: a two-layer LightningModule, a few batches, no data sets.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.demos.boring_classes import BoringModel

from dlrecipe.compat import (
    end_weight_average,
    hf_hub_offline,
    hydra_job_error,
    relaunch_ranks_as,
    reload_train_loader_every,
    update_weight_average_at_epoch_end,
    weight_average,
)


def test_lightning_relaunches_extra_ranks_with_the_command_we_set(monkeypatch):
    from lightning.fabric.strategies.launchers.subprocess_script import _basic_subprocess_cmd

    import __main__

    monkeypatch.setattr(sys, "argv", ["train.py", "hparams_search=digits_lr_bs", "-m"])
    monkeypatch.setattr(__main__, "__spec__", None)  # a script, as `python train.py` runs it
    relaunch_ranks_as("dlrecipe.train", ["model.lr=0.1", "hydra.mode=RUN"])
    command = list(_basic_subprocess_cmd())
    assert command == [sys.executable, "-m", "dlrecipe.train", "model.lr=0.1", "hydra.mode=RUN"]


class CountingModel(BoringModel):
    def __init__(self):
        super().__init__()
        self.loaders_built = 0

    def train_dataloader(self):
        self.loaders_built += 1
        return super().train_dataloader()


class ReloadOnce(pl.Callback):
    """Asks for one rebuild after epoch 0, then back to never (what DataSchedule does)."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            reload_train_loader_every(trainer, 1)

    def on_train_epoch_start(self, trainer, pl_module):
        reload_train_loader_every(trainer, 0)


def quick_trainer(*callbacks: pl.Callback, epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, limit_train_batches=2, limit_val_batches=0,
                      callbacks=list(callbacks), logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu")  # fmt: skip


def test_a_reload_asked_for_mid_fit_rebuilds_the_training_loader_once():
    model = CountingModel()
    quick_trainer(ReloadOnce()).fit(model)
    assert model.loaders_built == 2  # the first epoch's and epoch 1's; epoch 2 reuses it
    untouched = CountingModel()
    quick_trainer().fit(untouched)
    assert untouched.loaders_built == 1


class EveryEpoch(WeightAveraging):
    def should_update(self, step_idx=None, epoch_idx=None):
        return epoch_idx is not None


def test_the_weight_average_is_read_updated_early_and_dropped():
    model, callback = BoringModel(), EveryEpoch()
    assert weight_average(callback) is None  # before fit: no average yet
    callback.setup(quick_trainer(), model, "fit")  # Lightning builds the AveragedModel here
    average = weight_average(callback)
    assert isinstance(average, torch.optim.swa_utils.AveragedModel)
    assert int(average.n_averaged) == 0
    with torch.no_grad():
        model.layer.weight.add_(1.0)
    update_weight_average_at_epoch_end(callback, model, epoch=0)
    assert int(average.n_averaged) == 1
    assert torch.allclose(average.module.layer.weight, model.layer.weight)
    # Lightning's own end-of-epoch update sees it done and skips it.
    callback.on_train_epoch_end(SimpleNamespace(current_epoch=0), model)
    assert int(average.n_averaged) == 1
    update_weight_average_at_epoch_end(callback, model, epoch=0)  # once per epoch
    assert int(average.n_averaged) == 1
    end_weight_average(callback)
    assert weight_average(callback) is None


def test_a_failed_hydra_job_gives_its_error_without_printing_its_overrides(capsys):
    from hydra.core.utils import JobReturn, JobStatus

    error = ValueError("diverged")
    overrides = ["optuna.storage=postgresql://user:secret@db/optuna"]
    result = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error)
    assert hydra_job_error(result) is error
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError):  # why: Hydra's public accessor prints the overrides first
        _ = result.return_value
    assert "secret" in capsys.readouterr().err
    done = JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)
    assert hydra_job_error(done) is None


def test_the_hub_is_offline_inside_the_block_only():
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    before = constants.HF_HUB_OFFLINE
    with hf_hub_offline(), pytest.raises(OfflineModeIsEnabled):  # refused at once, no request
        huggingface_hub.HfApi().model_info("timm/resnet18.a1_in1k")
    assert before == constants.HF_HUB_OFFLINE
    with hf_hub_offline(False):
        assert before == constants.HF_HUB_OFFLINE


def test_the_rich_bar_labels_the_first_of_30_epochs_epoch_1_of_30():
    from lightning.pytorch.callbacks import RichProgressBar

    from dlrecipe.compat import one_based_rich_progress_bar

    trainer = quick_trainer(epochs=30)
    labels = []
    for bar in (RichProgressBar(), one_based_rich_progress_bar()):
        bar.setup(trainer, BoringModel(), "fit")
        labels.append(bar._get_train_description(0).strip())  # the method the bar labels with
    assert labels == ["Epoch 0/29", "Epoch 1/30"]  # Lightning's own, then ours


def test_batch_norm_and_dropout_layers_are_recognised_by_kind():
    from torch import nn

    from dlrecipe.compat import is_batch_norm, is_dropout

    norms = [nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.BatchNorm3d(2), nn.SyncBatchNorm(2),
             nn.LazyBatchNorm2d()]  # fmt: skip
    assert all(map(is_batch_norm, norms))
    assert not any(map(is_batch_norm, [nn.LayerNorm(2), nn.GroupNorm(1, 2), nn.InstanceNorm2d(2)]))
    drops = [nn.Dropout(), nn.Dropout1d(), nn.Dropout2d(), nn.Dropout3d(), nn.AlphaDropout(),
             nn.FeatureAlphaDropout()]  # fmt: skip
    assert all(map(is_dropout, drops))
    assert not any(map(is_dropout, [nn.Identity(), nn.ReLU(), nn.BatchNorm1d(2)]))
