"""Config groups -> objects: the instantiate calls train.py and eval.py share.

    python -c "from dlrecipe.builders import compose; print(compose(['data=wine']).data.source)"

Everything is `hydra.utils.instantiate` on a `_target_`; this file only adds what the config
cannot know: the DataInfo handed from data to model, and dropping callbacks that need a logger
when there is none.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from omegaconf import DictConfig, OmegaConf

from dlrecipe.configs import conf_dir, target_signature
from dlrecipe.csv_logs import keeps_earlier_metrics
from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError, unwrap_instantiation
from dlrecipe.models.backbones import net_factory
from dlrecipe.models.module import LitModel
from dlrecipe.models.optim import rescale_lr

CONF_DIR = conf_dir()  # the repo's conf/, else the packaged copy (dlrecipe.configs)


def _run_dir(resume: str | None, fresh: str, resumed: str | None = None) -> str:
    """hydra.run.dir / output_subdir: the resumed run's (or `resumed`) when resume= is set.

    Hydra creates this directory and writes into it right after: a path that is not a run
    is refused here, in one line with exit 2, so nothing is created or written there.
    """
    if resume is None:
        from dlrecipe.failures import note_new_run_dir

        note_new_run_dir(fresh)  # a run refused at once removes only what Hydra makes now
        return fresh
    from dlrecipe.resume import check_resume_path

    check_resume_path(resume)
    return resumed if resumed is not None else str(resume)


def _output_subdir(resume: str | None, overrides: Any = None) -> str | None:
    """hydra.output_subdir: .hydra, or .hydra_resume for a resumed run; none (nothing written)
    when the resumed run is finished and this invocation will change nothing."""
    if resume is None:
        return ".hydra"
    from dlrecipe.resume import finished_without_changes

    return None if finished_without_changes(resume, overrides) else ".hydra_resume"


OmegaConf.register_new_resolver("dlrecipe_run_dir", _run_dir, replace=True)
OmegaConf.register_new_resolver("dlrecipe_output_subdir", _output_subdir, replace=True)


def _open_node() -> DictConfig:
    node = OmegaConf.create({})
    OmegaConf.set_struct(node, False)
    return node


# conf/trainer/default.yaml starts from this node: its keys stay open (not struct), so every
# Lightning Trainer flag can be set as trainer.<flag>=... without a leading +; check_trainer_keys
# then refuses names the Trainer does not take.
ConfigStore.instance().store(group="trainer", name="any_lightning_flag", node=_open_node())
# The same for the model and data nodes (conf/model/default.yaml, conf/data/default.yaml): a
# knob that keeps its code default (LitModel's, the net's, the source's) is not in the YAML, yet
# model.<key>=... / data.source.<key>=... set it without a +; check_arguments refuses typos.
for _group in ("model", "data"):
    ConfigStore.instance().store(group=_group, name="any_argument", node=_open_node())

TRAINER_TARGETS = ("lightning.pytorch.Trainer", "pytorch_lightning.Trainer", "lightning.Trainer")


def instantiate(config: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but our ConfigErrors come out unwrapped (one clear message)."""
    try:
        return hydra_instantiate(config, **kwargs)
    except InstantiationException as err:
        raise unwrap_instantiation(err) from None


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The config a command line would give, without running anything (tests, notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides or [])


# An example value for each required (???) data key, for the message when one is left out.
REQUIRED_EXAMPLES = {
    "data.source.path": "data.source.path=my_table.csv",
    "data.source.target": "data.source.target=<the column to predict>",
    "data.source.root": "data.source.root=<a folder of class sub-folders>",
}


def _signature(target: str) -> inspect.Signature | None:
    """The signature of a _target_, None when it takes **kwargs or cannot be inspected
    (not importable / a builtin: instantiate says so in its own words)."""
    sig = target_signature(target)
    if sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return sig


def check_arguments(node: Any, where: str) -> None:
    """Each key of every `_target_` node under `where` is an argument of that target.

    The model and data nodes are open (any key is accepted without a +) so that code defaults
    need no YAML line; a misspelt key fails here, before any data is loaded, naming the key.
    """
    if not isinstance(node, DictConfig):
        return
    target = node.get("_target_") if "_target_" in node else None
    sig = _signature(str(target)) if isinstance(target, str) else None
    for key, child in node.items_ex(resolve=False):  # interpolations stay unresolved
        key = str(key)
        if sig is not None and not key.startswith("_") and key not in sig.parameters:
            known = [k for k in sig.parameters if k != "self"]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {where}.{close[0]}? " if close else ""
            raise ConfigError(
                f"{where}.{key} is not an argument of {target}; {hint}(it takes {', '.join(known)})"
            )
        if isinstance(child, DictConfig):
            check_arguments(child, f"{where}.{key}")


