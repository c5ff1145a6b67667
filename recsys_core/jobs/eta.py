"""Time-left estimates for runs that may stop early.

A linear extrapolation over ``epochs_total`` is hours off for models with early stopping:
SASRec configured for 200 epochs usually stops after a few dozen. What the trainer knows after
each validation bounds the stop instead:

- the earliest stop: no further improvement, so it stops after the ``patience - bad_evals``
  checks still allowed (``eval_every`` epochs apart);
- the latest stop: ``epochs_total``;
- the likely stop: as long as the metric keeps improving, training has so far improved for
  ``best_epoch`` epochs and is assumed to improve about as long again (a doubling rule, the
  usual "what has lasted t will last about t more" guess), then wait out the patience. It is
  clipped to the two bounds and moves to the earliest stop once improvement has stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Keys the trainer adds to its epoch-end progress metrics when it validates.
STOP_KEYS = ("best_epoch", "bad_evals", "patience", "eval_every")


@dataclass(frozen=True)
class Eta:
    """Seconds left (``likely`` within ``[low, high]``) and the epochs they assume.

    ``stop_epoch`` and ``stop_epoch_min`` are None when the run cannot stop early (no
    validation part, or the model does not report its patience).
    """

    likely: float
    low: float
    high: float
    stop_epoch: float | None = None
    stop_epoch_min: float | None = None

    def to_metrics(self) -> dict[str, float]:
        """The estimate as numbers for a progress event (``eta_low``, ``eta_high``, ...)."""
        out = {"eta_low": self.low, "eta_high": self.high}
        if self.stop_epoch is not None and self.stop_epoch_min is not None:
            out["stop_epoch"] = self.stop_epoch
            out["stop_epoch_min"] = self.stop_epoch_min
        return out


def estimate(
    epoch: float, total: float, elapsed: float, stop: Mapping[str, Any] | None = None
) -> Eta | None:
    """Time left for a run at fractional ``epoch`` of ``total`` after ``elapsed`` seconds.

    Parameters
    ----------
    epoch : epochs done so far (fractional within an epoch), > 0.
    total : the configured number of epochs (the latest possible stop).
    elapsed : seconds since the fit started (includes setup, so early estimates are high).
    stop : the latest validation state, ``{"best_epoch", "bad_evals", "patience",
        "eval_every"}`` plus ``"eval_epoch"`` (the epoch of that validation); None or missing
        keys mean "no early stopping known": every epoch is assumed to run.

    Returns
    -------
    None before the first progress (``epoch <= 0``), else an :class:`Eta`.
    """
    if epoch <= 0 or total <= 0 or elapsed < 0:
        return None
    per_epoch = elapsed / epoch
    high = max(0.0, (total - epoch) * per_epoch)
    if not stop or any(stop.get(k) is None for k in (*STOP_KEYS, "eval_epoch")):
        return Eta(likely=high, low=high, high=high)
    every = max(1.0, float(stop["eval_every"]))
    checks_left = max(0.0, float(stop["patience"]) - float(stop["bad_evals"]))
    earliest = min(total, max(epoch, float(stop["eval_epoch"]) + checks_left * every))
    if float(stop["bad_evals"]) == 0:  # still improving: doubling rule, then the patience
        likely = 2.0 * float(stop["best_epoch"]) + float(stop["patience"]) * every
    else:
        likely = earliest
    likely = min(total, max(earliest, likely))
    return Eta(
        likely=max(0.0, (likely - epoch) * per_epoch),
        low=max(0.0, (earliest - epoch) * per_epoch),
        high=high,
        stop_epoch=likely,
        stop_epoch_min=earliest,
    )


__all__ = ["STOP_KEYS", "Eta", "estimate"]
