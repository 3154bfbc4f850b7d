"""Batch growth and curricula on real wine MLP runs: what the model is fed, epoch by epoch."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest

from dlrecipe.builders import build_data, build_model, build_trainer
from dlrecipe.callbacks.batch_growth import BatchGrowth
from dlrecipe.callbacks.curriculum import Curriculum
from dlrecipe.errors import ConfigError
from dlrecipe.train import main
from tests.conftest import run_main

WINE = [
    "experiment=wine_mlp",
    "report.enabled=false",
    "logger=none",
    "callbacks.early_stopping=null",
]


class Fed(pl.Callback):
    """Per epoch: the size of every batch the model trained on, and the loader's samples."""

    def __init__(self):
        self.sizes: dict[int, list[int]] = defaultdict(list)
        self.samples: dict[int, set[int]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.samples[trainer.current_epoch] = set(trainer.train_dataloader.indices.tolist())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.sizes[trainer.current_epoch].append(len(batch[1]))


def _fit(cfg, callback: pl.Callback) -> tuple[Fed, object, pl.Trainer]:
    Path(cfg.paths.output_dir).mkdir(parents=True)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    fed = Fed()
    trainer = build_trainer(cfg, cfg.paths.output_dir, extra_callbacks=[callback, fed])
    trainer.fit(model, datamodule=datamodule)
    return fed, datamodule, trainer


def test_batch_grows_at_the_milestones(make_cfg):
    cfg = make_cfg(*WINE, "trainer.max_epochs=4", "data.batch_size=16", "model/scheduler=none")
    fed, datamodule, trainer = _fit(cfg, BatchGrowth(milestones=[1, 3], factor=2))
    n = len(datamodule.fold.train)  # 124 wines
    for epoch, batch in enumerate([16, 32, 32, 64]):
        assert fed.sizes[epoch] == [batch] * (n // batch), epoch  # drop_last: full batches only
    assert trainer.callback_metrics["train/batch_size"] == 64  # logged for the last epoch
    assert trainer.reload_dataloaders_every_n_epochs == 0  # only the milestone epochs reloaded


def test_batch_growth_refuses_a_decaying_schedule(make_cfg):
    cfg = make_cfg(*WINE, "trainer.max_epochs=2")  # model/scheduler=cosine
    with pytest.raises(ConfigError, match="model/scheduler=none"):
        _fit(cfg, BatchGrowth(milestones=[1]))


def test_curriculum_starts_with_the_easiest_fraction_and_ends_with_all(make_cfg, tmp_path):
    cfg = make_cfg(*WINE, "trainer.max_epochs=4", "data.batch_size=8")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=178)
    np.save(tmp_path / "scores.npy", scores)
    curriculum = Curriculum(str(tmp_path / "scores.npy"), pacing="linear", start_frac=0.25,
                            full_at_epoch=2)  # fmt: skip
    fed, datamodule, _ = _fit(cfg, curriculum)
    train = datamodule.fold.train
    easiest = set(train[np.argsort(scores[train])][: math.ceil(0.25 * len(train))].tolist())
    assert fed.samples[0] == easiest
    assert sum(fed.sizes[0]) == len(easiest) // 8 * 8  # what the model saw in epoch 0
    assert len(fed.samples[1]) == math.ceil(0.625 * len(train))  # half-way: 0.25 + 0.75 / 2
    assert fed.samples[2] == fed.samples[3] == set(train.tolist())
    assert not datamodule.epoch_schedules  # evaluation after fit sees everything


def test_curriculum_by_pre_pass_loss_and_step_pacing(make_cfg):
    cfg = make_cfg(*WINE, "trainer.max_epochs=3", "data.batch_size=16")
    curriculum = Curriculum("loss", pacing="step", start_frac=0.5, full_at_epoch=2, steps=1,
                            prepass_epochs=1)  # fmt: skip
    fed, datamodule, _ = _fit(cfg, curriculum)
    train = datamodule.fold.train
    scores = curriculum.scores[train]
    assert np.isfinite(scores).all() and scores.std() > 0
    kept = np.array(sorted(fed.samples[0]))
    dropped = np.setdiff1d(train, kept)
    assert len(kept) == len(train) // 2 and len(fed.samples[1]) == len(kept)  # one jump, at epoch 2
    assert curriculum.scores[kept].max() <= curriculum.scores[dropped].min()  # the easiest half
    assert fed.samples[2] == set(train.tolist())


@pytest.mark.slow
def test_a_resumed_run_continues_with_its_epochs_batch_size(tmp_path):
    run = tmp_path / "run"
    quiet = [
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        "report.enabled=false",
    ]
    # Two runs of the command's main() in this process: the resume rebuilds everything from
    # run/ (config, last.ckpt) as a new process would.
    first = ["dlrecipe-train", *WINE, "callbacks=batch_growth", "model/scheduler=none",
             "callbacks.batch_growth.milestones=[1,2]", "data.batch_size=16", "trainer.max_epochs=2",
             *quiet, f"hydra.run.dir={run}"]  # fmt: skip
    assert run_main(main, first, cwd=tmp_path) == 0
    second = ["dlrecipe-train", f"resume={run}", "trainer.max_epochs=4", *quiet]
    assert run_main(main, second, cwd=tmp_path) == 0
    history = pd.read_csv(run / "history.csv")
    assert list(history["train/batch_size"]) == [16, 32, 64, 64]
    assert list(history["step"].diff().fillna(history["step"][0])) == [7, 3, 1, 1]  # 124 wines


def test_curriculum_difficulty_from_a_csv_column(make_cfg, table_csv):
    import pandas as pd

    frame = pd.read_csv(table_csv)
    cfg = make_cfg("data=csv", f"data.source.path={table_csv}", "data.source.target=label", "model=mlp",
                   "data.source.features=[a,b,colour]", "trainer.max_epochs=2", "data.batch_size=8")  # fmt: skip
    curriculum = Curriculum("column:value", pacing="linear", start_frac=0.5, full_at_epoch=1)
    fed, datamodule, _ = _fit(cfg, curriculum)
    np.testing.assert_array_equal(curriculum.scores, frame["value"].to_numpy())
    train = datamodule.fold.train
    easiest = set(
        train[np.argsort(frame["value"].to_numpy()[train])][: math.ceil(0.5 * len(train))].tolist()
    )
    assert fed.samples[0] == easiest
    assert fed.samples[1] == set(train.tolist())


def test_a_curriculum_counts_its_growing_epochs_for_the_lr_schedule(make_cfg):
    """OneCycle must know every step: the first, narrowed epoch times max_epochs is too few."""
    cfg = make_cfg(*WINE, "trainer.max_epochs=4", "data.batch_size=8", "model/scheduler=onecycle")
    curriculum = Curriculum("loss", start_frac=0.25, full_at_epoch=3, prepass_epochs=1)
    fed, _, trainer = _fit(cfg, curriculum)
    schedule = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == sum(len(sizes) for sizes in fed.sizes.values())
    assert schedule.total_steps == trainer.global_step  # the whole cycle, not a quarter of it


@pytest.mark.parametrize("warmup", [0.0, 0.5])
def test_a_constant_lr_steps_no_scheduler_unless_it_warms_up(make_cfg, warmup):
    cfg = make_cfg(*WINE, "model/scheduler=none", f"model.scheduler.warmup_frac={warmup}")
    lrs, trainer = _lr_per_step(cfg, epochs=2)
    peak = cfg.model.optimizer.lr
    if warmup == 0.0:  # nothing stepped per batch: the LR is the optimizer's throughout
        assert trainer.lr_scheduler_configs == []
        assert set(lrs) == {peak}
    else:  # the warm-up ramps to the optimizer's LR, then holds it
        assert lrs[0] < peak / 100 and lrs[-1] == pytest.approx(peak)


def _lr_per_step(cfg, epochs: int = 3) -> tuple[list[float], pl.Trainer]:
    """The learning rate of every optimizer step of a short real fit, and its fitted trainer."""
    data = build_data(cfg)
    model = build_model(cfg, data.info)
    lrs = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return lrs, trainer


SCHEDULES = sorted(
    p.stem for p in (Path(__file__).parents[1] / "conf/model/scheduler").glob("*.yaml")
)


@pytest.mark.parametrize("name", SCHEDULES)
def test_warmup_frac_ramps_every_schedule_up_to_the_optimizer_lr(make_cfg, name):
    cfg = make_cfg(*WINE, "data.batch_size=16", f"model/scheduler={name}",
                   "model.scheduler.warmup_frac=0.3")  # fmt: skip
    lrs, trainer = _lr_per_step(cfg)
    peak, warmup = cfg.model.optimizer.lr, int(0.3 * trainer.global_step)
    assert lrs[0] < 0.2 * peak, name  # starts low ...
    top = max(range(len(lrs)), key=lambda i: (lrs[i], -i))
    assert abs(top - warmup) <= 1, (name, top, warmup)  # ... and peaks where the warm-up ends
    assert lrs[top] == pytest.approx(peak, rel=0.05), name


def test_onecycle_refuses_a_zero_warmup_naming_it(make_cfg):
    cfg = make_cfg(*WINE, "model/scheduler=onecycle", "model.scheduler.warmup_frac=0")
    with pytest.raises(ConfigError, match=r"warmup_frac=0.*onecycle always warms up"):
        _lr_per_step(cfg)


@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("linear", 0.5), ("sqrt", 0.5**0.5)])
def test_lr_scaling_rescales_the_optimizers_lr_by_the_effective_batch(make_cfg, rule, factor):
    # 16 per batch x 2 accumulated = 32 samples per step: half the base batch of 64.
    cfg = make_cfg(*WINE, "model/scheduler=none", "data.batch_size=16",
                   "trainer.accumulate_grad_batches=2", f"lr_scaling.rule={rule}",
                   "lr_scaling.base_batch_size=64")  # fmt: skip
    lrs, trainer = _lr_per_step(cfg, epochs=1)
    expected = cfg.model.optimizer.lr * factor
    assert lrs and all(lr == pytest.approx(expected, rel=1e-12) for lr in lrs), (lrs[:3], expected)
    for group in trainer.optimizers[0].param_groups:  # every group, with or without weight decay
        assert group["lr"] == pytest.approx(expected, rel=1e-12)
