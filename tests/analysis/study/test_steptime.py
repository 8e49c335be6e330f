"""Pricing a run whose batch size no record has, from the step time measured at other batch
sizes (steptime.py), and keeping the price of runs that have records at their own."""

import pytest

from helpers import HOST, record_dict, resolved
from normlab.analysis.study import estimates, records
from normlab.analysis.study.cost import steps_per_epoch
from normlab.analysis.study.steptime import StepTime, fit


def timed(
    batch: int, ms: float, norm: str = "bn", at: tuple[int, int] | None = None, **overrides
) -> records.Record:
    """A record made on HOST whose steps took `ms` each (2 epochs unless overridden), trained
    from minute at[0] to minute at[1] of a day where given (else without times, as before
    issue 28)."""
    params = resolved({"train.epochs": 2, "train.batch_size": batch, "norm": norm, **overrides})
    seconds = ms / 1000 * params["recipe"]["epochs"] * steps_per_epoch(params)
    times = {}
    if at:
        times = {
            f: f"2026-12-06T{m // 60:02d}:{m % 60:02d}:00+00:00"
            for f, m in zip(TIMES, at, strict=True)
        }
    raw = record_dict(params) | {"seconds": seconds} | times
    return records.validate(raw, f"{norm}-{batch}")


TIMES = ("started", "ended")


def run(batch: int, norm: str = "bn", epochs: int = 20) -> dict:
    return resolved({"train.epochs": epochs, "train.batch_size": batch, "norm": norm})


def test_a_small_batch_is_priced_from_its_step_time_not_batch_16s_epochs_times_its_steps():
    """Issue 30: the batch study's records at 16 and 32 priced batch 2 at their epoch × 8 (the
    ratio of steps), about twice what its runs took; a step is a fixed part plus a cost per
    image, and at batch 2 the fixed part is most of it."""
    known = [timed(16, 9.5), timed(32, 13.0)]
    seconds = estimates.estimate(run(2), known, HOST)
    by_steps = 9.5 / 1000 * 3750 * 8 * 20  # batch 16's epoch × 8 steps: what it was priced at
    assert seconds < 0.7 * by_steps
    step = 9.5 - 14 * (13.0 - 9.5) / 16  # the line through 16 and 32, at 2: 6.44 ms
    assert seconds == pytest.approx(step / 1000 * 30000 * 20)  # 64 min, not 95
    assert estimates.price(run(2), known, HOST).how == "from step time, 6.4 ms a step"
    assert estimates.estimate(run(8), known, HOST) == pytest.approx(
        (9.5 - 8 * 3.5 / 16) / 1000 * 7500 * 20
    )


def test_a_run_with_records_at_its_own_batch_size_is_priced_from_their_epochs_as_before():
    known = [timed(16, 9.5), timed(32, 13.0), timed(2, 5.0), timed(2, 7.0)]
    price = estimates.price(run(2), known, HOST)
    assert price.seconds == pytest.approx(6.0 / 1000 * 30000 * 20)  # their mean epoch
    assert price.how == "from 2 records"
    alone = estimates.price(run(32), [timed(64, 20.0)], HOST)  # one batch size: no step time
    assert alone.how == "from batch 64's epochs × 2 steps" and alone.seconds == pytest.approx(
        20.0 / 1000 * 937 * 2 * 20
    )


def test_records_of_any_amount_of_data_measure_a_step():
    """small-batch-lr's records (20,000 images, 10,000 held out, 3 epochs) price the study's
    runs on all 60,000 images: a step does not know how many there are."""
    lr_check = [
        timed(b, ms, **{"data.limit": 20000, "data.val": 10000, "train.epochs": 3})
        for b, ms in ((2, 5.2), (4, 5.3), (8, 5.5))
    ]
    known = [*lr_check, timed(16, 9.5), timed(32, 13.0)]
    assert estimates.price(run(4), known, HOST).seconds == pytest.approx(5.3 / 1000 * 15000 * 20)
    between = resolved({"train.epochs": 20, "train.batch_size": 6})
    assert estimates.estimate(between, known, HOST) == pytest.approx(5.4 / 1000 * 10000 * 20)


def test_a_norm_measured_only_at_larger_batches_takes_every_norms_small_ones():
    known = [timed(2, 5.0), timed(4, 6.0), timed(16, 11.0, "gn"), timed(32, 15.0, "gn")]
    assert fit(run(2, "gn"), known, HOST).at(2) == 0.005  # bn's, measured there
    assert fit(run(64, "gn"), known, HOST).sizes == (16, 32)  # its own, at and above 16
    assert fit(run(2, "ln"), known, HOST).sizes == (2, 4, 16, 32)
    assert fit(run(2), known, "NVIDIA H200, AMD EPYC (16 CPUs)") is None  # another machine's
    cnn_pad = resolved({"train.model": "cnn-pad", "train.batch_size": 2})
    assert fit(cnn_pad, known, HOST) is None  # another net


def test_a_step_time_never_falls_below_nothing_nor_rises_for_a_smaller_batch():
    noisy = StepTime((16, 32), (12.0, 10.0))  # the larger batch measured faster: busy CPU
    assert noisy.at(2) == 12.0 and noisy.at(64) == 10.0  # beyond them: the nearest one's step
    assert noisy.at(24) == pytest.approx(11.0)  # between them: between their steps
    steep = StepTime((16, 32), (4.0, 16.0))  # a line through 0 ms at batch 10.7
    assert steep.at(8) == pytest.approx(2.0)  # batch 16's step by images, not the line's 0
    assert StepTime((2, 4, 8), (5.0, 6.0, 8.0)).at(6) == pytest.approx(7.0)
    assert StepTime((2, 4, 8), (5.0, 6.0, 8.0)).at(16) == pytest.approx(12.0)


def test_records_of_a_crowded_cpu_are_set_aside_where_others_price_the_run():
    """Issue 30's lr check ran three runs to the two cores: its step times were several times a
    quiet step's and priced the small-batch study at 35 h. Times show the crowding."""
    crowd = [timed(2, 26.0, at=(0, 60)), timed(64, 30.0, at=(10, 50)), timed(64, 30.0, at=(20, 40))]
    quiet = [timed(16, 9.5, at=(100, 160)), timed(32, 13.0, at=(100, 160))]  # two on two cores
    price = estimates.price(run(2), crowd + quiet, HOST)
    assert price.seconds == pytest.approx(6.4375 / 1000 * 30000 * 20)  # as without the crowd
    assert price.how == "from step time, 6.4 ms a step; 3 records of a crowded CPU set aside"
    untimed = [timed(2, 26.0), timed(64, 30.0)]  # before issue 28: nothing says they were
    assert estimates.price(run(2), untimed, HOST).how == "from 1 record"
    assert estimates.price(run(2), crowd, HOST).how == "from 1 record"  # nothing else: all kept
    gpu = [r.model_copy(update={"device": "cuda"}) for r in crowd]
    assert estimates.price(run(2), gpu, HOST).how == "from 1 record"  # a GPU is shared by design
