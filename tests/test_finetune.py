"""model=finetune: weights really loaded, frozen really frozen, stages really add parameter
groups, auto decides by data size, cached features train the same head, bad input is caught.

Backbones are timm's tiny `test_resnet` and torchvision's resnet18, built offline; "pretrained"
weights are files written by the tests, so nothing touches the network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from dlrecipe.builders import build_data, build_model, build_trainer
from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.models.finetuning import Finetuning
from dlrecipe.models.nets.pretrained import PretrainedNet
from dlrecipe.train import train

TIMM = ["model=finetune", "model.net.backbone.name=test_resnet", "model.net.input_size=32"]
DIGITS_FEW = ["data.split.train_per_class=20", "data.batch_size=32"]


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A timm checkpoint as a user would download it: the full model, classifier included."""
    import timm

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    model = timm.create_model("test_resnet", num_classes=1000)
    with torch.no_grad():  # non-default batch-norm statistics, so a forgotten buffer shows
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), path)
    return path


def fit(cfg) -> tuple:
    """The builders train.py chains, so the test can look at the trainer and model afterwards."""
    pl.seed_everything(cfg.seed)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    trainer = build_trainer(cfg, Path(cfg.paths.output_dir))
    trainer.fit(model, datamodule=datamodule)
    return trainer, model


def backbone_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.backbone.state_dict().items()}


def test_timm_weights_are_loaded_from_a_local_file(make_cfg, timm_file: Path) -> None:
    cfg = make_cfg(*TIMM, f"model.net.backbone.weights={timm_file}")
    model = build_model(cfg, build_data(cfg).info)
    saved = torch.load(timm_file, weights_only=True)
    own = model.net.backbone.state_dict()
    assert set(saved) - set(own) == {"fc.weight", "fc.bias"}  # only the old head is dropped
    for key, value in own.items():
        assert torch.equal(value, saved[key]), key


def test_torchvision_weights_are_loaded_from_a_local_file(make_cfg, tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(2)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    cfg = make_cfg("model=finetune", "model.net.backbone.source=torchvision",
                   "model.net.backbone.name=resnet18", "model.net.input_size=32",
                   f"model.net.backbone.weights={path}")  # fmt: skip
    model = build_model(cfg, build_data(cfg).info)
    saved = torch.load(path, weights_only=True)
    for key, value in model.net.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert model.net.head[-1].in_features == 512


def test_feature_extraction_keeps_weights_and_batch_norm_statistics(
    make_cfg, timm_file: Path
) -> None:
    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                   "model/finetuning=feature_extraction")  # fmt: skip
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    before, head_before = backbone_state(model), model.net.head[-1].weight.clone()
    trainer = build_trainer(cfg, Path(cfg.paths.output_dir))
    trainer.fit(model, datamodule=datamodule)
    after = model.net.backbone.state_dict()
    assert any("running_mean" in k for k in after)
    for key, value in before.items():  # weights *and* running statistics
        assert torch.equal(after[key], value), key
    assert not torch.equal(model.net.head[-1].weight, head_before)  # the head did train
    assert all(not p.requires_grad for p in model.net.backbone.parameters())


