"""The learning-rate range test: which learning rate to start from, before any sweep.

    python -m dlrecipe.lr_find experiment=wine_mlp

Lightning's Tuner trains the configured model for `lr_find.num_training` steps while the
learning rate grows from `lr_find.min_lr` to `lr_find.max_lr` and records the smoothed training
loss; the suggestion is the rate where that loss falls fastest per decade of learning rate,
capped at a tenth of the rate where it bottoms out (`suggest`). The run directory gets lr_find.png
(loss against learning rate, the suggestion marked), lr_find.csv and lr_find.json; the command
prints the suggestion and the exact override to train with. The model's weights are restored
after the test, and nothing else of the run is written. With model=finetune the backbone stays
frozen during the test, so the suggestion is the head's learning rate; the fine-tuning stages
keep their lr_mult factors relative to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from omegaconf import DictConfig
from rich.console import Console

from dlrecipe.builders import (
    build_data,
    build_model,
    check_devices,
    effective_batch_size,
    instantiate,
)
from dlrecipe.edge import hydra_command
from dlrecipe.errors import ConfigError
from dlrecipe.lint import run_lint
from dlrecipe.models.module import attached_trainer

MODES = ("exponential", "linear")


def check_settings(settings: DictConfig | None) -> dict[str, Any]:
    """lr_find.* refused with the key and the fix when the range test could not run."""
    if settings is None:
        raise ConfigError("lr_find.* is missing: run python -m dlrecipe.lr_find (conf/lr_find.yaml)")  # fmt: skip
    low, high = settings.get("min_lr"), settings.get("max_lr")
    for key, value in (("min_lr", low), ("max_lr", high)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < math.inf
        ):
            raise ConfigError(f"lr_find.{key}={value!r} must be a positive learning rate, e.g. 1e-6")  # fmt: skip
    if low >= high:
        raise ConfigError(f"lr_find.min_lr={low:g} must be below lr_find.max_lr={high:g}")
    steps = settings.get("num_training")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 30:
        raise ConfigError(f"lr_find.num_training={steps!r}: the test needs at least 30 steps (100 is usual)")  # fmt: skip
    if settings.get("mode") not in MODES:
        raise ConfigError(f"lr_find.mode={settings.get('mode')!r}: choose one of {list(MODES)}")
    threshold = settings.get("early_stop_threshold")
    if threshold is not None and (not isinstance(threshold, int | float) or threshold <= 1):
        raise ConfigError(f"lr_find.early_stop_threshold={threshold!r} must be > 1 (or null: never stop)")  # fmt: skip
    smoothing = settings.get("smoothing", 0.9)
    if (
        isinstance(smoothing, bool)
        or not isinstance(smoothing, int | float)
        or not 0 <= smoothing < 1
    ):
        raise ConfigError(f"lr_find.smoothing={smoothing!r} must be in [0, 1), e.g. 0.9")
    return {"min_lr": float(low), "max_lr": float(high), "num_training": steps,
            "mode": settings.mode, "early_stop_threshold": threshold, "smoothing": float(smoothing)}  # fmt: skip


def lr_scale(cfg: DictConfig) -> float:
    """What build_model multiplies model.optimizer.lr by (lr_scaling.rule), so the override
    undoes it: the suggestion is the rate the optimizer should actually use."""
    scaling = cfg.get("lr_scaling") or {}
    rule = scaling.get("rule", "none")
    ratio = effective_batch_size(cfg) / int(scaling.get("base_batch_size", 64))
    return {"linear": ratio, "sqrt": ratio**0.5}.get(rule, 1.0)


def _recorder(model: Any, seen: list[tuple[float, float]], facts: dict[str, int]) -> Any:
    """A model hook (the range test swaps the trainer's callbacks out) keeping each optimizer
    step's learning rate and raw loss: Lightning keeps only a running average whose start-up
    correction is one step off, so its first tens of points climb from half the loss."""
    trainer = attached_trainer(model)
    last_step = [trainer.global_step if trainer is not None else 0]

    def on_train_batch_end(outputs: Any, batch: Any, batch_idx: int) -> None:
        trainer = model.trainer
        if trainer.global_step == last_step[0] or not outputs:
            return  # no optimizer step on this batch (gradient accumulation)
        last_step[0] = trainer.global_step
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        groups = trainer.optimizers[0].param_groups
        seen.append((float(groups[0]["lr"]), float(loss)))
        # what the test trains: the head alone for model=finetune (the backbone stays frozen)
        facts["trained_parameters"] = sum(
            p.numel() for g in groups for p in g["params"] if p.requires_grad
        )  # fine-tuning's later stages wait in the optimizer, frozen

    return on_train_batch_end


def smooth(losses: list[float], beta: float) -> list[float]:
    """Exponential running average with the start-up correction (Adam's), step by step."""
    out, avg = [], 0.0
    for k, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**k))
    return out


