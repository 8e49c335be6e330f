"""Studies and running them: study files and plans, `--set` overrides, run records and their
identity key, N worker processes at once, one run → one record, ETAs, retraining a record.

    python -m normlab.analysis.study run|plan|verify …   (normlab.analysis.study.cli)
"""
