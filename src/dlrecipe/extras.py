"""Optional extras: which feature needs which, and one line naming the extra when it is missing.

    python -c "from dlrecipe.extras import missing; print(missing() or 'all extras installed')"

The base install runs the default experiment (and its report); W&B, TensorBoard, Optuna sweeps,
timm / Grad-CAM and the submitit launcher are extras (pyproject.toml). Each is imported only
where it is used, and a feature whose extra is absent stops before any training with
`pip install 'dlrecipe[<extra>]'` (exit 2); report sections that need one are skipped instead.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

from dlrecipe.errors import ConfigError

log = logging.getLogger(__name__)

# importable module -> (the distribution to install, the dlrecipe extra that brings it)
MODULES = {
    "wandb": ("wandb", "wandb"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "optuna": ("optuna", "tune"),
    "cmaes": ("cmaes", "tune"),
    "sqlalchemy": ("sqlalchemy", "tune"),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "tune"),
    "timm": ("timm", "vision"),
    "pytorch_grad_cam": ("grad-cam", "vision"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "cluster"),
    "submitit": ("submitit", "cluster"),
    "psycopg": ("psycopg", "postgres"),
}
# config _target_ -> the module it needs (Lightning's loggers import theirs when built)
TARGETS = {
    "lightning.pytorch.loggers.WandbLogger": "wandb",
    "lightning.pytorch.loggers.TensorBoardLogger": "tensorboard",
}
# hydra/launcher=<option> -> the launcher plugin its conf/hydra/launcher file extends
LAUNCHERS = {
    "local": "hydra_plugins.hydra_submitit_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
    "parallel": "hydra_plugins.hydra_joblib_launcher",
    "joblib": "hydra_plugins.hydra_joblib_launcher",
}


def available(module: str) -> bool:
    """True when `module` can be imported (looked up, not imported: no import cost)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a half-installed one
        return False


def install_hint(module: str) -> str:
    dist, extra = MODULES[module]
    return f"{dist} is not installed: pip install 'dlrecipe[{extra}]' (or pip install {dist})"


def require(module: str, feature: str) -> None:
    """ConfigError naming the extra when `feature` needs `module` and it is not installed."""
    if not available(module):
        raise ConfigError(f"{feature} needs {install_hint(module)}")


def missing() -> list[str]:
    """The optional modules this environment lacks (for a test or a quick look)."""
    return [m for m in MODULES if not available(m)]


def check_config(cfg: Any) -> None:
    """Every extra the composed config will need, checked before data or model are built."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=False)
    for where, target in _targets(plain, ""):
        module = TARGETS.get(target) or ("optuna" if target.startswith("optuna.") else None)
        if module == "tensorboard" and available("tensorboardX"):
            continue  # Lightning's TensorBoardLogger takes either
        if module:
            require(module, f"{where} ({target})")
    source = OmegaConf.select(cfg, "model.net.backbone.source", default=None)
    if source == "timm":
        require("timm", "model.net.backbone.source=timm")


def check_argv(argv: Sequence[str]) -> None:
    """hydra/launcher=... and hparams_search=... on the command line: checked before Hydra."""
    for arg in argv:
        key, _, value = str(arg).lstrip("+~").partition("=")
        if key == "hydra/launcher" and value in LAUNCHERS:
            require(LAUNCHERS[value], arg)
        elif key in ("hparams_search", "hydra/sweeper") and value not in ("", "null", "basic"):
            require("optuna", arg)


def message_for(err: BaseException) -> str | None:
    """One line for an ImportError of an optional module anywhere below a command."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        name = getattr(err, "name", None) if isinstance(err, ImportError) else None
        for module in MODULES:
            if name and (name == module or name.startswith(f"{module}.")):
                return f"this feature needs {install_hint(module)}"
        err = err.__cause__  # only what raised it on purpose, not an unrelated handled error
    return None


def _targets(node: Any, path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str):
            found.append((path or "config", target))
        for key, value in node.items():
            found += _targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{path}[{i}]")
    return found


def skipped(section: str, module: str) -> str:
    """The line a report prints (and shows) for a section whose extra is missing."""
    line = f"{section} skipped: {install_hint(module)}"
    log.warning(line)
    return line
