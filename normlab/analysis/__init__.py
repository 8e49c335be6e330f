"""Analysis on top of the training library: studies, run records, verdicts and the report.

It imports `normlab`'s training modules; they never import it, so training (and DVC's
stages) cannot depend on how results are summarised.
"""
