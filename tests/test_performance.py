"""The speed features change nothing but speed: fast data path, lazy imports, GPU options on CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from dlrecipe.builders import build_data, build_model
from dlrecipe.data.loaders import EpochPermutation, ModelInputs, TensorBatches
from dlrecipe.errors import ConfigError
from dlrecipe.eval import restore
from dlrecipe.models.tasks import loss_inputs
from dlrecipe.train import train


def _epochs_of_batches(data, loader, epochs: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """What the model gets: each batch after the DataModule's on_after_batch_transfer."""
    out = []
    for epoch in range(epochs):
        if isinstance(loader, TensorBatches):
            loader.epoch = epoch
        else:
            loader.sampler.set_epoch(epoch)  # what Lightning does at each epoch start
        out.append([data.on_after_batch_transfer(batch, 0) for batch in loader])
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
    # float inputs: normalized once for the fast path, per batch through the DataLoader
    assert fast.prepared and not isinstance(next(iter(plain)), ModelInputs)
    fast_epochs = _epochs_of_batches(loaders[True], fast, 2)
    plain_epochs = _epochs_of_batches(loaders[False], plain, 2)
    assert not torch.equal(fast_epochs[0][0][1], fast_epochs[1][0][1])  # reshuffled per epoch
    for ours, theirs in zip(fast_epochs, plain_epochs, strict=True):
        assert len(ours) == len(theirs) == len(loaders[True].fold.train) // 32
        for (x, y), (x2, y2) in zip(ours, theirs, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)
    for stage in ("val_dataloader", "test_dataloader"):
        ours, theirs = [
            [data.on_after_batch_transfer(b, 0) for b in getattr(data, stage)()]
            for data in (loaders[True], loaders[False])
        ]
        assert len(ours) == len(theirs)
        for (x, y), (x2, y2) in zip(ours, theirs, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)


def test_only_float_inputs_without_pixel_augmentation_are_normalized_once(make_cfg):
    # uint8 images stay uint8 in memory (a float copy would be 4x their size): per batch
    images = build_data(make_cfg("data=synthetic", "data.source.samples=64"))
    images.setup("fit")
    assert images.data.inputs.dtype == torch.uint8
    assert not images.train_dataloader().prepared and not images.val_dataloader().prepared
    # float images with pixel augmentation: augmented before normalization, so per batch in
    # training; evaluation is not augmented and takes the inputs normalized once
    digits = build_data(make_cfg("data=digits", "data/augmentation=light"))
    digits.setup("fit")
    assert not digits.train_dataloader().prepared and digits.val_dataloader().prepared
    x, _ = next(iter(digits.val_dataloader()))
    raw = digits.data.inputs[torch.as_tensor(digits.fold.val[: len(x)])]
    assert torch.equal(x, digits.prepare_inputs(raw))  # exactly the per-batch result
    before = digits.inputs_prepared_once(training=False)
    assert digits.inputs_prepared_once(training=False) is before  # made once per fit
    digits.normalization.fit([digits.data.inputs[:100]])  # refitted: made again
    assert digits.inputs_prepared_once(training=False) is not before


def test_fast_path_trains_to_the_same_weights_and_metrics(make_cfg, tmp_path):
    results = {}
    for fast in ("true", "false"):
        run = tmp_path / fast
        short = ["+trainer.limit_train_batches=8", "report.enabled=false"]  # 2 epochs
        train(make_cfg(f"data.fast_path={fast}", *short, run_dir=run))
        weights = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        results[fast] = weights, json.loads((run / "summary.json").read_text())
    (w_fast, s_fast), (w_plain, s_plain) = results["true"], results["false"]
    assert w_fast.keys() == w_plain.keys()
    for key in w_fast:
        assert torch.equal(w_fast[key], w_plain[key]), key
    assert s_fast["test_metrics"] == s_plain["test_metrics"]
    assert s_fast["val_metrics"] == s_plain["val_metrics"]
    # The summary reports the run's peak memory (importing torch alone takes ~500 MB).
    assert s_fast["peak_rss_mb"] > 100
    assert s_fast["peak_gpu_mb"] is None  # CPU run


