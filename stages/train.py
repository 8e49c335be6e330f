"""Stage `train`: fit one variant, log every epoch with DVCLive, save model/model.pt.

The per-epoch checkpoint lives in normlab's cache (normlab.train.checkpoint), not among this
stage's outputs, so a killed `dvc repro` or `dvc exp run` resumes when rerun.
"""

import torch
from dvclive import Live

from normlab import config
from normlab.data import specs
from normlab.errors import run_stage
from normlab.io import atomic_path
from normlab.nets.build import count_params
from normlab.paths import LIVE, MODEL
from normlab.train import checkpoint, run
from normlab.train.prepare import prepare


def main() -> None:
    params = config.resolved()
    prep = prepare(params)
    r = params.recipe
    held = ""
    if prep.val is not None:
        held = f" (+ {len(prep.val.labels)} val: the last training images)"
    norms = sorted({type(m).__name__ for m in prep.model.modules() if "Norm" in type(m).__name__})
    print(
        f"{specs.describe(params.dataset)}: {len(prep.train.labels)} train / "
        f"{len(prep.test.labels)} test images{held} on {prep.device} ({prep.precision}); "
        f"model {r.model} {count_params(prep.model):,} params, "
        f"norm={params.norm} ({', '.join(norms) or 'none'}), "
        f"l1={params.l1:g} (added to the loss), l2={params.l2:g} (weight decay)"
    )
    checkpoint.prune()
    fingerprint = checkpoint.fingerprint(params.model_dump())
    saved = checkpoint.Checkpoint(checkpoint.cache_path(fingerprint), fingerprint)
    with Live(str(LIVE), dvcyaml=False, save_dvc_exp=False, report=None) as live:

        def log(record: dict) -> None:
            live.step = record["epoch"]
            for key, value in record.items():
                if key != "epoch":
                    live.log_metric(key, value)
            live.next_step()

        fitted = run.train(params, prep, saved, log)
    state = {
        "model": prep.model.state_dict(),
        "history": fitted.history,
        "seconds": fitted.seconds,
        "device": str(prep.device),
        "precision": prep.precision,
        "torch": str(torch.__version__),
    }
    with atomic_path(MODEL) as tmp:
        torch.save(state, tmp)
    saved.remove()
    print(
        f"saved {MODEL}: {r.epochs} epochs in {fitted.seconds:.1f}s, "
        f"final test acc {fitted.history[-1]['test/acc']:.2f}%"
    )


if __name__ == "__main__":
    run_stage(main)
