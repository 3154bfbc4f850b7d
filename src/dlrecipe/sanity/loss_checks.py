"""The loss at initialization, and memorizing one batch with regularization off.

    python -m dlrecipe.train experiment=digits_cnn debug=sanity sanity.overfit_max_steps=100

Initial loss: a net whose outputs start near zero predicts uniform probabilities (or zero), so
its first loss should be close to the loss of all-zero outputs: ln C for C classes, ln 2 for
binary, the mean squared target for MSE (the target variance if targets are centred). Far above
means over-confident or exploding outputs. Overfit: any working model, loss and label pipeline
can memorize a handful of samples; one that cannot has a bug or a learning rate far off.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from dlrecipe.builders import build_model
from dlrecipe.compat import is_dropout
from dlrecipe.data.datamodule import DataModule
from dlrecipe.lint.training_rules import lr_range
from dlrecipe.models.module import LitModel
from dlrecipe.models.optim import optimizer_settings
from dlrecipe.sanity.result import Check


def train_batch(datamodule: DataModule, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` random training samples as the model sees them: normalized, not augmented."""
    train = torch.as_tensor(datamodule.fold.train)
    pick = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:size]]
    x = datamodule.prepare_inputs(datamodule.raw_inputs(pick.numpy()), augment=False)
    return x, datamodule.data.targets[pick]


def initial_loss(model: LitModel, batch: tuple[torch.Tensor, torch.Tensor], tol: float) -> Check:
    x, y = batch
    task = model.info.task_obj
    y = model.scale_target(y)  # regression: in the units the net learns (data.target_scaling)
    model.train()  # as the first training step sees it: batch-norm on batch statistics
    with torch.no_grad():
        out = model.net(x)
        loss = float(model.loss_fn(*task.loss_inputs(out, y)))
        chance = float(model.loss_fn(*task.loss_inputs(torch.zeros_like(out), y)))
    ratio = loss / chance if chance > 0 else math.inf
    ok = math.isfinite(loss) and loss <= chance * (1 + tol)
    # The floor a constant predictor reaches: the class prior's entropy, or the target variance.
    if not task.has_classes:
        prior = float(y.double().var())
    else:
        shares = torch.bincount(y.long(), minlength=max(2, model.info.num_classes)).double() / len(
            y
        )
        prior = float(-(shares[shares > 0] * shares[shares > 0].log()).sum())
    # uniform probabilities over C classes (binary: one logit at 0, two classes) cost ln C
    expected = (
        f"ln {max(2, model.info.num_classes)} = {chance:.3f} (prior's cross-entropy {prior:.3f})"
        if task.has_classes
        else f"{chance:.4g}, the loss of predicting 0 (target variance {prior:.4g})"
    )
    note = ""
    if ok and ratio > 1.25 and task.has_classes:
        note = f" (outputs start over-confident: std {float(out.std()):.2f})"
    return Check(
        "initial loss",
        "pass" if ok else "fail",
        f"{loss:.4g} = {ratio:.2f} x chance{note}",
        f"≈ {expected}, at most {1 + tol:g}x",
        hint="the untrained net's outputs are far from zero. Usual causes: inputs not normalized "
        "(data/normalization=standardize) with batch norm off, a too large init (model.init="
        "he_uniform / xavier_uniform instead of a hand-made scale), a last layer with a large "
        "bias; for regression, targets far from 0 (standardize them or expect a slow start)",
        values={
            "loss": loss,
            "chance_loss": chance,
            "prior_loss": prior,
            "ratio": ratio,
            "output_std": float(out.std()),
        },
    )


class _SameBatch:
    """The same batch `steps` times: one epoch of `steps` steps (an epoch per step costs ~10x)."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], steps: int):
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return iter([self.batch] * self.steps)


class _StopWhenMemorized(pl.Callback):
    """After every step: the batch's loss and score with the updated weights; stop at the goal."""

    def __init__(self, goal: float, higher_is_better: bool):
        self.goal, self.higher = goal, higher_is_better
        self.losses: list[float] = []
        self.scores: list[float] = []
        self.reached_at: int | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: LitModel, outputs, batch, batch_idx: int) -> None:  # fmt: skip
        x, y = batch
        task = pl_module.info.task_obj
        with torch.no_grad():
            out = pl_module.net(x)
            self.losses.append(float(pl_module.data_loss(out, y)))
            score = float(task.score_sum(pl_module.to_target_units(out), y) / len(y))
        self.scores.append(score)
        reached = score >= self.goal if self.higher else score <= self.goal
        if reached and self.reached_at is None:
            self.reached_at = trainer.global_step
            trainer.should_stop = True


