"""Train, validate and test one experiment; print and save a summary.

    python -m dlrecipe.train                                   # digits CNN, the default experiment
    python -m dlrecipe.train experiment=wine_mlp trainer.max_epochs=5
    python -m dlrecipe.train data=csv data.source.path=my.csv data.source.target=label
    python -m dlrecipe.train 'hooks=[]'                        # the bare chain, no optional steps

The chain: compose (Hydra, main below) -> data -> model -> trainer -> fit -> evaluate the best
checkpoint -> summary. Everything optional plugs in: Lightning callbacks (conf/callbacks/) act
inside the fit, run hooks (`hooks:` in conf/train.yaml; dlrecipe/hooks.py) around it: K-fold,
sweeps, the report, predictions, W&B, ... (docs/architecture.md). Returns the value of
`optimized_metric` (the fold mean under K-fold), which a sweep reads.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf

from dlrecipe import evaluate, guards, quiet
from dlrecipe.builders import (
    build_data,
    build_model,
    build_trainer,
    check_trainer_keys,
    effective_batch_size,
)
from dlrecipe.callbacks.random_state import RandomState
from dlrecipe.checkpoints import check_compatible, load_checkpoint
from dlrecipe.data.datamodule import DataModule
from dlrecipe.edge import hydra_command
from dlrecipe.extras import check_config as check_extras
from dlrecipe.habits import run_tags
from dlrecipe.hooks import RunContext, build_hooks, call, first, run_instead
from dlrecipe.quiet import install as quiet_known_noise
from dlrecipe.resume import plan_resume
from dlrecipe.summary import RunSummary
from dlrecipe.trust import use_trusted_targets


def train(cfg: DictConfig) -> float | None:
    """One run of a composed config: the chain below, or what a hook runs instead (K-fold)."""
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
    hooks = build_hooks(cfg)
    for hook in (h for h in hooks if hasattr(h, "configure")):
        cfg = hook.configure(cfg) or cfg  # lint, sweep trial names, ...: before any data
    check_trainer_keys(cfg.trainer)  # a mistyped trainer.<flag> fails before the data loads
    guards.check_training_length(cfg)  # max_epochs=0 would report an untrained model as the result
    datamodule = build_data(cfg)
    evaluate.check_metric_names(cfg, datamodule.info)
    ctx = RunContext(cfg, datamodule, hooks, resuming=resuming)
    call(hooks, "after_data", ctx)  # e.g. refit=true needs a hold-out split
    fit = functools.partial(fit_fold, hooks=hooks)
    taken, result = run_instead(hooks, ctx, fit)  # K-fold, debug=sanity take the run over
    return result if taken else fit(cfg, datamodule).optimized_value


def fit_fold(cfg: DictConfig, datamodule: DataModule, hooks: list | None = None) -> RunSummary:
    """The whole chain for one split of the data; everything lands in cfg.paths.output_dir."""
    hooks = build_hooks(cfg) if hooks is None else hooks
    run_dir = Path(cfg.paths.output_dir)
    ctx = RunContext(cfg, datamodule, hooks, run_dir, started=time.perf_counter())
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)

    ctx.model = model = build_model(cfg, datamodule.info)
    datamodule.prepare_augmentation()  # a transform that cannot apply to this data fails now
    if cfg.get("ckpt_path"):
        check_compatible(load_checkpoint(cfg.ckpt_path, paths=cfg.paths), model, cfg.ckpt_path)
    # Lightning's default 50, lowered for tiny epochs: no "fewer batches than..." warning per fit
    every = quiet.log_every_n_steps(cfg.trainer.get("log_every_n_steps") or 50, datamodule)
    # DivergenceGuard: a NaN / inf loss stops the fit (exit 3, summary.json status: diverged).
    # RandomState: checkpoints carry the generators, so a resumed fit draws what this one would.
    extra = [c for found in call(hooks, "callbacks", ctx) for c in found]
    extra += [guards.DivergenceGuard(), RandomState()]
    ctx.trainer = trainer = build_trainer(cfg, run_dir, extra, log_every_n_steps=every)
    datamodule.per_device_batch_size(trainer.world_size)  # an uneven split fails before DDP starts
    _log_config(trainer, cfg)
    fold = datamodule.fold.name if len(datamodule.folds) > 1 else None
    try:
        call(hooks, "before_fit", ctx)
        fit_started = time.perf_counter()
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except guards.Diverged as err:
            fit_seconds = time.perf_counter() - fit_started
            summary = guards.write_diverged_summary(
                trainer, model, run_dir, str(err), fit_seconds, fold
            )
            call(hooks, "on_diverged", ctx, summary)  # next_steps: the overrides to try
            raise
        fit_seconds = time.perf_counter() - fit_started
        if trainer.interrupted:
            raise KeyboardInterrupt
        stopped = first(hooks, "after_fit", ctx)  # a pruned sweep trial ends here
        if stopped is not None:
            return stopped
        # Now, before validate / test replace them: train/ metrics (debug=overfit optimizes
        # train/loss) exist only in the fit's logged metrics.
        logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = evaluate.best_checkpoint(trainer)
        val, test = evaluate.evaluate_best(trainer, model, datamodule, best)
        summary = evaluate.summarize(cfg, trainer, model, run_dir, best, val, test, fit_seconds)
        summary.fold = fold
        summary.notes[:0] = datamodule.data.notes  # rows dropped, images converted at load
        summary.optimized_value = evaluate.optimized_value(cfg, {**logged, **val, **test})
        call(hooks, "after_evaluate", ctx, summary)  # curves, diagnosis, refit, ...
        summary.total_seconds = time.perf_counter() - ctx.started
        summary.record_peak_memory()
        if trainer.is_global_zero:
            summary.write(run_dir / "summary.json")
            call(hooks, "on_summary", ctx, summary)  # predictions, W&B, the report, ...
            summary.write(run_dir / "summary.json")  # with what the hooks added
            summary.print()
        return summary
    finally:
        call(hooks, "teardown", ctx)  # each fold and trial is its own W&B run, DDP group, ...


def _log_config(trainer: pl.Trainer, cfg: DictConfig) -> None:
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams({**config, "effective_batch_size": effective_batch_size(cfg)})


@hydra_command("train")  # one-line errors for Hydra's and the libraries' mistakes too
@guards.exit_on_divergence
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
