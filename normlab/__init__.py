"""normlab: what BatchNorm, GroupNorm, LayerNorm and L1/L2 do to a small CNN, as a DVC pipeline."""
