"""Train, validate and test one experiment; print and save a summary.

    python -m dlrecipe.train                                   # digits CNN, the default experiment
    python -m dlrecipe.train experiment=wine_mlp trainer.max_epochs=5
    python -m dlrecipe.train data=csv data.source.path=my.csv data.source.target=label
    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold   # one fit per fold
    python -m dlrecipe.train debug=fdr                         # one batch of everything, no files

The chain: seed -> data -> model -> trainer (callbacks, loggers) -> fit -> validate and test the
best checkpoint -> predictions -> summary. With a K-fold split the chain runs once per fold and
cv/ aggregates the folds. Returns the value of `optimized_metric` (the fold mean under K-fold),
which a sweep reads.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from dlrecipe.builders import (
    build_data,
    build_model,
    build_trainer,
    check_trainer_keys,
    effective_batch_size,
)
from dlrecipe.callbacks.history import History
from dlrecipe.callbacks.random_state import RandomState
from dlrecipe.checkpoints import check_compatible, load_checkpoint
from dlrecipe.console import status
from dlrecipe.data.datamodule import DataModule
from dlrecipe.diagnosis import diagnose, diagnose_diverged
from dlrecipe.distributed import is_child_rank, leave_process_group, relaunch_this_job_only
from dlrecipe.edge import hydra_command
from dlrecipe.errors import ConfigError
from dlrecipe.extras import check_config as check_extras
from dlrecipe.guards import (
    Diverged,
    DivergenceGuard,
    check_training_length,
    exit_on_divergence,
    write_diverged_summary,
)
from dlrecipe.habits import print_config, run_tags
from dlrecipe.lint import run_lint
from dlrecipe.predict import split_predictions
from dlrecipe.quiet import install as quiet_known_noise
from dlrecipe.quiet import log_every_n_steps
from dlrecipe.refit import check_refit, refit
from dlrecipe.report.augmentation_grid import save_augmentation_grid
from dlrecipe.report.build import report_wanted, write_report
from dlrecipe.report.curves import overfitting_epoch, plot_learning_curves, stopped_early
from dlrecipe.report.summary import RunSummary
from dlrecipe.resume import plan_resume
from dlrecipe.sanity import run_suite as run_sanity_suite
from dlrecipe.sweep.pruning import OptunaPruning, name_trial_runs, raise_pruned, trial_for
from dlrecipe.tasks import metric_names
from dlrecipe.trust import use_trusted_targets
from dlrecipe.versions import versions


def train(cfg: DictConfig) -> float | None:
    quiet_known_noise()  # Lightning's advert and known repeated warnings (dlrecipe/quiet.py)
    # what configs read from disk may build besides dlrecipe's own (dlrecipe.trust)
    use_trusted_targets(cfg.get("trusted_targets"), cfg)
    resuming = bool(cfg.get("resume"))
    if resuming:
        plan = plan_resume(cfg)  # a finished run: say so, change nothing
        if plan.finished:
            print(plan.finished)
            return plan.optimized_value
        cfg = plan.config
    check_extras(cfg)  # logger=wandb without wandb, ...: the extra to install, before any data
    run_tags(cfg)  # tags=[...] must be a list of words (they go to the summary and loggers)
    if cfg.get("extras", {}).get("print_config"):  # the config that runs, as a tree (habits.py)
        print_config(cfg, Path(cfg.paths.output_dir) / "config_tree.txt")
    cfg = name_trial_runs(cfg)
    run_lint(cfg)  # known config mistakes, before any data is loaded (extras.lint=false: off)
    check_trainer_keys(cfg.trainer)  # a mistyped trainer.<flag> fails before the data loads
    check_training_length(cfg)  # max_epochs=0 would report an untrained model as the result
    datamodule = build_data(cfg)
    check_metric_names(cfg, datamodule.info)
    check_refit(cfg, len(datamodule.folds))  # refit=true needs a hold-out split
    if cfg.get("sanity"):  # debug=sanity: the sanity suite instead of a fit (exit 1 on a failure)
        with status("running the sanity suite"):
            return run_sanity_suite(cfg, datamodule)
    if len(datamodule.folds) > 1 and datamodule.split.fold is None:
        if cfg.get("ckpt_path"):
            raise ConfigError(
                "ckpt_path continues one fit; with K-fold pick its fold (data.split.fold=i)"
            )
        from dlrecipe.cv.runner import cross_validate

        return cross_validate(cfg, datamodule, fit_fold, resuming=resuming)
    if len(datamodule.folds) > 1:  # one fold of K (a multirun job): seeded as cross_validate does
        from dlrecipe.cv.runner import one_fold

        datamodule, cfg = one_fold(cfg, datamodule)
    return fit_fold(cfg, datamodule).optimized_value


def fit_fold(cfg: DictConfig, datamodule: DataModule) -> RunSummary:
    """The whole chain for one split of the data; everything lands in cfg.paths.output_dir."""
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)

    model = build_model(cfg, datamodule.info)
    datamodule.prepare_augmentation()  # a transform that cannot apply to this data fails now
    if cfg.get("ckpt_path"):
        check_compatible(load_checkpoint(cfg.ckpt_path, paths=cfg.paths), model, cfg.ckpt_path)
    pruning = _pruning_callbacks(cfg, datamodule)
    # DivergenceGuard: a NaN / inf loss stops the fit (exit 3, summary.json status: diverged).
    every = cfg.trainer.get("log_every_n_steps")  # lowered for tiny epochs: no warning per fit
    every = {"log_every_n_steps": log_every_n_steps(every, datamodule)} if every else {}
    # RandomState: checkpoints carry the generators, so a resumed fit draws what this one would.
    trainer = build_trainer(
        cfg, run_dir, extra_callbacks=[*pruning, DivergenceGuard(), RandomState()], **every
    )
    _log_config(trainer, cfg)
    if trainer.is_global_zero and datamodule.info.is_image and datamodule.augmentation.ops:
        save_augmentation_grid(datamodule, run_dir / "augmentation_preview.png")

    if trainer.world_size > 1:
        relaunch_this_job_only()
    try:
        fit_started = time.perf_counter()
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except Diverged as err:
            fit_seconds = time.perf_counter() - fit_started
            fold = datamodule.fold.name if len(datamodule.folds) > 1 else None
            summary = write_diverged_summary(trainer, model, run_dir, str(err), fit_seconds, fold)
            diagnose_diverged(summary, cfg, trainer)  # next_steps: the overrides to try
            raise
        fit_seconds = time.perf_counter() - fit_started
        if trainer.interrupted:
            raise KeyboardInterrupt
        if pruning and pruning[0].pruned_at is not None:
            if is_child_rank():  # rank 0 reports the pruning; other ranks just end
                return RunSummary(str(run_dir), model.info.task, model.main_metric)
            raise_pruned(pruning[0])
        # Now, before validate / test replace them: train/ metrics (debug=overfit optimizes
        # train/loss) exist only in the fit's logged metrics.
        logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = _best_checkpoint(trainer)
        val_metrics, test_metrics = _evaluate_best(trainer, model, datamodule, best)
        summary = _summarize(
            cfg, trainer, model, run_dir, best, val_metrics, test_metrics, fit_seconds
        )
        summary.fold = datamodule.fold.name if len(datamodule.folds) > 1 else None
        summary.notes[:0] = datamodule.data.notes  # rows dropped, images converted at load
        summary.optimized_value = _optimized_value(cfg, {**logged, **val_metrics, **test_metrics})
        if cfg.get("refit"):  # a fresh model on train + val for best_epoch epochs (refit.py)
            summary.refit = refit(cfg, datamodule, summary)
        summary.total_seconds = time.perf_counter() - started
        summary.record_peak_memory()
        if trainer.is_global_zero:
            _write_predictions(model, datamodule, run_dir)
            summary.write(run_dir / "summary.json")
            summary_to_wandb(trainer, summary)
            if report_wanted(cfg, summary):  # off in sweep trials and folds unless asked
                with status("building the report") as took:
                    summary.report = str(
                        write_report(run_dir, model, datamodule, cfg.report, trainer.loggers)
                    )
                summary.report_seconds = took["seconds"]
                summary.total_seconds = time.perf_counter() - started  # the report counts too
                summary.write(run_dir / "summary.json")
            summary.print()
        return summary
    finally:
        close_wandb(trainer)  # each fold and each trial is its own W&B run
        if trainer.world_size > 1:
            leave_process_group()


def _pruning_callbacks(cfg: DictConfig, datamodule: DataModule) -> list[OptunaPruning]:
    trial = trial_for(cfg)
    if trial is None or OmegaConf.is_list(
        cfg.optimized_metric
    ):  # Optuna prunes single objectives only
        return []
    steps_before = datamodule.fold_index * int(
        cfg.trainer.max_epochs
    )  # K-fold: count on across folds
    return [OptunaPruning(trial, cfg.optimized_metric, steps_before)]


def _log_config(trainer: pl.Trainer, cfg: DictConfig) -> None:
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams({**config, "effective_batch_size": effective_batch_size(cfg)})


def _evaluate_best(trainer, model, datamodule: DataModule, best: str | None) -> tuple[dict, dict]:
    """Validation and test metrics of the best checkpoint (the test set only touched here)."""
    val = _metrics(trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False))
    test = {}
    if len(datamodule.fold.test):
        test = _metrics(trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False))
    return val, test


def summary_to_wandb(trainer: pl.Trainer, summary: RunSummary) -> None:
    """The run's summary (best epoch, test metrics, timings) in the W&B run summary."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            facts = {
                k: v
                for k, v in summary.to_dict().items()
                if isinstance(v, int | float | str) and v is not None
            }
            logger.experiment.summary.update(
                {**facts, **summary.val_metrics, **summary.test_metrics}
            )


