"""`python -m normlab.analysis.report`: the report command line (normlab.analysis.report.cli)."""

from normlab.analysis.report.cli import main
from normlab.errors import run_stage

run_stage(main)
