"""Habits from lightning-hydra-template: run tags and the composed config printed as a tree.

    python -m dlrecipe.train tags=[baseline,wine] extras.print_config=true experiment=wine_mlp

`tags` go to summary.json, every logger's hyperparameters (CSV hparams.yaml, TensorBoard) and
W&B's run tags (conf/logger/wandb.yaml); `extras.print_config=true` prints the config that will
run, as a rich tree, and saves the same text as <run dir>/config_tree.txt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlrecipe.errors import ConfigError

# The groups shown first, in the order a reader checks them (the rest follow in config order).
TREE_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")


def run_tags(cfg: DictConfig) -> list[str]:
    """cfg.tags as a list of strings; anything else is refused with the form to type."""
    tags = cfg.get("tags")
    if tags is None:
        return []
    if not OmegaConf.is_list(tags) or not all(isinstance(t, str | int | float) for t in tags):
        raise ConfigError(f"tags={tags!r} must be a list of words, e.g. tags=[baseline,wine]")
    return [str(t) for t in tags]


def config_tree(cfg: DictConfig) -> Any:
    """A rich Tree with one branch per top-level key, each holding that part's YAML."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation only Hydra's runtime resolves: show it unresolved
        plain = OmegaConf.to_container(cfg, resolve=False)
    tree = Tree("CONFIG", guide_style="dim")
    keys = [k for k in TREE_ORDER if k in plain] + [k for k in plain if k not in TREE_ORDER]
    for key in keys:
        branch = tree.add(str(key), guide_style="dim")
        value = plain[key]
        text = OmegaConf.to_yaml(value) if isinstance(value, dict | list) else str(value)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
    return tree


def print_config(cfg: DictConfig, path: Path) -> Path:
    """Print the tree (rank 0 only) and save its plain text at `path`."""
    from lightning.pytorch.utilities import rank_zero_only
    from rich.console import Console

    if rank_zero_only.rank != 0:
        return path
    tree = config_tree(cfg)
    Console(soft_wrap=True).print(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:  # the same tree without colours, for the run directory
        Console(file=file, width=120, color_system=None, soft_wrap=True).print(tree)
    return path


class PrintConfig:
    """Run hook for extras.print_config=true: the config that runs, as a tree, at start."""

    def configure(self, cfg: DictConfig) -> None:
        if cfg.get("extras", {}).get("print_config"):
            print_config(cfg, Path(cfg.paths.output_dir) / "config_tree.txt")
