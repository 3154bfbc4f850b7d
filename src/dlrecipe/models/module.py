"""The LightningModule: trains any net from models/nets for the data's task.

    python -m dlrecipe.train model=mlp data=wine model/optimizer=sgd model/scheduler=step

It owns what is common to every experiment (loss, metrics, optimizer groups, schedule,
initialization) and nothing about a particular architecture: the net is a `_partial_` that
gets `input_shape` and `num_outputs` from the data's `DataInfo`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from dlrecipe.data.info import DataInfo
from dlrecipe.models.init import initialize
from dlrecipe.models.optim import build_optimizer, check_optimizer
from dlrecipe.models.regularization import Regularization
from dlrecipe.models.schedules import ScheduleContext
from dlrecipe.models.speed import check_compile, compile_net, use_channels_last
from dlrecipe.versions import VERSIONS_KEY, versions

CONFIG_KEY = "dlrecipe_config"  # where the resolved run config is kept inside a checkpoint
DATA_KEY = "dlrecipe_data"  # the DataModule's normalization and split (DataModule.data_state)


class LitModel(pl.LightningModule):
    """The LightningModule of every model (conf/model/default.yaml). Arguments the YAML leaves at
    these defaults, set with model.<arg>=...:

    loss=None: the task's default (cross_entropy / bce / mse); huber, mae for regression.
    label_smoothing=0.0: 0.1 softens over-confident multiclass targets. init: he_uniform in the
    YAML (keeps ReLU activations' variance steady through depth; a pretrained backbone keeps its
    weights, only the new head is initialized). init_scale=0.01: the std of init=small_normal
    (the classic "too small for deep nets" value). channels_last=False: true on GPUs with tensor
    cores (with bf16-mixed), NHWC convolutions run faster; tables have no channels. compile=False:
    true torch.compiles the net, which takes 20 s to minutes, so it pays on long GPU runs.
    regularization=None: all off (models/regularization.py: l1, l2, max_norm, activity,
    weight_noise).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., dict] | None,
        info: dict,
        loss: str | None = None,
        label_smoothing: float = 0.0,
        init: str = "default",
        channels_last: bool = False,
        compile: bool | dict = False,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        finetuning: Callable[[], pl.Callback] | None = None,
        regularization: dict | None = None,
        init_scale: float = 0.01,
    ):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "finetuning"])
        self.info = DataInfo.from_dict(info)
        check_optimizer(optimizer)
        self.net = initialize(
            net(input_shape=self.info.input_shape, num_outputs=self.info.num_outputs), init,
            init_scale,
        )  # fmt: skip
        if channels_last:  # GPU speed options (models/speed.py); the weights stay the same
            use_channels_last(self.net)
        self._compile_options = check_compile(compile)  # no C compiler: fail now, not at step 1
        # Extra penalties / max-norm (models/regularization.py); None when all off: nothing per step.
        self.regularization = Regularization.from_config(self, regularization)
        self._penalized = self.regularization is not None and self.regularization.penalizes
        self._weight_noise = (
            self.regularization is not None and self.regularization.weight_noise > 0
        )
        self.task = self.info.task_obj  # loss inputs, sums, predictions (dlrecipe/tasks)
        self.loss_fn = self.task.build_loss(loss, label_smoothing)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.main_metric = self.task.main_metric
        if self.task.scales_targets:
            # The net learns (y - mean) / std; metrics and predictions are in y's own units. Set
            # from the DataModule's training split at fit (setup); saved with the weights.
            self.register_buffer("target_mean", torch.zeros(()))
            self.register_buffer("target_std", torch.ones(()))
        metrics = self.task.metric_collection()
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.run_config: dict[str, Any] | None = None  # set by train.py, saved with checkpoints
        # model=finetune brings its own freeze / unfreeze schedule (models/finetuning.py).
        self.finetuning = finetuning() if finetuning is not None else None

    def configure_callbacks(self) -> list[pl.Callback]:
        fitting = attached_trainer(self) is not None and self.trainer.state.fn == "fit"
        return [self.finetuning] if self.finetuning is not None and fitting else []

    def configure_model(self) -> None:
        # Lightning calls this before fit, validate and test alike: compile once, lazily (the
        # first step compiles); in place, so checkpoints keep plain state-dict keys.
        if self._compile_options is not None and not getattr(self, "_compiled", False):
            compile_net(self.net, self._compile_options)
            self._compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The net's outputs; for regression in the target's original units."""
        return self.to_target_units(self.net(x))

    def setup(self, stage: str) -> None:
        if stage == "fit" and attached_trainer(self) is not None:
            self.use_target_scaling(self.trainer.datamodule)

    def use_target_scaling(self, datamodule: Any) -> None:
        """Take the DataModule's fitted target statistics (regression; a no-op otherwise)."""
        scaling = getattr(datamodule, "target_scaling", None)
        if self.task.scales_targets and scaling is not None and scaling.fitted:
            self.target_mean.fill_(scaling.mean)
            self.target_std.fill_(scaling.std)

    def scale_target(self, y: torch.Tensor) -> torch.Tensor:
        """Targets in the units the net learns: (y - mean) / std for regression."""
        if not self.task.scales_targets:
            return y
        return (y - self.target_mean) / self.target_std

    def to_target_units(self, out: torch.Tensor) -> torch.Tensor:
        """The net's regression outputs back in the target's units (identity for classes)."""
        if not self.task.scales_targets:
            return out
        return out * self.target_std + self.target_mean

    def data_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of raw net outputs against targets in their original units."""
        return self.loss_fn(*self.task.loss_inputs(out, self.scale_target(y)))

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        if self._weight_noise:  # noisy weights for this forward / backward only
            self.regularization.perturb()
        out = self.net(x)
        loss = self.data_loss(out, y)
        # Epoch means summed on the device and logged once, at the epoch's last batch: a
        # self.log call or a torchmetrics update per step costs more than a small model's step.
        n = len(y)
        self._loss_sum.add_(loss.detach(), alpha=n)  # in place: no new tensors per step
        scored = self.to_target_units(out.detach())  # the main metric in the target's units
        self._score_sum.add_(self.task.score_sum(scored, self.task.hard_targets(y)))
        self._count.add_(n)  # a tensor updated in place: no nn.Module.__setattr__ per step
        if self._penalized:  # train/loss stays the data loss, comparable with val/loss
            penalty = self.regularization.penalty()
            self._penalty_sum += penalty.detach()
            loss = loss + penalty
        if batch_idx + 1 >= self.trainer.num_training_batches:
            # sync_dist: every rank saw its own share of the epoch; average them (once per epoch)
            once = {"on_step": False, "on_epoch": True, "sync_dist": True}
            self.log("train/loss", self._loss_sum / self._count, prog_bar=True, **once)
            self.log(f"train/{self.main_metric}", self._score_sum / self._count, **once)
            if self._penalized:
                self.log("train/penalty", self._penalty_sum / (batch_idx + 1), **once)
        return loss

    def on_after_backward(self) -> None:
        # The gradient was taken at the noisy weights; the step updates the clean ones, and
        # validation, checkpoints and predictions never see noise.
        if self._weight_noise:
            self.regularization.restore()

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._score_sum = torch.zeros((), device=self.device)
        self._count = torch.zeros((), device=self.device)
        self._penalty_sum = torch.zeros((), device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self.task.predict(self(x))

    # Evaluation, like training, sums on the device per batch and logs once per epoch (in the
    # epoch-end hooks): Lightning's per-batch self.log bookkeeping cost more than a small
    # model's forward pass over the whole validation set.
    def on_validation_epoch_start(self) -> None:
        self._start_evaluation(self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self._start_evaluation(self.test_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _start_evaluation(self, metrics: Any) -> None:
        # [loss sum, main-metric sum, sample count] on the device; one all-reduce at the end.
        self._eval_sums = torch.zeros(3, device=self.device)
        # During fit, validation tracks the loss and the main metric only, from these sums: the
        # full torchmetrics set (AUROC sorts every prediction) is computed once, when the best
        # checkpoint is validated and tested.
        during_fit = attached_trainer(self) is not None and self.trainer.state.fn == "fit"
        self._eval_metrics = {} if during_fit else dict(metrics.items())
        for metric in self._eval_metrics.values():
            metric.reset()

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        out = self.net(x)
        loss = self.data_loss(out, y)
        out = self.to_target_units(out)  # metrics in the target's units
        n = len(y)
        score = self.task.score_sum(out, y)
        self._eval_sums.add_(torch.stack([loss * n, score.to(loss.dtype), loss.new_tensor(n)]))
        if self._eval_metrics:
            probs = self.task.predict(out)
            for metric in self._eval_metrics.values():
                metric.update(probs, y)

    def _log_evaluation(self, stage: str) -> None:
        # Sums over every rank's share, so the means are the whole set's (one collective op).
        loss_sum, score_sum, count = self.trainer.strategy.reduce(self._eval_sums, reduce_op="sum")
        if float(count) == 0:  # no evaluation batches ran (e.g. limit_val_batches=0)
            return
        main = f"{stage}/{self.main_metric}"
        # The values are the same on every rank now; sync_dist only keeps Lightning from warning.
        self.log(f"{stage}/loss", loss_sum / count, prog_bar=stage == "val", sync_dist=True)
        if not self._eval_metrics:
            self.log(main, score_sum / count, prog_bar=True, sync_dist=True)
        for name, metric in self._eval_metrics.items():  # compute() syncs across ranks
            self.log(name, metric.compute(), prog_bar=name == main, sync_dist=True)
            metric.reset()

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.finetuning is not None:  # later stages' frozen blocks: scheduled from step 0
            self.finetuning.add_stage_groups(optimizer, self.net)
        if self.regularization is not None and self.regularization.max_norm is not None:
            optimizer.register_step_post_hook(self.regularization.constrain)
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = (
            self.trainer.max_epochs
            if self.trainer.max_epochs and self.trainer.max_epochs > 0
            else 1
        )
        if getattr(self.trainer.datamodule, "epoch_schedules", None):  # a curriculum grows epochs
            from dlrecipe.data.loaders import planned_train_batches

            planned = planned_train_batches(self.trainer.datamodule, epochs)
            total = max(1, planned // max(1, self.trainer.accumulate_grad_batches))
        context = ScheduleContext(
            total_steps=total,
            steps_per_epoch=max(1, total // epochs),
            monitor=self.hparams.monitor,
            mode=self.hparams.monitor_mode,
        )
        schedule = self.scheduler_factory(optimizer, context)
        if isinstance(schedule, list):  # plateau with a warm-up: a per-step ramp, then per epoch
            return [optimizer], schedule
        return optimizer if schedule is None else {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config
        checkpoint[VERSIONS_KEY] = versions()  # eval warns when torch / Lightning moved since
        datamodule = getattr(attached_trainer(self), "datamodule", None)
        if hasattr(datamodule, "data_state"):  # under our key: a DataModule subclass keeps it
            checkpoint[DATA_KEY] = datamodule.data_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        add_identity_target_scaling(self, checkpoint.get("state_dict"))
        datamodule = getattr(attached_trainer(self), "datamodule", None)
        # Checkpoints from before DATA_KEY: Lightning's key, the DataModule's class name.
        state = checkpoint.get(DATA_KEY, checkpoint.get("DataModule"))
        if state is not None and hasattr(datamodule, "load_data_state"):
            datamodule.load_data_state(state)

    @property
    def epoch_loss_sum(self) -> torch.Tensor | None:
        """The training losses summed since the epoch began (DivergenceGuard checks it)."""
        return getattr(self, "_loss_sum", None)

    def parameter_counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.net.parameters())
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return total, trainable


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The module's Trainer, None when it is not attached to one (Lightning raises then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def add_identity_target_scaling(model: nn.Module, state_dict: dict[str, Any] | None) -> None:
    """Checkpoints written before target scaling trained on the raw target: mean 0, std 1."""
    if state_dict is None:
        return
    own = model.state_dict()
    for key in ("target_mean", "target_std"):
        if key in own and key not in state_dict:
            state_dict[key] = (
                torch.zeros_like(own[key]) if key == "target_mean" else torch.ones_like(own[key])
            )
