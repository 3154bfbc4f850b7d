"""An earlier dlrecipe run as a pretrained backbone: its net, its weights, its normalization.

    python -m dlrecipe.train experiment=digits_finetune model.net.backbone.weights=outputs/digits_pretrain_0to4

`weights` may be a checkpoint file, a run directory (its best checkpoint, from summary.json)
or a directory of runs such as outputs/<task_name> (the newest finished run in it). The net
is rebuilt from the run's own config, its weights loaded, and its last Linear layer (the old
head) replaced by the identity; the statistics its data was standardized with become the
backbone's "pretraining" mean and std, so new images are prepared exactly like the old ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.backbone import Backbone, strip_last_linear

log = logging.getLogger(__name__)


def find_checkpoint(weights: str | Path) -> Path:
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(
            f"model.net.backbone.weights={str(weights)!r} does not exist. Train the run to start "
            "from first (for the digits demo: python -m dlrecipe.train experiment=digits_pretrain_0to4), "
            "or point weights at its run directory or .ckpt file"
        )
    summaries = [path / "summary.json"] if (path / "summary.json").is_file() else []
    summaries = summaries or sorted(path.rglob("summary.json"), key=lambda p: p.stat().st_mtime)
    for summary in reversed(summaries):
        best = json.loads(summary.read_text()).get("best_checkpoint")
        if best and Path(best).is_file():
            log.info("backbone weights: %s (newest finished run in %s)", best, path)
            return Path(best)
    raise ConfigError(
        f"model.net.backbone.weights={str(weights)!r}: no finished run with a best checkpoint "
        "in it (no summary.json naming one); point weights at a .ckpt file instead"
    )


def _cut_head(net: nn.Module, info: DataInfo) -> int:
    """Drop the whole dense head of a dlrecipe CNN (its pooled conv features generalize best to
    new classes: the dense layers above them specialize in the old ones); else the last Linear."""
    if isinstance(getattr(net, "head", None), nn.Sequential) and hasattr(net, "features"):
        net.head = nn.Flatten()
        net.eval()
        with torch.no_grad():
            width = net(torch.zeros(1, *info.input_shape)).shape[1]
        net.train()
        return int(width)
    return strip_last_linear(net)[1]


def backbone_from_run(
    weights: str | Path, build_net: Callable[[Any], Callable[..., nn.Module]]
) -> Backbone:
    """The earlier run's net, its weights loaded and its head cut off; `build_net` turns the
    run's `model.net` config into the net's partial (dlrecipe.models.backbones.net_factory)."""
    from dlrecipe.checkpoints import datamodule_state, load_checkpoint, run_config

    ckpt_path = find_checkpoint(weights)
    checkpoint = load_checkpoint(ckpt_path, key="model.net.backbone.weights")
    cfg = run_config(ckpt_path, checkpoint)  # checked by dlrecipe.trust before anything is built
    state = datamodule_state(checkpoint) or {}
    if "info" not in state or "state_dict" not in checkpoint:
        raise ConfigError(
            f"model.net.backbone.weights={str(ckpt_path)!r} is not a dlrecipe checkpoint"
        )
    info = DataInfo.from_dict(state["info"])
    net = build_net(cfg.model.net)(input_shape=info.input_shape, num_outputs=info.num_outputs)
    own = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(own)
    num_features = _cut_head(net, info)
    channels = info.input_shape[0]
    norm = state.get("normalization") or {}
    mean = norm.get("mean")
    std = norm.get("std")
    if (
        mean is None or mean.numel() != channels
    ):  # normalization=none, or a table's per-feature stats
        mean, std = [0.0] * channels, [1.0] * channels
    else:
        mean, std = mean.tolist(), std.tolist()
    size = tuple(info.input_shape[1:3]) if info.is_image else ()
    log.info("backbone: %s from %s (%d features)", type(net).__name__, ckpt_path, num_features)
    return Backbone(net, num_features, channels, size, tuple(mean), tuple(std))
