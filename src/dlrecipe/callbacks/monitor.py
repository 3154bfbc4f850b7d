"""Training dynamics every N optimizer steps: gradient norms, update/weight ratios, activations.

    python -m dlrecipe.train callbacks=monitor                          # CSV: csv/metrics.csv
    python -m dlrecipe.train callbacks=monitor logger=many              # + TensorBoard histograms
    python -m dlrecipe.train callbacks=monitor callbacks.monitor.every_n_steps=10

On a monitored step (global_step % every_n_steps == 0, rank 0 only) it logs, through the
loggers' own `log_metrics` (so CSV, TensorBoard and W&B all get them):

- `monitor/grad_norm` (the global L2 norm before clipping) and `monitor/grad_norm/<layer>`;
- `monitor/update_ratio/<layer>` = ||w_after - w_before|| / ||w_before|| across the optimizer
  step, for every weight matrix / kernel, and their median. About 1e-3 is healthy; when most
  layers sit outside `ratio_range` (judged from the second epoch to half-way through training)
  it warns once, naming the layers and the learning-rate fix;
- `monitor/act_mean|act_std|act_dead/<layer>` for every activation module, from forward hooks
  attached for that one step only; `act_dead` is the share of units (channels) that are never
  positive on the batch (dead ReLUs);
- with TensorBoard or W&B: histograms of weights, gradients and activations, and the first
  convolution's filters as an image.

Between monitored steps nothing is attached and nothing runs but one modulo per batch.
Under DDP the gradients are already all-reduced, so rank 0's numbers stand for every rank.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import grad_norm, rank_zero_warn
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.layers import ACTIVATIONS
from dlrecipe.models.optim import is_decayed

ACTIVATION_TYPES = tuple(ACTIVATIONS.values())
HISTOGRAM_BINS = 64  # enough to see a distribution's shape; TensorBoard's default ~1500 costs more


class UpdateRatioWarning(UserWarning):
    """Most layers' update/weight ratio is far from 1e-3: the learning rate is off."""


