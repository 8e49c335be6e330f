"""Stage `train`: fit one variant, log every epoch with DVCLive, save model/model.pt."""

from pathlib import Path

import torch
from dvclive import Live

from normlab import config, data
from normlab.checkpoint import Checkpoint, fingerprint
from normlab.engine import compile_model, fit
from normlab.errors import run_stage
from normlab.experiment import prepare, run_for
from normlab.features import feature_probe
from normlab.io import atomic_path
from normlab.models import count_params

MODEL = Path("model/model.pt")
CHECKPOINT = Path("model/checkpoint.pt")
LIVE = "dvclive"
PROBE_IMAGES = 256  # the first N test images: the fixed batch whose features are tracked per epoch


def main() -> None:
    params = config.load()
    exp = prepare(params)
    r = params.recipe
    norms = sorted({type(m).__name__ for m in exp.model.modules() if "Norm" in type(m).__name__})
    print(f"{data.describe(params.dataset)}: {len(exp.train.labels)} train / {len(exp.test.labels)} test images on {exp.device} "
          f"({exp.precision}); "
          f"model {r.model} {count_params(exp.model):,} params, norm={params.norm} ({', '.join(norms) or 'none'}), "
          f"l1={params.l1:g} (added to the loss), l2={params.l2:g} (weight decay)")
    run = run_for(params)
    checkpoint = Checkpoint(CHECKPOINT, fingerprint(params.model_dump()))
    model = compile_model(exp.model, exp.device) if params.engine.compile else exp.model
    with Live(LIVE, dvcyaml=False, save_dvc_exp=False, report=None) as live:
        def log(record: dict) -> None:
            live.step = record["epoch"]
            for key, value in record.items():
                if key != "epoch":
                    live.log_metric(key, value)
            live.next_step()

        probe = feature_probe(exp.batcher(exp.test.images[:PROBE_IMAGES], train=False))
        seconds = fit(model, exp.train, exp.test, exp.batcher, run, exp.autocast, checkpoint, log, probe)
    state = {"model": exp.model.state_dict(), "history": run.history, "seconds": seconds,
             "device": str(exp.device), "precision": exp.precision, "torch": str(torch.__version__)}
    with atomic_path(MODEL) as tmp:
        torch.save(state, tmp)
    print(f"saved {MODEL}: {r.epochs} epochs in {seconds:.1f}s, final test acc {run.history[-1]['test/acc']:.2f}%")


if __name__ == "__main__":
    run_stage(main)
