"""timm and torchvision backbones without their heads, and a strict load of a state dict.

    python -c "from dlrecipe.models.nets.backbone import build_backbone; print(build_backbone('test_resnet', weights='none').num_features)"

`build_backbone` returns the network that maps images to a feature vector, plus what the
input adaptation needs to know: channels, input size and the mean / std of its pretraining
data. It knows torch, timm and torchvision only: weights are the library's own (`hub`), none
(random initialization), or a state dict handed in by the layer above
(dlrecipe.models.backbones reads files, checks the hub cache, and builds earlier runs).
Loading is strict: missing keys, unexpected keys outside the old head, and shape mismatches
are errors, because a half-loaded backbone trains without complaint and just does worse.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from dlrecipe.errors import ConfigError

log = logging.getLogger(__name__)

SOURCES = ("timm", "torchvision", "dlrecipe")  # dlrecipe: built by dlrecipe.models.backbones
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    module: nn.Module  # images (N, C, H, W) -> features (N, num_features)
    num_features: int
    in_chans: int
    input_size: tuple[int, int]  # the pretraining resolution
    mean: tuple[float, ...]  # the pretraining data's per-channel statistics
    std: tuple[float, ...]
    reduction: int = 1  # how much the net shrinks the image; smaller inputs are too small
    name: str = ""  # what messages call it
    pretrained: bool = True  # False: random weights (model/finetuning=auto then trains it all)


def build_backbone(
    name: str,
    source: str = "timm",
    weights: str | None = "hub",
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Backbone:
    """timm's or torchvision's `name` without its head: the library's weights (`hub`), random
    ones (`none`), or `state_dict`, the tensors of the file `weights` names, loaded strictly."""
    if source not in SOURCES:
        raise ConfigError(f"model.net.backbone.source={source!r}: choose one of {list(SOURCES)}")
    weights = None if weights in (None, "none", "None", "") else str(weights)
    if source == "dlrecipe" or (weights not in (None, "hub") and state_dict is None):
        raise ConfigError(
            f"model.net.backbone (source={source}, weights={weights}): a weight file or an "
            "earlier run is read by dlrecipe.models.backbones.resolve_backbone; build the model "
            "with dlrecipe.builders.build_model, or hand the net a resolved Backbone"
        )
    build = _timm if source == "timm" else _torchvision
    backbone, head_keys = build(name, hub=weights == "hub")
    backbone.name, backbone.pretrained = name, weights is not None
    if state_dict is not None:
        load_state(backbone.module, state_dict, head_keys, name, str(weights))
    return backbone


# -- timm and torchvision -------------------------------------------------------------------
def _timm(name: str, hub: bool) -> tuple[Backbone, tuple[str, ...]]:
    import timm
    from timm.data import resolve_data_config

    check_name(name, "timm")
    module = timm.create_model(name, pretrained=hub, num_classes=0)
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

    check_name(name, "torchvision")
    size, mean, std = (224, 224), IMAGENET_MEAN, IMAGENET_STD
    weights = None
    if hub:
        weights = tvm.get_model_weights(name).DEFAULT
        preset = weights.transforms()
        size, mean, std = (preset.crop_size[0],) * 2, tuple(preset.mean), tuple(preset.std)
    module = tvm.get_model(name, weights=weights)
    head_name, num_features = strip_last_linear(module)
    return Backbone(module, num_features, 3, size, mean, std, 32), (head_name,)


def strip_last_linear(module: nn.Module) -> tuple[str, int]:
    """Replace the classifier (the last Linear layer) with Identity; return its name and input width."""
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("this backbone has no Linear classifier to replace with a new head")
    name, last = linears[-1]
    parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return name, int(last.in_features)


def check_name(name: str, source: str) -> None:
    """An unknown model name is refused with the closest known ones."""
    if source == "timm":
        import timm

        if timm.is_model(name):  # also takes tagged names such as resnet18.a1_in1k
            return
        known = timm.list_models()
    else:
        import torchvision.models as tvm

        known = tvm.list_models(module=tvm)
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


# -- a state dict handed in ---------------------------------------------------------------
def load_state(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    head_keys: tuple[str, ...],
    name: str,
    path: str,
) -> None:
    """Strict load: the file's head is dropped; anything else that does not fit is an error."""
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
            f"model.net.backbone.weights={path!r} does not fit backbone {name!r}: "
            + "; ".join(parts)
            + ". These look like weights for another architecture: check model.net.backbone.name "
            "and .source"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own})
    log.info(
        "loaded %d tensors into %s from %s%s", len(own), name, path,
        f" (dropped the old head: {', '.join(dropped)})" if dropped else "",
    )  # fmt: skip
