"""Inside an image model: Grad-CAM heat maps, intermediate activations, first-layer filters.

    python -m dlrecipe.report outputs/train/<date>/<time> --target-layer net.features.6

Grad-CAM (the grad-cam package) weights the target layer's feature maps by the gradient of
the predicted class and upsamples them to the input size: where the model looked. The
target layer defaults to the last convolution; any module name of the model can be given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlrecipe.errors import ConfigError


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    modules = dict(model.named_modules())
    if name:
        if name not in modules:
            raise ConfigError(
                f"report.target_layer={name!r} is not a layer of this model; convolutions are {list(conv_layers(model))}"
            )
        return name, modules[name]
    convs = conv_layers(model)
    if not convs:
        raise ConfigError(
            "Grad-CAM needs a convolutional layer; set report.target_layer to a module name"
        )
    last = list(convs)[-1]
    return last, convs[last]


def gradcam(
    model: nn.Module, inputs: torch.Tensor, classes: list[int], layer: nn.Module, task: str
) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] at the input's spatial size."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import (
        BinaryClassifierOutputTarget,
        ClassifierOutputTarget,
    )

    target = BinaryClassifierOutputTarget if task == "binary" else ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=[target(c) for c in classes])


def activations(model: nn.Module, sample: torch.Tensor, path: Path, channels: int = 8) -> Path:
    """The first channels of every convolution's output for one sample, one row per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out.detach()))
             for n, m in conv_layers(model).items()]  # fmt: skip
    with torch.no_grad():
        model(sample[None])
    for h in hooks:
        h.remove()
    fig, axes = plt.subplots(
        len(captured), channels, figsize=(1.4 * channels, 1.5 * len(captured)), squeeze=False
    )
    for row, (name, out) in enumerate(captured.items()):
        for c in range(channels):
            ax = axes[row][c]
            ax.axis("off")
            if c < out.shape[1]:
                ax.imshow(out[0, c].cpu().numpy(), cmap="viridis")
        axes[row][0].set_title(name, fontsize=7, loc="left")
    fig.suptitle("activations of each convolution (first channels) for one test image", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def first_filters(model: nn.Module, path: Path, limit: int = 32) -> Path:
    """The first convolution's kernels, each min-max scaled, as small images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weight = next(iter(conv_layers(model).values())).weight.detach().cpu()[:limit]
    columns = 8
    rows = -(-len(weight) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, kernel in enumerate(weight):
        k = (kernel - kernel.min()) / (kernel.max() - kernel.min() + 1e-8)
        axes.flat[i].imshow(
            k[0] if k.shape[0] != 3 else k.permute(1, 2, 0),
            cmap="gray" if k.shape[0] != 3 else None,
        )
    fig.suptitle("first-layer filters", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def filter_patterns(model: nn.Module, layer: nn.Module, input_shape: tuple[int, ...], path: Path, n: int = 8, steps: int = 60) -> Path:  # fmt: skip
    """The input each of the layer's first n filters responds to most, by gradient ascent.

    Starts from small noise and maximizes the filter's mean activation with a small L2 penalty
    that keeps the pattern bounded; the model itself is not changed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    patterns = []
    generator = torch.Generator().manual_seed(0)
    try:
        for channel in range(n):
            x = (
                (0.1 * torch.randn(1, *input_shape, generator=generator))
                .to(device)
                .requires_grad_(True)
            )
            optimizer = torch.optim.Adam([x], lr=0.1)
            for _ in range(steps):
                captured.clear()
                optimizer.zero_grad()
                model(x)
                out = captured[-1]
                if channel >= out.shape[1]:
                    break
                loss = -out[0, channel].mean() + 1e-2 * (x**2).mean()
                loss.backward()
                optimizer.step()
            patterns.append(x.detach()[0].cpu())
    finally:
        hook.remove()
        model.train(was_training)
    fig, axes = plt.subplots(1, len(patterns), figsize=(1.5 * len(patterns), 1.8), squeeze=False)
    for i, p in enumerate(patterns):
        p = (p - p.min()) / (p.max() - p.min() + 1e-8)
        ax = axes[0][i]
        ax.imshow(
            p[0] if p.shape[0] != 3 else p.permute(1, 2, 0),
            cmap="gray" if p.shape[0] != 3 else None,
        )
        ax.set_title(f"filter {i}", fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
