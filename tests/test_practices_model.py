"""Residual blocks and valid padding in the CNN, weight noise, small_normal's scale, a stochastic curriculum.

python -m pytest tests/test_practices_model.py -q
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from dlrecipe.builders import build_data, build_model
from dlrecipe.callbacks.curriculum import Curriculum
from dlrecipe.errors import ConfigError
from dlrecipe.models.init import initialize
from dlrecipe.models.nets.cnn import CNN
from dlrecipe.models.nets.residual import ResidualBlock
from dlrecipe.models.regularization import Regularization


def _blocks(net: nn.Module) -> list[ResidualBlock]:
    return [m for m in net.modules() if isinstance(m, ResidualBlock)]


@pytest.mark.parametrize("preact", [False, True])
def test_residual_block_output_is_f_of_x_plus_shortcut(preact):
    torch.manual_seed(0)
    net = CNN((1, 16, 16), 10, channels=[8, 8, 16], block="residual", preact=preact).eval()
    seen: dict[int, dict[str, torch.Tensor]] = {}
    for i, block in enumerate(_blocks(net)):
        seen[i] = {}
        for part in ("residual", "shortcut"):
            getattr(block, part).register_forward_hook(
                lambda m, a, out, i=i, part=part: seen[i].__setitem__(part, out)
            )
        block.register_forward_hook(lambda m, a, out, i=i: seen[i].__setitem__("out", out))
    net(torch.randn(2, 1, 16, 16))
    assert len(seen) == 3
    for i in range(3):
        parts = seen[i]
        expected = parts["residual"] + parts["shortcut"]
        expected = (
            expected if preact else torch.relu(expected)
        )  # post-activation: act after the sum
        assert torch.allclose(parts["out"], expected)
        assert parts["shortcut"].abs().sum() > 0  # the skip carries signal
    # projection only where channels change (8 -> 8 is the identity)
    kinds = [type(b.shortcut).__name__ for b in _blocks(net)]
    assert kinds == ["Sequential", "Identity", "Sequential"]  # 1 -> 8, 8 -> 8, 8 -> 16
    convs = [m for m in _blocks(net)[2].shortcut.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1)


def test_removing_the_shortcut_changes_the_output():
    torch.manual_seed(0)
    net = CNN((1, 16, 16), 10, channels=[8, 8], block="residual").eval()
    x = torch.randn(3, 1, 16, 16)
    before = net(x)
    _blocks(net)[1].shortcut = ZeroSkip()  # the 8 -> 8 identity skip, cut
    assert not torch.allclose(before, net(x), atol=1e-4)


class ZeroSkip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_strided_residual_blocks_project_with_stride_2():
    net = CNN((1, 16, 16), 10, channels=[8, 8], block="residual", pool="stride")
    for block in _blocks(net):
        conv = next(m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d))
        assert conv.stride == (2, 2)  # size changes: a strided 1x1 projection, even at 8 -> 8
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


def test_valid_padding_shrinks_by_k_minus_1_per_conv():
    x = torch.zeros(1, 1, 16, 16)
    plain = CNN((1, 16, 16), 10, channels=[4], padding="valid", pool="none")
    assert plain.features(x).shape[-1] == 16 - 2 * 2  # two 3x3 convs: 2 px each
    five = CNN((1, 16, 16), 10, channels=[4], padding="valid", pool="none", kernel_size=5)
    assert five.features(x).shape[-1] == 16 - 2 * 4
    same = CNN((1, 16, 16), 10, channels=[4], pool="none")
    assert same.features(x).shape[-1] == 16
    res = CNN((1, 16, 16), 10, channels=[4, 8], padding="valid", block="residual")
    assert res.features(x).shape[-1] == ((16 - 4) // 2 - 4) // 2  # 12 -> 6 -> 2 -> 1
    with pytest.raises(
        ConfigError, match=r"padding=valid.*8x8 images shrink to nothing in block 2"
    ):
        CNN((1, 8, 8), 10, channels=[8, 8], padding="valid")
    CNN((1, 8, 8), 10, channels=[8, 8])  # the same with same padding fits


def test_residual_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="convs_per_block=3"):
        CNN((1, 16, 16), 10, block="residual", convs_per_block=3)
    with pytest.raises(ConfigError, match=r"model\.net\.block='dense'"):
        CNN((1, 16, 16), 10, block="dense")
    with pytest.raises(ConfigError, match="pool=stride with padding=valid"):
        CNN((1, 16, 16), 10, block="residual", padding="valid", pool="stride")


def test_resnet_preset_builds_a_preactivation_resnet(make_cfg):
    cfg = make_cfg("experiment=digits_wild_resnet")
    model = build_model(cfg, build_data(cfg).info)
    blocks = _blocks(model.net)
    assert len(blocks) == 3 and all(isinstance(b.post, nn.Identity) for b in blocks)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


def test_small_normal_init_scale_is_a_key(make_cfg):
    torch.manual_seed(0)
    net = initialize(nn.Linear(400, 300), "small_normal", scale=0.1)
    assert net.weight.std().item() == pytest.approx(0.1, rel=0.02)
    cfg = make_cfg("model=mlp", "model.init=small_normal", "model.init_scale=0.003")
    model = build_model(cfg, build_data(cfg).info)
    assert model.net.body[1].weight.std().item() == pytest.approx(0.003, rel=0.05)
    with pytest.raises(ConfigError, match=r"model\.init_scale=-1"):
        initialize(nn.Linear(2, 2), "small_normal", scale=-1)


def test_weight_noise_perturbs_and_restores_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 3))
    reg = Regularization.from_config(net, {"weight_noise": 0.1})
    clean = net[0].weight.detach().clone()
    bias = net[0].bias.detach().clone()
    reg.perturb()
    assert (net[0].weight - clean).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(net[0].bias, bias)  # weights only, like weight decay
    reg.restore()
    assert torch.equal(net[0].weight, clean)
    assert Regularization.from_config(net, {"weight_noise": 0.0}) is None  # off: nothing per step


class _WatchNoise(pl.Callback):
    """The first layer's weight as the training forward saw it, and at the optimizer step."""

    def __init__(self):
        self.forward_diff, self.step_diff = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        layer = pl_module.net.body[1]
        self.before = layer.weight.detach().clone()
        self.handle = layer.register_forward_hook(
            lambda m, a, o: self.forward_diff.append((m.weight - self.before).abs().max().item())
        )

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.handle.remove()
        diff = (pl_module.net.body[1].weight - self.before).abs().max().item()
        self.step_diff.append(diff)


