"""Reading checkpoints safely: existence, the run config beside them, and architecture match.

    python -m dlrecipe.eval ckpt_path=outputs/train/<date>/<time>/checkpoints/last.ckpt

Checkpoints are loaded with `weights_only=True` (no arbitrary pickles); that works because the
model saves only plain containers as hyperparameters and config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.module import CONFIG_KEY, add_identity_target_scaling


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """torch.load, weights only; errors name `key`, the config key the path came from."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"{key}={str(path)!r} does not exist. Fix: point {key} at a .ckpt file, e.g. "
            "outputs/train/<date>/<time>/checkpoints/last.ckpt"
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or not a checkpoint at all
        raise ConfigError(f"{key}={str(path)!r} is not a readable checkpoint: {err}") from err


def run_config(ckpt_path: str | Path, checkpoint: dict[str, Any]) -> DictConfig:
    """The config of the run that wrote the checkpoint: its .hydra/config.yaml, else the copy inside."""
    run_dir = Path(ckpt_path).expanduser().resolve().parent.parent
    saved = run_dir / ".hydra" / "config.yaml"
    if saved.is_file():
        return OmegaConf.load(saved)
    if CONFIG_KEY in checkpoint:
        return OmegaConf.create(checkpoint[CONFIG_KEY])
    raise ConfigError(
        f"no config for {ckpt_path}: neither {saved} nor a config inside the checkpoint; "
        "was it written by dlrecipe?"
    )


def check_compatible(checkpoint: dict[str, Any], model: nn.Module, ckpt_path: str | Path) -> None:
    """Fail before training when the checkpoint's weights do not fit this model."""
    saved = checkpoint.get("state_dict")
    if saved is None:
        raise ConfigError(f"ckpt_path={str(ckpt_path)!r} holds no model weights (no state_dict)")
    add_identity_target_scaling(model, saved)  # regression checkpoints from before scaling
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    wrong = sorted(k for k in set(own) & set(saved) if own[k].shape != saved[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {keys[:4]}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape differs", wrong),
            )
            if keys
        )
        raise ConfigError(
            f"ckpt_path={str(ckpt_path)!r} comes from another model ({details}). Use the model "
            "and data settings of the run that wrote it, or a checkpoint of this model."
        )


def datamodule_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    return checkpoint.get("DataModule")
