"""Augmentation: every block acts per sample and keeps shape and dtype; only training batches change."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dlrecipe.builders import CONF_DIR, build_data, compose
from dlrecipe.data.augment_ops import IMAGE_OPS
from dlrecipe.data.augmentation import Augmentation
from dlrecipe.errors import ConfigError
from dlrecipe.train import train
from tests.conftest import run_main

SHAPES = [(1, 8, 8), (3, 32, 32)]
# Parameters that make each block act on every call, so "it changed the image" is testable.
ALWAYS = {
    "hflip": {"p": 1.0},
    "vflip": {"p": 1.0},
    "erase": {"p": 1.0},
    "contrast": {"factor": 0.5, "autocontrast_p": 1.0},
}


def _images(shape, dtype, n=6):
    torch.manual_seed(0)
    x = torch.rand(n, *shape)
    x[:, :, : shape[1] // 2] *= 0.3  # structure, so flips and shifts show
    return (x * 255).to(torch.uint8) if dtype == torch.uint8 else x


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
def test_each_block_changes_the_image_and_keeps_shape_and_dtype(name, shape, dtype):
    aug = Augmentation([{name: ALWAYS.get(name, {})}]).build(shape)
    x = _images(shape, dtype)
    changed = False
    for _ in range(5):
        y = aug(x.clone())
        assert y.shape == x.shape and y.dtype == x.dtype
        changed |= not torch.equal(y, x)
    assert changed, f"{name} never changed the image"


def test_random_parameters_are_drawn_per_sample():
    x = _images((1, 8, 8), torch.float32, n=1).repeat(16, 1, 1, 1)  # 16 copies of one image
    y = Augmentation([{"rotate": {"degrees": 30}}]).build((1, 8, 8))(x)
    distinct = {tuple(s.flatten().tolist()) for s in y}
    assert len(distinct) > 8


def test_trivialaugment_keeps_small_images_visible():
    torch.manual_seed(1)
    aug = Augmentation(["trivialaugment"]).build((1, 8, 8))
    x = torch.rand(300, 1, 8, 8) * 0.8 + 0.2  # no pixel is black before augmentation
    blank = (aug(x).amax(dim=(1, 2, 3)) == 0).float().mean()
    assert blank < 0.02  # v2.TrivialAugmentWide alone blanks about 11 % of 8x8 images


@pytest.mark.parametrize(
    "preset", sorted(p.stem for p in (CONF_DIR / "data" / "augmentation").glob("*.yaml"))
)
def test_presets_compose_for_small_and_large_images(preset):
    cfg = compose([f"data/augmentation={preset}", "paths.output_dir=/tmp/unused"])
    aug = instantiate(cfg.data.augmentation, _convert_="all")
    if aug.on_tables:
        x = torch.randn(8, 5)
        assert aug.build((5,))(x).shape == x.shape
        return
    for shape in SHAPES:
        x = _images(shape, torch.float32)
        assert aug.build(shape)(x).shape == x.shape


class Capture(pl.Callback):
    """Keeps the batches the model really saw (after the DataModule's transfer hooks)."""

    def __init__(self):
        self.train, self.val = [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.train.append(batch[0].clone())

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.val.append(batch[0].clone())


def test_only_training_batches_are_augmented(make_cfg):
    cfg = make_cfg("data/augmentation=strong", "trainer.max_epochs=1")
    datamodule = build_data(cfg)
    from dlrecipe.builders import build_model

    model = build_model(cfg, datamodule.info)
    capture = Capture()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, callbacks=[capture], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    fold = datamodule.fold
    clean_val = datamodule.normalization(datamodule.data.inputs[torch.as_tensor(fold.val)])
    assert torch.equal(torch.cat(capture.val), clean_val)  # validation is untouched
    clean_train = datamodule.normalization(datamodule.data.inputs)
    first = capture.train[0]
    # No augmented training sample equals any clean training image.
    matches = sum(bool((clean_train == s).all(dim=(1, 2, 3)).any()) for s in first)
    assert matches < len(first) // 4


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["data/augmentation=mixup"],
        ["data/augmentation=cutmix"],
        ["data/augmentation=mixup", "data.augmentation.cutmix_alpha=1.0"],
        ["experiment=breast_cancer_mlp", "data/augmentation=mixup"],
        ["experiment=wine_mlp", "data/augmentation=table_noise"],
    ],
)
def test_mixing_and_table_noise_train_a_few_steps(make_cfg, overrides):
    # One epoch of 5 batches and no report: the mixing must run and keep the loss sane, no more.
    cfg = make_cfg(*overrides, "+trainer.limit_train_batches=5", "trainer.max_epochs=1",
                   "report.enabled=false")  # fmt: skip
    value = train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    classes = len(summary["info"]["class_names"])
    # Finite (NaN and inf fail) and not diverged: within a few times a uniform guess's loss.
    assert math.isfinite(value) and 0 < value < 3 * math.log(classes), (value, classes)


@pytest.mark.parametrize(
    ("ops", "overrides", "match"),
    [
        ("[rotat]", [], r"'rotat' is not a known transform; did you mean \['rotate'"),
        ("[{rotate:{degrees:-5}}]", [], r"ops\[0\] rotate: .*positive"),
        ("[{hflip:{p:1.5}}]", [], r"ops\[0\] hflip: .*interval \[0.0, 1.0\]"),
        ("[{rotate:{angle:5}}]", [], r"ops\[0\] rotate: .*unexpected keyword argument 'angle'"),
        (
            "[rotate]",
            ["experiment=wine_mlp"],
            r"'rotate' works on images, but this data is a table",
        ),
        ("[feature_noise]", [], r"'feature_noise' works on tables, but this data is images"),
    ],
)
def test_bad_augmentation_input(make_cfg, ops, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(make_cfg(*overrides, f"data.augmentation.ops={ops}"))


def test_mixup_on_regression_is_refused(make_cfg):
    with pytest.raises(ConfigError, match="MixUp / CutMix mix class labels"):
        train(make_cfg("experiment=diabetes_mlp", "data/augmentation=mixup"))


@pytest.mark.slow
def test_preview_writes_a_png_grid(tmp_path):
    from dlrecipe.preview import main  # `python -m dlrecipe.preview ...`, in this process

    args = ["dlrecipe-preview", "data/augmentation=strong", f"hydra.run.dir={tmp_path / 'p'}"]
    assert run_main(main, args, cwd=tmp_path) == 0
    with Image.open(tmp_path / "p" / "augmentation_preview.png") as img:
        assert img.format == "PNG" and img.width > 400 and img.height > 400


@pytest.mark.slow
def test_image_runs_save_the_preview_and_still_learn(make_cfg):
    # 10 epochs (~0.98 test accuracy here): augmented digits learn well short of the
    # experiment's 30; no report, which is not what this test is about.
    cfg = make_cfg("experiment=digits_cnn", "data/augmentation=medium", "trainer.max_epochs=10",
                   "report.enabled=false")  # fmt: skip
    train(cfg)
    import json
    from pathlib import Path

    run = Path(cfg.paths.output_dir)
    assert (run / "augmentation_preview.png").is_file()
    assert json.loads((run / "summary.json").read_text())["test_metrics"]["test/acc"] >= 0.96