def test_weight_noise_acts_in_training_forwards_only(make_cfg):
    cfg = make_cfg("model=mlp", "model.regularization.weight_noise=0.05", "trainer.max_epochs=1",
                   "logger=none")  # fmt: skip
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule.info)
    watch = _WatchNoise()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, logger=False,
                         callbacks=[watch], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    assert len(watch.forward_diff) == 3 and min(watch.forward_diff) > 0.05  # noise in the forward
    assert watch.step_diff == [0.0, 0.0, 0.0]  # clean weights reach the optimizer step


def _curriculum_data(make_cfg):
    datamodule = build_data(make_cfg("data.split.seed=0"))
    train = datamodule.fold.train
    scores = np.full(len(datamodule.data.targets), np.nan)
    scores[train] = np.arange(len(train), dtype=float)  # the k-th training sample is k-th easiest
    return datamodule, train, scores


def test_stochastic_curriculum_mixes_in_a_growing_share_of_hard_samples(make_cfg):
    datamodule, train, scores = _curriculum_data(make_cfg)
    hard = set(train[len(train) // 2 :].tolist())
    mixes = {}
    for order in ("easiest_first", "stochastic"):
        curriculum = Curriculum(order=order, start_frac=0.25, full_at_epoch=4)
        curriculum.scores = scores
        mixes[order] = [curriculum.for_epoch(datamodule, train, e) for e in range(5)]
    shares = [np.isin(m, list(hard)).mean() for m in mixes["stochastic"]]
    assert shares[0] == 0 and shares[1] < shares[2] < shares[3] < shares[4]
    assert shares[4] == pytest.approx(0.5, abs=1e-3)  # the harder half: its natural share
    for easy, mixed in zip(mixes["easiest_first"], mixes["stochastic"], strict=True):
        assert len(easy) == len(mixed) and len(np.unique(mixed)) == len(mixed)
    assert not np.isin(mixes["easiest_first"][1], list(hard)).any()  # easiest-first: none yet
    assert shares[1] > 0  # ... where the stochastic mix already has some
    assert np.array_equal(mixes["stochastic"][4], np.sort(train))  # all samples at the end
    again = Curriculum(order="stochastic", start_frac=0.25, full_at_epoch=4)
    again.scores = scores
    assert np.array_equal(again.for_epoch(datamodule, train, 2), mixes["stochastic"][2])  # seeded
    assert again.changes_after(1) and not again.changes_after(4)  # a fresh draw every epoch
    with pytest.raises(ConfigError, match=r"callbacks\.curriculum\.order='hardest'"):
        Curriculum(order="hardest")


def test_stochastic_curriculum_trains(make_cfg):
    from dlrecipe.train import train

    cfg = make_cfg("callbacks=curriculum", "callbacks.curriculum.order=stochastic", "model=mlp",
                   "callbacks.curriculum.full_at_epoch=2", "callbacks.curriculum.prepass_epochs=1",
                   "report.enabled=false", "logger=none")  # fmt: skip
    assert train(cfg) > 0
