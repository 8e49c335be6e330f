"""Where the pipeline reads and writes, in one place: the stages, a study's worker and the
tests name the same files. Paths are relative to the repository root, where DVC runs stages.
"""

from pathlib import Path

PARAMS = Path("params.yaml")  # the study axes, overrides and engine knobs a user edits
RECIPES = Path("recipes.yaml")  # the training recipe of each dataset
RAW = Path("data/raw")  # verified dataset files, data/raw/<dataset>/
PARAMS_JSON = Path("model/params.json")  # the resolved params the validate stage accepted
MODEL = Path("model/model.pt")
LIVE = Path("dvclive")  # DVCLive's folder: per-epoch metrics and plots
EVAL_JSON = Path("metrics/eval.json")
RUN_JSON = Path("metrics/run.json")
CONFUSION_CSV = Path("plots/confusion.csv")
CONFUSION_PNG = Path("plots/confusion.png")
MISCLASSIFIED_PNG = Path("plots/misclassified.png")
