"""Which backbone blocks train when: feature extraction, staged, full, or chosen from the data.

    python -m dlrecipe.train experiment=digits_finetune model/finetuning=staged
    python -m dlrecipe.train experiment=digits_finetune model/finetuning=auto data.similar_to_pretraining=false

Every mode is a list of stages on top of a frozen backbone: at epoch E unfreeze these blocks
and train them at lr x lr_mult (discriminative learning rates; weight decay still spares
biases and norms). feature_extraction has no stages, full unfreezes everything at epoch 0,
staged is yours to write, auto picks by training-set size and similarity to the pretraining
data.

Each stage's blocks get their own optimizer parameter groups when the optimizer is made, at
lr x lr_mult, so the configured schedule (cosine, warm-up, plateau, one-cycle, ...) schedules
them from the first step like any group, unpatched. Until its epoch a stage's parameters are
frozen (requires_grad=False): they get no gradient, and torch optimizers skip a parameter
without one, so they do not move, and their optimizer state starts at the stage.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch.optim import Optimizer

from dlrecipe.errors import ConfigError
from dlrecipe.models.optim import is_decayed

log = logging.getLogger(__name__)
MODES = ("feature_extraction", "staged", "full", "auto")


@dataclass(frozen=True)
class Stage:
    epoch: int  # at the start of this epoch ...
    blocks: tuple[str, ...]  # ... these blocks (and everything inside them) start training
    lr_mult: float  # at the head's learning rate times this


class Finetuning(BaseFinetuning):
    def __init__(
        self,
        mode: str = "feature_extraction",
        stages: list[dict] | None = None,
        lr_mult: float = 0.1,
        head_epochs: int = 2,
        small_data: int = 1000,
        large_data: int = 20000,
        cache_features: bool = False,
        train_bn: bool = True,
    ):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.finetuning.mode={mode!r}: choose one of {list(MODES)}")
        if mode == "staged" and not stages:
            raise ConfigError(
                "model.finetuning.mode=staged needs stages, e.g. "
                "model.finetuning.stages='[{epoch:3,top:2,lr_mult:0.1}]'"
            )
        if cache_features and mode != "feature_extraction":
            raise ConfigError(
                "model.finetuning.cache_features=true needs mode=feature_extraction: features of "
                "a backbone that trains change every step"
            )
        self.mode, self.stage_specs = mode, list(stages or [])
        self.lr_mult, self.head_epochs = lr_mult, head_epochs
        self.small_data, self.large_data = small_data, large_data
        self.cache_features = cache_features
        self.train_bn = train_bn
        self.plan: list[Stage] = []
        self.decision = ""
        self._late: dict[int, torch.nn.Parameter] = {}  # unfrozen after DDP wrapped the model
        self._groups: int | None = None  # the optimizer's parameter groups, saved with the state
        self._stored_groups: int | None = None  # ... and read back from a checkpoint on resume

    # -- the plan ---------------------------------------------------------------------------
    def make_plan(
        self, blocks: list[str], n_train: int, similar: bool, pretrained: bool = True
    ) -> list[Stage]:
        mode, specs = self.mode, self.stage_specs
        if mode == "auto" and not pretrained:  # nothing to preserve: train it all, at full lr
            specs = [{"epoch": 0, "top": "all", "lr_mult": 1.0}]
            mode = "staged"
            self.decision = (
                "backbone weights=none (random init): train every block from the start, at the "
                "head's learning rate"
            )
        elif mode == "auto":
            mode, specs, self.decision = self._auto(len(blocks), n_train, similar)
        if mode == "feature_extraction":
            return []
        if mode == "full":
            specs = [{"epoch": 0, "top": "all", "lr_mult": self.lr_mult}]
        return [self._stage(spec, blocks, i) for i, spec in enumerate(specs)]

    def _auto(self, n_blocks: int, n_train: int, similar: bool) -> tuple[str, list[dict], str]:
        """The classic table: small data -> train less of the net; different data -> train more."""
        size = (
            "small"
            if n_train < self.small_data
            else "large"
            if n_train >= self.large_data
            else "medium"
        )
        why = f"{n_train} training samples ({size}), {'similar' if similar else 'different'} data"
        warm = {"epoch": self.head_epochs, "lr_mult": self.lr_mult}
        if size == "small" and similar:
            return "feature_extraction", [], f"{why}: train the head only (feature extraction)"
        if size == "large" and not similar:
            return "full", [], f"{why}: fine-tune every block at lr x {self.lr_mult}"
        share = {("small", False): 0.25, ("medium", True): 0.25, ("medium", False): 0.5,
                 ("large", True): 0.5}[(size, similar)]  # fmt: skip
        top = max(1, round(share * n_blocks))
        return (
            "staged",
            [{**warm, "top": top}],
            (
                f"{why}: train the head for {self.head_epochs} epochs, then the top {top} of "
                f"{n_blocks} blocks at lr x {self.lr_mult}"
            ),
        )

    def _stage(self, spec: dict, blocks: list[str], index: int) -> Stage:
        spec = dict(spec)
        where = f"model.finetuning.stages[{index}]"
        unknown = set(spec) - {"epoch", "top", "blocks", "lr_mult"}
        if unknown or "epoch" not in spec or ("top" in spec) == ("blocks" in spec):
            raise ConfigError(
                f"{where}={spec}: a stage is {{epoch: E, top: N | all}} or "
                "{epoch: E, blocks: [names]}, with an optional lr_mult"
            )
        if "top" in spec:
            top = len(blocks) if spec["top"] == "all" else int(spec["top"])
            if not 1 <= top <= len(blocks):
                raise ConfigError(
                    f"{where}.top={spec['top']}: the backbone has {len(blocks)} blocks"
                )
            chosen = tuple(blocks[-top:])
        else:
            chosen = tuple(_match_blocks(spec["blocks"], blocks, where))
        return Stage(int(spec["epoch"]), chosen, float(spec.get("lr_mult", self.lr_mult)))

    # -- Lightning hooks ----------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":  # validating / testing the best checkpoint needs no freezing
            return
        super().setup(trainer, pl_module, stage)
        if self.cache_features:  # now: Lightning builds the train loader before on_fit_start
            pl_module.to(trainer.strategy.root_device)
            cache_features(trainer.datamodule, pl_module.net, pl_module.device)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Every group exists from configure_optimizers on, so a resume has none to re-add (what
        BaseFinetuning.on_fit_start does). A checkpoint whose optimizer has other groups (an
        older dlrecipe added them mid-run) cannot load into this one: say so before training."""
        stored, self._stored_groups = self._stored_groups, None
        have = len(trainer.optimizers[0].param_groups) if trainer.optimizers else None
        if stored is not None and have is not None and stored != have:
            raise ConfigError(
                f"ckpt_path: the checkpoint's optimizer has {stored} parameter groups, this "
                f"run's fine-tuning plan makes {have} (a checkpoint of an older dlrecipe, or "
                "another model.finetuning); start a new run from its weights with "
                "model.net.backbone.weights=<the .ckpt>, or resume with the same config"
            )

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer) -> None:  # fmt: skip
        """DDP averages the gradients of the parameters that trained when it wrapped the model;
        blocks unfrozen later are averaged here, in one flat reduce, or each rank drifts."""
        if trainer.world_size == 1 or not self._late:
            return
        grads = [p.grad for p in self._late.values() if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            flat = trainer.strategy.reduce(flat, reduce_op="mean")
            offset = 0
            for grad in grads:
                grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
                offset += grad.numel()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.cache_features:  # the best checkpoint is validated and tested on the images
            trainer.datamodule.serve_features(None)
            pl_module.net.features_cached = False

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.on_fit_end(trainer, pl_module)

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        net = pl_module.net
        if not hasattr(net, "blocks"):
            raise ConfigError("model.finetuning works with model=finetune (a backbone and a head)")
        trainer = pl_module.trainer
        datamodule = trainer.datamodule
        n_train = len(datamodule.fold.train)
        similar = getattr(datamodule, "similar_to_pretraining", True)
        pretrained = bool(getattr(net, "pretrained", True))
        self.plan = self.make_plan(list(net.blocks), n_train, bool(similar), pretrained)
        if self.cache_features and datamodule.augmentation.ops:
            raise ConfigError(
                "model.finetuning.cache_features=true computes each training image's features "
                "once, so augmentation cannot change them; use data/augmentation=none"
            )
        # Frozen blocks stay in eval mode on purpose; Lightning would warn about it every fit.
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
        self.freeze(net.backbone, train_bn=False)
        net.train_bn = self.train_bn
        net.train(net.training)
        if trainer.is_global_zero:
            _say(self.describe())

    @staticmethod
    def freeze(modules: Any, train_bn: bool = True) -> None:
        """requires_grad=False; batch norm is kept out of training by PretrainedNet.train()."""
        for param in modules.parameters():
            param.requires_grad = False

    def add_stage_groups(self, optimizer: Optimizer, net: torch.nn.Module) -> None:
        """Called by the LightningModule's configure_optimizers, before any scheduler exists:
        each stage's (still frozen) blocks in their own groups at the head's lr x lr_mult. The
        schedule then treats them like the head's groups, keeping the ratio all run long."""
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        head_lr = optimizer.param_groups[0]["lr"]
        decay = next((g["weight_decay"] for g in optimizer.param_groups if g["weight_decay"]), 0.0)
        # By epoch: a block in two stages keeps the rate of the stage that unfreezes it first.
        for stage in sorted(self.plan, key=lambda s: s.epoch):
            decayed, plain = [], []  # weight decay spares biases and norms, as for the head
            for name in stage.blocks:
                for param in net.blocks[name].parameters():
                    if id(param) not in present:
                        present.add(id(param))
                        (decayed if is_decayed(param) else plain).append(param)
            for params, weight_decay in ((decayed, decay), (plain, 0.0)):
                if params:
                    optimizer.add_param_group(
                        {"params": params, "weight_decay": weight_decay,
                         "lr": head_lr * stage.lr_mult}
                    )  # fmt: skip
        self._groups = len(optimizer.param_groups)

    def finetune_function(
        self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        net = pl_module.net
        for stage in self.plan:
            if stage.epoch > epoch:
                continue
            fresh = []  # blocks that start training now (not on a resume past their stage)
            for name in stage.blocks:
                params = list(net.blocks[name].parameters())
                if any(not p.requires_grad for p in params):
                    fresh.append(name)
                for param in params:
                    param.requires_grad = True
                    self._late[id(param)] = param  # frozen when DDP wrapped the model
            if fresh and pl_module.trainer.is_global_zero:
                n = sum(p.numel() for name in fresh for p in net.blocks[name].parameters())
                lr = optimizer.param_groups[0]["lr"] * stage.lr_mult  # the head's rate now
                _say(
                    f"finetuning, epoch {stage.epoch}: unfroze {', '.join(fresh)} "
                    f"({n:,} parameters) at lr {lr:.3g} (x{stage.lr_mult:g} the head's)"
                )
        net.train(net.training)

    def describe(self) -> str:
        """One line, logged at the start and kept in the run summary: the mode, auto's reason,
        and each stage."""
        line = f"fine-tuning: {self.mode}" + (f" ({self.decision})" if self.decision else "")
        if not self.plan:
            return f"{line}; the backbone stays frozen for the whole run, only the head trains"
        stages = "; ".join(
            f"epoch {s.epoch}: {', '.join(s.blocks)} at lr x {s.lr_mult:g}" for s in self.plan
        )
        return f"{line}; unfrozen {stages}"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "decision": self.decision, "param_groups": self._groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        groups = state_dict.get("param_groups")
        if groups is None:  # older checkpoints: BaseFinetuning's record of the groups
            older = (state_dict.get("internal_optimizer_metadata") or {}).get(0)
            groups = len(older) if isinstance(older, list) else None
        self._stored_groups = int(groups) if isinstance(groups, int) else None


def cache_features(datamodule: Any, net: Any, device: torch.device) -> None:
    """Run the frozen backbone once over every sample; the head then trains on these rows."""
    import time

    import numpy as np

    started = time.perf_counter()
    was_training = net.training
    net.eval()
    rows = []
    with torch.no_grad():
        for x, _ in datamodule.batches(np.arange(len(datamodule.data))):
            rows.append(net.features(datamodule.prepare_inputs(x.to(device))).float().cpu())
    net.train(was_training)
    datamodule.serve_features(torch.cat(rows))
    net.features_cached = True
    _say(f"cached backbone features of {sum(len(r) for r in rows)} samples in "
         f"{time.perf_counter() - started:.1f} s; the head trains on them")  # fmt: skip


def _match_blocks(names: list[str] | str, blocks: list[str], where: str) -> list[str]:
    import difflib

    chosen: list[str] = []
    for name in [names] if isinstance(names, str) else names:
        hits = [b for b in blocks if b == name or b.startswith(f"{name}.")]
        if not hits:
            close = difflib.get_close_matches(str(name), blocks, n=3)
            raise ConfigError(
                f"{where}.blocks names {name!r}, which is not a block of this backbone"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; its blocks, bottom to top: {', '.join(blocks)}"
            )
        chosen += [b for b in hits if b not in chosen]
    return chosen


def _say(message: str) -> None:
    log.info(message)