def suggest(lrs: list[float], losses: list[float], skip_begin: int = 5) -> float | None:
    """The rate where the smoothed loss falls fastest per decade of learning rate, before its
    minimum, and at most a tenth of the rate at the minimum (Smith's and fastai's rules).

    Lightning's own suggestion takes the slope per unit of learning rate, which on a log sweep
    favours the tiny rates where the points are close and the loss has not moved yet. The first
    `skip_begin` points are the running average settling.
    """
    pairs = [(lr, loss) for lr, loss in list(zip(lrs, losses, strict=False))[skip_begin:]
             if math.isfinite(lr) and math.isfinite(loss) and lr > 0]  # fmt: skip
    if len(pairs) < 5:
        return None
    lr = np.array([p[0] for p in pairs])
    loss = np.array([p[1] for p in pairs])
    bottom = int(np.argmin(loss))
    if bottom < 2:  # the loss only rose: no falling part to read
        return None
    slope = np.gradient(loss[: bottom + 1], np.log10(lr[: bottom + 1]))
    steepest = float(lr[int(np.argmin(slope))])
    return min(steepest, float(lr[bottom]) / 10)


def lr_find(cfg: DictConfig) -> dict[str, Any]:
    from lightning.pytorch.tuner import Tuner

    settings = check_settings(cfg.get("lr_find"))
    run_lint(cfg)
    check_devices(cfg.trainer)
    datamodule = build_data(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    model = build_model(cfg, datamodule.info)
    datamodule.prepare_augmentation()
    steps = settings["num_training"]
    # Enough epochs for the steps on any data size; validation never runs (it does not move the
    # training loss the test reads); no checkpoints, loggers or run callbacks.
    trainer = instantiate(
        cfg.trainer, max_epochs=steps, max_steps=steps, check_val_every_n_epoch=steps + 1,
        num_sanity_val_steps=0, logger=False, callbacks=[], enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=str(run_dir), _convert_="all",
    )  # fmt: skip
    smoothing = settings.pop("smoothing")
    steps_seen: list[tuple[float, float]] = []
    facts: dict[str, int] = {"parameters": sum(p.numel() for p in model.parameters())}
    model.on_train_batch_end = _recorder(model, steps_seen, facts)  # raw loss of every step
    Tuner(trainer).lr_find(model, datamodule=datamodule, update_attr=False, **settings)
    del model.on_train_batch_end
    lrs = [lr for lr, _ in steps_seen]
    losses = smooth([loss for _, loss in steps_seen], smoothing)
    suggestion = suggest(lrs, losses)
    if suggestion is None:
        raise ConfigError(
            f"the range test recorded {len(lrs)} points, too few for a suggestion (the loss diverged "
            "at once?); lower lr_find.max_lr or raise lr_find.num_training"
        )
    override = suggestion / lr_scale(cfg)
    result = {"suggested_lr": suggestion, "override": f"model.optimizer.lr={override:.3g}",
              "points": len(lrs), **facts, **settings, "smoothing": smoothing}  # fmt: skip
    _write(lrs, losses, run_dir, result)
    _say(cfg, model, result, run_dir)
    return result


def _write(lrs: list[float], losses: list[float], run_dir: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.axvline(result["suggested_lr"], color="red", linestyle="--", label="suggestion")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (smoothed)")
    ax.legend()
    ax.set_title(f"LR range test: suggested {result['suggested_lr']:.3g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "lr_find.png", dpi=110)
    plt.close(fig)
    rows = zip(lrs, losses, strict=True)
    (run_dir / "lr_find.csv").write_text("lr,loss\n" + "".join(f"{lr!r},{loss!r}\n" for lr, loss in rows))  # fmt: skip
    (run_dir / "lr_find.json").write_text(json.dumps(result, indent=2) + "\n")


def _say(cfg: DictConfig, model: Any, result: dict[str, Any], run_dir: Path) -> None:
    console = Console()
    console.print(
        f"suggested learning rate: {result['suggested_lr']:.3g} (where the smoothed training loss "
        f"falls fastest per decade, at most a tenth of the rate at its minimum; {result['points']} "
        f"steps from {result['min_lr']:g} to {result['max_lr']:g})"
    )
    if getattr(model, "finetuning", None) is not None:
        console.print(
            "model=finetune: the backbone stayed frozen during the test, so this is the head's "
            "learning rate; the fine-tuning stages keep their lr_mult factors relative to it"
        )
    if lr_scale(cfg) != 1.0:
        console.print(f"lr_scaling.rule={cfg.lr_scaling.rule} multiplies model.optimizer.lr by "
                      f"{lr_scale(cfg):.3g} at this batch size; the override below allows for it")  # fmt: skip
    console.print(f"train with: [bold]{result['override']}[/bold]   (plot: {run_dir / 'lr_find.png'})")  # fmt: skip


@hydra_command("lr_find")  # one-line errors for Hydra's and the libraries' mistakes too
def main(cfg: DictConfig) -> None:
    lr_find(cfg)


if __name__ == "__main__":
    main()
