"""Do I need more data? Train on growing shares of the training split and read the curve.

    python -m dlrecipe.data_curve experiment=digits_mlp data_curve.fractions=[0.1,0.25,0.5,1.0] data_curve.seeds=3

Every training override works. For each fraction and seed one run trains on a stratified subset
of the TRAIN part only (validation and test stay fixed, normalization is refitted on the subset)
in <run dir>/frac<f>_seed<s>/. The run directory gets data_curve.csv (one row per run: size,
train / validation / test score), data_curve.png (train and validation score against
training-set size, mean ± sd over seeds, and the doubling estimate) and data_curve.json, and
the command ends with a verdict in plain words: is the validation score still rising at full
size, and what would doubling the data give (how it is estimated: report/data_curve.py).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from dlrecipe.builders import build_data, build_model
from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.splits import hold_out
from dlrecipe.edge import hydra_command
from dlrecipe.errors import ConfigError
from dlrecipe.guards import check_training_length, exit_on_divergence
from dlrecipe.lint import run_lint
from dlrecipe.report.data_curve import extrapolate, plot, verdict
from dlrecipe.tasks import direction, task_named


def check_settings(settings: DictConfig | None) -> tuple[list[float], int, bool]:
    """data_curve.fractions / seeds / same_steps, refused with the key and the fix when unusable."""
    if settings is None:
        raise ConfigError("data_curve.* is missing: run python -m dlrecipe.data_curve (conf/data_curve.yaml)")  # fmt: skip
    fractions = settings.get("fractions")
    if not OmegaConf.is_list(fractions) and not isinstance(fractions, list | tuple):
        fractions = [fractions]
    good = []
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 < f <= 1.0:
            raise ConfigError(
                f"data_curve.fractions has {f!r}: each fraction is a share of the training split "
                "in (0, 1], e.g. data_curve.fractions=[0.1,0.25,0.5,1.0]"
            )
        good.append(float(f))
    good = sorted(set(good))
    if len(good) < 2:
        raise ConfigError(
            f"data_curve.fractions={good}: a curve needs at least two sizes, e.g. [0.25,0.5,1.0]"
        )
    seeds = settings.get("seeds")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"data_curve.seeds={seeds!r} must be a whole number >= 1 (3 gives a spread)")  # fmt: skip
    return good, seeds, bool(settings.get("same_steps", True))


def train_subset(datamodule: DataModule, fraction: float, seed: int) -> np.ndarray:
    """`fraction` of the fold's training part: stratified by class, whole groups with data.source.groups."""
    data, train = datamodule.data, datamodule.fold.train
    if fraction >= 1.0:
        return train
    labels = data.targets.numpy()
    stratify = task_named(data.task).has_classes and getattr(datamodule.split, "stratify", True) is not False  # fmt: skip
    keep_n = len(train) - math.ceil((1.0 - fraction) * len(train))
    classes = len(np.unique(labels[train])) if stratify else 1
    if keep_n < max(classes, 1) or (stratify and len(train) - keep_n < classes):
        raise ConfigError(
            f"data_curve.fractions has {fraction:g}: {keep_n} of {len(train)} training samples "
            f"cannot hold all {classes} classes stratified; use fractions between "
            f"{classes / len(train):.3g} and {1 - classes / len(train):.3g}, or 1.0"
        )
    keep, _ = hold_out(train, labels, 1.0 - fraction, seed, stratify, data.groups)
    return np.sort(keep)


