"""A callback for the DDP tests: every rank writes its weights when training ends.

python -m dlrecipe.train trainer=ddp_cpu +callbacks.probe._target_=tests.ddp_probe.SaveEveryRank +callbacks.probe.folder=/tmp/ranks
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class SaveEveryRank(pl.Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.folder / f"rank{trainer.global_rank}.pt")
