"""DARTS's second-order architecture gradient.

With w' = w − ξ·(μ·m + ∇_w L_train(w, α) + λ_wd·w) (one SGD step with the optimizer's momentum
buffer m), the gradient of L_val(w', α) with respect to α is

    ∇_α L_val(w', α) − ξ · ∇²_{α,w} L_train(w, α) · ∇_{w'} L_val(w', α)

and the Hessian-vector product is taken by central differences: with ε = 0.01 / ‖∇_{w'} L_val‖,
(∇_α L_train(w + ε v, α) − ∇_α L_train(w − ε v, α)) / 2ε for v = ∇_{w'} L_val. The model's own
parameters are never modified: the shifted weights are passed with `torch.func.functional_call`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call


def unrolled_arch_gradient(
    model: nn.Module,
    arch_params: Sequence[torch.Tensor],
    inputs: Callable[[torch.Tensor], tuple],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train_batch: tuple[torch.Tensor, torch.Tensor],
    val_batch: tuple[torch.Tensor, torch.Tensor],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    momentum_buffers: dict[str, torch.Tensor] | None = None,
    epsilon: float = 0.01,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The α gradients of the unrolled validation loss, that loss, and the validation logits.

    `inputs(images)` gives the arguments of `model`'s forward for a batch, e.g. `(images, arch.weights())`;
    it must build them from `arch_params` each time, so that gradients reach α.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    weights = [p for p in model.parameters() if p.requires_grad]

    def run(params: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        return functional_call(model, params, inputs(images), strict=False)

    x_train, y_train = train_batch
    x_val, y_val = val_batch
    train_loss = loss(run(dict(zip(names, weights, strict=True)), x_train), y_train)
    grads = torch.autograd.grad(train_loss, weights, allow_unused=True)
    unrolled = {}
    for name, w, g in zip(names, weights, grads, strict=True):
        step = (g if g is not None else torch.zeros_like(w)) + weight_decay * w.detach()
        if momentum and momentum_buffers is not None and name in momentum_buffers:
            step = step + momentum * momentum_buffers[name]
        unrolled[name] = (w.detach() - lr * step).requires_grad_(True)

    val_logits = run(unrolled, x_val)
    val_loss = loss(val_logits, y_val)
    outs = torch.autograd.grad(val_loss, [*arch_params, *unrolled.values()], allow_unused=True)
    direct = [
        g if g is not None else torch.zeros_like(a) for g, a in zip(outs[: len(arch_params)], arch_params, strict=True)
    ]
    vector = [
        g if g is not None else torch.zeros_like(w) for g, w in zip(outs[len(arch_params) :], weights, strict=True)
    ]
    norm = torch.sqrt(sum((v.float() ** 2).sum() for v in vector))
    eps = epsilon / max(float(norm), 1e-12)

    def arch_grad_at(sign: float) -> list[torch.Tensor]:
        shifted = {n: w.detach() + sign * eps * v for n, w, v in zip(names, weights, vector, strict=True)}
        shifted_loss = loss(run(shifted, x_train), y_train)
        g = torch.autograd.grad(shifted_loss, arch_params, allow_unused=True)
        return [gi if gi is not None else torch.zeros_like(a) for gi, a in zip(g, arch_params, strict=True)]

    plus, minus = arch_grad_at(1.0), arch_grad_at(-1.0)
    hessian = [(p - m) / (2 * eps) for p, m in zip(plus, minus, strict=True)]
    return [d - lr * h for d, h in zip(direct, hessian, strict=True)], val_loss.detach(), val_logits.detach()


def momentum_buffers(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, torch.Tensor]:
    """SGD's momentum buffer of each named parameter of `model` (missing before the first step)."""
    by_param = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, state in optimizer.state.items():
        if "momentum_buffer" in state and state["momentum_buffer"] is not None and id(p) in by_param:
            out[by_param[id(p)]] = state["momentum_buffer"]
    return out