def build_data(cfg: DictConfig) -> DataModule:
    check_arguments(cfg.data, "data")
    missing = sorted(OmegaConf.missing_keys(cfg.data))  # e.g. data=csv without data.source.path
    if missing:
        fixes = " ".join(REQUIRED_EXAMPLES.get(k, f"{k}=<value>") for k in missing)
        raise ConfigError(f"{' and '.join(missing)} must be given for this data set: add {fixes}")
    return instantiate(cfg.data, seed=int(cfg.get("seed") or 0), _convert_="all")


def effective_batch_size(cfg: DictConfig) -> int:
    """Samples per optimizer step: the global batch (all devices together) x accumulation."""
    return int(cfg.data.batch_size) * int(cfg.trainer.get("accumulate_grad_batches", 1))


def build_model(cfg: DictConfig, info: DataInfo) -> LitModel:
    check_arguments(cfg.model, "model")
    # The net's pretrained backbone (files, hub, earlier runs) is resolved above models/nets/.
    net = net_factory(cfg.model.net)
    model = instantiate(cfg.model, info=info.to_dict(), net=net, _convert_="all")
    scaling = cfg.get("lr_scaling") or {}
    model.optimizer_factory = rescale_lr(
        model.optimizer_factory, effective_batch_size(cfg), int(scaling.get("base_batch_size", 64)),
        scaling.get("rule", "none"),
    )  # fmt: skip
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    return model


def _instantiate_all(group: DictConfig | None, extra: Any = lambda c: {}) -> list[Any]:
    """Each entry of a dict-of-configs group (callbacks, logger); null entries are switched off."""
    if not group:
        return []
    return [instantiate(c, _convert_="all", **extra(c)) for c in group.values() if c and "_target_" in c]  # fmt: skip


def build_loggers(cfg: DictConfig) -> list[pl.loggers.Logger]:
    # A resumed run's CSV logger writes a new version instead of deleting metrics.csv.
    return _instantiate_all(cfg.get("logger"), keeps_earlier_metrics)


def build_callbacks(cfg: DictConfig, has_logger: bool = True) -> list[pl.Callback]:
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not has_logger:  # Lightning refuses a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar") is False:  # ... and a progress bar when bars are off
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def check_devices(trainer: DictConfig) -> None:
    """GPU trainers on a machine without (enough) GPUs: say so before Lightning's own error."""
    import torch

    if trainer.get("accelerator") not in ("gpu", "cuda"):
        return
    found = torch.cuda.device_count()
    if found == 0:
        raise ConfigError(
            "this trainer needs CUDA GPUs (trainer.accelerator=gpu) and none was found; use "
            "trainer=cpu, or trainer=ddp_cpu to run the same DDP code on CPU processes"
        )
    devices = trainer.get("devices")
    if isinstance(devices, int) and devices > found:
        raise ConfigError(
            f"trainer.devices={devices} but this machine has {found} GPU(s); use trainer.devices={found}"
        )


def check_trainer_keys(trainer: DictConfig) -> None:
    """A trainer.<key> that Lightning's Trainer does not take fails now, naming the key."""
    if trainer.get("_target_") not in TRAINER_TARGETS:
        return  # someone else's Trainer: its own signature decides
    known = set(inspect.signature(pl.Trainer).parameters)
    for key in trainer:
        if str(key).startswith("_") or key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f"did you mean trainer.{close[0]}? " if close else ""
        raise ConfigError(
            f"trainer.{key} is not an argument of Lightning's Trainer; {hint}"
            "(see lightning.pytorch.Trainer for the flags)"
        )


def build_trainer(cfg: DictConfig, run_dir: Path, extra_callbacks: list[pl.Callback] = (), **kwargs: Any) -> pl.Trainer:  # fmt: skip
    check_devices(cfg.trainer)
    check_trainer_keys(cfg.trainer)
    loggers = build_loggers(cfg)
    callbacks = [*build_callbacks(cfg, has_logger=bool(loggers)), *extra_callbacks]
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        _convert_="all",
        **kwargs,
    )
