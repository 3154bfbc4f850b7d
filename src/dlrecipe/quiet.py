"""Known console noise, filtered at its source and narrowly: each filter below names what and why.

    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold data.split.k=2

`install()` runs at the start of every train(); it is idempotent. What is not here stays
visible: a new warning from a library is news. The model summary is printed by the first fit
of a process only (K-fold folds and in-process sweep trials build the same net again).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichModelSummary
from rich.table import Table

from dlrecipe.console import say, show

# Lightning's rank_zero_info messages come from this logger.
LIGHTNING_INFO = "lightning.pytorch.utilities.rank_zero"
# Lightning info lines dropped, each for a reason:
DROPPED_INFO = {
    # an advert for a cloud service, printed by every Trainer (once per fold and per trial)
    "💡 Tip: For seamless cloud logging": "LitLogger advert",
    # conf/callbacks/model_summary.yaml configures the summary on purpose; nothing to act on
    "Trainer already configured with model summary callbacks": "model summary notice",
    # Lightning's note that it counts the batches of an epoch (for the LR schedule): no news
    "Loading `train_dataloader` to estimate number of stepping batches": "batch count notice",
}
# Lightning info lines that are the same for every Trainer of a process: shown for the first.
ONCE_INFO = ("GPU available:", "TPU available:")
# Python warnings silenced: (message regex, category, why)
IGNORED_WARNINGS = [
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        "Lightning 2.6's own _pytree.py builds a LeafSpec (torch 2.14 deprecation); nothing a "
        "user can change, and it repeats at every fit, validate and test",
    ),
]


class _DropKnownInfo(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if any(message.startswith(prefix) for prefix in DROPPED_INFO):
            return False
        if message.startswith(ONCE_INFO):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


_FILTER = _DropKnownInfo()


def install() -> None:
    """The filters above; safe to call again (nothing is added twice)."""
    logger = logging.getLogger(LIGHTNING_INFO)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for message, category, _why in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    # Lightning's PossibleUserWarning advice (num_workers, batch size...) is the same for every
    # fold and trial: "once" keys on the message text, in a registry that survives catch_warnings() (the
    # per-module "default" registry is reset whenever a library changes the filters).
    warnings.filterwarnings("once", category=PossibleUserWarning)


_summary_shown = False  # the model summary of this process was printed


def log_every_n_steps(configured: int, datamodule: Any) -> int:
    """trainer.log_every_n_steps, lowered to the batches of one epoch when an epoch is shorter:
    Lightning would otherwise warn at every fit and log no training step at all."""
    n = len(datamodule.fold.train)
    batch, drop_last = datamodule.train_batching(datamodule.fold.train)
    batches = n // batch if drop_last else -(-n // batch)
    return max(1, min(int(configured), batches))


class ModelSummaryOnce(RichModelSummary):
    """RichModelSummary for the first fit of a process only, without the FLOPs column when
    nothing was counted (FLOPs need an example input: every row would read 0).

    max_depth=2: the layers of the net and their parameter counts, not every sub-module.
    """

    def __init__(self, max_depth: int = 2, **kwargs: Any) -> None:
        super().__init__(max_depth=max_depth, **kwargs)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        global _summary_shown
        if _summary_shown:
            return
        _summary_shown = True
        super().on_fit_start(trainer, pl_module)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [(n, v) for n, v in summary_data if not (n == "FLOPs" and not total_flops)]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            numeric = name in ("Params", "Params per Device", "FLOPs", "In sizes", "Out sizes")
            table.add_column(name or " ", justify="right" if numeric else "left")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        show(table)
        trainable, frozen = trainable_parameters, total_parameters - trainable_parameters
        facts = (
            f"parameters: {trainable:,} trainable, {frozen:,} frozen, {model_size:.3f} MB; "
            f"modules in train mode: {total_training_modes['train']}, "
            f"in eval mode: {total_training_modes['eval']}"
        )
        if total_flops:
            facts += f"; FLOPs: {total_flops:,}"
        say(facts)
