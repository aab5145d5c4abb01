"""One fused Adam step without ``torch.optim``'s per-call Python bookkeeping.

``torch.optim.Adam(fused=True).step()`` runs one fused kernel, but around it the optimiser re-groups its tensors by
device and dtype, checks its state and flags and enters its decorators on every call: inside a SAC update on this
machine's CPU that was 385, 262 and 67 us for the critic, actor and temperature steps (the last for 10 numbers),
about 12 % of the update (docs/performance.md). :func:`adam_step` calls the same kernel, ``torch._fused_adam_``, on
the optimiser's own state, so checkpoints and ``state_dict()`` are unchanged and the result is the same to the bit.
"""
from __future__ import annotations

import torch


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()`` for a fused Adam, through ``torch._fused_adam_`` directly.

    Same update as ``torch.optim.Adam(fused=True)`` (Kingma & Ba 2015; the same kernel on the same state tensors).
    Parameters whose ``grad`` is None are skipped, as Adam does. Falls back to ``optimizer.step()`` where the fast
    path does not apply: the first step (Adam creates its state there), several parameter groups, a setting the
    direct call does not carry (amsgrad, maximize, a tensor learning rate, decoupled weight decay,
    differentiable or capturable mode, step hooks), or tensors on several devices or dtypes.

    Args:
        optimizer: a ``torch.optim.Adam`` built with ``fused=True``.
    """
    groups = optimizer.param_groups
    group = groups[0]
    if (len(groups) != 1 or not group.get("fused") or group["amsgrad"] or group["maximize"]
            or group["differentiable"] or group["capturable"] or group.get("decoupled_weight_decay", False)
            or isinstance(group["lr"], torch.Tensor) or optimizer._optimizer_step_pre_hooks
            or optimizer._optimizer_step_post_hooks):
        optimizer.step()
        return
    params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
    state = optimizer.state
    for p in group["params"]:
        if p.grad is None:
            continue
        s = state.get(p)
        if not s:  # first step after construction: torch.optim creates the state
            optimizer.step()
            return
        params.append(p)
        grads.append(p.grad)
        exp_avgs.append(s["exp_avg"])
        exp_avg_sqs.append(s["exp_avg_sq"])
        steps.append(s["step"])
    if not params:
        return
    if len({(p.device, p.dtype) for p in params}) != 1:
        optimizer.step()
        return
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
                       beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                       grad_scale=None, found_inf=None)


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its per-call Python bookkeeping: every parameter's
    ``grad`` becomes None."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
