"""EXPERIMENTAL, used by no stage and no study yet: K runs that share a network shape and a
recipe, trained as one wide model (issue 17; `make bench` measures it).

Kept apart from the training library on purpose: no DVC stage imports this package, so it is
in no stage's dependencies nor in the checkpoint fingerprint, and changing it never makes
`dvc repro` retrain. fit (the packed loop), merge (solo models ↔ the wide one), wide (the wide
layers torch lacks), epochs (each run's epoch records from a packed epoch).
"""
