"""What training optimises and how: the L1 term, SGD with L2 weight decay, the lr schedule.

The penalties act on the parameters of a scope (`penalized`): conv/linear weights by
default, or as a write-up's code did (README: penalties); weight_stats reports the same set,
so the logged terms show exactly what was penalised.
"""

from bisect import bisect_right
from collections.abc import Sequence

import torch
from torch import nn

from normlab.recipe import Recipe
from normlab.types import Scope


def penalized(model: nn.Module, scope: Scope = "weights") -> list[nn.Parameter]:
    """The parameters L1 or L2 act on, by scope (types.Scope):

    weights              conv and linear weights, never norm affines or biases (normlab's)
    weights+norm-scales  every parameter named "weight": those and the norms' scales (seed 002)
    all                  every parameter, biases and norm shifts too (the other seeds' code)
    """
    if scope == "all":
        return list(model.parameters())
    if scope == "weights+norm-scales":
        return [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "weight"]
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def weight_stats(model: nn.Module, scope: Scope = "weights") -> tuple[float, float, float]:
    """Σ|w|, Σw² and the fraction of |w| < 1e-3, over the parameters of `scope` only."""
    with torch.no_grad():
        flat = torch.cat([w.detach().flatten().float() for w in penalized(model, scope)])
        return (
            flat.abs().sum().item(),
            flat.square().sum().item(),
            (flat.abs() < 1e-3).float().mean().item(),
        )


def l1_term(
    model: nn.Module, l1: float, form: str = "sum", scope: Scope = "weights"
) -> torch.Tensor:
    """The term added to the loss: l1 · Σ|w| (form sum), or l1 · Σ over tensors of mean |w|
    (form mean, seed 003's: each weight then weighs l1 / its tensor's size), over `scope`."""
    if form == "mean":
        return l1 * sum(w.abs().mean() for w in penalized(model, scope))
    return l1 * sum(w.abs().sum() for w in penalized(model, scope))


def make_optimizer(
    model: nn.Module,
    lr: float,
    momentum: float,
    l2: float,
    *,
    nesterov: bool = True,
    scope: Scope = "weights",
) -> torch.optim.Optimizer:
    """SGD with weight decay `l2` (the gradient of l2/2·Σw²) on the parameters of `scope` only;
    Nesterov momentum if `nesterov` and momentum > 0 (torch has no Nesterov without momentum)."""
    decay = {id(w) for w in penalized(model, scope)}
    groups = [
        {"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": l2},
        {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def make_scheduler(
    opt: torch.optim.Optimizer,
    schedule: str,
    lr: float,
    total_steps: int,
    *,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    epoch_steps: int = 1,
):
    """Per-step learning-rate schedule.

    onecycle is Smith's policy as torch implements it: lr warms up from lr/25 to `lr` over the
    first 25 % of steps, then anneals (cosine) to ~0, while momentum cycles 0.95 → 0.85 → 0.95
    (so `momentum` applies to cosine/constant only). The warm-up is at least 1.5 steps: with
    exactly one step OneCycleLR divides by zero, which only 1-5-step smoke runs could hit.
    step is an epoch-stepped StepLR/MultiStepLR, stepped here per batch as the others: every
    step of epoch e (1-based; `epoch_steps` steps each) runs at lr · gamma^(milestones < e).
    """
    if schedule == "onecycle":
        warmup = min(0.75, max(0.25, 1.5 / total_steps))
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total_steps, pct_start=warmup
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: gamma ** bisect_right(milestones, step // epoch_steps)
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def recipe_scheduler(opt: torch.optim.Optimizer, recipe: Recipe, epoch_steps: int):
    """make_scheduler with the recipe's schedule, over its epochs of `epoch_steps` steps each:
    the one schedule of every training loop, so that two loops of one recipe agree."""
    return make_scheduler(
        opt,
        recipe.schedule,
        recipe.lr,
        recipe.epochs * epoch_steps,
        milestones=recipe.milestones,
        gamma=recipe.gamma,
        epoch_steps=epoch_steps,
    )
