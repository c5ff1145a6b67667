"""Pre-flight cost estimate of a run: fit time, peak host and device memory, artefact size.

Before a run is queued (``jobs.api.submit``), before the worker starts it, on the Train page and
with ``python -m recsys_core estimate DATASET --model M``, the estimate is computed from the
dataset's sizes (no loading: the catalog entry has them), the split's protocol and the device,
with one cost formula per model (:mod:`recsys_core.estimate_models`, calibrated on this
machine). A run whose peak memory would not fit in what the machine has free is refused with
the reason and the nearest setting that fits.

Memory is in bytes; host memory counts the loaded dataset, the split and the evaluation beside
the model's own working set (when it fits on the CPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from recsys_core.errors import ResourceError
from recsys_core.memory import GB, format_gb

#: Share of the free memory a run may plan to use (the rest: the OS page cache, other work).
HEADROOM = 0.8
#: Host bytes per stored interaction once loaded and split: the CSR matrices of the dataset
#: (values and binary, int32 indices + float32 data), its timestamps and sequences, and the
#: train/valid/test parts. Measured by ``bench --scale`` as the RSS growth of load + split:
#: tall (20M) 2.9 GB, i.e. ~145 bytes per interaction; wide (5M) 0.8 GB, ~160 bytes.
DATA_BYTES_PER_INTERACTION = 150
#: The process itself (Python, numpy, torch, pandas imported): RSS of an idle run child.
PROCESS_BYTES = 400 * 2**20
#: Host bytes per user and per item (raw id vocabularies as Python objects, side tables).
DATA_BYTES_PER_ID = 200
#: Evaluation: one dense score block of at most 2^25 float32 (evaluate.SCORE_BLOCK_ELEMENTS)
#: with its mask and top-k copies, plus per-user arrays and the top-100 lists kept.
EVAL_BLOCK_BYTES = 4 * 2**25 * 4
EVAL_BYTES_PER_USER = 100 * 12 + 30 * 8
#: Seconds per (test user x item) of full-ranking evaluation besides the model's scoring
#: (masking, top-k, metrics): evaluate() of a random-scores model on 6,000 x 3,700 took
#: 1.3 s on this machine (2 threads) = 5.9e-8 s per user-item.
EVAL_SECONDS_PER_USER_ITEM = 6e-8


@dataclass(frozen=True)
class DataShape:
    """The sizes a cost formula reads (of the training part, except ``n_test_users``).

    ``mean_history`` is n_train / n_users; ``max_history`` the longest user's (defaults to 30
    times the mean when unknown: heavy-tailed logs).
    """

    n_users: int
    n_items: int
    n_train: int
    n_test_users: int
    max_history: int = 0

    @property
    def mean_history(self) -> float:
        return self.n_train / max(self.n_users, 1)

    @property
    def longest(self) -> int:
        return self.max_history or int(30 * self.mean_history) + 1


@dataclass(frozen=True)
class ModelCost:
    """A model's own figures: fit seconds, peak working memory (on its device), saved size,
    and seconds to score one user against every item (for the evaluation)."""

    fit_seconds: float
    peak_bytes: int
    state_bytes: int
    score_seconds_per_user_item: float = 0.0


@dataclass(frozen=True)
class Estimate:
    """The pre-flight figures of one run (see :func:`estimate_run`)."""

    model: str
    device: str
    shape: DataShape
    fit_seconds: float
    eval_seconds: float
    peak_host_bytes: int
    peak_device_bytes: int
    artefact_bytes: int
    model_peak_bytes: int
    have_host_bytes: int | None = None
    have_device_bytes: int | None = None
    fits: bool = True
    reason: str = ""
    suggestion: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["shape"] = dataclasses.asdict(self.shape)
        return out

    def summary(self) -> str:
        """One line: "about 95 s to fit + 40 s to evaluate; peak 6.1 GB host, ..."."""
        device = (
            f", {format_gb(self.peak_device_bytes)} {self.device}" if self.peak_device_bytes else ""
        )
        return (
            f"{self.model}: about {_duration(self.fit_seconds)} to fit + "
            f"{_duration(self.eval_seconds)} to evaluate; peak {format_gb(self.peak_host_bytes)} "
            f"host{device}; artefacts {format_gb(self.artefact_bytes)}"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ----- shapes from a dataset and a split --------------------------------------------------------
def split_shape(
    n_users: int, n_items: int, n_interactions: int, split: dict[str, Any] | None = None
) -> DataShape:
    """The training part's sizes for a split protocol, from the whole dataset's sizes.

    random: train = 1 - test_ratio - valid_ratio of the interactions; leave_last: each user
    loses k + valid_k; temporal: the share before the cutoff (test_ratio when automatic);
    users: target_ratio of the users are held out (their whole histories). Every user with
    a test part is a test user (about all of them, except for ``users``).
    """
    split = split or {}
    protocol = split.get("protocol", "random")
    test_ratio = float(split.get("test_ratio", 0.2))
    valid_ratio = float(split.get("valid_ratio", 0.1))
    n_train, n_test = n_interactions, n_users
    if protocol == "leave_last":
        held = int(split.get("k", 1)) + int(split.get("valid_k", 1))
        n_train = max(n_interactions - held * n_users, n_users)
    elif protocol == "users":
        share = float(split.get("target_ratio", 0.2))
        n_test = int(share * n_users)
        n_train = int(n_interactions * (1 - share * 0.5))
    else:  # random, temporal, predefined: a share of the interactions
        n_train = int(n_interactions * max(1.0 - test_ratio - valid_ratio, 0.05))
    return DataShape(n_users=n_users, n_items=n_items, n_train=n_train, n_test_users=n_test)


def data_bytes(n_users: int, n_items: int, n_interactions: int) -> int:
    """Host memory of the loaded dataset and its split parts."""
    return int(
        DATA_BYTES_PER_INTERACTION * n_interactions + DATA_BYTES_PER_ID * (n_users + n_items)
    )


# ----- the estimate ---------------------------------------------------------------------------
def estimate_model(key: str, config: Any, shape: DataShape, device: str = "cpu") -> ModelCost:
    """The model's own cost from its registered formula (every model has one; a test checks)."""
    from recsys_core.estimate_models import COSTS

    return COSTS[key].formula(config, shape, device)


