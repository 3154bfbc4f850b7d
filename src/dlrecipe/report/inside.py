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
from dlrecipe.report.layout import inches
from dlrecipe.tasks import Task, as_task


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
    model: nn.Module, inputs: torch.Tensor, classes: list[int], layer: nn.Module, task: str | Task
) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] at the input's spatial size."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import (
        BinaryClassifierOutputTarget,
        ClassifierOutputTarget,
    )

    # One logit (binary): its sign is the class; otherwise one logit per class.
    one_logit = as_task(task).num_outputs == 1
    target = BinaryClassifierOutputTarget if one_logit else ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=[target(c) for c in classes])


def tile(maps: np.ndarray, columns: int) -> np.ndarray:
    """Maps (N, H, W) as one (rows*(H+1)-1, columns*(W+1)-1) mosaic with NaN (blank) gaps:
    one image and one shared colour scale instead of N small axes (also much faster to draw)."""
    n, h, w = maps.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan, dtype=np.float32)
    for i, m in enumerate(maps):
        r, c = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = m
    return out


def activations(model: nn.Module, sample: torch.Tensor, path: Path, channels: int = 8) -> Path:
    """The first channels of every convolution's output for one sample: one row per layer,
    each with its own colour bar (activation scales differ from layer to layer)."""
    plt = _pyplot()
    captured: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out.detach()))
             for n, m in conv_layers(model).items()]  # fmt: skip
    with torch.no_grad():
        model(sample[None])
    for h in hooks:
        h.remove()
    # Axes placed in inches (rows of a fixed height, the colour bar in a reserved right margin):
    # a layout engine over rows of colour bars cost more than drawing them.
    row_in, top_in, width_in = 1.25, 0.35, 9.0
    height = row_in * len(captured) + top_in
    fig = plt.figure(figsize=(width_in, height))
    for row, (name, out) in enumerate(captured.items()):
        maps = out[0, :channels].float().cpu().numpy()
        bottom = height - top_in - row_in * (row + 1) + 0.1
        ax = fig.add_axes(inches(fig, 0.18, bottom, 7.74, row_in - 0.35))
        bar = fig.add_axes(inches(fig, 8.1, bottom, 0.135, row_in - 0.35))
        shown = ax.imshow(tile(maps, len(maps)), cmap="viridis", aspect="auto")
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{name}: channels 0-{len(maps) - 1}, {maps.shape[1]}x{maps.shape[2]}", fontsize=7, loc="left")  # fmt: skip
        fig.colorbar(shown, cax=bar).ax.tick_params(labelsize=7)
    fig.suptitle("activations of each convolution for one test image (colour bar: activation)", fontsize=9, y=1 - 0.08 / height)  # fmt: skip
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def first_filters(model: nn.Module, path: Path, limit: int = 32) -> Path:
    """The first convolution's kernels as raw weights on one diverging colour scale (0 white),
    so their signs and relative strengths read off the colour bar; RGB kernels as colours."""
    plt = _pyplot()
    weight = next(iter(conv_layers(model).values())).weight.detach().float().cpu()[:limit]
    columns = min(8, len(weight))
    fig, ax = plt.subplots(figsize=(1.0 * columns + 1.5, 1.0 * -(-len(weight) // columns) + 0.7),
                           layout="constrained")  # fmt: skip
    if weight.shape[1] == 3:  # colour kernels: each min-max scaled to show its colour pattern
        k = weight - weight.amin((1, 2, 3), keepdim=True)
        k = (k / (k.amax((1, 2, 3), keepdim=True) + 1e-8)).numpy()
        ax.imshow(np.stack([tile(k[:, c], columns) for c in range(3)], -1), interpolation="nearest")
        ax.set_title("first-layer filters (RGB, each scaled to its own range)", fontsize=9)
    else:  # the first input channel's kernels
        maps = weight[:, 0].numpy()
        top = float(np.abs(maps).max()) or 1.0
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#bbbbbb")  # gaps grey: white is 0
        shown = ax.imshow(tile(maps, columns), cmap=cmap, vmin=-top, vmax=top)
        fig.colorbar(shown, ax=ax, label="weight")
        ax.set_title(f"first-layer filters ({len(weight)}, input channel 0)", fontsize=9)
    ax.set(xticks=[], yticks=[])
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    fig, axes = plt.subplots(1, len(patterns), figsize=(1.5 * len(patterns), 1.9), squeeze=False, layout="constrained")  # fmt: skip
    for i, p in enumerate(patterns):
        p = (p - p.min()) / (p.max() - p.min() + 1e-8)
        ax = axes[0][i]
        ax.imshow(
            p[0] if p.shape[0] != 3 else p.permute(1, 2, 0),
            cmap="gray" if p.shape[0] != 3 else None,
        )
        ax.set_title(f"filter {i}", fontsize=7)
        ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
