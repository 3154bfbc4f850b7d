"""The random-number state in every checkpoint, so a resumed fit draws what the killed one would have.

    python -m dlrecipe.train resume=outputs/train/<date>/<time>   # continues with the saved draws

`pl.seed_everything` at start-up puts torch, numpy and python's `random` at the seed; a run
resumed from epoch 5 would then draw epoch 0's dropout masks and augmentations again and end
with other metrics than the uninterrupted run. This callback saves the generators' states with
every checkpoint and puts them back when the resumed fit starts training. The data order needs
no state here: every shuffled training loader draws its permutation from (data seed, epoch),
which Lightning restores (data/loaders.py).

Saved as tensors and plain containers only, so checkpoints still load with weights_only=True.
train.py adds it to every fit; it is not a config entry, so it cannot be switched off by mistake.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch


def capture() -> dict[str, Any]:
    """torch (CPU and every initialized CUDA device), numpy and python generator states."""
    numpy_state = np.random.get_state(legacy=False)
    python_version, python_internal, python_gauss = random.getstate()
    cuda = []
    # is_initialized first: is_available asks the driver (NVML through ctypes) on every call,
    # a fixed cost in every checkpoint write; CUDA never initialized has no generator state.
    if torch.cuda.is_initialized() and torch.cuda.is_available():
        cuda = torch.cuda.get_rng_state_all()
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        # One tensor, not 625 ints: each pickled object costs time in every checkpoint write.
        "python": {"version": python_version, "gauss": python_gauss,
                   "internal": torch.tensor(python_internal, dtype=torch.int64)},
    }  # fmt: skip


def restore(state: dict[str, Any]) -> None:
    """Put back what capture() saved (a checkpoint's values: checked types, not trusted blindly)."""
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8) for s in cuda])
    saved = state["numpy"]
    np.random.set_state({
        "bit_generator": str(saved["bit_generator"]),
        "state": {"key": torch.as_tensor(saved["key"]).numpy().astype(np.uint32),
                  "pos": int(saved["pos"])},
        "has_gauss": int(saved["has_gauss"]), "gauss": float(saved["gauss"]),
    })  # fmt: skip
    python = state["python"]
    internal = torch.as_tensor(python["internal"], dtype=torch.int64).tolist()  # list: older ckpts
    random.setstate((int(python["version"]), tuple(int(v) for v in internal),
                     None if python["gauss"] is None else float(python["gauss"])))  # fmt: skip


class RandomState(pl.Callback):
    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # Called while the checkpoint is written (end of a validation): the state the next
        # training step of an uninterrupted run starts from.
        return capture()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before the sanity check and the loaders are built;
        # the generators are set when training starts, after everything that seeds them.
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # One shot: a rebuilt training loader runs on_train_start again (data_schedule.py).
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