def test_optional_heavy_modules_are_imported_only_when_used():
    optional = ["wandb", "optuna", "timm", "pytorch_grad_cam", "tensorboard", "tensorboardX"]
    code = (  # Hydra's plugin scan imports our sweeper plugin: it must not pull in optuna
        "from hydra.core.plugins import Plugins; Plugins.instance(); "
        "import sys, dlrecipe.train, dlrecipe.eval, dlrecipe.predict; "
        f"print([m for m in {optional!r} if m in sys.modules], "
        "'hydra_plugins.dlrecipe_sweeper' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert out.stdout.strip() == "[] True", out.stdout  # the plugin was scanned, nothing heavy


def test_channels_last_trains_like_the_default(make_cfg, tmp_path):
    cfg = make_cfg("model.channels_last=true")
    data = build_data(cfg)
    model = build_model(cfg, data.info)
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    seen = []  # what the second conv receives (32 channels: the two layouts differ)
    convs[1].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.net(torch.randn(4, *data.info.input_shape))
    channels_last = torch.channels_last
    assert all(c.weight.is_contiguous(memory_format=channels_last) for c in convs)
    assert seen[0].is_contiguous(memory_format=channels_last) and not seen[0].is_contiguous()

    results = {}
    for flag in ("false", "true"):
        run = tmp_path / flag
        short = ["trainer.max_epochs=1", "+trainer.limit_train_batches=8", "report.enabled=false"]
        train(make_cfg(f"model.channels_last={flag}", *short, run_dir=run))
        weights = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        results[flag] = weights, json.loads((run / "summary.json").read_text())
    (w_default, s_default), (w_nhwc, s_nhwc) = results["false"], results["true"]
    for key in w_default:  # the same math in another memory order: equal up to rounding
        assert torch.allclose(w_default[key].float(), w_nhwc[key].float(), atol=1e-3), key
    for key, value in s_default["test_metrics"].items():
        assert abs(value - s_nhwc["test_metrics"][key]) < 1e-2, key


def test_compile_without_a_c_compiler_is_a_clear_error(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg("model.compile=true")
    info = build_data(cfg).info
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no cc, gcc or clang on it
    with pytest.raises(ConfigError, match=r"model.compile=true needs a C compiler"):
        build_model(cfg, info)


@pytest.mark.slow
def test_compiled_net_checkpoints_load_into_a_plain_net(make_cfg, tmp_path):
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang", "c++")):
        pytest.skip("torch.compile's inductor backend needs a C compiler; none on PATH")
    run = tmp_path / "compiled"
    # One epoch of 8 steps; one eval batch per stage, so the compiled net sees few shapes.
    overrides = ["trainer.max_epochs=1", "+trainer.limit_train_batches=8", "report.enabled=false",
                 "data.eval_batch_size=1000", "trainer.num_sanity_val_steps=0"]  # fmt: skip
    train(make_cfg("model.compile=true", *overrides, run_dir=run))
    summary = json.loads((run / "summary.json").read_text())
    checkpoint = torch.load(summary["best_checkpoint"], weights_only=True)
    assert not [k for k in checkpoint["state_dict"] if "_orig_mod" in k]
    # eval's path: rebuild the run's model (compiled) and load the plain keys; then test a plain
    # (uncompiled) net with the same weights: the compiled run's metrics, up to rounding.
    _, _, restored = restore(summary["best_checkpoint"])
    assert restored.hparams.compile is True
    plain_cfg = make_cfg(*overrides, run_dir=tmp_path / "plain")
    data = build_data(plain_cfg)
    data.load_data_state(checkpoint["dlrecipe_data"])
    plain = build_model(plain_cfg, data.info)
    plain.load_state_dict(checkpoint["state_dict"])
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    metrics = trainer.test(plain, datamodule=data, verbose=False)[0]
    for key, value in summary["test_metrics"].items():
        assert abs(value - metrics[key]) < 1e-4, key


def test_folds_and_loaders_share_one_copy_of_the_data(make_cfg):
    # uint8 images: every fold and loader indexes the one stored tensor
    images = build_data(make_cfg("data=synthetic", "data.source.samples=60", "data/split=kfold", "data.split.k=3"))  # fmt: skip
    # float inputs: the folds share the stored tensor; each fold's loaders share the one copy
    # normalized with that fold's statistics (OnceNormalized), not a copy per loader
    digits = build_data(make_cfg("data/split=kfold", "data.split.k=3"))
    for data in (images, digits):
        storage = data.data.inputs.untyped_storage().data_ptr()
        for index in range(3):
            fold = data.for_fold(index)
            fold.setup("fit")
            assert fold.data.inputs.untyped_storage().data_ptr() == storage
            loaders = (fold.train_dataloader(), fold.val_dataloader(), fold.test_dataloader())
            pointers = [loader.inputs.untyped_storage().data_ptr() for loader in loaders]
            if data is images:
                assert pointers == [storage] * 3  # views, not copies
            else:
                assert len(set(pointers)) == 1 and pointers[0] != storage


def test_train_loss_is_the_epoch_mean_of_the_step_losses(make_cfg):
    cfg = make_cfg("data.batch_size=50")
    data, steps = build_data(cfg), []
    model = build_model(cfg, data.info)

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            steps.append((float(outputs["loss"]), len(batch[1])))

    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=5, limit_val_batches=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    mean = sum(loss * n for loss, n in steps) / sum(n for _, n in steps)
    assert len(steps) == 5
    assert abs(float(trainer.callback_metrics["train/loss"]) - mean) < 1e-5
    assert 0.0 <= float(trainer.callback_metrics["train/acc"]) <= 1.0


def test_dataloader_path_shards_like_the_fast_path_under_ddp():
    x, y = torch.arange(11.0), torch.arange(11)
    for world in (1, 2):
        for epoch in (0, 3):
            for rank in range(world):
                sampler = EpochPermutation(11, seed=5, rank=rank, world_size=world)
                sampler.set_epoch(epoch)
                fast = TensorBatches(x, y, torch.arange(11), 100, shuffle=True, seed=5,
                                     rank=rank, world_size=world)  # fmt: skip
                fast.epoch = epoch
                assert list(sampler) == next(iter(fast))[1].tolist()


@pytest.mark.parametrize(
    "data",
    ["data=digits", "data=breast_cancer", "data=diabetes"],  # multiclass, binary, regression
)
def test_fit_time_validation_sums_match_torchmetrics(make_cfg, data):
    # During fit, validation sums the loss and the main metric on the device and logs once per
    # epoch; validating the same weights afterwards computes them with torchmetrics and
    # Lightning's batch-weighted mean. Small evaluation batches: several per epoch.
    model_group = "model=cnn" if data == "data=digits" else "model=mlp"
    cfg = make_cfg(data, model_group, "data.eval_batch_size=64")
    data_module = build_data(cfg)
    model = build_model(cfg, data_module.info)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=3, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=data_module)
    during_fit = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    main = f"val/{model.main_metric}"
    assert set(during_fit) == {"val/loss", main}
    (after,) = trainer.validate(model, datamodule=data_module, verbose=False)
    assert len(after) > 2  # the full torchmetrics set afterwards
    assert during_fit[main] == pytest.approx(after[main], rel=1e-5, abs=1e-6)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in data_module.val_dataloader():
            x, y = data_module.on_after_batch_transfer(batch, 0)
            # the loss is the net's raw output against the scaled target (data.target_scaling)
            out = model.net(x)
            loss = model.loss_fn(*loss_inputs(out, model.scale_target(y), model.info.task))
            total, count = total + float(loss) * len(y), count + len(y)
    assert count > 64  # several batches of unequal sizes: a mean of means would differ
    assert during_fit["val/loss"] == pytest.approx(total / count, rel=1e-5)


# A cycle with a finalizer that writes a file, made by the command itself: it must still be
# collected (and its file written) at exit, while what the imports made stays frozen.
_FINALIZED = (
    "class Cycle:\n"
    "    def __init__(self, path): self.me, self.path = self, path\n"
    "    def __del__(self): open(self.path, 'w').write('flushed')\n"
)


@pytest.mark.parametrize("command", ["argparse", "hydra"])
def test_a_command_freezes_what_the_imports_made_and_collects_its_own_objects(command, tmp_path):
    done = tmp_path / "finalized.txt"
    start = {
        "argparse": "import sys; sys.argv = ['x']; from dlrecipe.edge import ArgumentParser; "
        "ArgumentParser().parse_args()",
        "hydra": f"import sys; sys.argv = ['x', 'hydra.run.dir={tmp_path}']; "
        "from dlrecipe.edge import hydra_command; "
        "hydra_command('train')(lambda cfg: print('ran', cfg.seed))()",
    }[command]
    code = (
        f"import gc\n{_FINALIZED}"
        "before = len(gc.get_objects())\n"
        f"{start}\n"
        "print('frozen', gc.get_freeze_count() >= before)\n"
        f"Cycle({str(done)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # the import-time objects are out of the collector's reach
    assert "frozen True" in result.stdout
    assert command == "argparse" or "ran 42" in result.stdout
    assert done.read_text() == "flushed"  # the command's own garbage is still finalized at exit


def test_a_parser_called_from_python_with_its_own_arguments_freezes_nothing():
    code = (
        "import gc; from dlrecipe.edge import ArgumentParser; "
        "ArgumentParser().parse_args([]); print(gc.get_freeze_count())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["0"], result.stderr[-2000:]
