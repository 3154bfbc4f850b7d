"""Run every fold of a K-fold split in one process, each in its own sub-directory.

    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold data.split.k=5

The data is loaded once and shared by the folds (each fits its own normalization on its own
training part). Each fold gets its own run directory, checkpoints, logger run and a seed
derived from (seed, repeat, fold) by fold_seed, which a lone fold of a multirun uses too; the
aggregate is written to the parent run directory.
`resume=<run dir>` keeps the finished folds, continues the killed one and runs the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from dlrecipe.console import Countdown
from dlrecipe.cv.summary import aggregate
from dlrecipe.data.datamodule import DataModule
from dlrecipe.distributed import is_child_rank
from dlrecipe.errors import ConfigError
from dlrecipe.report.summary import RunSummary
from dlrecipe.tasks import metric_names


def fold_seed(seed: int, index: int) -> int:
    """The training seed of fold `index` (repeats count on): the one rule both K-fold paths use."""
    return int(seed) + 1000 * int(index)


def seeded_fold(cfg: DictConfig, index: int) -> DictConfig:
    """A copy of cfg for fold `index`: the split pinned to the run's seed, training on the fold's."""
    fold_cfg = copy.deepcopy(cfg)
    with open_dict(fold_cfg):
        fold_cfg.data.split.seed = int(cfg.data.split.seed)  # pin the split before the seed moves
        fold_cfg.data.split.fold = index
        fold_cfg.seed = fold_seed(cfg.seed, index)  # (seed, repeat, fold) -> one seed per fit
    return fold_cfg


def one_fold(cfg: DictConfig, datamodule: DataModule) -> tuple[DataModule, DictConfig]:
    """One fold of K, run on its own (a multirun over data.split.fold): seeded as in cross_validate,
    so cv_report over the jobs reproduces the one-command summary."""
    fold_cfg = seeded_fold(cfg, datamodule.fold_index)
    return datamodule.for_fold(datamodule.fold_index, seed=int(fold_cfg.seed)), fold_cfg


def fold_config(cfg: DictConfig, index: int, name: str, run_dir: Path) -> DictConfig:
    """The run config of one fold: its directory, its fold index and its own seed."""
    fold_cfg = seeded_fold(cfg, index)
    with open_dict(fold_cfg):
        fold_cfg.paths.output_dir = str(run_dir / name)
        if fold_cfg.get("logger") and fold_cfg.logger.get("wandb"):
            fold_cfg.logger.wandb.group = fold_cfg.logger.wandb.get("group") or run_dir.name
            fold_cfg.logger.wandb.name = f"{cfg.task_name}-{name}"
    return fold_cfg


def unfold_config(fold_cfg: DictConfig, run_dir: Path, source: Path) -> DictConfig:
    """The K-fold run's config back from one of its folds' (fold_config's inverse, for resume=)."""
    index = OmegaConf.select(fold_cfg, "data.split.fold", default=None)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ConfigError(
            f"resume: {source} is not a fold of a K-fold run (data.split.fold={index!r})"
        )
    cfg = copy.deepcopy(fold_cfg)
    with open_dict(cfg):
        cfg.data.split.fold = None
        cfg.seed = int(fold_cfg.seed) - 1000 * index
        cfg.paths.output_dir = str(run_dir)
    return cfg


def cross_validate(
    cfg: DictConfig,
    datamodule: DataModule,
    fit_fold: Callable[[DictConfig, DataModule], RunSummary],
    resuming: bool = False,
) -> float | None:
    """Every fold, then the aggregate. Resuming keeps finished folds and continues the others
    from their last.ckpt (a fold never started runs from scratch)."""
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fold_dirs = []
    progress = Countdown("fold", len(datamodule.folds))  # "fold 2/5 - elapsed ..., about ... left"
    for index, fold in enumerate(datamodule.folds):
        fold_cfg = fold_config(cfg, index, fold.name, run_dir)
        fold_dir = Path(fold_cfg.paths.output_dir)
        if resuming:
            from dlrecipe.resume import LAST, fold_finished

            if fold_finished(fold_dir, cfg.trainer.get("max_epochs")):
                fold_dirs.append(fold_dir)  # kept as it is
                continue
            if (fold_dir / LAST).is_file():
                with open_dict(fold_cfg):
                    fold_cfg.ckpt_path = str(fold_dir / LAST)
        if not is_child_rank():  # folds kept by a resume are not counted in the time per fold
            progress.start(index + 1)
        summary = fit_fold(fold_cfg, datamodule.for_fold(index, seed=int(fold_cfg.seed)))
        fold_dirs.append(Path(summary.run_dir))
    if is_child_rank():  # under DDP, rank 0 writes the aggregate
        return None
    wanted = cfg.get("optimized_metric")
    wanted = metric_names(wanted) if OmegaConf.is_list(wanted) else wanted  # plain list or str
    result = aggregate(fold_dirs, run_dir, wanted)
    result.print()
    return result.optimized_value