def steps_per_epoch(datamodule: DataModule, indices: np.ndarray) -> int:
    batch, drop_last = datamodule.train_batching(indices)
    return max(1, len(indices) // batch if drop_last else math.ceil(len(indices) / batch))


def run_config(cfg: DictConfig, out_dir: Path, seed: int, epochs_factor: int) -> DictConfig:
    """The training config of one subset run: its own directory, seed and (same_steps) epochs."""
    run_cfg = cfg.copy()
    split_seed = OmegaConf.select(cfg, "data.split.seed")  # the split stays the one built above
    OmegaConf.set_struct(run_cfg, False)
    if split_seed is not None:
        run_cfg.data.split.seed = split_seed
    run_cfg.paths.output_dir = str(out_dir)
    run_cfg.seed = seed
    trainer = run_cfg.trainer
    if epochs_factor > 1 and trainer.get("max_epochs", -1) != -1:
        trainer.max_epochs = int(trainer.max_epochs) * epochs_factor
        trainer.min_epochs = int(trainer.get("min_epochs") or 1) * epochs_factor
        trainer.check_val_every_n_epoch = int(trainer.get("check_val_every_n_epoch") or 1) * epochs_factor  # fmt: skip
    return run_cfg


def train_score(cfg: DictConfig, datamodule: DataModule, checkpoint: str | None, indices: np.ndarray) -> float:  # fmt: skip
    """The best checkpoint's main metric on its own training samples (eval mode, no augmentation)."""
    if not checkpoint:
        return float("nan")
    import torch

    from dlrecipe.checkpoints import load_checkpoint
    from dlrecipe.predict import predict_batches

    info = datamodule.info
    model = build_model(cfg, info)
    model.load_state_dict(load_checkpoint(checkpoint)["state_dict"])
    probs = predict_batches(model, datamodule, (x for x, _ in datamodule.batches(indices)))
    metric = info.task_obj.metrics()[info.task_obj.main_metric]
    metric.update(probs, datamodule.data.targets[torch.as_tensor(indices)])
    return float(metric.compute())


def data_curve(cfg: DictConfig) -> dict[str, Any]:
    from dlrecipe.train import check_metric_names, fit_fold

    fractions, seeds, same_steps = check_settings(cfg.get("data_curve"))
    run_lint(cfg)
    check_training_length(cfg)
    datamodule = build_data(cfg)
    info = datamodule.info
    check_metric_names(cfg, info)
    subsets = {(f, s): train_subset(datamodule, f, int(cfg.seed) + s) for f in fractions for s in range(seeds)}  # fmt: skip
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main = info.task_obj.main_metric
    full_steps = steps_per_epoch(datamodule, datamodule.fold.train)
    rows = []
    for (fraction, s), subset in subsets.items():
        factor = max(1, round(full_steps / steps_per_epoch(datamodule, subset))) if same_steps else 1  # fmt: skip
        out = run_dir / f"frac{fraction:g}_seed{s}"
        run_cfg = run_config(cfg, out, int(cfg.seed) + s, factor)
        started = time.perf_counter()
        twin = datamodule.with_train(subset, seed=int(cfg.seed) + s)
        summary = fit_fold(run_cfg, twin)  # normalization is fitted on the subset here
        rows.append({
            "fraction": fraction, "seed": s, "train_size": len(subset),
            "train_score": train_score(run_cfg, twin, summary.best_checkpoint, subset), "val_score": summary.val_metrics.get(f"val/{main}"),
            "test_score": summary.test_metrics.get(f"test/{main}", float("nan")),
            "val_loss": summary.val_metrics.get("val/loss"), "epochs": summary.epochs_run,
            "steps": summary.train_steps, "seconds": round(time.perf_counter() - started, 2),
            "run_dir": str(out.relative_to(run_dir)),
        })  # fmt: skip
    return finish(rows, run_dir, main, len(datamodule.fold.val), info.task_obj.has_classes)


def finish(rows: list[dict[str, Any]], run_dir: Path, main: str, n_val: int, classes: bool) -> dict[str, Any]:  # fmt: skip
    """data_curve.csv / .png / .json from the runs' rows, and the verdict printed."""
    higher = direction(main) == "max"
    pd.DataFrame(rows).to_csv(run_dir / "data_curve.csv", index=False)
    sizes = np.array([r["train_size"] for r in rows])
    scores = np.array([r["val_score"] for r in rows], dtype=float)
    seeds = len({r["seed"] for r in rows})
    floor = (
        0.5 / max(n_val, 1) if classes else 1e-12
    )  # half a validation sample: 0 errors stay finite
    estimate = extrapolate(sizes, scores, 2 * int(sizes.max()), higher, seeds=seeds, floor=floor)
    lines = verdict(rows, main, higher, estimate)
    figure = plot(rows, main, run_dir / "data_curve.png", estimate)
    result = {"metric": f"val/{main}", "rows": rows, "verdict": lines,
              "estimate": estimate.to_dict() if estimate else None}  # fmt: skip
    (run_dir / "data_curve.json").write_text(json.dumps(result, indent=2) + "\n")
    console = Console()
    console.print(f"[bold]data curve[/bold] ({len(rows)} runs): {run_dir / 'data_curve.csv'}, {figure}")  # fmt: skip
    for line in lines:
        console.print(f"[yellow]verdict:[/yellow] {line}")
    return result


@hydra_command("data_curve")  # one-line errors for Hydra's and the libraries' mistakes too
@exit_on_divergence
def main(cfg: DictConfig) -> None:
    data_curve(cfg)


if __name__ == "__main__":
    main()
