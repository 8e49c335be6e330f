"""Studies and running them: study files and plans, `--set` overrides, run records and their
identity key, N worker processes at once under leases shared with other runners, progress files
and the live view, one run → one record, ETAs, retraining or showing a record.

    python -m normlab.analysis.study run|plan|status|show|verify …   (normlab.analysis.study.cli)
"""