def estimate_run(
    key: str,
    config: Any,
    shape: DataShape,
    *,
    n_interactions: int | None = None,
    device: str = "cpu",
    have_host: int | None = None,
    have_device: int | None = None,
) -> Estimate:
    """Fit and evaluation seconds, peak host and device memory and artefact size of a run.

    ``have_host`` / ``have_device``: the free memory to check against (None: not checked);
    a run whose peak is above ``HEADROOM`` of it is marked ``fits=False`` with the reason and
    the nearest setting that fits (:func:`recsys_core.estimate_models.nearest_fit`).
    """
    from recsys_core.estimate_models import nearest_fit

    dev = device.split(":")[0]
    cost = estimate_model(key, config, shape, dev)
    total = n_interactions or shape.n_train
    base = PROCESS_BYTES + data_bytes(shape.n_users, shape.n_items, total)
    eval_bytes = EVAL_BLOCK_BYTES + EVAL_BYTES_PER_USER * shape.n_test_users
    on_host = dev == "cpu"
    # the fit, then the evaluation beside the fitted model (they do not overlap)
    on_device = max(cost.peak_bytes, cost.state_bytes + eval_bytes)
    peak_host = base + (on_device if on_host else cost.state_bytes)
    peak_device = 0 if on_host else on_device
    user_items = shape.n_test_users * shape.n_items
    eval_seconds = user_items * (EVAL_SECONDS_PER_USER_ITEM + cost.score_seconds_per_user_item)
    artefact = int(cost.state_bytes + shape.n_test_users * (100 * 20 + 30 * 8) + 16 * 2**20)
    est = Estimate(
        model=key,
        device=dev,
        shape=shape,
        fit_seconds=cost.fit_seconds,
        eval_seconds=eval_seconds,
        peak_host_bytes=int(peak_host),
        peak_device_bytes=int(peak_device),
        artefact_bytes=artefact,
        model_peak_bytes=int(cost.peak_bytes),
        have_host_bytes=have_host,
        have_device_bytes=have_device,
    )
    short = _shortfall(est)
    if short is None:
        return est
    budget = int(HEADROOM * short[1]) - (base if on_host else 0)
    return dataclasses.replace(
        est, fits=False, reason=short[0], suggestion=nearest_fit(key, config, shape, dev, budget)
    )


def _shortfall(est: Estimate) -> tuple[str, int] | None:
    """(reason, bytes free) when the peak is above HEADROOM of what is free, else None."""
    checks = [("host memory", est.peak_host_bytes, est.have_host_bytes)]
    if est.device != "cpu":
        checks.append((f"{est.device} memory", est.peak_device_bytes, est.have_device_bytes))
    for what, need, have in checks:
        if have is not None and need > HEADROOM * have:
            return (
                f"{est.model} on {est.shape.n_users:,} users x {est.shape.n_items:,} items "
                f"({est.shape.n_train:,} training interactions) needs about {format_gb(need)} "
                f"of {what} at its peak (the model alone {format_gb(est.model_peak_bytes)}), "
                f"above {HEADROOM:.0%} of the {format_gb(have)} free",
                have,
            )
    return None


