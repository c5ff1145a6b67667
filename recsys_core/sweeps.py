"""Balance sweeps: one model and split, one or two ``BalanceConfig`` options over a grid.

A sweep is a group of ordinary runs (``RunSpec.group``) queued through
:func:`recsys_core.jobs.api.submit_sweep`, plus a *baseline* run with the default balance
options (identified by an empty ``spec.balance``), so every setting is judged against doing
nothing. The worker executes the points in parallel up to its ``--cpu-slots``.

After a sweep: :func:`collect_sweep` (one row per point) and :func:`pareto_front`. The data's
imbalance itself, before and after training, is :mod:`recsys_core.imbalance`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.balance import (
    DEPENDENT,
    BalanceConfig,
)
from recsys_core.config import FieldSpec, coerce, config_from_dict, describe
from recsys_core.errors import ConfigError, NotFoundError
from recsys_core.workspace import Workspace

#: At most this many options vary in one sweep (a 2-D grid is what a trade-off plot can show).
MAX_OPTIONS = 2
BASELINE_LABEL = "baseline"
#: Sweep table metric columns (from ``metrics.json``), accuracy first.
METRICS = (
    "ndcg@10",
    "recall@10",
    "tail_coverage@10",
    "coverage@10",
    "avg_popularity@10",
    "gini@10",
)
#: Item-popularity segments the evaluation reports (head/mid/tail of the truth items).
ITEM_SEGMENTS = ("head", "mid", "tail")
#: Options that only act together with a parent option, and the parent value they need.
_PARENT_VALUE = {"neg_alpha": "popularity", "hard_pool": "hard"}


# ----- which options a model honours ------------------------------------------------------------
def _fields() -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in describe(BalanceConfig)}


def is_honoured(name: str, honoured: frozenset[str]) -> bool:
    """True when ``name`` (or the option it qualifies, see ``balance.DEPENDENT``) is honoured."""
    return name in honoured or DEPENDENT.get(name) in honoured


def option_support(model: str) -> dict[str, str | None]:
    """Every balance option -> None when ``model`` honours it, else why it is not offered.

    Raises NotFoundError (from the registry) for an unknown model key.
    """
    from recsys_core.models import get_model

    cls = get_model(model)
    out: dict[str, str | None] = {}
    for name in _fields():
        if is_honoured(name, cls.honours_balance):
            out[name] = None
        else:
            out[name] = f"{cls.name} does not use {name}: " + _WHY.get(
                name, "its training has no step this option acts on"
            )
    return out


_WHY = {
    "neg_sampler": "it draws no negatives (closed-form or full-softmax training)",
    "neg_alpha": "it draws no negatives (closed-form or full-softmax training)",
    "n_negatives": "it draws no negatives, or draws them in a fixed scheme",
    "hard_pool": "it draws no negatives",
    "ips_beta": "its loss has no per-positive weight",
    "pos_weight": "its loss has no positive/negative class weight",
    "focal_gamma": "its loss is not a per-example classification loss",
    "resample": "it trains on the interaction matrix as a whole, not on resampled rows",
    "resample_factor": "it trains on the interaction matrix as a whole, not on resampled rows",
    "head_share": "it trains on the interaction matrix as a whole, not on resampled rows",
    "user_cap": "it trains on the interaction matrix as a whole, not on resampled rows",
    "pop_norm": "popularity normalisation of item columns applies to EASE/ItemKNN/RP3beta only",
    "positive_threshold": "it does not split ratings into positive and negative classes",
}


def honoured_options(model: str) -> list[str]:
    """Balance options ``model`` honours, in ``BalanceConfig`` field order."""
    return [name for name, why in option_support(model).items() if why is None]


# ----- grid parsing and validation --------------------------------------------------------------
def parse_grid(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``["neg_alpha=0,0.5,1", "ips_beta=0,0.5"]`` -> ``{"neg_alpha": [0.0, 0.5, 1.0], ...}``.

    Values are converted to the option's type and range-checked; duplicates are dropped (first
    kept). Raises ConfigError naming the offending pair.
    """
    specs = _fields()
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--grid {pair!r}: expected OPTION=V1,V2,..., e.g. neg_alpha=0,0.5,1")
        name, raw = (part.strip() for part in pair.split("=", 1))
        if name not in specs:
            raise ConfigError(
                f"--grid {pair!r}: unknown balance option {name!r}; known: {sorted(specs)}"
            )
        if name in grid:
            raise ConfigError(f"--grid {pair!r}: option {name!r} given twice; list all values once")
        values = [coerce(specs[name], v.strip(), "BalanceConfig") for v in raw.split(",") if v]
        grid[name] = list(dict.fromkeys(values))
    return grid


