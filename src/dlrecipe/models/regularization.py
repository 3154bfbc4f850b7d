"""Penalties and constraints on top of the loss: L1 / elastic net, max-norm, activity regularization.

    python -m dlrecipe.train model.regularization.l1=1e-5 model.regularization.l2=1e-4
    python -m dlrecipe.train model.regularization.max_norm=3
    python -m dlrecipe.train 'model.regularization.activity={layers:[net.head.2],l1:1e-4}'
    python -m dlrecipe.train model.regularization.weight_noise=0.01

Weight penalties apply to the same parameters weight decay does (`models/optim.is_decayed`:
weight matrices and kernels, never biases or normalization scales). Max-norm rescales each
output unit's incoming weights (a row of a linear layer, a filter of a convolution) back to
norm <= c after every optimizer step, through an optimizer step hook. Activity penalties are
on the outputs of named modules (names as in `model.named_modules()`, e.g. `net.features.2`),
caught by forward hooks during training only. Weight noise adds N(0, sigma^2) to every weight
before each training forward and puts the clean weights back after the backward pass (Graves
2011): the gradient is taken at a perturbed point, the update lands on the clean weights, and
evaluation never sees noise. `from_config` returns None when everything is off, so a default
run pays nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dlrecipe.errors import ConfigError
from dlrecipe.models.optim import is_decayed


def l1_penalty(params: list[torch.Tensor]) -> torch.Tensor:
    return sum(p.abs().sum() for p in params)


def l2_penalty(params: list[torch.Tensor]) -> torch.Tensor:
    return sum(p.pow(2).sum() for p in params)


def activity_penalty(output: torch.Tensor, l1: float, l2: float) -> torch.Tensor:
    """l1 * sum|a| + l2 * sum a^2 per sample, averaged over the batch (as Keras does)."""
    flat = output.flatten(1) if output.ndim > 1 else output.unsqueeze(1)
    per_sample = l1 * flat.abs().sum(1) + l2 * flat.pow(2).sum(1)
    return per_sample.mean()


@torch.no_grad()
def apply_max_norm(params: list[torch.Tensor], max_norm: float) -> None:
    """Rescale every output unit's weights (dim 0) whose L2 norm exceeds max_norm back to it."""
    for param in params:
        param.renorm_(2, 0, max_norm)


class Regularization:
    """The switched-on parts, bound to one model: `penalty()` for the loss, `constrain()` per step."""

    def __init__(
        self,
        model: nn.Module,
        l1: float = 0.0,
        l2: float = 0.0,
        max_norm: float | None = None,
        activity: dict[str, Any] | None = None,
        weight_noise: float = 0.0,
    ):
        for key, value in (("l1", l1), ("l2", l2), ("weight_noise", weight_noise)):
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"model.regularization.{key}={value!r} must be a number >= 0")
        if max_norm is not None and not (isinstance(max_norm, int | float) and max_norm > 0):
            raise ConfigError(
                f"model.regularization.max_norm={max_norm!r} must be > 0 (3-4 is usual) or null"
            )
        self.model, self.l1, self.l2, self.max_norm = model, float(l1), float(l2), max_norm
        self.activity_l1, self.activity_l2, self._handles = 0.0, 0.0, []
        self._outputs: list[torch.Tensor] = []
        self.weight_noise = float(weight_noise)
        self._clean: list[tuple[torch.Tensor, torch.Tensor]] = []  # (weight, its clean copy)
        if activity and activity.get("layers"):
            self._attach_activity(model, activity)

    @classmethod
    def from_config(cls, model: nn.Module, config: dict[str, Any] | None) -> Regularization | None:
        """The regularization for model.regularization, or None when every part is off."""
        config = dict(config or {})
        unknown = set(config) - {"l1", "l2", "max_norm", "activity", "weight_noise"}
        if unknown:
            raise ConfigError(
                f"model.regularization has unknown keys {sorted(unknown)}; "
                "use l1, l2, max_norm, activity, weight_noise"
            )
        reg = cls(model, **config)
        used = reg.penalizes or reg.max_norm is not None or reg.weight_noise > 0
        return reg if used else None

    @property
    def weights(self) -> list[torch.Tensor]:
        # Looked up each time: fine-tuning may unfreeze layers during training.
        return [p for p in self.model.parameters() if p.requires_grad and is_decayed(p)]

    @property
    def penalizes(self) -> bool:
        return bool(self.l1 or self.l2 or self._handles)

    def _attach_activity(self, model: nn.Module, activity: dict[str, Any]) -> None:
        unknown = set(activity) - {"layers", "l1", "l2"}
        if unknown:
            raise ConfigError(
                f"model.regularization.activity has unknown keys {sorted(unknown)}; "
                "use layers, l1, l2"
            )
        self.activity_l1 = float(activity.get("l1") or 0.0)
        self.activity_l2 = float(activity.get("l2") or 0.0)
        if (
            self.activity_l1 < 0
            or self.activity_l2 < 0
            or not (self.activity_l1 or self.activity_l2)
        ):
            raise ConfigError(
                "model.regularization.activity needs l1 and/or l2 > 0 (e.g. activity.l1=1e-4) "
                "for its layers"
            )
        modules = dict(model.named_modules())
        for name in activity["layers"]:
            if name not in modules:
                names = [n for n in modules if n.startswith("net.")]
                raise ConfigError(
                    f"model.regularization.activity.layers: no module {name!r}; "
                    f"this model has {names}"
                )
            self._handles.append(modules[name].register_forward_hook(self._keep_output))

    def _keep_output(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():  # training forwards only
            self._outputs.append(output)

    def penalty(self) -> torch.Tensor:
        """The term added to this step's loss (uses, then forgets, the activations just caught)."""
        weights = self.weights
        total = torch.zeros((), device=weights[0].device if weights else None)
        if self.l1:
            total = total + self.l1 * l1_penalty(weights)
        if self.l2:
            total = total + self.l2 * l2_penalty(weights)
        for output in self._outputs:
            total = total + activity_penalty(output, self.activity_l1, self.activity_l2)
        self._outputs.clear()
        return total

    def constrain(self, *_: Any) -> None:
        """An optimizer step post-hook: max-norm right after each update."""
        if self.max_norm is not None:
            apply_max_norm(self.weights, float(self.max_norm))

    @torch.no_grad()
    def perturb(self) -> None:
        """Add N(0, weight_noise^2) to every weight, keeping a clean copy for restore()."""
        self.restore()  # never stack noise on noise (a step that skipped its backward)
        for param in self.weights:
            self._clean.append((param, param.detach().clone()))
            param.add_(torch.randn_like(param), alpha=self.weight_noise)

    @torch.no_grad()
    def restore(self) -> None:
        """Put the clean weights back (exactly: copied, not subtracted)."""
        for param, clean in self._clean:
            param.copy_(clean)
        self._clean.clear()
