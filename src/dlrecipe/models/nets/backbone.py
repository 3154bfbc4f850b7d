"""Pretrained backbones from timm, torchvision or an earlier dlrecipe run, without their heads.

    python -m dlrecipe.train model=finetune model.net.backbone.name=resnet18 model.net.backbone.weights=resnet18.pth

`build_backbone` returns the network that maps images to a feature vector, plus what the
input adaptation needs to know: channels, input size and the mean / std of its pretraining
data. Weights come from the hub (opt-in: it needs the network once, then the cache), from a
local file (a plain state dict, a timm / torchvision file, or a dlrecipe / Lightning
checkpoint), or nowhere (`weights: none`, random initialization). Loading is strict: missing
keys, unexpected keys outside the old head, and shape mismatches are errors, because a
half-loaded backbone trains without complaint and just does worse.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlrecipe.compat import hf_hub_offline
from dlrecipe.errors import ConfigError
from dlrecipe.extras import require

log = logging.getLogger(__name__)

SOURCES = ("timm", "torchvision", "dlrecipe")
WEIGHTS = "model.net.backbone.weights"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OFFLINE_VARS = ("HF_HUB_OFFLINE", "DLRECIPE_OFFLINE")  # set either to never try the network


@dataclass
class Backbone:
    module: nn.Module  # images (N, C, H, W) -> features (N, num_features)
    num_features: int
    in_chans: int
    input_size: tuple[int, int]  # the pretraining resolution
    mean: tuple[float, ...]  # the pretraining data's per-channel statistics
    std: tuple[float, ...]
    reduction: int = 1  # how much the net shrinks the image; smaller inputs are too small


def build_backbone(name: str, source: str = "timm", weights: str | None = "hub") -> Backbone:
    if source not in SOURCES:
        raise ConfigError(f"model.net.backbone.source={source!r}: choose one of {list(SOURCES)}")
    weights = None if weights in (None, "none", "None", "") else str(weights)
    if source == "dlrecipe":
        from dlrecipe.models.nets.earlier_run import backbone_from_run

        if weights is None or weights == "hub":
            raise ConfigError(
                "model.net.backbone.source=dlrecipe reuses an earlier run: set "
                "model.net.backbone.weights=<its run dir or .ckpt file>"
            )
        return backbone_from_run(weights)
    build = _timm if source == "timm" else _torchvision
    backbone, head_keys = build(name, hub=weights == "hub")
    if weights not in (None, "hub"):
        load_weights(backbone.module, weights, head_keys, name)
    return backbone


# -- timm and torchvision -------------------------------------------------------------------
def _timm(name: str, hub: bool) -> tuple[Backbone, tuple[str, ...]]:
    require("timm", "model.net.backbone.source=timm")
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(name):  # also takes tagged names such as resnet18.a1_in1k
        _check_name(name, timm.list_models(), "timm")
    cached = _check_hub(name, "timm", _hf_cache_dir()) if hub else False
    try:
        with hf_hub_offline(cached):
            module = timm.create_model(name, pretrained=hub, num_classes=0)
    except (RuntimeError, OSError) as err:  # hub download failed half-way, or a corrupt cache
        raise _hub_error(name, "timm", _hf_cache_dir(), err) from err
    config = resolve_data_config({}, model=module)
    classifier = module.pretrained_cfg.get("classifier", "fc")
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    reduction = module.feature_info[-1]["reduction"] if getattr(module, "feature_info", None) else 1
    return Backbone(
        module, int(module.num_features), int(config["input_size"][0]),
        tuple(config["input_size"][1:]), tuple(config["mean"]), tuple(config["std"]), int(reduction),
    ), heads  # fmt: skip


def _torchvision(name: str, hub: bool) -> tuple[Backbone, tuple[str, ...]]:
    import torchvision.models as tvm

    _check_name(name, tvm.list_models(module=tvm), "torchvision")
    size, mean, std = (224, 224), IMAGENET_MEAN, IMAGENET_STD
    weights = None
    if hub:
        weights = tvm.get_model_weights(name).DEFAULT
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        if not (cache / Path(weights.url).name).is_file():
            _check_hub(name, "torchvision", cache)
        preset = weights.transforms()
        size, mean, std = (preset.crop_size[0],) * 2, tuple(preset.mean), tuple(preset.std)
    try:
        module = tvm.get_model(name, weights=weights)
    except (RuntimeError, OSError) as err:
        raise _hub_error(name, "torchvision", Path(torch.hub.get_dir()), err) from err
    head_name, num_features = _strip_last_linear(module)
    return Backbone(module, num_features, 3, size, mean, std, 32), (head_name,)


def _strip_last_linear(module: nn.Module) -> tuple[str, int]:
    """Replace the classifier (the last Linear layer) with Identity; return its name and input width."""
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("this backbone has no Linear classifier to replace with a new head")
    name, last = linears[-1]
    parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return name, int(last.in_features)


def _check_name(name: str, known: list[str], source: str) -> None:
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"model.net.backbone.name={name!r} is not a {source} model{hint} "
        f"(model.net.backbone.source={source}; list them with "
        + ("timm.list_models()" if source == "timm" else "torchvision.models.list_models()")
        + ")"
    )


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
            f"model.net.backbone.weights={str(path)!r} does not exist; give a weight file "
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
        raise ConfigError(
            f"model.net.backbone.weights={str(path)!r} holds no state dict of tensors"
        )
    return _strip_prefix(state)


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A dlrecipe finetune checkpoint stores net.backbone.*; DDP and torch.compile add prefixes."""
    if any(k.startswith("net.backbone.") for k in state):
        state = {k[13:]: v for k, v in state.items() if k.startswith("net.backbone.")}
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_weights(
    module: nn.Module, path: str | Path, head_keys: tuple[str, ...], name: str
) -> None:
    """Strict load: the file's head is dropped; anything else that does not fit is an error."""
    state = read_state_dict(path)
    own = module.state_dict()
    heads = tuple(f"{h}." for h in head_keys)
    dropped = sorted(k for k in state if k not in own and k.startswith(heads))
    unexpected = sorted(k for k in state if k not in own and not k.startswith(heads))
    missing = sorted(k for k in own if k not in state)
    wrong = sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                ("shape mismatch", wrong)) if keys
        ]  # fmt: skip
        raise ConfigError(
            f"model.net.backbone.weights={str(path)!r} does not fit backbone {name!r}: "
            + "; ".join(parts)
            + ". These look like weights for another architecture: check model.net.backbone.name "
            "and .source"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own})
    log.info(
        "loaded %d tensors into %s from %s%s", len(own), name, path,
        f" (dropped the old head: {', '.join(dropped)})" if dropped else "",
    )  # fmt: skip
