"""Gradient checks in float64: analytic gradients of the project's layers, net and loss against
finite differences (torch.autograd.gradcheck), and that no sample's output depends on another's.

    python -m dlrecipe.train experiment=digits_mlp model.net.activation=gelu debug=sanity

A net has tens of thousands of parameters, one finite difference each: too slow. So the net is
checked along a few random directions instead: f(s, t) = net(x + sum s_i a_i; w + sum t_j b_j)
near s = t = 0 has a handful of inputs, and gradcheck compares its exact Jacobian (which is the
net's Jacobian times the random directions, so a wrong gradient of any parameter shows up)
with finite differences in a few dozen passes, and stays cheap when it fails.
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call

from dlrecipe.models.module import LitModel
from dlrecipe.models.nets.layers import ACTIVATIONS
from dlrecipe.sanity.result import Check

DIRECTIONS = 4  # random directions in input space and in parameter space
HINT = (
    "an analytic gradient disagrees with finite differences: a custom autograd.Function with a "
    "wrong backward, an in-place op that overwrites a saved tensor, a non-differentiable op "
    "(argmax, rounding, .detach()) inside the forward, or a kink hit exactly (rerun with "
    "another seed to rule that out)"
)


def _gradcheck(fn, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """None when gradients agree, else gradcheck's first line."""
    try:
        torch.autograd.gradcheck(fn, inputs, atol=1e-5, rtol=1e-3)
    except Exception as err:  # gradcheck raises GradcheckError; anything else is a failure too
        return str(err).strip().splitlines()[0][:200]
    return None


def gradcheck_layers(
    model: LitModel, batch: tuple[torch.Tensor, torch.Tensor], samples: int
) -> Check:
    """Every activation of layers.py, the configured net (inputs and parameters) and the loss."""
    generator = torch.Generator().manual_seed(0)
    failures: dict[str, str] = {}
    for name, cls in ACTIVATIONS.items():
        x = torch.randn(4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
        error = _gradcheck(cls(), (x,))
        if error:
            failures[f"activation {name}"] = error
    net = copy.deepcopy(model.net).double().eval()  # eval: dropout off, batch norm deterministic
    params = {k: p.detach() for k, p in net.named_parameters()}
    x = batch[0][:samples].double()
    k = DIRECTIONS
    along_x = torch.randn(k, *x.shape, generator=generator, dtype=torch.float64)
    along_w = {n: torch.randn(k, *p.shape, generator=generator, dtype=torch.float64) for n, p in params.items()}  # fmt: skip

    def net_fn(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        moved = {n: p + torch.tensordot(t, along_w[n], dims=1) for n, p in params.items()}
        return functional_call(net, moved, (x + torch.tensordot(s, along_x, dims=1),))

    zero = torch.zeros(k, dtype=torch.float64)
    error = _gradcheck(
        net_fn, (zero.clone().requires_grad_(True), zero.clone().requires_grad_(True))
    )
    if error:
        failures["net"] = error
    task = model.info.task_obj
    with torch.no_grad():
        out = net(x).detach().clone().requires_grad_(True)
    y = model.scale_target(batch[1][:samples])
    loss_fn = copy.deepcopy(model.loss_fn).double()

    def loss_of(outputs: torch.Tensor) -> torch.Tensor:
        outputs, targets = task.loss_inputs(outputs, y)
        return loss_fn(outputs, targets.double() if targets.is_floating_point() else targets)

    error = _gradcheck(loss_of, (out,))
    if error:
        failures[f"loss {type(model.loss_fn).__name__}"] = error
    checked = len(ACTIVATIONS) + 2
    return Check(
        "gradient check (float64)",
        "fail" if failures else "pass",
        "; ".join(f"{k}: {v}" for k, v in failures.items()) or
        f"{checked - len(failures)}/{checked} agree: {len(ACTIVATIONS)} activations, "
        f"{type(net).__name__} ({sum(p.numel() for p in params.values()):,} parameters), "
        f"{type(model.loss_fn).__name__}",
        "analytic = numerical gradient",
        hint=HINT,
        values={"failures": failures},
    )  # fmt: skip


def batch_independence(model: LitModel, batch: tuple[torch.Tensor, torch.Tensor]) -> Check:
    """In eval mode, sample 0's output must have zero gradient w.r.t. every other sample."""
    net = copy.deepcopy(model.net).eval()
    x = batch[0][:4].clone().requires_grad_(True)
    net(x)[0].sum().backward()
    leak = float(x.grad[1:].abs().max()) if len(x) > 1 else 0.0
    return Check(
        "samples independent",
        "fail" if leak > 0 else "pass",
        f"max |d out[0] / d x[1:]| = {leak:.3g}",
        "0 (in eval mode)",
        hint="one sample's output depends on other samples of the batch: a reshape / view / "
        "transpose that mixes the batch axis, or a reduction over dim 0 inside the net",
        values={"leak": leak},
    )
