"""A pretrained backbone with a new head sized by the task: the net behind model=finetune.

    python -m dlrecipe.train experiment=digits_finetune

The input is adapted to what the backbone saw in pretraining: grayscale is repeated to three
channels when it wants RGB, images are resized to `input_size`, and they are normalized with
the pretraining mean / std (so the data config uses normalization=none). The backbone is cut
into `blocks` (conv1, layer1.0, ..., the units the finetuning schedule unfreezes from the
top); blocks whose parameters are all frozen stay in eval mode even while training, so their
batch-norm statistics never change and their dropout never fires.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlrecipe.compat import is_batch_norm
from dlrecipe.errors import ConfigError
from dlrecipe.models.nets.backbone import Backbone, build_backbone
from dlrecipe.models.nets.layers import activation as make_activation


class PretrainedNet(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        backbone: dict | Backbone,
        input_size: int | Sequence[int] | None = None,
        normalize: bool = True,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        activation: str = "relu",
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"model=finetune needs images (C, H, W) but the data has shape {tuple(input_shape)}; "
                "use model=mlp for tables"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.net.dropout={dropout} must be in [0, 1)")
        # A dict builds timm / torchvision here (weights hub or none); files and earlier runs
        # come resolved from dlrecipe.models.backbones (the layer that may read the disk).
        parts = backbone if isinstance(backbone, Backbone) else build_backbone(**backbone)
        self.name = parts.name
        # weights=none: a random backbone, which model/finetuning=auto then trains from scratch
        self.pretrained = parts.pretrained
        self.backbone, self.num_features = parts.module, parts.num_features
        self.in_chans = parts.in_chans
        if input_size is None:
            size = parts.input_size or tuple(input_shape[1:])
        else:
            size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.input_size = tuple(int(s) for s in size)
        channels = int(input_shape[0])
        if channels not in (1, self.in_chans):
            raise ConfigError(
                f"the images have {channels} channels but backbone {self.name!r} takes "
                f"{self.in_chans}; only grayscale is adapted (repeated to {self.in_chans})"
            )
        shape = (1, self.in_chans, 1, 1)
        # Saved with the weights, so a checkpoint is evaluated with the statistics and size it
        # was trained with even when the rebuilt backbone (weights=none) would resolve others.
        mean = torch.tensor(parts.mean if normalize else [0.0] * self.in_chans)
        std = torch.tensor(parts.std if normalize else [1.0] * self.in_chans)
        self.register_buffer("mean", mean.view(shape).float())
        self.register_buffer("std", std.view(shape).float())
        self.register_buffer("size", torch.tensor(self.input_size))
        self.register_load_state_dict_post_hook(_read_size)
        self._check_size(parts.reduction)
        head: list[nn.Module] = []
        width = self.num_features
        for units in hidden:
            head += [nn.Linear(width, int(units)), make_activation(activation)]
            width = int(units)
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(width, num_outputs))
        self.head = nn.Sequential(*head)
        self.features_cached = False  # set while training the head on cached features
        self.train_bn = (
            True  # model.finetuning.train_bn: batch norm of unfrozen blocks in train mode
        )
        self.blocks = backbone_blocks(self.backbone)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapt(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features_cached:
            return self.head(x)
        return self.head(self.features(x))

    def fresh_modules(self) -> list[nn.Module]:
        """What model.init initializes: the new head only, never the pretrained backbone."""
        return [self.head]

    def train(self, mode: bool = True) -> PretrainedNet:
        super().train(mode)
        if mode:
            for block in self.blocks.values():
                if is_frozen(block):
                    block.eval()
                elif not self.train_bn:  # unfrozen, but batch statistics stay the pretrained ones
                    for module in block.modules():
                        if is_batch_norm(module):
                            module.eval()
        return self

    def _check_size(self, reduction: int) -> None:
        """An image smaller than the backbone's total down-sampling leaves nothing to pool."""
        height, width = self.input_size
        if min(height, width) < reduction:
            raise ConfigError(
                f"{height}x{width} images are too small for {self.name!r}, which shrinks them "
                f"{reduction}x; set model.net.input_size={reduction} or larger"
            )
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                self.backbone(torch.zeros(1, self.in_chans, height, width))
        except RuntimeError as err:
            raise ConfigError(
                f"backbone {self.name!r} cannot take {height}x{width} inputs ({err}); set "
                "model.net.input_size to its pretraining size (null)"
            ) from err
        finally:
            self.backbone.train(was_training)


def _read_size(net: PretrainedNet, incompatible_keys: object) -> None:
    net.input_size = tuple(int(s) for s in net.size.tolist())


def is_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def backbone_blocks(backbone: nn.Module) -> dict[str, nn.Module]:
    """The backbone in unfreezable units, bottom to top.

    The top-level children, with Sequential / ModuleList children opened one level (resnet's
    layer1 becomes layer1.0, layer1.1). A unit starts at each child that holds a weight
    matrix or kernel; norm layers, activations, pooling and dropout join the unit before them.
    """
    children: list[tuple[str, nn.Module]] = []
    for name, child in backbone.named_children():
        if isinstance(child, nn.Sequential | nn.ModuleList):
            children += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            children.append((name, child))
    blocks: dict[str, list[nn.Module]] = {}
    current: list[nn.Module] | None = None
    for name, child in children:
        if current is None or any(p.ndim >= 2 for p in child.parameters()):
            current = blocks[name] = []
        current.append(child)
    own = list(backbone.parameters(recurse=False))  # a ViT's cls_token and pos_embed
    if own and blocks:
        holder = nn.Module()
        holder.params = nn.ParameterList(own)
        blocks[next(iter(blocks))].append(holder)  # they sit next to the input: the bottom block
    return {name: nn.Sequential(*members) for name, members in blocks.items()}