def free_memory(device: str) -> tuple[int | None, int | None]:
    """(host bytes free, device bytes free or None) now."""
    import psutil

    host = int(psutil.virtual_memory().available)
    dev = device.split(":")[0]
    if dev in ("cpu", "auto"):
        return host, None
    from recsys_core.memory import available_bytes

    try:
        return host, available_bytes(device)
    except (RuntimeError, AssertionError):  # no such device here: the worker decides
        return host, None


def has_formula(key: str) -> bool:
    """Whether ``key`` has a cost formula (every built-in model does; a plugin may not)."""
    from recsys_core.estimate_models import COSTS

    return key in COSTS


def estimate_spec(ws: Any, spec: Any, *, check_memory: bool = True) -> Estimate | None:
    """The estimate of a (normalised) :class:`~recsys_core.jobs.spec.RunSpec` in ``ws``; None
    for a model without a cost formula (a plugin's: it is then not checked before the run)."""
    from recsys_core.config import config_from_dict
    from recsys_core.data.store import get_dataset
    from recsys_core.device import resolve_device
    from recsys_core.models import get_model

    cls = get_model(spec.model)
    if not has_formula(cls.name):
        return None
    info = get_dataset(ws, spec.dataset)
    config = config_from_dict(cls.Config, spec.config)
    shape = split_shape(info.n_users, info.n_items, info.n_interactions, spec.split)
    device = spec.device if spec.device not in ("", "auto") else str(resolve_device("auto"))
    host, dev = free_memory(device) if check_memory else (None, None)
    return estimate_run(
        cls.name,
        config,
        shape,
        n_interactions=info.n_interactions,
        device=device,
        have_host=host,
        have_device=dev,
    )


def refuse_if_unfit(est: Estimate | None) -> None:
    """Raise :class:`ResourceError` (reason, nearest setting that fits) when ``est`` does not
    fit; do nothing otherwise (or without an estimate)."""
    if est is not None and not est.fits:
        raise ResourceError(
            f"refused before queueing: {est.reason}",
            where=f"model {est.model!r}",
            fix=est.suggestion,
        )


def estimate_choices(
    sizes: tuple[int, int, int],
    split: dict[str, Any],
    configs: dict[str, dict[str, Any]],
    device: str = "auto",
) -> list[Estimate]:
    """Estimates of several models on one dataset (``sizes`` = users, items, interactions) and
    split, against the memory free now: what the Train page shows before queueing. Models with
    an invalid config value or without a cost formula are left out."""
    from recsys_core.config import config_from_dict
    from recsys_core.device import resolve_device
    from recsys_core.models import get_model

    shape = split_shape(*sizes, split)
    dev = device if device not in ("", "auto") else str(resolve_device("auto"))
    host, free_dev = free_memory(dev)
    out = []
    for key, values in configs.items():
        cls = get_model(key)
        if not has_formula(cls.name):
            continue
        try:
            config = config_from_dict(cls.Config, values)
        except ValueError:  # an invalid value: queueing reports it with its reason
            continue
        out.append(
            estimate_run(
                key,
                config,
                shape,
                n_interactions=sizes[2],
                device=dev,
                have_host=host,
                have_device=free_dev,
            )
        )
    return out


def estimate_frame(estimates: list[Estimate]) -> Any:
    """A table of estimates (one row per model) with readable durations and sizes."""
    import pandas as pd

    return pd.DataFrame(
        {
            "model": [e.model for e in estimates],
            "fit": [_duration(e.fit_seconds) for e in estimates],
            "evaluation": [_duration(e.eval_seconds) for e in estimates],
            "peak host": [format_gb(e.peak_host_bytes) for e in estimates],
            "peak device": [
                format_gb(e.peak_device_bytes) if e.peak_device_bytes else "-" for e in estimates
            ],
            "artefacts": [format_gb(e.artefact_bytes) for e in estimates],
            "fits": ["yes" if e.fits else "no: refused" for e in estimates],
        }
    )


def start_refusal(ws: Any, spec: Any, device: str) -> str | None:
    """The worker's last check: why a claimed run must not start on ``device`` (its estimate
    no longer fits the memory free now: other work may have filled it since it was queued),
    or None. An estimate that fails never stops the queue (the run then starts as before)."""
    import logging

    if spec.parent is not None:
        return None
    try:
        est = estimate_spec(ws, dataclasses.replace(spec, device=device))
    except Exception as error:  # noqa: BLE001 - logged; the run's own checks still apply
        logging.getLogger(__name__).warning("no estimate for %s: %s", spec.model, error)
        return None
    if est is None or est.fits:
        return None
    return f"refused before starting: {est.reason}; try {est.suggestion}"


__all__ = [
    "GB",
    "HEADROOM",
    "DataShape",
    "Estimate",
    "ModelCost",
    "data_bytes",
    "estimate_choices",
    "estimate_frame",
    "estimate_model",
    "estimate_run",
    "estimate_spec",
    "free_memory",
    "refuse_if_unfit",
    "split_shape",
    "start_refusal",
]
