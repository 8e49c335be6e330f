"""Training one run: device and precision, params → data and model on the device (prepare),
the loop, the optimizer and schedule, scoring, per-epoch checkpoints, and eval.json's numbers.
"""
