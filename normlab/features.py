"""Feature-distribution tracking, as in Fig. 3 of Wu & He, "Group Normalization" (2018).

Once per epoch, a fixed batch of test images goes through the model in eval mode and the
1st/20th/80th/99th percentiles of the last conv block's output are recorded before and after
its norm layer. How wide and how stable those percentiles are is what each norm changes.
In normlab's blocks (Conv → ReLU → Norm → Dropout) "before the norm" is the ReLU's output, so
its low percentiles are often 0. Cheap: one forward pass of a few hundred images, no RNG use.
"""

from typing import Callable

import torch
from torch import nn

from normlab.models import ConvBlock

PERCENTILES = (1, 20, 80, 99)


def last_block(model: nn.Module) -> ConvBlock:
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    if not blocks:
        raise TypeError(f"{type(model).__name__} has no ConvBlock to probe")
    return blocks[-1]


def percentiles(values: torch.Tensor, prefix: str) -> dict[str, float]:
    """{'<prefix>/p01': …, '<prefix>/p99': …} over every element of `values`."""
    q = torch.tensor([p / 100 for p in PERCENTILES], device=values.device)
    found = torch.quantile(values.float().flatten(), q).tolist()
    return {f"{prefix}/p{p:02d}": v for p, v in zip(PERCENTILES, found)}


def feature_probe(images: torch.Tensor) -> Callable[[nn.Module], dict[str, float]]:
    """A probe for `engine.fit`: percentiles of the last ConvBlock's ReLU and norm outputs on `images`.

    `images` is a ready input batch (already normalised). Hooks live only during the probe's
    forward pass; the model's train/eval mode is restored afterwards.
    """

    def probe(model: nn.Module) -> dict[str, float]:
        model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: hook the plain module
        _, relu, norm, _ = last_block(model)
        seen: dict[str, torch.Tensor] = {}
        hooks = [relu.register_forward_hook(lambda m, i, out: seen.__setitem__("pre_norm", out)),
                 norm.register_forward_hook(lambda m, i, out: seen.__setitem__("post_norm", out))]
        was_training = model.training
        try:
            model.eval()
            with torch.inference_mode():
                model(images)
                return {**percentiles(seen["pre_norm"], "features/pre_norm"),
                        **percentiles(seen["post_norm"], "features/post_norm")}
        finally:
            for hook in hooks:
                hook.remove()
            model.train(was_training)

    return probe
