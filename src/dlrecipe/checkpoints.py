"""Reading checkpoints safely: existence, the run config beside them, and architecture match.

    python -m dlrecipe.eval ckpt_path=outputs/train/<date>/<time>/checkpoints/last.ckpt

Checkpoints are loaded with `weights_only=True` (no arbitrary pickles); that works because the
model saves only plain containers as hyperparameters and config. The config beside or inside a
checkpoint passes dlrecipe.trust before anything is built from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.module import CONFIG_KEY, DATA_KEY, add_identity_target_scaling
from dlrecipe.trust import trusted_config


def load_checkpoint(
    path: str | Path, key: str = "ckpt_path", paths: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """torch.load, weights only; errors name `key`, the config key the path came from.

    With `paths` (the current run's), the configs inside and beside it are checked too
    (dlrecipe.trust): a checkpoint whose run asks for a callable dlrecipe does not build is refused.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"{key}={str(path)!r} does not exist. Fix: point {key} at a .ckpt file, e.g. "
            "outputs/train/<date>/<time>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or not a checkpoint at all
        raise ConfigError(
            f"{key}={str(path)!r} is not a readable checkpoint: {_reason(err)}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{key}={str(path)!r} is not a checkpoint (no dict inside)")
    saved = file.resolve().parent.parent / ".hydra" / "config.yaml"
    if paths is not None and (CONFIG_KEY in checkpoint or saved.is_file()):
        run_config(file, checkpoint, paths)  # its run's configs: refused if either is
    return checkpoint


def _reason(err: Exception) -> str:
    """torch's message in one line, without its advice to load with weights_only=False: that
    would run any code pickled into the file."""
    text = str(err)
    if "weights_only" in text or "Unsupported global" in text:
        return (
            "it holds Python objects besides tensors and plain values, and loading those could "
            "run code; dlrecipe checkpoints never do. Use a checkpoint written by dlrecipe.train, "
            "or have its author re-save it from dlrecipe"
        )
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(err).__name__)
    return line[:200]


def run_config(
    ckpt_path: str | Path, checkpoint: dict[str, Any], paths: Mapping[str, Any] | None = None
) -> DictConfig:
    """The config of the run that wrote the checkpoint (its .hydra/config.yaml, else the copy
    inside), checked by dlrecipe.trust and with `paths` made the current run's (default: the
    checkpoint's own run directory and the data directory the run used)."""
    run_dir = Path(ckpt_path).expanduser().resolve().parent.parent
    saved = run_dir / ".hydra" / "config.yaml"
    inside = checkpoint.get(CONFIG_KEY)
    stored = _read_yaml(saved) if saved.is_file() else None
    if stored is None and inside is None:
        raise ConfigError(
            f"no config for {ckpt_path}: neither {saved} nor a config inside the checkpoint; "
            "was it written by dlrecipe?"
        )
    if paths is None:  # outside Hydra: the run's own directory, its data directory as configured
        own = stored if stored is not None else inside
        old = own.get("paths") if isinstance(own, Mapping) else None
        data_dir = old.get("data_dir") if isinstance(old, Mapping) else None
        paths = {"output_dir": str(run_dir),
                 "data_dir": data_dir if isinstance(data_dir, str) and "${" not in data_dir else "data"}  # fmt: skip
    if isinstance(paths, DictConfig):
        paths = OmegaConf.to_container(paths, resolve=True)
    if inside is not None:  # refused even when the .hydra copy is the one used
        config = trusted_config(inside, f"{Path(ckpt_path)} (its config)", paths)
    if stored is not None:
        config = trusted_config(stored, saved, paths)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file as plain containers, nothing resolved (OmegaConf's YAML reader: 1e-3 is a float)."""
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # unreadable, not YAML, or a YAML list
        raise ConfigError(f"{path}: not a readable config ({_reason(err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a config (no mapping inside)")
    return data


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
    """The DataModule's saved state; checkpoints from before DATA_KEY kept it under Lightning's
    key for the class, "DataModule"."""
    state = checkpoint.get(DATA_KEY, checkpoint.get("DataModule"))
    return state if isinstance(state, dict) else None
