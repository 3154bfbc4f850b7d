"""Curriculum learning: the easiest samples first, widening to all of them by a pacing function.

    python -m dlrecipe.train callbacks=curriculum                      # difficulty = pre-pass loss
    python -m dlrecipe.train callbacks=curriculum callbacks.curriculum.difficulty=scores.npy \
        callbacks.curriculum.pacing=step callbacks.curriculum.start_frac=0.5

Difficulty is one score per sample (higher = harder): a file (.npy, or .csv / .txt with one
number per line) in the data set's row order, `column:<name>` (a column of data=csv's own
file; leave it out of data.features), or `loss`: a copy of the untrained model is
trained for `prepass_epochs` on the training part, and each training sample's loss under it is
its score (what such a model has not learned yet is hard). Random draws of the pre-pass happen
in a forked RNG, so the run's own batches and dropout masks are those of a run without it.

At epoch e the training loader holds `fraction(e)` of the training samples, shuffled as usual:
`linear` grows from `start_frac` to 1 at `full_at_epoch`; `step` gets there in `steps` equal
jumps. `order=easiest_first` takes the easiest ones; `order=stochastic` draws a fresh random mix
each epoch from the easier and the harder half, the harder half's share growing with the
curriculum from none to its natural half (all samples at the end). `train/curriculum_frac` is
logged every epoch.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from dlrecipe.callbacks.data_schedule import DataSchedule
from dlrecipe.errors import ConfigError
from dlrecipe.models.optim import build_optimizer

PACINGS = ("linear", "step")
ORDERS = ("easiest_first", "stochastic")


class Curriculum(DataSchedule):
    def __init__(
        self,
        difficulty: str = "loss",
        pacing: str = "linear",
        start_frac: float = 0.25,
        full_at_epoch: int = 10,
        steps: int = 3,
        prepass_epochs: int = 2,
        order: str = "easiest_first",
    ):
        if order not in ORDERS:
            raise ConfigError(f"callbacks.curriculum.order={order!r}: choose one of {list(ORDERS)}")
        if pacing not in PACINGS:
            raise ConfigError(
                f"callbacks.curriculum.pacing={pacing!r}: choose one of {list(PACINGS)}"
            )
        if not 0.0 < start_frac <= 1.0:
            raise ConfigError(f"callbacks.curriculum.start_frac={start_frac} must be in (0, 1]")
        for key, value in (("full_at_epoch", full_at_epoch), ("steps", steps), ("prepass_epochs", prepass_epochs)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"callbacks.curriculum.{key}={value!r} must be an integer >= 1")
        if (
            difficulty != "loss"
            and not difficulty.startswith("column:")
            and not Path(difficulty).is_file()
        ):
            raise ConfigError(
                f"callbacks.curriculum.difficulty={difficulty!r}: give 'loss' (a pre-pass), "
                "column:<name> (a column of data=csv's file), or a .npy / .csv / .txt file with "
                "one score per sample"
            )
        self.difficulty, self.pacing, self.start_frac = difficulty, pacing, float(start_frac)
        self.full_at_epoch, self.steps, self.prepass_epochs = full_at_epoch, steps, prepass_epochs
        self.order = order
        self.scores: np.ndarray | None = (
            None  # one per sample of the data set; NaN off the train part
        )

    def fraction(self, epoch: int) -> float:
        progress = min(1.0, epoch / self.full_at_epoch)
        if self.pacing == "step":
            progress = math.floor(progress * self.steps) / self.steps
        return self.start_frac + (1.0 - self.start_frac) * progress

    def for_epoch(self, datamodule, train: np.ndarray, epoch: int) -> np.ndarray:
        """The easiest fraction(epoch) of `train`, in index order (the loader shuffles it)."""
        assert self.scores is not None
        easiest = train[np.argsort(self.scores[train], kind="stable")]
        keep = max(1, math.ceil(self.fraction(epoch) * len(train)))
        if self.order == "stochastic":
            return self.random_mix(easiest, keep, epoch, datamodule.seed)
        return np.sort(easiest[:keep])

    def random_mix(self, ranked: np.ndarray, keep: int, epoch: int, seed: int) -> np.ndarray:
        """`keep` samples drawn at random (seeded by seed and epoch: the same on every rank and
        in planned_train_batches), a growing share of them from the harder half of `ranked`."""
        easy, hard = ranked[: len(ranked) // 2], ranked[len(ranked) // 2 :]
        progress = 1.0 if self.start_frac >= 1 else (
            (self.fraction(epoch) - self.start_frac) / (1.0 - self.start_frac)
        )  # fmt: skip
        n_hard = min(len(hard), round(0.5 * progress * keep))
        n_easy = min(len(easy), keep - n_hard)
        n_hard = keep - n_easy
        rng = np.random.default_rng([seed, epoch])
        picked = [rng.choice(easy, n_easy, replace=False), rng.choice(hard, n_hard, replace=False)]
        return np.sort(np.concatenate(picked))

    def changes_after(self, epoch: int) -> bool:
        if self.order == "stochastic" and self.fraction(epoch) < 1.0:
            return True  # a fresh random mix every epoch until all samples are in
        return self.fraction(epoch + 1) != self.fraction(epoch)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            datamodule = trainer.datamodule
            if self.difficulty == "loss":
                scores = loss_prepass(pl_module, datamodule, self.prepass_epochs)
            elif self.difficulty.startswith("column:"):
                scores = column_scores(datamodule, self.difficulty.partition(":")[2])
            else:
                scores = read_scores(self.difficulty, len(datamodule.data.targets))
            # Every rank must narrow to the same samples: rank 0's scores for all.
            self.scores = trainer.strategy.broadcast(scores, src=0)
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        share = self.fraction(trainer.current_epoch)  # logged now: history.csv's row of this epoch
        pl_module.log("train/curriculum_frac", share, on_step=False, on_epoch=True)


def read_scores(path: str, n_samples: int) -> np.ndarray:
    file = Path(path)
    scores = np.load(file) if file.suffix == ".npy" else np.loadtxt(file, delimiter=",", ndmin=1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != n_samples or not np.isfinite(scores).all():
        raise ConfigError(
            f"callbacks.curriculum.difficulty={path}: needs {n_samples} finite scores, one per "
            f"sample in the data set's order; the file has {len(scores)}"
        )
    return scores


def column_scores(datamodule, column: str) -> np.ndarray:
    """A column of the CSV the data came from (data=csv): one score per row, rows are samples."""
    import pandas as pd

    path = datamodule.source_args.get("path")
    key = f"callbacks.curriculum.difficulty=column:{column}"
    if path is None or datamodule.classes is not None:
        raise ConfigError(f"{key} reads a column of data=csv's file (without data.classes)")
    frame = pd.read_csv(Path(path).expanduser())
    if column not in frame.columns:
        raise ConfigError(f"{key}: no such column in {path}; columns are {list(frame.columns)}")
    scores = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    if len(scores) != len(datamodule.data.targets) or not np.isfinite(scores).all():
        raise ConfigError(f"{key}: needs one finite number per row of {path}")
    return scores


def loss_prepass(pl_module: pl.LightningModule, datamodule, epochs: int) -> np.ndarray:
    """Each training sample's loss under a copy of the model trained briefly on the training part."""
    pl_module.use_target_scaling(datamodule)  # callbacks set up before the model: take it now
    net = copy.deepcopy(pl_module.net).to(pl_module.device)  # the run's own model stays untouched
    optimizer = build_optimizer(pl_module.optimizer_factory, net)
    loss_fn, task = copy.deepcopy(pl_module.loss_fn), pl_module.info.task_obj
    train = datamodule.fold.train
    device = pl_module.device
    scores = np.full(len(datamodule.data.targets), np.nan)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        generator = np.random.default_rng(datamodule.seed)
        net.train()
        for _ in range(epochs):
            order = generator.permutation(train)
            for start in range(0, len(order), datamodule.batch_size):
                for x, y in datamodule.batches(order[start : start + datamodule.batch_size]):
                    x = datamodule.prepare_inputs(x.to(device))
                    y = pl_module.scale_target(y.to(device))  # regression: as the net learns it
                    loss = loss_fn(*task.loss_inputs(net(x), y))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        net.eval()
        loss_fn.reduction = "none"
        per_sample = []
        with torch.no_grad():
            for x, y in datamodule.batches(train):
                x = datamodule.prepare_inputs(x.to(device))
                loss = loss_fn(*task.loss_inputs(net(x), pl_module.scale_target(y.to(device))))
                per_sample.append(loss.reshape(len(y), -1).mean(1).cpu())
    scores[train] = torch.cat(per_sample).double().numpy()
    return scores
