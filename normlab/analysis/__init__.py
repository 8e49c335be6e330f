"""Analysis on top of the training library, in three packages, each importing only those
before it: study (study files, plans, run records, running them), claims (the statistics and
each claim's verdict), report (results/README.md and its figures).

It imports normlab's training library; the library never imports it, so training (and DVC's
stages) cannot depend on how results are summarised.
"""
