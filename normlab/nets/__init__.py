"""The networks: norm layers, the blocks nets are made of, the layout language, and the one
`build` (normlab.nets.build) that turns a recipe's `model` into a torch module.

This file imports nothing, so that normlab.nets.layout (the grammar) loads without torch.
"""
