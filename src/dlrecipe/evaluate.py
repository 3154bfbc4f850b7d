"""After fit: evaluate the best checkpoint and fill the run's summary (train.py's last steps).

    python -m dlrecipe.train trainer.max_epochs=2 && cat outputs/train/*/*/summary.json

The test set is touched only here, once, with the checkpoint that the monitored metric picked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from dlrecipe.callbacks.history import History
from dlrecipe.errors import ConfigError
from dlrecipe.habits import run_tags
from dlrecipe.summary import RunSummary
from dlrecipe.tasks import metric_names
from dlrecipe.versions import versions


def check_metric_names(cfg: DictConfig, info: Any) -> None:
    """A mistyped monitor or optimized_metric fails now, not after a whole fit (or sweep)."""
    names = {"loss", *info.task_obj.metrics()}
    logged = {f"{stage}/{n}" for stage in ("val", "test") for n in names} | {
        "train/loss",
        f"train/{info.task_obj.main_metric}",
    }
    for key, value in (("monitor.metric", cfg.monitor.metric),
                       *(("optimized_metric", m) for m in metric_names(cfg.get("optimized_metric")))):  # fmt: skip
        if value not in logged:
            raise ConfigError(
                f"{key}={value!r} is not logged for this {info.task} task; choose one of {sorted(logged)}"
            )


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint's path; None (= current weights) when nothing was saved (fast_dev_run)."""
    for ckpt in trainer.checkpoint_callbacks:  # the one judging a metric (last.ckpt's has none)
        if isinstance(ckpt, ModelCheckpoint) and ckpt.monitor and ckpt.best_model_path:
            return ckpt.best_model_path
    return None


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(v) for k, v in results[0].items()} if results else {}


def evaluate_best(trainer: pl.Trainer, model: Any, datamodule: Any, best: str | None) -> tuple[dict, dict]:  # fmt: skip
    """Validation and test metrics of the best checkpoint (the test set only touched here)."""
    val = _metrics(trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False))
    test = {}
    if len(datamodule.fold.test):
        test = _metrics(trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False))
    return val, test


def summarize(cfg: DictConfig, trainer: pl.Trainer, model: Any, run_dir: Path, best: str | None,
              val_metrics: dict, test_metrics: dict, fit_seconds: float) -> RunSummary:  # fmt: skip
    """The summary of a completed fit: metrics, best epoch, sizes, timings, versions, notes."""
    rows = history_rows(trainer)
    total, trainable = model.parameter_counts()
    wanted = cfg.get("optimized_metric")
    summary = RunSummary(
        run_dir=str(run_dir), task=model.info.task, main_metric=model.main_metric,
        val_metrics=val_metrics, test_metrics=test_metrics, epochs_run=trainer.current_epoch,
        best_checkpoint=best, model_to_use=best, params_total=total, params_trainable=trainable,
        fit_seconds=fit_seconds, train_steps=trainer.global_step, info=model.info.to_dict(),
        optimized_metric=OmegaConf.to_object(wanted) if OmegaConf.is_list(wanted) else wanted,
    )  # fmt: skip
    summary.best_epoch = best_epoch(rows, cfg.monitor.metric, cfg.monitor.mode)
    summary.notes.extend(negative_r2_notes({**val_metrics, **test_metrics}))
    if getattr(model, "finetuning", None) is not None:  # what trained when, and why (auto)
        summary.notes.append(model.finetuning.describe())
    summary.versions = versions()  # libraries and git commit: what reproduces this result
    summary.tags = run_tags(cfg)  # tags=[...]: also in every logger's hparams (the config)
    for logger in trainer.loggers:
        logger.log_metrics({"params/total": total, "params/trainable": trainable})
    return summary


def history_rows(trainer: pl.Trainer) -> list[dict[str, float]]:
    """The per-epoch metrics the History callback kept (none when callbacks.history=null)."""
    history = next((c for c in trainer.callbacks if isinstance(c, History)), None)
    return history.rows if history else []


def negative_r2_notes(metrics: dict[str, float]) -> list[str]:
    """A regression worse than predicting the mean is a failed fit, whatever the MAE looks like."""
    return [
        f"{key} = {metrics[key]:.3g} < 0: the model predicts worse than the mean of the targets. "
        "Usual causes: data.target_scaling=none with targets far from 0, too few epochs, or a "
        "learning rate far off (try debug=sanity)"
        for key in ("val/r2", "test/r2")
        if key in metrics and metrics[key] < 0
    ]


def best_epoch(rows: list[dict[str, float]], metric: str, mode: str) -> int | None:
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return int(pick(scored, key=lambda r: r[metric])["epoch"]) + 1


def optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> float | list[float] | None:
    """The value a sweep reads; a list of values when optimized_metric lists several objectives."""
    names = metric_names(cfg.get("optimized_metric"))
    if not names:
        return None
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ConfigError(
            f"optimized_metric={missing} was not logged; logged metrics: {sorted(metrics)}"
        )
    values = [metrics[n] for n in names]
    return values if OmegaConf.is_list(cfg.get("optimized_metric")) else values[0]