def test_a_stage_adds_the_unfrozen_blocks_with_their_learning_rate(
    make_cfg, timm_file: Path
) -> None:
    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                   "model/finetuning=staged", "model/scheduler=none",
                   "model.finetuning.stages=[{epoch:1,blocks:[layer4],lr_mult:0.25}]")  # fmt: skip
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    before = backbone_state(model)
    trainer, model = fit_model(cfg, datamodule, model)
    groups = trainer.optimizers[0].param_groups
    head_lr = groups[0]["lr"]
    added = groups[2:]
    top = {id(p) for p in model.net.backbone.layer4.parameters()}
    assert {id(p) for g in added for p in g["params"]} == top
    assert all(g["lr"] == pytest.approx(0.25 * head_lr) for g in added)
    after = model.net.backbone.state_dict()
    assert not torch.equal(after["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
    assert torch.equal(after["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])
    assert torch.equal(after["layer1.0.bn1.running_mean"], before["layer1.0.bn1.running_mean"])


def fit_model(cfg, datamodule, model) -> tuple:
    trainer = build_trainer(cfg, Path(cfg.paths.output_dir))
    trainer.fit(model, datamodule=datamodule)
    return trainer, model


@pytest.mark.parametrize(
    ("task", "classes", "width"), [("regression", [], 1), ("binary", ["a", "b"], 1),
                                   ("multiclass", ["a", "b", "c", "d"], 4)],
)  # fmt: skip
def test_head_is_sized_by_the_task(task: str, classes: list, width: int) -> None:
    info = DataInfo(task, (1, 8, 8), classes)
    backbone = {"source": "timm", "name": "test_resnet", "weights": "none"}
    net = PretrainedNet(info.input_shape, info.num_outputs, backbone, input_size=32, dropout=0.1)
    assert net.head[-1].out_features == width
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, width)  # grayscale repeated, resized to 32


def test_auto_trains_more_of_the_net_the_more_data_there_is() -> None:
    blocks = [f"b{i}" for i in range(8)]
    auto = Finetuning(mode="auto", head_epochs=2)
    assert auto.make_plan(blocks, 200, similar=True) == []  # tiny, similar: head only
    assert "head only" in auto.decision
    medium = auto.make_plan(blocks, 5000, similar=True)
    assert medium[0].epoch == 2 and 0 < len(medium[0].blocks) < len(blocks)
    assert medium[0].blocks == tuple(blocks[-len(medium[0].blocks) :])  # from the top
    different = auto.make_plan(blocks, 5000, similar=False)
    assert len(different[0].blocks) > len(medium[0].blocks)
    large = auto.make_plan(blocks, 50000, similar=False)
    assert large[0].blocks == tuple(blocks) and large[0].epoch == 0


def test_cached_features_train_the_same_head(make_cfg, timm_file: Path) -> None:
    heads = []
    for cache in ("false", "true"):
        cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                       "model/finetuning=feature_extraction", f"model.finetuning.cache_features={cache}",
                       "model.net.dropout=0.0")  # fmt: skip
        _, model = fit(cfg)
        heads.append(model.net.head[-1].weight.detach().clone())
    torch.testing.assert_close(heads[0], heads[1], rtol=1e-4, atol=1e-5)


def test_finetune_run_end_to_end_and_eval_reproduces(
    make_cfg, timm_file: Path, tmp_path: Path
) -> None:
    from dlrecipe.eval import restore

    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                   "model/finetuning=full", "report.enabled=false")  # fmt: skip
    value = train(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    classes = len(summary["info"]["class_names"])  # finite, what the summary says, not diverged
    assert math.isfinite(value) and value == summary["optimized_value"]
    assert 0 < value < 3 * math.log(classes), (value, classes)
    notes = summary["notes"]
    assert any(n.startswith("fine-tuning: full; unfrozen epoch 0: conv1") for n in notes)
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    timm_file.rename(timm_file.with_suffix(".moved"))  # eval needs the checkpoint only
    try:
        _, _, model = restore(best)
    finally:
        timm_file.with_suffix(".moved").rename(timm_file)
    saved = torch.load(best, weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["net.head.1.weight"], saved["net.head.1.weight"])


# -- bad input --------------------------------------------------------------------------------
def test_unknown_backbone_name_suggests_close_ones(make_cfg) -> None:
    cfg = make_cfg(*TIMM, "model.net.backbone.name=resnet19", "model.net.backbone.weights=none")
    with pytest.raises(ConfigError, match=r"resnet19.*did you mean.*resnet18"):
        build_model(cfg, build_data(cfg).info)


def test_weights_of_another_architecture_are_refused(make_cfg, timm_file: Path) -> None:
    cfg = make_cfg("model=finetune", "model.net.backbone.name=resnet10t", "model.net.input_size=32",
                   f"model.net.backbone.weights={timm_file}")  # fmt: skip
    with pytest.raises(ConfigError, match="another architecture"):
        build_model(cfg, build_data(cfg).info)


def test_a_stage_naming_a_missing_block_fails_before_training(make_cfg, timm_file: Path) -> None:
    cfg = make_cfg(*TIMM, f"model.net.backbone.weights={timm_file}", "model/finetuning=staged",
                   "model.finetuning.stages=[{epoch:1,blocks:[layer5]}]")  # fmt: skip
    with pytest.raises(ConfigError, match=r"layer5.*layer4"):
        train(cfg)
    assert not list((Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))


def test_an_image_too_small_for_the_backbone_is_refused(make_cfg) -> None:
    cfg = make_cfg(*TIMM, "model.net.input_size=8", "model.net.backbone.weights=none")
    with pytest.raises(ConfigError, match=r"too small.*input_size=32"):
        build_model(cfg, build_data(cfg).info)


def test_hub_weights_offline_fail_at_once_naming_cache_and_weights(make_cfg, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the network is never tried
    cfg = make_cfg("model=finetune", "model.net.backbone.name=resnet34", "model.net.input_size=32")
    assert cfg.model.net.backbone.weights == "hub"  # the default
    with pytest.raises(
        ConfigError, match=r"not in the cache \(.*hub.*model\.net\.backbone\.weights="
    ):
        build_model(cfg, build_data(cfg).info)


def test_an_earlier_run_is_the_backbone(make_cfg, tmp_path: Path) -> None:
    """The digits demo's chain: pretrain on 0-4, then start 5-9 from that run's directory."""
    pretrain = tmp_path / "pretrain"
    cfg = make_cfg("experiment=digits_pretrain_0to4", "data/augmentation=none",
                   "report.enabled=false", run_dir=pretrain)  # fmt: skip
    train(cfg)
    cfg = make_cfg("experiment=digits_finetune", f"model.net.backbone.weights={tmp_path}")
    datamodule = build_data(cfg)
    assert datamodule.info.class_names == ["5", "6", "7", "8", "9"]
    assert len(datamodule.fold.train) == 50  # 10 labelled images per class
    model = build_model(cfg, datamodule.info)
    best = next((pretrain / "checkpoints").glob("best-*.ckpt"))
    saved = torch.load(best, weights_only=True)
    for key, value in model.net.backbone.features.state_dict().items():
        assert torch.equal(value, saved["state_dict"][f"net.features.{key}"]), key
    normalization = saved["dlrecipe_data"]["normalization"]  # 0-4's statistics prepare 5-9's images
    assert torch.allclose(model.net.mean.flatten(), normalization["mean"])
    assert model.net.head[-1].out_features == 5


def test_unknown_classes_are_refused(make_cfg) -> None:
    cfg = make_cfg("data.classes=[5,11]")
    with pytest.raises(ConfigError, match=r"data.classes=\['5', '11'\].*\['11'\] are not among"):
        _ = build_data(cfg).data


def test_train_bn_false_keeps_pretrained_statistics_while_weights_train(
    make_cfg, timm_file: Path
) -> None:
    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                   "model/finetuning=full", "model.finetuning.train_bn=false")  # fmt: skip
    pl.seed_everything(cfg.seed)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    before = backbone_state(model)
    fit_model(cfg, datamodule, model)
    after = model.net.backbone.state_dict()
    assert not torch.equal(after["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])
    assert not torch.equal(
        after["layer1.0.bn1.weight"], before["layer1.0.bn1.weight"]
    )  # affine trains
    for key in (k for k in before if "running_" in k):
        assert torch.equal(after[key], before[key]), key


@pytest.mark.parametrize(
    "schedule",
    [["model/scheduler=onecycle"], ["model/scheduler=cosine", "model.scheduler.warmup_frac=0.3"],
     ["model/scheduler=linear"], ["model/scheduler=step"]],
)  # fmt: skip
def test_unfrozen_groups_follow_the_schedule_at_their_ratio(
    make_cfg, timm_file: Path, schedule
) -> None:
    """Whatever the schedule, a block unfrozen mid-run keeps lr_mult x the head's rate."""
    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}",
                   "model/finetuning=staged", "trainer.max_epochs=3", *schedule,
                   "model.finetuning.stages=[{epoch:1,top:2,lr_mult:0.1}]")  # fmt: skip
    trainer, _ = fit(cfg)
    groups = trainer.optimizers[0].param_groups
    assert len(groups) > 2
    for group in groups[2:]:
        assert group["lr"] == pytest.approx(0.1 * groups[0]["lr"], rel=1e-6)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext"])
def test_blocks_cover_every_backbone_parameter(name: str) -> None:
    """Including parameters held by the backbone itself (a ViT's cls_token and pos_embed)."""
    backbone = {"source": "timm", "name": name, "weights": "none"}
    net = PretrainedNet((3, 32, 32), 3, backbone, input_size=None)
    in_blocks = {id(p) for block in net.blocks.values() for p in block.parameters()}
    assert in_blocks == {id(p) for p in net.backbone.parameters()}


def test_tagged_timm_names_and_the_trained_input_size_travel(tmp_path: Path) -> None:
    backbone = {"source": "timm", "name": "test_resnet.r160_in1k", "weights": "none"}
    trained = PretrainedNet((1, 8, 8), 3, backbone, input_size=40)
    rebuilt = PretrainedNet((1, 8, 8), 3, backbone, input_size=None)  # what eval would resolve
    assert rebuilt.input_size == (160, 160)
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.input_size == (40, 40)
    torch.testing.assert_close(rebuilt.mean, trained.mean)


def test_classes_must_be_a_list(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"data.classes=5 must be a list"):
        _ = build_data(make_cfg("data.classes=5")).data


# -- with the report on: Grad-CAM and the other inside-the-model figures ----------------------
@pytest.mark.parametrize(
    "mode",
    [
        ["model/finetuning=feature_extraction", "model.finetuning.cache_features=true"],
        ["model/finetuning=auto", "data.similar_to_pretraining=true"],  # small, similar: frozen
    ],
    ids=["cached_features", "auto_frozen"],
)
def test_frozen_backbone_runs_end_to_end_with_the_report(
    make_cfg, timm_file: Path, tmp_path: Path, mode: list[str]
) -> None:
    # filter patterns on 8 px digits on purpose: they must run through a frozen backbone too
    cfg = make_cfg(*TIMM, *DIGITS_FEW, f"model.net.backbone.weights={timm_file}", *mode,
                   "trainer.max_epochs=1", "report.enabled=true", "+report.cam_samples=2",
                   "+report.filter_patterns_min_size=8")  # fmt: skip
    value = train(cfg)
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    classes = len(summary["info"]["class_names"])  # finite, what the summary says, not diverged
    assert math.isfinite(value) and value == summary["optimized_value"]
    assert 0 < value < 3 * math.log(classes), (value, classes)
    assert any("backbone stays frozen" in n for n in summary["notes"]), summary["notes"]
    for figure in ("gradcam.png", "activations.png", "filters.png", "filter_patterns.png"):
        assert (run / "report" / figure).is_file(), figure
    assert "Grad-CAM" in (run / "report" / "index.html").read_text()


def test_weights_none_means_training_from_scratch(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(*TIMM, *DIGITS_FEW, "model.net.backbone.weights=none", "model/finetuning=auto",
                   "trainer.max_epochs=1", "+report.cam_samples=2")  # fmt: skip
    trainer, model = fit(cfg)
    assert model.net.pretrained is False
    assert all(p.requires_grad for p in model.net.parameters())  # every block trains ...
    rates = {g["initial_lr"] for g in trainer.optimizers[0].param_groups}
    assert rates == {trainer.optimizers[0].param_groups[0]["initial_lr"]}  # ... at the head's lr
    assert "weights=none" in model.finetuning.describe()
    # with a pretrained backbone the same data keeps the base frozen (the test above)
    auto = Finetuning(mode="auto")
    assert auto.make_plan(["a", "b"], 200, similar=True, pretrained=True) == []
    assert auto.make_plan(["a", "b"], 200, similar=True, pretrained=False)[0].blocks == ("a", "b")
