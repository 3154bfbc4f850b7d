"""Where a pretrained backbone's weights come from: the hub (offline-safe), a file, an earlier run.

    python -m dlrecipe.train model=finetune model.net.backbone.name=resnet18 model.net.backbone.weights=resnet18.pth

models/nets/ builds timm and torchvision networks and loads a state dict it is handed; this
layer, above it, does what needs the disk, the network or dlrecipe's own checkpoints: it
checks the hub cache (and fails in seconds, not after timm's retries, when the weights are
neither cached nor reachable), reads weight files (a plain state dict, a timm / torchvision
file, safetensors, or a dlrecipe / Lightning checkpoint, always with weights_only=True) and
rebuilds an earlier run's net (models/earlier_run.py). `net_factory` is how dlrecipe.builders
gets the `model.net` partial with its backbone resolved into a `Backbone`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlrecipe.errors import ConfigError, unwrap_instantiation
from dlrecipe.models.nets.backbone import SOURCES, Backbone, build_backbone, check_name

WEIGHTS = "model.net.backbone.weights"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "DLRECIPE_OFFLINE")  # set either to never try the network


def net_factory(net_cfg: Any) -> Callable[..., nn.Module]:
    """The `model.net` config as the partial the LightningModule calls with the data's shapes;
    a `backbone` given as a dict (model=finetune) is resolved here, once."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        net = instantiate(net_cfg, _convert_="all")
    except InstantiationException as err:
        raise unwrap_instantiation(err) from None
    if isinstance(net, partial) and isinstance(net.keywords.get("backbone"), dict):
        return partial(net, backbone=resolve_backbone(**net.keywords["backbone"]))
    return net


def resolve_backbone(name: str, source: str = "timm", weights: str | None = "hub") -> Backbone:
    """model.net.backbone as a Backbone with its weights loaded (hub, file or earlier run)."""
    if source not in SOURCES:
        raise ConfigError(f"model.net.backbone.source={source!r}: choose one of {list(SOURCES)}")
    weights = None if weights in (None, "none", "None", "") else str(weights)
    if source == "dlrecipe":
        from dlrecipe.models.earlier_run import backbone_from_run

        if weights is None or weights == "hub":
            raise ConfigError(
                "model.net.backbone.source=dlrecipe reuses an earlier run: set "
                "model.net.backbone.weights=<its run dir or .ckpt file>"
            )
        backbone = backbone_from_run(weights, net_factory)
        backbone.name = name or source  # what messages call it: the config's name
        return backbone
    if source == "timm":
        from dlrecipe.extras import require

        require("timm", "model.net.backbone.source=timm")
    if source in ("timm", "torchvision"):
        check_name(name, source)  # a typo is named before the hub is asked about it
    if weights != "hub":
        state = read_state_dict(weights) if weights is not None else None
        return build_backbone(name, source, weights, state_dict=state)
    cache = _hf_cache_dir() if source == "timm" else Path(torch.hub.get_dir()) / "checkpoints"
    cached = _check_hub(name, source, cache)
    from dlrecipe.compat import hf_hub_offline

    try:
        with hf_hub_offline(cached and source == "timm"):
            return build_backbone(name, source, "hub")
    except (RuntimeError, OSError) as err:  # hub download failed half-way, or a corrupt cache
        raise _hub_error(name, source, cache, err) from err


# -- the hub, offline-safe ------------------------------------------------------------------
def _hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _online(host: str = "huggingface.co") -> bool:
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in OFFLINE_VARS):
        return False
    import socket

    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _check_hub(name: str, source: str, cache: Path) -> bool:
    """Fail in seconds, not after timm's ~50 s of retries, when weights are neither cached nor
    reachable. True when they are cached (then the hub is not asked at all)."""
    if source == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        folder = f"models--{repo.replace('/', '--')}" if repo else None
        if folder and (cache / folder).is_dir():
            return True
        host = "huggingface.co"
    else:
        import torchvision.models as tvm

        url = tvm.get_model_weights(name).DEFAULT.url
        if (cache / Path(url).name).is_file():
            return True
        host = "download.pytorch.org"
    if not _online(host):
        raise _hub_error(name, source, cache, "no network connection")
    return False


def _hub_error(name: str, source: str, cache: Path, why: Any) -> ConfigError:
    return ConfigError(
        f"the pretrained {source} weights of {name!r} are not in the cache ({cache}) and could "
        f"not be downloaded ({why}). Fix: run once with network access, or download the file "
        f"elsewhere and pass it with model.net.backbone.weights=<path to .pth/.safetensors/.ckpt>, "
        "or train from scratch with model.net.backbone.weights=none"
    )


# -- local weight files ---------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file: plain state dict, {'state_dict' | 'model': ...}, or safetensors."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"{WEIGHTS}={str(path)!r} does not exist; give a weight file "
            "(.pth / .pt / .safetensors / .ckpt), `hub` to download, or `none`"
        )
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as err:
            raise ConfigError(f"{WEIGHTS}={str(path)!r} is not readable: {err}") from err
    from dlrecipe.checkpoints import load_checkpoint  # lazily: it imports the LightningModule

    state = load_checkpoint(file, key=WEIGHTS)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{WEIGHTS}={str(path)!r} holds no state dict of tensors")
    return _strip_prefix(state)


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A dlrecipe finetune checkpoint stores net.backbone.*; DDP and torch.compile add prefixes."""
    if any(k.startswith("net.backbone.") for k in state):
        state = {k[13:]: v for k, v in state.items() if k.startswith("net.backbone.")}
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state
