"""Every option of every config group composes and instantiates (new files are covered by the glob)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import get_class, instantiate

from dlrecipe.builders import CONF_DIR, build_callbacks, build_data, build_loggers, build_model
from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.models.schedules import ScheduleContext

DIGITS = DataInfo("multiclass", (1, 8, 8), [str(i) for i in range(10)])
TABLE = DataInfo("binary", (30,), ["0", "1"])


# conf/data/default.yaml and conf/model/default.yaml are the blocks every data set / model
# extends, not options of their own (callbacks/default and trainer/default are real options).
BASES = {"data": "default", "model": "default"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if p.stem != BASES.get(group))


def test_every_group_has_options():
    for group in ["data", "data/split", "data/normalization", "data/augmentation", "model",
                  "model/optimizer", "model/scheduler", "callbacks", "logger", "trainer", "debug",
                  "experiment"]:  # fmt: skip
        assert options(group), f"conf/{group} is empty"


# Data options that need a file get a placeholder; the DataModule loads nothing until asked.
DATA_ARGS = {
    "csv": ["data.source.path=x.csv", "data.source.target=y"],
    "image_folder": ["data.source.root=imgs"],
}


@pytest.mark.parametrize("name", options("data"))
def test_data_options_instantiate(make_cfg, name):
    cfg = make_cfg(f"data={name}", *DATA_ARGS.get(name, []))
    datamodule = build_data(cfg)
    assert datamodule.batch_size > 0


@pytest.mark.parametrize("group", ["data/split", "data/normalization", "data/augmentation"])
def test_data_sub_options_instantiate(make_cfg, group):
    for name in options(group):
        cfg = make_cfg(f"{group}={name}")
        key = group.split("/")[1]
        built = instantiate(cfg.data[key])
        assert type(built) is get_class(cfg.data[key]._target_), (group, name)  # what it names


@pytest.mark.parametrize("name", options("model"))
def test_model_options_instantiate(make_cfg, name):
    info = TABLE if name == "mlp" else DIGITS
    # finetune: an offline, tiny timm backbone (the default resnet18 wants hub weights)
    offline = ["model.net.backbone.name=test_resnet", "model.net.backbone.weights=none",
               "model.net.input_size=32"] if name == "finetune" else []  # fmt: skip
    model = build_model(make_cfg(f"model={name}", *offline), info)
    out = model(torch.zeros(4, *info.input_shape))
    assert out.shape == (4, info.num_outputs)


@pytest.mark.parametrize("group", ["model/optimizer", "model/scheduler"])
def test_optimizer_and_scheduler_options_step(make_cfg, group):
    for name in options(group):
        cfg = make_cfg(f"{group}={name}", "model=mlp")
        model = build_model(cfg, TABLE)
        optimizer = instantiate(cfg.model.optimizer, _convert_="all")(model.parameters())
        schedule = instantiate(cfg.model.scheduler, _convert_="all")(
            optimizer, ScheduleContext(total_steps=20, steps_per_epoch=5)
        )
        for _ in range(3):
            optimizer.step()
            if schedule is None:  # a constant LR without warm-up builds no scheduler
                continue
            if schedule["interval"] == "epoch":
                schedule["scheduler"].step(1.0)
            else:
                schedule["scheduler"].step()
        assert optimizer.param_groups[0]["lr"] > 0, name


@pytest.mark.parametrize("name", options("callbacks"))
def test_callback_options_instantiate(make_cfg, name):
    cfg = make_cfg(f"callbacks={name}", quick=False)
    callbacks = build_callbacks(cfg)
    assert all(isinstance(c, pl.Callback) for c in callbacks), callbacks
    assert len(callbacks) == sum(c is not None for c in cfg.callbacks.values())  # one per entry


@pytest.mark.parametrize("name", options("logger"))
def test_logger_options_instantiate(make_cfg, name):
    loggers = build_loggers(make_cfg(f"logger={name}"))
    assert all(hasattr(lg, "log_metrics") for lg in loggers)


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_options_instantiate(make_cfg, name):
    cfg = make_cfg(f"trainer={name}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("no GPU here; the config composed")
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs >= 1


@pytest.mark.parametrize("name", options("debug"))
def test_debug_options_compose(make_cfg, name):
    cfg = make_cfg(f"debug={name}")
    assert cfg.task_name == "debug"
    build_model(cfg, DIGITS)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_options_build(make_cfg, name, tmp_path):
    cfg = make_cfg(f"experiment={name}")
    datamodule = build_data(cfg)
    if name == "digits_finetune":  # starts from a pretraining run (tested in test_finetune.py)
        cfg.model.net.backbone.weights = str(tmp_path / "no-such-run")
        with pytest.raises(ConfigError, match="experiment=digits_pretrain_0to4"):
            build_model(cfg, datamodule.info)
        return
    model = build_model(cfg, datamodule.info)
    assert model.info.num_outputs >= 1


def test_every_config_key_has_a_comment():
    """Defaults carry their reason (nanoGPT style): each file starts with or contains comments."""
    for path in Path(CONF_DIR).rglob("*.yaml"):
        text = path.read_text()
        assert "#" in text, f"{path} has no comment saying why its defaults are what they are"


@pytest.mark.parametrize("name", options("model/finetuning"))
def test_finetuning_options_make_a_plan(make_cfg, name):
    cfg = make_cfg("model=finetune", f"model/finetuning={name}")
    finetuning = instantiate(cfg.model.finetuning, _convert_="all")()
    blocks = ["conv1", "layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    plan = finetuning.make_plan(blocks, n_train=1257, similar=False)
    assert all(set(stage.blocks) <= set(blocks) for stage in plan)
    assert (plan == []) == (name == "feature_extraction")