class TrainingMonitor(pl.Callback):
    def __init__(
        self,
        every_n_steps: int = 50,
        ratio_range: tuple[float, float] = (1e-4, 1e-2),
        warn_share: float = 0.5,
        histograms: bool = True,
        filters: bool = True,
    ):
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ConfigError(
                f"callbacks.monitor.every_n_steps={every_n_steps!r} must be a positive integer"
            )
        low, high = (float(v) for v in ratio_range)
        if not 0 < low < high:
            raise ConfigError(
                f"callbacks.monitor.ratio_range={list(ratio_range)} must be [low, high] with "
                "0 < low < high (e.g. [1e-4, 1e-2])"
            )
        self.every_n_steps, self.warn_share = every_n_steps, warn_share
        self.ratio_range = (low, high)
        self.histograms, self.filters = histograms, filters
        self.warned: str | None = None  # the warning's text, once it fired
        self._step: int | None = None  # the optimizer step being monitored
        self._hooks: list[Any] = []
        self._acts: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._metrics: dict[str, float] = {}
        self.last_metrics: dict[str, float] = {}  # the last monitored step's (dlrecipe.diagnosis)
        self._wandb: dict[str, Any] = {}  # histograms and images for one W&B log call
        self._judge_from, self._judge_until = 1, math.inf

    # -- when -------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Adam's first steps move every weight by about lr whatever the gradient, and late in a
        # decaying schedule small updates are intended: judge from the second epoch to half-way.
        self._judge_from = max(1, trainer.num_training_batches // trainer.accumulate_grad_batches)
        total = trainer.estimated_stepping_batches
        self._judge_until = total / 2 if math.isfinite(total) else math.inf

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or not trainer.is_global_zero or self._step == step:
            return
        self._step, self._acts, self._before, self._metrics = step, {}, {}, {}
        for name, module in pl_module.named_modules():
            if isinstance(module, ACTIVATION_TYPES):
                self._hooks.append(module.register_forward_hook(self._catch(name)))

    def _catch(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if module.training:
                self._acts[name] = output.detach()

        return hook

    # -- gradients, then the step ----------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._step is None or self._step != trainer.global_step or self._before:
            return
        norms = grad_norm(pl_module, norm_type=2)
        self._metrics["monitor/grad_norm"] = float(norms.get("grad_2.0_norm_total", 0.0))
        for name, param in _weights(pl_module):
            key = f"grad_2.0_norm/{name}.weight"
            if key in norms:
                self._metrics[f"monitor/grad_norm/{name}"] = float(norms[key])
            self._before[name] = param.detach().clone()
        if self.histograms and _wants_media(trainer):
            for name, param in _weights(pl_module):
                if param.grad is not None:
                    self._histogram(trainer, f"monitor/grads/{name}", param.grad, self._step)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._step is None or not self._before or trainer.global_step == self._step:
            return  # not monitored, or still accumulating gradients for this step
        step, metrics = self._step, self._metrics
        ratios = self._update_ratios(pl_module, metrics)
        for name, out in self._acts.items():
            units = out.transpose(0, 1).flatten(1) if out.ndim > 1 else out.unsqueeze(0)
            metrics[f"monitor/act_mean/{name}"] = float(out.mean())
            metrics[f"monitor/act_std/{name}"] = float(out.std())
            metrics[f"monitor/act_dead/{name}"] = float((units.amax(1) <= 0).float().mean())
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self.last_metrics = dict(metrics)
        if _wants_media(trainer):
            self._images_and_histograms(trainer, pl_module, step)
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._acts, self._before = [], {}, {}
        if self._judge_from <= step <= self._judge_until:
            self._judge(ratios, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for hook in self._hooks:  # a run that ended inside a monitored step
            hook.remove()
        self._hooks = []

    # -- the numbers ---------------------------------------------------------------------------------
    def _update_ratios(self, pl_module: pl.LightningModule, metrics: dict) -> dict[str, float]:
        ratios = {}
        for name, param in _weights(pl_module):
            before = self._before.get(name)
            if before is None:
                continue
            ratio = float((param.detach() - before).norm() / before.norm().clamp_min(1e-12))
            ratios[name] = metrics[f"monitor/update_ratio/{name}"] = ratio
        if ratios:
            metrics["monitor/update_ratio_median"] = float(
                torch.tensor(list(ratios.values())).median()
            )
        return ratios

    def _judge(self, ratios: dict[str, float], pl_module: pl.LightningModule) -> None:
        if self.warned or not ratios:
            return
        low, high = self.ratio_range
        too_high = {n: r for n, r in ratios.items() if r > high}
        too_low = {n: r for n, r in ratios.items() if r < low}
        for off, fix in ((too_high, "lower"), (too_low, "raise")):
            if len(off) > self.warn_share * len(ratios):
                lr = _learning_rate(pl_module)
                median = float(torch.tensor(list(off.values())).median())
                shown = ", ".join(f"{n}={r:.1e}" for n, r in list(off.items())[:6])
                self.warned = (
                    f"update/weight ratio far from 1e-3 in {len(off)} of {len(ratios)} layers at "
                    f"step {self._step} ({shown}): {fix} the learning rate, model.optimizer.lr "
                    f"(now {lr:.3g}), by about {max(median, 1e-3) / min(median, 1e-3):.0f}x"
                )
                rank_zero_warn(self.warned, category=UpdateRatioWarning)
                return

    def _images_and_histograms(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:  # fmt: skip
        if self.histograms:
            for name, param in _weights(pl_module):
                self._histogram(trainer, f"monitor/weights/{name}", param, step)
            for name, out in self._acts.items():
                self._histogram(trainer, f"monitor/activations/{name}", out, step)
        if self.filters:
            conv = next((m for m in pl_module.modules() if isinstance(m, nn.Conv2d)), None)
            if conv is not None:
                grid = _filter_grid(conv.weight.detach())
                self._image(trainer, "monitor/first_filters", grid, step)
        for logger in trainer.loggers:  # W&B: one history row per monitored step
            if self._wandb and _kind(logger) == "WandbLogger":
                logger.experiment.log({**self._wandb, "trainer/global_step": step})
        self._wandb = {}

    def _histogram(self, trainer: pl.Trainer, tag: str, values: torch.Tensor, step: int) -> None:
        # Binned by torch.histc on the values' device: 4-7x cheaper than add_histogram's numpy.
        x = values.detach().float().flatten()
        low, high = float(x.min()), float(x.max())
        high = max(high, low + 1e-12)
        counts = torch.histc(x, bins=HISTOGRAM_BINS, min=low, max=high).cpu()
        edges = torch.linspace(low, high, HISTOGRAM_BINS + 1)
        for logger in trainer.loggers:
            if _kind(logger) == "TensorBoardLogger":
                logger.experiment.add_histogram_raw(
                    tag, min=low, max=high, num=x.numel(), sum=float(x.sum()),
                    sum_squares=float(x.pow(2).sum()), bucket_limits=edges[1:].tolist(),
                    bucket_counts=counts.tolist(), global_step=step,
                )  # fmt: skip
            elif _kind(logger) == "WandbLogger":
                import wandb

                self._wandb[tag] = wandb.Histogram(np_histogram=(counts.numpy(), edges.numpy()))

    def _image(self, trainer: pl.Trainer, tag: str, image: torch.Tensor, step: int) -> None:
        for logger in trainer.loggers:
            if _kind(logger) == "TensorBoardLogger":
                logger.experiment.add_image(tag, image, step)
            elif _kind(logger) == "WandbLogger":
                import wandb

                self._wandb[tag] = wandb.Image(image.permute(1, 2, 0).numpy())


def _weights(pl_module: pl.LightningModule) -> list[tuple[str, torch.Tensor]]:
    """(layer name, weight) for every weight matrix / kernel: the parameters that get decay."""
    return [
        (name.removesuffix(".weight"), p)
        for name, p in pl_module.named_parameters()
        if p.requires_grad and is_decayed(p)
    ]


def _learning_rate(pl_module: pl.LightningModule) -> float:
    optimizers = pl_module.trainer.optimizers
    return float(optimizers[0].param_groups[0]["lr"]) if optimizers else float("nan")


def _kind(logger: Any) -> str:
    return type(logger).__name__


def _wants_media(trainer: pl.Trainer) -> bool:
    """Histograms and images go to TensorBoard / W&B; CSV has no place for them."""
    return any(_kind(lg) in ("TensorBoardLogger", "WandbLogger") for lg in trainer.loggers)


def _filter_grid(weight: torch.Tensor) -> torch.Tensor:
    """First-layer kernels as one (3 or 1, H, W) image, each filter scaled to [0, 1]."""
    from torchvision.utils import make_grid

    w = weight.float().cpu()
    if w.shape[1] not in (1, 3):
        w = w.mean(1, keepdim=True)
    low = w.flatten(1).amin(1).view(-1, 1, 1, 1)
    high = w.flatten(1).amax(1).view(-1, 1, 1, 1)
    w = (w - low) / (high - low).clamp_min(1e-12)
    # 3x3 kernels are too small to see: each weight becomes a 4x4 block.
    w = torch.nn.functional.interpolate(w, scale_factor=4, mode="nearest")
    return make_grid(w, nrow=8, padding=1, pad_value=1.0)
