"""Judging claims: studies/claims.yaml's schema, the statistics (Welch, Holm, TOST, detectable
difference), which runs count (did each learn), how numbers are written, and each verdict.
"""
