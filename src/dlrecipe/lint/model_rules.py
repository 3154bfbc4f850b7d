"""Lint rules on the net and its loss: output activations, saturating units, init, dropout.

python -m dlrecipe.train experiment=digits_mlp model.net.activation=sigmoid model.net.hidden=[64,64,64]
"""

from __future__ import annotations

from omegaconf import DictConfig

from dlrecipe.lint.core import Finding, error, get, rule, target, warning

SQUASHING = ("sigmoid", "softmax", "log_softmax", "logsigmoid")
LOGIT_LOSSES = (None, "cross_entropy", "bce")  # null = the task's default, a logits loss too


def depth(cfg: DictConfig) -> int:
    """Activation layers in the configured MLP / CNN (0 for a net this rule does not know)."""
    net = get(cfg, "model.net", {})
    hidden = len(get(cfg, "model.net.hidden", []) or [])
    if "channels" in net:
        return len(net.channels) * int(get(cfg, "model.net.convs_per_block", 1)) + hidden
    return hidden


@rule
def squashing_output_with_logits_loss(cfg: DictConfig) -> list[Finding]:
    """A net that ends in sigmoid / softmax, trained with a loss that applies it again."""
    loss = get(cfg, "model.loss")
    found = []
    for key, value in (get(cfg, "model.net", {}) or {}).items():
        if key == "activation" or "activation" not in str(key):
            continue  # `activation` is the hidden units; output_activation, final_activation, ...
        if str(value).lower() in SQUASHING and loss in LOGIT_LOSSES:
            found.append(error(
                f"model.net.{key}",
                f"{value} on the output, but the loss ({loss or 'the default'}: BCEWithLogits / "
                "CrossEntropy) applies sigmoid / softmax itself; the logits get squashed twice "
                f"and gradients vanish. Set model.net.{key}=null: the net must output raw logits",
            ))  # fmt: skip
    return found


@rule
def saturating_hidden_units(cfg: DictConfig) -> list[Finding]:
    act, layers = get(cfg, "model.net.activation"), depth(cfg)
    batch_norm = get(cfg, "model.net.batch_norm", False)
    if (act == "sigmoid" and layers >= 3) or (act == "tanh" and layers >= 3 and not batch_norm):
        return [warning(
            "model.net.activation",
            f"{act} in {layers} hidden layers: saturating units shrink the gradient at every "
            "layer (vanishing gradients), so early layers barely learn. Use "
            "model.net.activation=relu (or gelu / leaky_relu)"
            + ("" if batch_norm else ", or at least model.net.batch_norm=true"),
        )]  # fmt: skip
    return []


@rule
def init_for_activation(cfg: DictConfig) -> list[Finding]:
    init, act, layers = (
        get(cfg, "model.init", "default"),
        get(cfg, "model.net.activation"),
        depth(cfg),
    )
    if str(init).startswith("he_") and act in ("tanh", "sigmoid"):
        return [warning(
            "model.init",
            f"{init} is scaled for ReLU (gain sqrt 2); with model.net.activation={act} it "
            f"pushes units into saturation. Use model.init=xavier_uniform",
        )]  # fmt: skip
    if init == "small_normal" and layers >= 3:
        return [warning(
            "model.init",
            f"small_normal (std 0.01) in {layers} layers: activations and gradients shrink "
            "about 100x per layer unless batch norm rescues them. Use model.init=he_uniform "
            "(ReLU family) or xavier_uniform (tanh / sigmoid)",
        )]  # fmt: skip
    return []


@rule
def heavy_dropout(cfg: DictConfig) -> list[Finding]:
    found = []
    conv = float(get(cfg, "model.net.conv_dropout", 0.0))
    if conv > 0.5:
        found.append(warning(
            "model.net.conv_dropout",
            f"{conv:g} drops most feature-map channels: conv layers share weights and need "
            "little dropout, so this mostly slows learning. Use 0.1-0.2 (or 0 and rely on "
            "augmentation and weight decay)",
        ))  # fmt: skip
    dense = float(get(cfg, "model.net.dropout", 0.0))
    if dense > 0.7:
        found.append(warning(
            "model.net.dropout",
            f"{dense:g} keeps under a third of the units: the net under-fits. The usual range "
            "is 0.2-0.5",
        ))  # fmt: skip
    return found


@rule
def label_smoothing_needs_cross_entropy(cfg: DictConfig) -> list[Finding]:
    smoothing, loss = float(get(cfg, "model.label_smoothing", 0.0)), get(cfg, "model.loss")
    if smoothing > 0 and loss not in (None, "cross_entropy"):
        return [error(
            "model.label_smoothing",
            f"{smoothing:g} with model.loss={loss}: label smoothing softens multiclass "
            "targets of the cross-entropy loss only. Set model.label_smoothing=0",
        )]  # fmt: skip
    return []


@rule
def pretrained_inputs_normalized_once(cfg: DictConfig) -> list[Finding]:
    """A pretrained backbone normalizes with its own statistics; dataset statistics on top shift them."""
    if not get(cfg, "model.net.backbone") or not get(cfg, "model.net.normalize", True):
        return []
    if target(cfg, "data.normalization").endswith("Standardize"):
        return [warning(
            "data/normalization",
            "standardize with model=finetune: the backbone already normalizes with its "
            "pretraining mean / std (model.net.normalize=true), so the inputs are normalized "
            "twice and no longer look like its pretraining data. Use data/normalization=none",
        )]  # fmt: skip
    return []


@rule
def feature_cache_without_augmentation(cfg: DictConfig) -> list[Finding]:
    if not get(cfg, "model.finetuning.cache_features", False):
        return []
    ops = [
        *(get(cfg, "data.augmentation.ops", []) or []),
        *(get(cfg, "data.augmentation.extra_ops", []) or []),
    ]
    if ops:
        return [error(
            "model.finetuning.cache_features",
            "true with data augmentation: cached features are computed once per image, so the "
            "augmentation would never reach the model. Set data/augmentation=none, or "
            "cache_features=false to augment",
        )]  # fmt: skip
    return []
