"""Feature-distribution tracking, as in Fig. 3 of Wu & He, "Group Normalization" (2018).

Once per epoch, a fixed batch of test images goes through the model in eval mode and the
1st/20th/80th/99th percentiles of the last conv block's output are recorded before and after
its norm layer. How wide and how stable those percentiles are is what each norm changes.
"Before" is the norm layer's input, "after" its output: in the MNIST net's blocks
(Conv → ReLU → Norm → Dropout) the input is the ReLU's output, so its low percentiles are often
0; in the CIFAR net's SepConv (… → Conv → Norm → ReLU) and a conv-norm-relu layout's blocks it
is the conv's output (in seed 004's last block, the residual sum). Cheap: one
forward pass of a few hundred images, no RNG use.
"""

from collections.abc import Callable

import torch
from torch import nn

from normlab.nets.blocks import Block
from normlab.nets.resnet import SepConv

PERCENTILES = (1, 20, 80, 99)
PROBE_IMAGES = 256  # the first N test images: the fixed batch whose features are tracked


def outer_blocks(module: nn.Module) -> list[nn.Module]:
    """The conv blocks of `module` in order, not looking inside a block: a residual block of a
    layout (a Block around a Sum) counts as one, its inner blocks not at all."""
    found = []
    for child in module.children():
        found += [child] if isinstance(child, (Block, SepConv)) else outer_blocks(child)
    return found


def last_norm(model: nn.Module) -> nn.Module:
    """The norm layer (or Identity, for norm=none) of the model's last conv block, index 2 in
    every kind; in a layout ending in a residual (seed 004), the norm after the residual sum."""
    blocks = outer_blocks(model)
    if not blocks:
        raise TypeError(f"{type(model).__name__} has no conv block to probe")
    return blocks[-1][2]


def percentiles(values: torch.Tensor, prefix: str) -> dict[str, float]:
    """{'<prefix>/p01': …, '<prefix>/p99': …} over every element of `values`."""
    q = torch.tensor([p / 100 for p in PERCENTILES], device=values.device)
    found = torch.quantile(values.float().flatten(), q).tolist()
    return {f"{prefix}/p{p:02d}": v for p, v in zip(PERCENTILES, found, strict=True)}


def feature_probe(images: torch.Tensor) -> Callable[[nn.Module], dict[str, float]]:
    """A probe for `loop.fit`: percentiles of the last block's norm input and output on `images`.

    `images` is a ready input batch (already normalised). Hooks live only during the probe's
    forward pass; the model's train/eval mode is restored afterwards.
    """

    def probe(model: nn.Module) -> dict[str, float]:
        model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: hook the plain module
        seen: dict[str, torch.Tensor] = {}
        hooks = [
            last_norm(model).register_forward_hook(
                lambda m, inputs, out: seen.update(pre_norm=inputs[0], post_norm=out)
            )
        ]
        was_training = model.training
        try:
            model.eval()
            with torch.inference_mode():
                model(images)
                return {
                    **percentiles(seen["pre_norm"], "features/pre_norm"),
                    **percentiles(seen["post_norm"], "features/post_norm"),
                }
        finally:
            for hook in hooks:
                hook.remove()
            model.train(was_training)

    return probe
