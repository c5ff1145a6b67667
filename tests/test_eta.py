"""ETA of runs that stop early: bounded by the patience, not extrapolated over every epoch."""

from __future__ import annotations

import pytest

from recsys_core.jobs.eta import estimate


def _stop(best, bad, epoch, patience=5, every=1):
    return {
        "best_epoch": best,
        "bad_evals": bad,
        "patience": patience,
        "eval_every": every,
        "eval_epoch": epoch,
    }


def test_without_early_stopping_every_epoch_counts():
    eta = estimate(10, 200, 100.0)  # 10 s per epoch, 190 left
    assert eta.likely == eta.low == eta.high == pytest.approx(1900.0)
    assert eta.stop_epoch is None
    assert estimate(0, 200, 5.0) is None


def test_a_plateau_bounds_the_eta_by_the_patience():
    # Best at epoch 15, no gain for 3 of 5 checks: it stops at epoch 20 at the latest.
    eta = estimate(18, 200, 180.0, _stop(best=15, bad=3, epoch=18))
    assert eta.stop_epoch_min == eta.stop_epoch == 20
    assert eta.likely == eta.low == pytest.approx(20.0)  # two epochs of 10 s
    assert eta.high == pytest.approx(1820.0)  # the old linear estimate, kept as the bound


def test_still_improving_uses_the_doubling_rule_within_the_bounds():
    eta = estimate(10, 200, 100.0, _stop(best=10, bad=0, epoch=10))
    assert eta.stop_epoch_min == 15  # five more checks without gain
    assert eta.stop_epoch == 25  # 2 x 10 epochs of improvement, then the patience
    assert eta.low < eta.likely < eta.high
    # Checks every 2 epochs stretch the patience; the stop never passes epochs_total.
    late = estimate(90, 100, 900.0, _stop(best=90, bad=0, epoch=90, every=2))
    assert late.stop_epoch == 100 and late.likely == pytest.approx(100.0)


def test_event_sink_reports_the_early_stop_estimate(workspace):
    from recsys_core.jobs.child import EventSink

    sink = EventSink(workspace, "r-none")  # nothing is flushed within the flush interval
    base = {"epochs_total": 200.0, "loss": 1.0}
    sink(1, {**base, "epoch": 17.5, "elapsed_s": 175.0})  # before any validation: linear
    assert sink._eta == pytest.approx(1825.0)
    state = {k: v for k, v in _stop(15, 3, 18).items() if k != "eval_epoch"}
    sink(2, {**base, "epoch": 18.0, "elapsed_s": 180.0, **state})  # an epoch-end validation
    assert sink._eta == pytest.approx(20.0)
    last = sink._buffer[-1]["metrics"]
    assert last["stop_epoch"] == 20 and last["eta_high"] == pytest.approx(1820.0)
