"""Lint rules on the data pipeline: leakage between folders, label-changing augmentation,
unscaled inputs, and learning-rate search spaces.

    python -m dlrecipe.train experiment=digits_cnn 'data.augmentation.ops=[hflip]'   # -> warning

Two classic leaks cannot be expressed in this project's configs, so they have no rule:
normalization is always fitted on the training indices (DataModule.setup) and augmentation only
ever touches training batches (DataModule.on_after_batch_transfer); both are tested.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrecipe.lint.core import Finding, error, get, rule, target, warning

# Data sets whose labels a mirror image or a half turn changes (a flipped 2 is not a 2; 6 <-> 9).
ORIENTED = ("digits", "digits_wild", "mnist", "emnist")
LR_KEYS = ("lr", "learning_rate", "max_lr")


@rule
def fixed_splits_differ_from_training_folder(cfg: DictConfig) -> list[Finding]:
    root = get(cfg, "data.source.root")
    found = []
    for key in ("val_root", "test_root"):
        other = get(cfg, f"data.source.{key}")
        if root and other and Path(str(other)).resolve() == Path(str(root)).resolve():
            found.append(error(
                f"data.source.{key}",
                f"{other} is also data.source.root: every {key[:-5]} image would be a training image "
                f"too. Point data.source.{key} at a separate folder, or set it to null to split data.source.root",
            ))  # fmt: skip
    val, test = get(cfg, "data.source.val_root"), get(cfg, "data.source.test_root")
    if val and test and Path(str(val)).resolve() == Path(str(test)).resolve():
        found.append(error(
            "data.source.test_root",
            "the same folder as data.source.val_root: the test set would be the one the checkpoint and "
            "hyperparameters were selected on. Give a separate test folder or data.source.test_root=null",
        ))  # fmt: skip
    return found


def _op_names(cfg: DictConfig) -> list[tuple[str, dict]]:
    ops = [
        *(get(cfg, "data.augmentation.ops", []) or []),
        *(get(cfg, "data.augmentation.extra_ops", []) or []),
    ]
    named = []
    for op in ops:
        if isinstance(op, str):
            named.append((op, {}))
        elif OmegaConf.is_dict(op) or isinstance(op, dict):
            named += [(str(k), dict(v or {})) for k, v in op.items()]
    return named


@rule
def label_preserving_augmentation(cfg: DictConfig) -> list[Finding]:
    # A source without data.source.name is known by its function: ...digits_wild.load_digits_wild.
    source = str(get(cfg, "data.source._target_", "")).rsplit(".", 1)[-1].removeprefix("load_")
    if str(get(cfg, "data.source.name", "") or source).lower() not in ORIENTED:
        return []
    found = []
    for name, params in _op_names(cfg):
        if name in ("hflip", "vflip"):
            found.append(warning(
                "data.augmentation.ops",
                f"{name} on digits: a mirrored digit is often another digit or none, so the "
                "label no longer fits the image. Drop it; use rotate / crop / affine instead",
            ))  # fmt: skip
        if name == "rotate" and float(params.get("degrees", 15)) > 45:
            found.append(warning(
                "data.augmentation.ops",
                f"rotate by up to {params['degrees']} degrees on digits turns 6 into 9. Keep "
                "degrees <= 20",
            ))  # fmt: skip
    return found


@rule
def inputs_reach_the_net_scaled(cfg: DictConfig) -> list[Finding]:
    none = target(cfg, "data.normalization").endswith("NoNormalization")
    if none and get(cfg, "model.net.batch_norm") is False:
        return [warning(
            "data/normalization",
            "none with model.net.batch_norm=false: features on different scales reach the first "
            "layer as they are, so a few large ones dominate and the initial loss explodes. "
            "Use data/normalization=standardize (fitted on the training split)",
        )]  # fmt: skip
    return []


@rule
def learning_rate_searched_log_uniformly(cfg: DictConfig) -> list[Finding]:
    """interval() without tag(log, ...) for a learning rate in the sweep's search space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    params = sweep_params(cfg)
    found = []
    for key, text in params.items():
        if str(key).rsplit(".", 1)[-1] not in LR_KEYS:
            continue
        try:
            value = OverridesParser.create().parse_override(f"{key}={text}").value()
        except Exception:  # a malformed space fails in the sweeper with its own message
            continue
        if isinstance(value, IntervalSweep) and "log" not in (value.tags or set()):
            found.append(warning(
                f"hydra.sweeper.params.{key}",
                f"{text} samples uniformly, so almost every trial lands in the top decade. Use "
                f"tag(log, interval({value.start}, {value.end}))",
            ))  # fmt: skip
    return found


def sweep_params(cfg: DictConfig) -> dict:
    """The sweeper's search space: from cfg.hydra when composed with it, else the running job's."""
    params = get(cfg, "hydra.sweeper.params")
    if params is None:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            params = get(HydraConfig.get(), "sweeper.params")
    return dict(params or {})


@rule
def huber_delta_needs_scaled_targets(cfg: DictConfig) -> list[Finding]:
    # Huber's delta (1) is in the units the net learns: target std units when targets are
    # scaled, raw units otherwise, where it makes Huber MAE for targets in the hundreds.
    if get(cfg, "model.loss") == "huber" and get(cfg, "data.target_scaling") == "none":
        return [warning(
            "data.target_scaling",
            "none with model.loss=huber: Huber's delta of 1 is then in the raw target's units "
            "(plain MAE for targets in the hundreds, and regression targets far from 0 train "
            "slowly); keep data.target_scaling=standardize, where delta is 1 target std",
        )]  # fmt: skip
    return []