def without_regularization(model: LitModel) -> LitModel:
    """Dropout at 0, no weight decay, a constant LR, nothing frozen: nothing fights memorizing."""
    for module in model.net.modules():
        if is_dropout(module):
            module.p = 0.0
    factory = model.optimizer_factory
    if isinstance(factory, partial) and "weight_decay" in optimizer_settings(factory):
        model.optimizer_factory = partial(
            factory.func, *factory.args, **{**factory.keywords, "weight_decay": 0.0}
        )
    model.scheduler_factory = None
    if getattr(model, "finetuning", None) is not None:  # model=finetune: its freeze schedule
        model.finetuning = None  # reads the DataModule; memorizing one batch may train every layer
    return model


def overfit_one_batch(cfg: DictConfig, datamodule: DataModule, batch, max_steps: int, regression_tol: float) -> Check:  # fmt: skip
    plain = copy.deepcopy(cfg)
    if plain.model.get("regularization") is not None:  # L1 / elastic net, max-norm, activity: off
        plain.model.regularization = None
    model = without_regularization(build_model(plain, datamodule.info))
    model.use_target_scaling(datamodule)
    task = model.info.task_obj
    x, y = batch
    if not task.has_classes:  # memorized = MAE a small fraction of the mean predictor's
        goal = regression_tol * float((y - y.mean()).abs().mean())
        stopper = _StopWhenMemorized(goal, higher_is_better=False)
    else:
        goal = 1.0
        stopper = _StopWhenMemorized(1.0 - 1e-6, higher_is_better=True)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"), devices=1,
        precision=cfg.trainer.get("precision", "32-true"), max_epochs=1, min_epochs=0,
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.trainer.get("gradient_clip_algorithm", "norm"),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[stopper],
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=_SameBatch((x, y), max_steps))
    best = max(stopper.scores) if task.has_classes else min(stopper.scores)
    name = "accuracy" if task.has_classes else "MAE"
    ok = stopper.reached_at is not None
    if ok:
        measured = f"{len(y)} samples memorized in {stopper.reached_at} steps (loss {stopper.losses[-1]:.3g})"
    else:
        measured = f"best {name} {best:.4g} after {max_steps} steps; loss {stopper.losses[0]:.4g} -> {stopper.losses[-1]:.4g}"
    return Check(
        "overfit one batch",
        "pass" if ok else "fail",
        measured,
        f"{name} {'= 1' if task.has_classes else f'≤ {goal:.4g}'} within {max_steps} steps (no dropout, "
        "weight decay, augmentation or schedule)",
        hint=_overfit_hint(stopper.losses, model.optimizer_factory),
        values={
            "steps": stopper.reached_at,
            "goal": goal,
            "losses": stopper.losses[:: max(1, len(stopper.losses) // 50)],
            "best_score": best,
            "batch_size": len(y),
        },
    )


def _overfit_hint(losses: list[float], factory: object) -> str:
    lr = optimizer_settings(factory).get("lr") if isinstance(factory, partial) else None
    name, bounds = lr_range(getattr(getattr(factory, "func", None), "__name__", ""))
    lr_text = f"model.optimizer.lr={lr:g}" if lr is not None else "the learning rate"
    diverged = not losses or not all(math.isfinite(v) for v in losses) or losses[-1] > losses[0]
    if diverged or (lr is not None and bounds and lr > bounds[1]):
        usual = f" ({name} usually trains at {bounds[0]:g}..{bounds[1]:g})" if bounds else ""
        return (
            f"the loss {'diverged (rose or became NaN)' if diverged else 'oscillates instead of settling'}: "
            f"{lr_text} is far too high{usual}; try 10-100x smaller. Also check that the inputs are "
            "normalized and that no layer's init is huge"
        )
    return (
        f"the loss fell but the batch was not memorized: {lr_text} too low, too few steps "
        "(sanity.overfit_max_steps), a net too small for the batch, labels misaligned with inputs "
        "(a shuffle or sort applied to one of them), a bug in the loss, or a regularizer that is "
        "still on"
    )
