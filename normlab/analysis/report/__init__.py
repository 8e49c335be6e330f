"""The report: results/README.md, its sections, tables and figures, from run records alone.

python -m normlab.analysis.report [options]   (normlab.analysis.report.cli)
"""
