"""What to try next: a short diagnosis of a run from its own numbers, with the overrides to try.

    python -m dlrecipe.train model.optimizer.lr=1e-6 trainer.max_epochs=3   # -> "under-fitting"

Every run ends with `next_steps` in summary.json (a list of {finding, evidence, try}) and the
same lines under "what to try next" in the printed summary. Each finding has a test on the
run's own numbers and is left out when the numbers do not show it, so a healthy run gets none:

- diverged: the loss became NaN / inf (guards.py stopped the fit);
- under-fitting: the final training loss is still more than half (classification; regression:
  70 %) of the loss of predicting the training prior (class shares, or the mean target) and the
  validation loss is close to it: the model has not learned what the data offers;
- over-fitting: validation loss rose for 3+ epochs after its best while training loss fell
  (report/curves.overfitting_epoch);
- stalled: the best validation loss is within 2 % of the first epoch's after 4+ epochs;
- dead units (callbacks=monitor only): a layer with over half its units never positive;
- more data would help: a data_curve.csv (fraction,n_train,seed,train_score,val_score) in the
  run directory or its parent whose validation score still rises between its two largest sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dlrecipe.tasks import Task, as_task, direction

# Share of the prior's loss still left that counts as under-fitting: classes 0.5, values 0.7.
UNDERFIT_SHARE = {True: 0.5, False: 0.7}  # keyed by Task.has_classes
CLOSE_SHARE = 0.2  # |val - train| loss within this share of the prior's loss: curves together
STALL_GAIN = 0.02  # best val loss less than 2 % below the first epoch's
STALL_EPOCHS = 4
DEAD_SHARE = 0.5
CURVE_FILE = "data_curve.csv"


def step(finding: str, evidence: str, try_: str) -> dict[str, str]:
    return {"finding": finding, "evidence": evidence, "try": try_}


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value


def prior_loss(
    loss_fn: torch.nn.Module, targets: torch.Tensor, task: str | Task, num_classes: int = 0
) -> float:
    """The loss of always predicting the training prior (class shares, or the mean target)."""
    task = as_task(task, num_classes)
    with torch.no_grad():
        return float(loss_fn(*task.loss_inputs(task.prior_outputs(targets), targets)))


def underfitting(
    rows: list[dict[str, float]], prior: float, task: str | Task, main: str
) -> str | None:
    """The evidence of under-fitting in the last epoch, or None (see module doc)."""
    last = rows[-1] if rows else {}
    train, val = last.get("train/loss"), last.get("val/loss")
    if train is None or val is None or not prior > 0 or not np.isfinite([train, val]).all():
        return None
    share = UNDERFIT_SHARE[as_task(task).has_classes]
    if train <= share * prior or abs(val - train) > CLOSE_SHARE * prior:
        return None
    scores = ", ".join(
        f"{stage} {main} {last[f'{stage}/{main}']:.3f}"
        for stage in ("train", "val")
        if f"{stage}/{main}" in last
    )
    return (
        f"final training loss {train:.4g} is {train / prior:.0%} of the {prior:.4g} of predicting "
        f"the training prior, validation loss {val:.4g} close to it ({scores}) after "
        f"{len(rows)} epoch(s)"
    )


def _bigger(cfg: DictConfig) -> str:
    channels, hidden = _get(cfg, "model.net.channels"), _get(cfg, "model.net.hidden")
    if isinstance(channels, list) and channels:
        return f"model.net.channels=[{','.join(str(2 * int(c)) for c in channels)}]"
    if _get(cfg, "model.net.backbone") is not None:
        return "model/finetuning=full"
    if isinstance(hidden, list) and hidden:
        return f"model.net.hidden=[{','.join(str(2 * int(h)) for h in hidden)}]"
    return "a larger model.net"


def _smaller(cfg: DictConfig) -> str:
    channels, hidden = _get(cfg, "model.net.channels"), _get(cfg, "model.net.hidden")
    if isinstance(channels, list) and channels:
        return f"model.net.channels=[{','.join(str(max(1, int(c) // 2)) for c in channels)}]"
    if isinstance(hidden, list) and hidden:
        return f"model.net.hidden=[{','.join(str(max(1, int(h) // 2)) for h in hidden)}]"
    return "a smaller model.net"


def _lr(cfg: DictConfig) -> float | None:
    lr = _get(cfg, "model.optimizer.lr")
    return float(lr) if isinstance(lr, int | float) else None


def underfit_step(cfg: DictConfig, evidence: str) -> dict[str, str]:
    tries = [_bigger(cfg)]
    epochs = _get(cfg, "trainer.max_epochs")
    if isinstance(epochs, int) and epochs > 0:
        tries.append(f"trainer.max_epochs={2 * epochs}")
    lr = _lr(cfg)
    if lr is not None:
        tries.append(f"model.optimizer.lr={lr * 3:g}")
    if (_get(cfg, "model.net.dropout") or 0) > 0:
        tries.append("model.net.dropout=0")
    if (_get(cfg, "model.optimizer.weight_decay") or 0) > 0:
        tries.append("model.optimizer.weight_decay=0")
    return step("under-fitting", evidence, " and/or ".join(tries))


def overfit_step(cfg: DictConfig, rows: list[dict[str, float]], epoch: int, image: bool) -> dict:
    best = rows[epoch - 1]
    last = rows[-1]
    evidence = (
        f"validation loss was lowest at epoch {epoch} ({best['val/loss']:.4g}) and rose to "
        f"{last['val/loss']:.4g} by epoch {len(rows)} while training loss fell from "
        f"{best['train/loss']:.4g} to {last['train/loss']:.4g}"
    )
    dropout = _get(cfg, "model.net.dropout")
    decay = _get(cfg, "model.optimizer.weight_decay")
    tries = ["data/augmentation=light" if image else "data/augmentation=table_noise"]
    if isinstance(dropout, int | float):
        tries.append(f"model.net.dropout={min(0.6, max(0.5, dropout + 0.2)):g}")
    if isinstance(decay, int | float):
        tries.append(f"model.optimizer.weight_decay={decay * 5 if decay > 0 else 0.05:g}")
    tries += [_smaller(cfg), "more training data"]
    return step("over-fitting", evidence, " and/or ".join(tries))


def stalled(rows: list[dict[str, float]]) -> str | None:
    losses = [r.get("val/loss") for r in rows]
    if len(rows) < STALL_EPOCHS or None in losses or not np.isfinite(losses).all():
        return None
    first, best = losses[0], min(losses)
    if first <= 0 or (first - best) / first >= STALL_GAIN:
        return None
    return (
        f"the best validation loss ({best:.4g}) is only {(first - best) / first:.1%} below the "
        f"first epoch's ({first:.4g}) over {len(rows)} epochs"
    )


def stalled_step(cfg: DictConfig, evidence: str) -> dict[str, str]:
    lr = _lr(cfg)
    tries = [f"model.optimizer.lr={lr * 10:g}" if lr else "a 10x higher model.optimizer.lr",
             "python -m dlrecipe.lr_find <the same overrides> to pick the learning rate",
             "data/normalization=standardize", "model.init=he_uniform"]  # fmt: skip
    return step("stalled", evidence, " and/or ".join(tries))


def dead_units(monitor_metrics: dict[str, float]) -> str | None:
    dead = {k.removeprefix("monitor/act_dead/"): v for k, v in monitor_metrics.items()
            if k.startswith("monitor/act_dead/") and v > DEAD_SHARE}  # fmt: skip
    if not dead:
        return None
    shown = ", ".join(f"{name} {share:.0%}" for name, share in list(dead.items())[:4])
    return f"units never positive on a whole batch at the last monitored step: {shown}"


def dead_step(cfg: DictConfig, evidence: str) -> dict[str, str]:
    lr = _lr(cfg)
    tries = ["model.net.activation=leaky_relu", "model.init=he_uniform"]
    if lr:
        tries.insert(1, f"model.optimizer.lr={lr / 3:g}")
    return step("dead units", evidence, " and/or ".join(tries))


def data_curve(run_dir: Path, task: str | Task) -> str | None:
    """Evidence that more data would help, from a data_curve.csv beside the run; None otherwise."""
    import pandas as pd

    higher_is_better = direction(as_task(task).main_metric) == "max"  # val_score is that metric
    for folder in (run_dir, run_dir.parent):
        path = folder / CURVE_FILE
        if not path.is_file():
            continue
        try:  # a file on disk: any malformed content means "no evidence", never a crash
            frame = pd.read_csv(path, usecols=["fraction", "n_train", "seed", "val_score"])
            frame = frame.apply(pd.to_numeric, errors="coerce").dropna()
        except (ValueError, OSError, pd.errors.ParserError):
            return None
        means = frame.groupby("n_train")["val_score"].agg(["mean", "std", "count"]).sort_index()
        if len(means) < 2:
            return None
        (n0, before), (n1, after) = list(means.iterrows())[-2:]
        gain = (after["mean"] - before["mean"]) * (1 if higher_is_better else -1)
        noise = np.nan_to_num(np.hypot(before["std"] / np.sqrt(before["count"]),
                                       after["std"] / np.sqrt(after["count"])))  # fmt: skip
        if gain <= max(2 * noise, 1e-3):
            return None
        return (
            f"{path.name}: the validation score still rises from {before['mean']:.4f} at "
            f"{int(n0)} to {after['mean']:.4f} at {int(n1)} training samples "
            f"(+{gain:.4f}, twice its standard error is {2 * noise:.4f})"
        )
    return None


def next_steps(
    cfg: DictConfig, rows: list[dict[str, float]], model: Any, datamodule: Any, run_dir: Path,
    monitor_metrics: dict[str, float] | None = None,
) -> tuple[list[dict[str, str]], str | None]:  # fmt: skip
    """(next_steps, the under-fitting note or None) for a completed run (see module doc)."""
    from dlrecipe.report.curves import overfitting_epoch

    task, main = model.info.task_obj, model.main_metric
    targets = datamodule.data.targets[torch.as_tensor(datamodule.fold.train)]
    found: list[dict[str, str]] = []
    prior = prior_loss(model.loss_fn, targets, task, model.info.num_classes)
    under = underfitting(rows, prior, task, main)
    if under:
        found.append(underfit_step(cfg, under))
    over = overfitting_epoch(rows)
    if over:
        found.append(overfit_step(cfg, rows, over, model.info.is_image))
    flat = stalled(rows)
    if flat:
        found.append(stalled_step(cfg, flat))
    dead = dead_units(monitor_metrics) if monitor_metrics else None
    if dead:
        found.append(dead_step(cfg, dead))
    more = data_curve(run_dir, task)
    if more:
        found.append(step("more data would help", more,
                          "collect more labelled data; until then data augmentation "
                          "(data/augmentation=light for images, table_noise for tables)"))  # fmt: skip
    return found, (f"under-fitting: {under}" if under else None)


def diverged_steps(cfg: DictConfig, message: str) -> list[dict[str, str]]:
    """The one finding of a diverged run: its diagnosis and the overrides it names."""
    lr = _lr(cfg)
    lower = f"model.optimizer.lr={(lr / 10 if lr <= 0.1 else 1e-3):g}" if lr else "a lower lr"
    tries = [lower, "trainer.gradient_clip_val=1.0", "data/normalization=standardize"]
    return [step("diverged", message.split(". Likely causes")[0], " and/or ".join(tries))]


def diagnose(summary: Any, cfg: DictConfig, trainer: Any, model: Any, rows: list[dict]) -> None:
    """Fill summary.next_steps (and the under-fitting note) for a completed fit."""
    monitor = next((c for c in trainer.callbacks if hasattr(c, "last_metrics")), None)
    found, note = next_steps(cfg, rows, model, trainer.datamodule, Path(summary.run_dir),
                             monitor.last_metrics if monitor is not None else None)  # fmt: skip
    summary.next_steps = found
    if note:
        summary.notes.append(note)


def diagnose_diverged(summary: Any, cfg: DictConfig, trainer: Any) -> None:
    """A diverged run's summary.json gets its next_steps too (rewritten on rank 0)."""
    from dlrecipe.versions import versions

    summary.next_steps = diverged_steps(cfg, summary.diagnosis or "")
    summary.versions = versions()
    if trainer.is_global_zero:
        summary.write(Path(summary.run_dir) / "summary.json")