def close_wandb(trainer: pl.Trainer) -> None:
    if any(type(lg).__name__ == "WandbLogger" for lg in trainer.loggers):
        import wandb

        wandb.finish()


def check_metric_names(cfg: DictConfig, info) -> None:
    """A mistyped monitor or optimized_metric fails now, not after a whole fit (or sweep)."""
    names = {"loss", *info.task_obj.metrics()}
    logged = {f"{stage}/{n}" for stage in ("val", "test") for n in names} | {
        "train/loss",
        f"train/{info.task_obj.main_metric}",
    }
    wanted = cfg.get("optimized_metric")
    for key, value in (
        ("monitor.metric", cfg.monitor.metric),
        *(("optimized_metric", m) for m in metric_names(wanted)),
    ):
        if value not in logged:
            raise ConfigError(
                f"{key}={value!r} is not logged for this {info.task} task; choose one of {sorted(logged)}"
            )


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint's path; None (= current weights) when nothing was saved (fast_dev_run)."""
    for ckpt in trainer.checkpoint_callbacks:  # the one judging a metric (last.ckpt's has none)
        if isinstance(ckpt, ModelCheckpoint) and ckpt.monitor and ckpt.best_model_path:
            return ckpt.best_model_path
    return None


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(v) for k, v in results[0].items()} if results else {}


