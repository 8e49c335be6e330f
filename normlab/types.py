"""The names every part of normlab shares: which norms, datasets, devices and penalty scopes
exist. Plain type aliases, importing nothing of normlab, so that a module needing only a name
(the norms, the optimizer, the layout grammar) loads no params parsing and no torch.
"""

from typing import Literal, get_args

Norm = Literal["bn", "gn", "ln", "in", "none"]
Dataset = Literal["mnist", "fashion-mnist", "cifar10", "cifar10-proxy"]
Device = Literal["auto", "cpu", "cuda", "mps"]
# The datasets recipes.yaml has a recipe for (the proxy trains with cifar10's: config.RECIPE_OF).
RecipeName = Literal["mnist", "fashion-mnist", "cifar10"]
# What L1 / L2 act on: conv and linear weights (normlab's), those plus the norms' scales (seed
# 002: every parameter named "weight"), or every parameter (the other seeds' code).
Scope = Literal["weights", "weights+norm-scales", "all"]
# How a layout's blocks run: Conv → ReLU → Norm (normlab's, the MNIST seeds') or Conv → Norm →
# ReLU (seed 004).
Order = Literal["conv-relu-norm", "conv-norm-relu"]

ORDERS: tuple[Order, ...] = get_args(Order)