def check_sweep(
    model: str, grid: Mapping[str, Sequence[Any]], balance: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a sweep up front and return the base balance options it runs with.

    Checks: one or two options, each known, non-empty, honoured by ``model`` (the ConfigError
    names model and option), every value valid. An option that only acts through a parent
    option (``neg_alpha`` needs ``neg_sampler="popularity"``, ``hard_pool`` needs ``"hard"``)
    gets that parent set in the returned base when the base leaves it at its default;
    ``resample_factor``/``head_share`` need ``resample`` chosen explicitly.
    """
    from recsys_core.models import get_model

    cls = get_model(model)
    specs = _fields()
    base = dict(balance or {})
    if not 1 <= len(grid) <= MAX_OPTIONS:
        raise ConfigError(
            f"sweep: {len(grid)} options given; vary one or two balance options "
            f"(e.g. --grid neg_alpha=0,0.5,1 --grid ips_beta=0,0.5)"
        )
    for name, values in grid.items():
        if name not in specs:
            raise ConfigError(f"sweep: unknown balance option {name!r}; known: {sorted(specs)}")
        if not is_honoured(name, cls.honours_balance):
            raise ConfigError(
                f"sweep: model {cls.name!r} does not honour balance option {name!r}; it honours "
                f"{honoured_options(cls.name) or 'none'}. Pick one of those or another model."
            )
        if not list(values):
            raise ConfigError(f"sweep: option {name!r} has no values; give at least one")
    for name, parent_value in _PARENT_VALUE.items():
        parent = DEPENDENT[name]
        if name in grid and parent not in grid and parent not in base:
            base[parent] = parent_value
    for name in ("resample_factor", "head_share"):
        if name in grid and "resample" not in grid and base.get("resample", "none") == "none":
            raise ConfigError(
                f"sweep: {name} only acts when resampling is on; add a base option "
                "resample=upsample_tail or resample=downsample_head (or sweep resample too)"
            )
    # every point must build a valid BalanceConfig honoured by the model (values in range)
    for name, values in grid.items():
        for value in values:
            point = config_from_dict(BalanceConfig, {**base, name: value})
            unknown = sorted(n for n in point.changed() if not is_honoured(n, cls.honours_balance))
            if unknown:
                raise ConfigError(
                    f"sweep: model {cls.name!r} does not honour balance option(s) {unknown} "
                    "set in the base options; remove them"
                )
    return base


def submit_sweep(
    ws: Workspace,
    dataset: str,
    model: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    split: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    balance: Mapping[str, Any] | None = None,
    device: str = "auto",
    seed: int = 0,
    baseline: bool = True,
    group: str | None = None,
) -> str:
    """Queue one run per grid point (plus the default-balance baseline); returns the group id.

    Parameters
    ----------
    dataset : dataset id or name.
    model : model registry key (e.g. ``"bpr"``).
    grid : ``{"neg_alpha": [0, 0.5, 1], "ips_beta": [0, 0.5]}``; one or two balance options.
    split, config : the split spec and model hyperparameters shared by every point.
    balance : base balance options shared by every point (the grid overrides them).
    baseline : also queue a run with the default balance (skipped when a grid point already is
        one), labelled ``"baseline"``.

    Every point is validated before anything is queued: an option the model does not honour
    raises ConfigError naming the model and the option, and queues nothing.
    """
    from recsys_core.jobs import api, store
    from recsys_core.jobs.spec import RunSpec

    base_balance = check_sweep(model, grid, balance)
    group = group or store.new_id("sweep")
    spec = RunSpec(
        dataset=dataset,
        model=model,
        split=dict(split or {}),
        config=dict(config or {}),
        balance=base_balance,
        device=device,
        seed=seed,
        group=group,
    )
    keys = list(grid)
    points = [
        config_from_dict(BalanceConfig, {**base_balance, **dict(zip(keys, values, strict=True))})
        for values in _product([list(grid[k]) for k in keys])
    ]
    need_baseline = baseline and all(p.changed() for p in points)
    baseline_spec = None
    if need_baseline:
        base_dict = spec.to_dict() | {"balance": {}, "label": BASELINE_LABEL}
        baseline_spec = api.normalise_spec(ws, base_dict)  # refused before anything is queued
    api.submit_sweep(ws, spec, {f"balance.{k}": list(v) for k, v in grid.items()}, group=group)
    if baseline_spec is not None:
        api.submit(ws, baseline_spec)
    return group


def estimate_sweep(
    ws: Workspace, dataset: str, model: str, grid: Mapping[str, Sequence[Any]]
) -> tuple[int, float | None]:
    """``(runs, seconds)`` a sweep would queue and roughly take, before it is queued.

    ``runs`` counts every grid point plus the default-balance baseline when no point is one
    (as :func:`submit_sweep` does). ``seconds`` is ``runs`` times the median wall time of this
    model's finished runs on this dataset, run one after another (a worker with one slot); None
    when the model never finished a run here, so there is nothing honest to extrapolate from.
    """
    from recsys_core.jobs import api

    base = check_sweep(model, grid)  # the same validation as submit_sweep: ConfigError here
    keys = list(grid)
    points = [
        config_from_dict(BalanceConfig, {**base, **dict(zip(keys, values, strict=True))})
        for values in _product([list(grid[k]) for k in keys])
    ]
    runs = len(points) + (1 if points and all(p.changed() for p in points) else 0)
    durations = [
        r.duration
        for r in api.list_runs(ws, dataset=dataset, model=model, status="done", limit=20)
        if r.duration is not None
    ]
    if not durations:
        return runs, None
    return runs, float(runs * np.median(durations))


def _product(lists: list[list[Any]]) -> list[tuple[Any, ...]]:
    import itertools

    return list(itertools.product(*lists))


# ----- waiting ----------------------------------------------------------------------------------
def wait_sweep(
    ws: Workspace,
    group: str,
    *,
    cpu_slots: int = 1,
    timeout: float | None = None,
    poll: float = 0.5,
) -> pd.DataFrame:
    """Block until every run of ``group`` is finished; return :func:`collect_sweep`.

    Waits for the live worker when there is one; otherwise runs a worker in this process with
    ``cpu_slots`` parallel runs until the queue is empty (``Worker(once=True)``).
    """
    from recsys_core.jobs import api

    runs = api.list_runs(ws, group=group)
    if not runs:
        raise NotFoundError(
            f"no sweep {group!r} in this workspace; list sweeps with `runs list --group`"
        )
    if not api.worker_alive(ws):
        from recsys_core.jobs.worker import Worker

        Worker(ws, cpu_slots=cpu_slots, once=True).run()
    deadline = None if timeout is None else time.monotonic() + timeout
    while any(r.is_active for r in api.list_runs(ws, group=group)):
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(poll)
    return collect_sweep(ws, group)


# ----- collecting ----------------------------------------------------------------------------
def _segment_means(segments: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """``metric`` per item-popularity bucket and for the coldest/heaviest user-activity bucket."""
    out: dict[str, float] = {}
    frame = pd.DataFrame(segments)
    if frame.empty or "metric" not in frame:
        return out
    frame = frame[frame["metric"] == metric]
    items = frame[frame["kind"] == "item popularity"].set_index("segment")["mean"]
    for name in ITEM_SEGMENTS:
        if name in items.index:
            out[f"{metric} {name} items"] = float(items[name])
    users = frame[frame["kind"] == "user activity"]
    if len(users):
        # labels are "Q1: lo-hi" ... and sort like the buckets; Q1 = cold, the last = heavy
        ordered = users.sort_values("segment")
        out[f"{metric} cold users"] = float(ordered["mean"].iloc[0])
        out[f"{metric} heavy users"] = float(ordered["mean"].iloc[-1])
    return out


def collect_sweep(ws: Workspace, group: str) -> pd.DataFrame:
    """One row per sweep point (oldest first).

    Columns: ``run_id``, ``label``, ``status``, ``baseline`` (bool), one column per balance
    option set in any point (defaults filled in), the :data:`METRICS`, ``ndcg@10`` per
    head/mid/tail item bucket and for cold/heavy users, ``fit_seconds`` and ``error``.
    Metrics are NaN for runs that are not done.
    """
    from recsys_core.jobs import api
    from recsys_core.jobs.artifacts import RunArtifacts

    runs = sorted(api.list_runs(ws, group=group), key=lambda r: r.created_at)
    if not runs:
        raise NotFoundError(
            f"no sweep {group!r} in this workspace; list groups with "
            "`python -m recsys_core runs list --json` (field spec.group)"
        )
    defaults = {spec.name: spec.default for spec in describe(BalanceConfig)}
    used = {k for r in runs for k in r.spec.balance}
    options = [name for name in defaults if name in used]  # BalanceConfig field order
    rows = []
    for record in runs:
        row: dict[str, Any] = {
            "run_id": record.id,
            "label": record.label or "",
            "status": record.status,
            "baseline": not record.spec.balance,
        }
        row.update({k: record.spec.balance.get(k, defaults[k]) for k in options})
        row.update({m: np.nan for m in METRICS})
        if record.status == "done":
            try:
                metrics = RunArtifacts(ws, record.id).metrics()
            except NotFoundError:
                metrics = {}
            aggregate = metrics.get("aggregate", {})
            row.update({m: _float(aggregate.get(m)) for m in METRICS})
            row.update(_segment_means(metrics.get("segments", []), "ndcg@10"))
        row["fit_seconds"] = record.fit_seconds
        row["error"] = record.error
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["baseline"] = frame["baseline"].astype(bool)
    return frame


def _float(value: Any) -> float:
    return float(value) if value is not None else np.nan


def list_sweeps(ws: Workspace, *, dataset: str | None = None) -> pd.DataFrame:
    """Sweep groups (newest first): group, model, n_runs, n_done, created_at."""
    from recsys_core.jobs import api

    runs = [r for r in api.list_runs(ws, dataset=dataset) if r.group]
    frame = pd.DataFrame(
        {
            "group": [r.group for r in runs],
            "model": [r.spec.model for r in runs],
            "dataset": [r.spec.dataset for r in runs],
            "done": [r.status == "done" for r in runs],
            "created_at": [r.created_at for r in runs],
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=["group", "model", "dataset", "n_runs", "n_done", "created_at"])
    out = frame.groupby("group", sort=False).agg(
        model=("model", "first"),
        dataset=("dataset", "first"),
        n_runs=("done", "size"),
        n_done=("done", "sum"),
        created_at=("created_at", "min"),
    )
    return out.reset_index().sort_values("created_at", ascending=False, ignore_index=True)


def pareto_front(
    points: pd.DataFrame,
    x: str = "tail_coverage@10",
    y: str = "ndcg@10",
    *,
    maximise_x: bool = True,
) -> np.ndarray:
    """bool [n_points]: True where no other point is at least as good on both ``x`` and ``y``
    and strictly better on one. ``y`` is maximised; ``x`` too unless ``maximise_x`` is False
    (average popularity, Gini: lower is better). Rows with a NaN in either are never on it."""
    xs = points[x].to_numpy(dtype=np.float64) * (1.0 if maximise_x else -1.0)
    ys = points[y].to_numpy(dtype=np.float64)
    valid = ~(np.isnan(xs) | np.isnan(ys))
    # dominated[i, j]: point j dominates point i (pairwise, n is a sweep's size)
    ge = (xs[None, :] >= xs[:, None]) & (ys[None, :] >= ys[:, None])
    gt = (xs[None, :] > xs[:, None]) | (ys[None, :] > ys[:, None])
    dominated = (ge & gt & valid[None, :]).any(axis=1)
    return valid & ~dominated


__all__ = [
    "BASELINE_LABEL",
    "MAX_OPTIONS",
    "METRICS",
    "check_sweep",
    "collect_sweep",
    "estimate_sweep",
    "honoured_options",
    "is_honoured",
    "list_sweeps",
    "option_support",
    "pareto_front",
    "parse_grid",
    "submit_sweep",
    "wait_sweep",
]