def _write_predictions(model, datamodule: DataModule, run_dir: Path) -> None:
    """The best model's predictions on validation and test: for reports, OOF and fold ensembles."""
    for stage, indices in (("val", datamodule.fold.val), ("test", datamodule.fold.test)):
        if len(indices):
            split_predictions(model, datamodule, indices).to_csv(
                run_dir / f"{stage}_predictions.csv", index=False
            )


def _summarize(
    cfg, trainer, model, run_dir, best, val_metrics, test_metrics, fit_seconds
) -> RunSummary:
    history = next((c for c in trainer.callbacks if isinstance(c, History)), None)
    rows = history.rows if history else []
    main = model.main_metric
    total, trainable = model.parameter_counts()
    summary = RunSummary(
        run_dir=str(run_dir), task=model.info.task, main_metric=main,
        val_metrics=val_metrics, test_metrics=test_metrics, epochs_run=trainer.current_epoch,
        best_checkpoint=best, model_to_use=best, params_total=total, params_trainable=trainable,
        fit_seconds=fit_seconds, train_steps=trainer.global_step, info=model.info.to_dict(),
        optimized_metric=OmegaConf.to_object(cfg.optimized_metric) if OmegaConf.is_list(cfg.get("optimized_metric")) else cfg.get("optimized_metric"),
    )  # fmt: skip
    summary.best_epoch = _best_epoch(rows, cfg.monitor.metric, cfg.monitor.mode)
    if trainer.is_global_zero and rows:
        stopped = stopped_early(trainer.current_epoch, cfg.trainer.get("max_epochs"))
        curves = plot_learning_curves(
            rows, run_dir / "learning_curves.png", main, summary.best_epoch, stopped
        )
        summary.learning_curves = str(curves)
        overfit = overfitting_epoch(rows)
        if overfit:
            summary.notes.append(
                f"validation loss was lowest at epoch {overfit} and rose afterwards while training "
                "loss kept falling: over-fitting (early stopping kept the best checkpoint)"
            )
    summary.notes.extend(negative_r2_notes({**val_metrics, **test_metrics}))
    diagnose(summary, cfg, trainer, model, rows)  # next_steps: what to try next, from these numbers
    summary.versions = versions()  # libraries and git commit: what reproduces this result
    summary.tags = run_tags(cfg)  # tags=[...]: also in every logger's hparams (the config)
    if getattr(model, "finetuning", None) is not None:  # what trained when, and why (auto)
        summary.notes.append(model.finetuning.describe())
    for logger in trainer.loggers:
        logger.log_metrics({"params/total": total, "params/trainable": trainable})
    return summary


def negative_r2_notes(metrics: dict[str, float]) -> list[str]:
    """A regression worse than predicting the mean is a failed fit, whatever the MAE looks like."""
    return [
        f"{key} = {metrics[key]:.3g} < 0: the model predicts worse than the mean of the targets. "
        "Usual causes: data.target_scaling=none with targets far from 0, too few epochs, or a "
        "learning rate far off (try debug=sanity)"
        for key in ("val/r2", "test/r2")
        if key in metrics and metrics[key] < 0
    ]


def _best_epoch(rows: list[dict[str, float]], metric: str, mode: str) -> int | None:
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return int(pick(scored, key=lambda r: r[metric])["epoch"]) + 1


def _optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> float | list[float] | None:
    """The value a sweep reads; a list of values when optimized_metric lists several objectives."""
    wanted = cfg.get("optimized_metric")
    if not wanted:
        return None
    names = metric_names(wanted)
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ConfigError(
            f"optimized_metric={missing} was not logged; logged metrics: {sorted(metrics)}"
        )
    values = [metrics[n] for n in names]
    return values if OmegaConf.is_list(wanted) else values[0]


@hydra_command("train")  # one-line errors for Hydra's and the libraries' mistakes too
@exit_on_divergence
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
