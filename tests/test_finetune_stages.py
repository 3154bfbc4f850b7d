"""Fine-tuning stages on an unpatched schedule: every stage's group exists from the first step,
keeps its lr ratio to the head's under any schedule, and its blocks move only from their epoch.

    PYTHONPATH=src python -m pytest tests/test_finetune_stages.py -q

A tiny timm `test_resnet` on 20 digits per class, CPU, two or three short epochs per test.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from dlrecipe.builders import build_data, build_model, build_trainer
from dlrecipe.errors import ConfigError

STAGED = ["model=finetune", "model.net.backbone.name=test_resnet", "model.net.input_size=32",
          "data.split.train_per_class=20", "data.batch_size=32", "model/finetuning=staged",
          "model.finetuning.stages=[{epoch:1,blocks:[layer4],lr_mult:0.25}]"]  # fmt: skip


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import timm

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    return path


class Record(pl.Callback):
    """Each epoch's end: every group's lr, the backbone's tensors, which params have optimizer state."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        self.epochs.append({
            "lrs": [group["lr"] for group in optimizer.param_groups],
            "backbone": {k: v.clone() for k, v in pl_module.net.backbone.state_dict().items()},
            "stateful": {id(p) for p in optimizer.state},
        })  # fmt: skip


def fit(cfg, ckpt_path: str | None = None) -> tuple[pl.Trainer, pl.LightningModule, Record]:
    pl.seed_everything(cfg.seed)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    trainer = build_trainer(cfg, Path(cfg.paths.output_dir))
    record = Record()
    trainer.callbacks.append(record)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, model, record


@pytest.mark.parametrize(
    "schedule",
    [["model/scheduler=cosine", "model.scheduler.warmup_frac=0.3"],
     ["model/scheduler=plateau", "model.scheduler.patience=0", "model.scheduler.warmup_frac=0.5"]],
    ids=["cosine_warmup", "plateau_warmup"],
)  # fmt: skip
def test_a_stage_group_is_scheduled_from_the_start_and_trains_from_its_epoch(
    make_cfg, weights: Path, schedule: list[str]
) -> None:
    cfg = make_cfg(*STAGED, f"model.net.backbone.weights={weights}", "trainer.max_epochs=3",
                   *schedule)  # fmt: skip
    start = torch.load(weights, weights_only=True)
    trainer, model, record = fit(cfg)
    layer4 = list(model.net.backbone.layer4.parameters())
    groups = trainer.optimizers[0].param_groups
    assert {id(p) for g in groups[2:] for p in g["params"]} == {id(p) for p in layer4}
    heads = [epoch["lrs"][0] for epoch in record.epochs]
    assert len(set(heads)) > 1  # the schedule did move the head's rate between epochs
    for epoch in record.epochs:  # the same groups every epoch, layer4's at 0.25 x the head's
        assert len(epoch["lrs"]) == len(groups)
        assert epoch["lrs"][2:] == pytest.approx([0.25 * epoch["lrs"][0]] * (len(groups) - 2))
    first, second = record.epochs[0], record.epochs[1]
    key = "layer4.0.conv1.weight"
    assert torch.equal(first["backbone"][key], start[key])  # frozen in epoch 0 ...
    assert not {id(p) for p in layer4} & first["stateful"]  # ... no optimizer state yet
    assert not torch.equal(second["backbone"][key], start[key])  # trains from epoch 1
    assert {id(p) for p in layer4} <= second["stateful"]
    for epoch in record.epochs:  # a block of no stage never moves, statistics included
        for name in ("layer1.0.conv1.weight", "layer1.0.bn1.running_mean"):
            assert torch.equal(epoch["backbone"][name], start[name]), name


def test_a_run_resumed_before_its_stage_trains_the_stage(make_cfg, weights: Path) -> None:
    cfg = make_cfg(*STAGED, f"model.net.backbone.weights={weights}", "trainer.max_epochs=1")
    trainer, _, _ = fit(cfg)
    ckpt = Path(cfg.paths.output_dir) / "epoch0.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)
    key = "net.backbone.layer4.0.conv1.weight"
    cfg = make_cfg(*STAGED, f"model.net.backbone.weights={weights}", "trainer.max_epochs=2")
    trainer, model, record = fit(cfg, ckpt_path=str(ckpt))
    assert len(record.epochs) == 1  # epoch 1 only: the resume went on from the checkpoint
    assert not torch.equal(model.state_dict()[key], saved["state_dict"][key])
    assert record.epochs[0]["lrs"][2:] == pytest.approx([0.25 * record.epochs[0]["lrs"][0]] * 2)

    # A checkpoint whose optimizer has other groups (an older dlrecipe added them mid-run)
    # is refused by name before any training, not with torch's traceback.
    states = saved["callbacks"]
    (name,) = [k for k, v in states.items() if isinstance(v, dict) and "decision" in v]
    states[name]["param_groups"] = 3
    torch.save(saved, ckpt)
    with pytest.raises(ConfigError, match=r"ckpt_path.*3 parameter groups.*makes 4"):
        fit(cfg, ckpt_path=str(ckpt))


def test_a_block_in_two_stages_trains_at_the_rate_of_the_earlier_one() -> None:
    """Stages may be listed in any order; the first to unfreeze a block sets its group's rate."""
    from dlrecipe.models.finetuning import Finetuning
    from dlrecipe.models.nets.pretrained import PretrainedNet

    backbone = {"source": "timm", "name": "test_resnet", "weights": "none"}
    net = PretrainedNet((1, 8, 8), 3, backbone, input_size=32)
    stages = [{"epoch": 5, "top": "all", "lr_mult": 0.01}, {"epoch": 2, "top": 2, "lr_mult": 0.1}]
    finetuning = Finetuning(mode="staged", stages=stages)
    blocks = list(net.blocks)
    finetuning.plan = finetuning.make_plan(blocks, n_train=100, similar=True)
    optimizer = torch.optim.AdamW([{"params": list(net.head.parameters())}], lr=1.0)
    finetuning.add_stage_groups(optimizer, net)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name in blocks:
        expected = 0.1 if name in blocks[-2:] else 0.01
        assert {rate[id(p)] for p in net.blocks[name].parameters()} == {expected}, name
    assert len(rate) == sum(1 for _ in net.parameters())  # every parameter in exactly one group
