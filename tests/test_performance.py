"""The speed features change nothing but speed: fast data path, lazy imports, GPU options on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from dlrecipe.builders import build_data
from dlrecipe.data.loaders import TensorBatches
from dlrecipe.train import train


def _epochs_of_batches(loader, epochs: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    out = []
    for epoch in range(epochs):
        if isinstance(loader, TensorBatches):
            loader.epoch = epoch
        else:
            loader.sampler.set_epoch(epoch)  # what Lightning does at each epoch start
        out.append(list(loader))
    return out


def test_fast_path_yields_the_dataloader_batches(make_cfg):
    loaders = {}
    for fast in (True, False):
        data = build_data(make_cfg(f"data.fast_path={str(fast).lower()}", "data.batch_size=32"))
        data.setup("fit")
        loaders[fast] = data
    fast, plain = loaders[True].train_dataloader(), loaders[False].train_dataloader()
    assert isinstance(fast, TensorBatches)
    assert isinstance(plain, torch.utils.data.DataLoader)
    fast_epochs, plain_epochs = _epochs_of_batches(fast, 2), _epochs_of_batches(plain, 2)
    assert not torch.equal(fast_epochs[0][0][1], fast_epochs[1][0][1])  # reshuffled per epoch
    for ours, theirs in zip(fast_epochs, plain_epochs, strict=True):
        assert len(ours) == len(theirs) == len(loaders[True].fold.train) // 32
        for (x, y), (x2, y2) in zip(ours, theirs, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)
    for stage in ("val_dataloader", "test_dataloader"):
        ours, theirs = list(getattr(loaders[True], stage)()), list(getattr(loaders[False], stage)())
        assert len(ours) == len(theirs)
        for (x, y), (x2, y2) in zip(ours, theirs, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)


def test_fast_path_trains_to_the_same_weights_and_metrics(make_cfg, tmp_path):
    results = {}
    for fast in ("true", "false"):
        run = tmp_path / fast
        train(make_cfg(f"data.fast_path={fast}", "report.enabled=false", run_dir=run))
        weights = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        results[fast] = weights, json.loads((run / "summary.json").read_text())
    (w_fast, s_fast), (w_plain, s_plain) = results["true"], results["false"]
    assert w_fast.keys() == w_plain.keys()
    for key in w_fast:
        assert torch.equal(w_fast[key], w_plain[key]), key
    assert s_fast["test_metrics"] == s_plain["test_metrics"]
    assert s_fast["val_metrics"] == s_plain["val_metrics"]


def test_optional_heavy_modules_are_imported_only_when_used():
    optional = ["wandb", "optuna", "timm", "pytorch_grad_cam", "tensorboard", "tensorboardX"]
    code = (
        "import sys, dlrecipe.train, dlrecipe.eval, dlrecipe.predict; "
        f"print([m for m in {optional!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout
