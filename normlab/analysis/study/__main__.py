"""`python -m normlab.analysis.study`: the study command line (normlab.analysis.study.cli)."""

from normlab.analysis.study.cli import main
from normlab.errors import run_stage

run_stage(main)
