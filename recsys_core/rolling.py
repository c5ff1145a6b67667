"""Rolling evaluation: how fast models go stale, and whether updating keeps up with retraining.

Protocol. The interactions, ordered by time, are cut at points ``t_1 < ... < t_{n+1}``: the
share ``initial`` of the data (by time span or by interaction count) comes before ``t_1``, the
rest is cut into ``n`` equal windows. At window ``i`` a model may learn only from interactions
with ``timestamp < t_i``, and is tested on ``[t_i, t_{i+1})`` for the users who have a history
before ``t_i``; items a user already had before ``t_i`` are excluded from their ranking and from
their truth. Every model scores a test user from that user's whole history before ``t_i``
(``score_history``, fold-in), so strategies differ only in what the model learned.

Strategies, side by side for every model:

- ``frozen``: fitted once on the data before ``t_1``;
- ``update``: the previous window's model updated with the data before ``t_i``
  (:func:`recsys_core.updates.update_model`, the model's own update strategy);
- ``retrain``: fitted from scratch on everything before ``t_i``;
- ``sliding``: fitted from scratch on the last ``window_size`` windows before ``t_i`` only
  (the first ``window_size`` windows, which have fewer windows before them, train on all).

Per window, model and strategy: every metric at ``k`` with its bootstrap CI
(:func:`recsys_core.evaluate.evaluate`), the shares of the window's interactions from cold users
(no history: not scored) and on cold items (never seen before ``t_i``), and the seconds spent
training (fit or update) and evaluating.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.config import config_from_dict, config_to_dict, param, validate
from recsys_core.data.interactions import Interactions
from recsys_core.errors import ConfigError, DataError
from recsys_core.workspace import Workspace

STRATEGIES = ("frozen", "update", "retrain", "sliding")
CUTS = ("time", "count")
RESULTS_FILE = "results.json"
#: ``progress(fraction, message)``; may raise Cancelled.
Progress = Callable[..., None]


@dataclass(frozen=True)
class RollingSpec:
    """What a rolling evaluation compares (JSON round-trip via ``config_to_dict``)."""

    models: tuple[str, ...] = param(("ials", "ease"), "model registry keys")
    strategies: tuple[str, ...] = param(
        ("frozen", "update", "retrain"), "strategies: frozen, update, retrain, sliding"
    )
    windows: int = param(6, "number of test windows", low=1, high=100)
    cut: str = param("time", "equal time spans or equal interaction counts", choices=CUTS)
    initial: float = param(
        0.5, "share of the data (time span or count) before the first window", low=0.05, high=0.95
    )
    window_size: int = param(2, "sliding: windows of data the model is trained on", low=1)
    k: int = param(10, "cut-off of the metrics", low=1, high=1000)
    configs: tuple[str, ...] = param(
        (), "model hyperparameters as model.name=value, e.g. ials.factors=32"
    )
    update: tuple[str, ...] = param((), "update settings as name=value, e.g. epochs=2")
    device: str = param("auto", "device of every fit")
    seed: int = param(0, "seed of every fit", low=0)
    n_resamples: int = param(300, "bootstrap resamples of each CI", low=10, high=100_000)

    def __post_init__(self) -> None:
        for name in ("models", "strategies", "configs", "update"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v.strip() for v in value.split(",") if v.strip())
            object.__setattr__(self, name, tuple(value))
        validate(self)
        bad = sorted(set(self.strategies) - set(STRATEGIES))
        if bad or not self.strategies:
            raise ConfigError(f"RollingSpec.strategies: unknown {bad}; choose from {STRATEGIES}")
        if not self.models:
            raise ConfigError("RollingSpec.models: name at least one model, e.g. ials")
        from recsys_core.models import get_model

        for key in self.models:
            get_model(key)
        self.model_config("")  # validates every override

    def model_config(self, key: str) -> dict[str, Any]:
        """The overrides of one model (``ials.factors=32`` -> ``{"factors": "32"}``)."""
        out: dict[str, Any] = {}
        for pair in self.configs:
            name, sep, value = pair.partition("=")
            model, dot, field_ = name.strip().partition(".")
            if not sep or not dot:
                raise ConfigError(
                    f"RollingSpec.configs: {pair!r} is not model.name=value (e.g. ials.factors=32)"
                )
            if model == key:
                out[field_] = _parse(value)
        return out

    def update_settings(self) -> Any:
        from recsys_core.updates import UpdateSettings

        values = {}
        for pair in self.update:
            name, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"RollingSpec.update: {pair!r} is not name=value (epochs=2)")
            values[name.strip()] = _parse(value)
        return config_from_dict(UpdateSettings, values)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


@dataclass
class Window:
    """One test window: ``[start, end)`` in unix seconds, what trains, what is tested."""

    index: int
    start: int
    end: int
    train: Interactions = field(repr=False)
    test: Interactions = field(repr=False)
    cold_user_share: float
    cold_item_share: float


def cut_points(timestamps: np.ndarray, windows: int, cut: str, initial: float) -> np.ndarray:
    """int64 [windows + 1] cut points ``t_1 < ... < t_{n+1}`` (the last is past the data).

    ``cut="time"``: equal time spans after ``initial`` of the time range; ``"count"``: equal
    numbers of interactions after ``initial`` of them.
    """
    ts = np.sort(np.asarray(timestamps, dtype=np.int64))
    lo, hi = int(ts[0]), int(ts[-1]) + 1
    if cut == "time":
        first = lo + initial * (hi - lo)
        points = np.round(np.linspace(first, hi, windows + 1)).astype(np.int64)
    else:
        shares = np.linspace(initial, 1.0, windows + 1)[:-1]
        points = np.append(ts[np.minimum((shares * len(ts)).astype(np.int64), len(ts) - 1)], hi)
    points[-1] = hi
    if np.any(np.diff(points) <= 0):
        raise DataError(
            f"{windows} windows leave some empty: the timestamps have too few distinct values",
            where="rolling evaluation",
            fix="ask for fewer windows, or cut by count instead of time",
        )
    return points


def make_windows(data: Interactions, spec: RollingSpec) -> list[Window]:
    """The test windows of ``data`` (see module docstring); raises when it has no time."""
    if data.timestamps is None:
        raise DataError(
            "rolling evaluation needs timestamps and this dataset has none",
            where="rolling evaluation",
            fix="import the data with a timestamp column",
        )
    points = cut_points(data.timestamps, spec.windows, spec.cut, spec.initial)
    out = []
    for i in range(spec.windows):
        start, end = int(points[i]), int(points[i + 1])
        before = data.timestamps < start
        inside = (data.timestamps >= start) & (data.timestamps < end)
        train = data.select(before)
        activity = train.user_activity
        known_item = train.item_popularity > 0
        users, items = data.users[inside], data.items[inside]
        n_inside = max(int(inside.sum()), 1)
        cold_user = activity[users] == 0
        seen = np.asarray(train.binary[users, items]).ravel() > 0
        keep = np.zeros(data.nnz, dtype=bool)
        keep[np.flatnonzero(inside)[~cold_user & ~seen]] = True
        out.append(
            Window(
                index=i + 1,
                start=start,
                end=end,
                train=train,
                test=data.select(keep),
                cold_user_share=float(cold_user.sum() / n_inside),
                cold_item_share=float((~known_item[items]).sum() / n_inside),
            )
        )
    return out


def window_split(window: Window) -> Any:
    """A :class:`~recsys_core.split.Split` scoring the window's users from their history."""
    from recsys_core.split import Split, SplitSpec

    test_users = np.unique(window.test.users).astype(np.int64)
    return Split(
        spec=SplitSpec(protocol="temporal", cutoff=window.start, valid_ratio=0.0),
        train=window.train,
        valid=None,
        test=window.test,
        fold_in=window.train,
        description=f"window {window.index}: train before {window.start}, test until {window.end}",
        test_users=test_users,
        exclusion=window.train.binary,
        cutoff=window.start,
    )


def run_rolling(
    data: Interactions, spec: RollingSpec, progress: Progress | None = None
) -> pd.DataFrame:
    """Every (model, strategy, window) evaluated; one row each (columns in the module doc)."""
    from recsys_core.evaluate import evaluate
    from recsys_core.models import get_model
    from recsys_core.updates import update_model

    progress = progress or (lambda fraction, message="": None)
    windows = make_windows(data, spec)
    settings = spec.update_settings()
    rows: list[dict[str, Any]] = []
    n_steps = len(spec.models) * len(windows)
    step = 0
    for key in spec.models:
        cls = get_model(key)
        config = config_from_dict(cls.Config, spec.model_config(key))

        def fit(train: Interactions, cls: Any = cls, config: Any = config) -> tuple[Any, float]:
            start = time.perf_counter()
            model = cls(config, device=spec.device, seed=spec.seed).fit(train)
            return model, time.perf_counter() - start

        models: dict[str, Any] = {}
        for window in windows:
            progress(step / n_steps, f"{key}: window {window.index} of {len(windows)}")
            step += 1
            if not len(np.unique(window.test.users)):
                continue
            split = window_split(window)
            first = not models  # the first evaluated window: one fit serves every strategy
            shared = None
            for strategy in spec.strategies:
                start = time.perf_counter()
                if strategy == "sliding":
                    lo = windows[max(0, window.index - 1 - spec.window_size)].start
                    if window.index <= spec.window_size:
                        lo = int(data.timestamps.min())
                    recent = window.train.select(window.train.timestamps >= lo)
                    model, seconds = fit(recent)
                elif first:
                    if shared is None:
                        shared = fit(window.train)
                    model, seconds = shared
                elif strategy == "frozen":
                    model, seconds = models[strategy], 0.0
                elif strategy == "update":
                    # a copy: iALS updates in place, and the first model is shared by all
                    previous = copy.deepcopy(models[strategy])
                    start = time.perf_counter()
                    model = update_model(previous, window.train, settings)
                    seconds = time.perf_counter() - start
                else:
                    model, seconds = fit(window.train)
                models[strategy] = model
                trained = model.history_.nnz
                eval_start = time.perf_counter()
                report = evaluate(
                    model, split, ks=(spec.k,), keep=spec.k, n_resamples=spec.n_resamples
                )
                row = {
                    "model": key,
                    "strategy": strategy,
                    "window": window.index,
                    "start": window.start,
                    "end": window.end,
                    "n_test_users": int(len(split.test_users)),
                    "n_test": int(window.test.nnz),
                    "n_train": int(trained),
                    "cold_user_share": window.cold_user_share,
                    "cold_item_share": window.cold_item_share,
                    "train_seconds": float(seconds),
                    "eval_seconds": time.perf_counter() - eval_start,
                }
                for name, value in report.aggregate.items():
                    row[name] = value
                    lo_hi = report.ci.get(name)
                    if lo_hi is not None:
                        row[f"{name}_lo"], row[f"{name}_hi"] = lo_hi
                rows.append(row)
    progress(1.0, "done")
    return pd.DataFrame(rows)


def ranking_flips(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Where the order of two models on ``metric`` flips from one window to the next.

    Returns one row per flip: strategy, window (the later one), leader (ahead now), trailer.
    """
    out = []
    for strategy, part in results.groupby("strategy"):
        table = part.pivot_table(index="window", columns="model", values=metric)
        models = list(table.columns)
        for a in range(len(models)):
            for b in range(a + 1, len(models)):
                diff = np.sign(table[models[a]] - table[models[b]]).to_numpy()
                for w in range(1, len(diff)):
                    if diff[w] != 0 and diff[w - 1] != 0 and diff[w] != diff[w - 1]:
                        lead, trail = (
                            (models[a], models[b]) if diff[w] > 0 else (models[b], models[a])
                        )
                        out.append(
                            {
                                "strategy": strategy,
                                "window": int(table.index[w]),
                                "leader": lead,
                                "trailer": trail,
                            }
                        )
    return pd.DataFrame(out, columns=["strategy", "window", "leader", "trailer"])


# ----- stored results and the background task --------------------------------------------------
def results_dir(ws: Workspace, name: str) -> Path:
    """Folder of one stored rolling evaluation (``<workspace>/rolling/<name>``)."""
    return ws.root / "rolling" / name


def save_results(
    ws: Workspace, name: str, dataset_id: str, spec: RollingSpec, results: pd.DataFrame
) -> Path:
    """Write ``results.json`` (spec, dataset, rows) atomically; returns its path."""
    from recsys_core.jobs.runner import clean_json

    folder = results_dir(ws, name)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "dataset": dataset_id,
        "spec": config_to_dict(spec),
        "created_at": time.time(),
        "rows": results.to_dict(orient="records"),
    }
    tmp = folder / f".{RESULTS_FILE}.tmp"
    tmp.write_text(json.dumps(clean_json(payload), indent=1))
    tmp.replace(folder / RESULTS_FILE)
    return folder / RESULTS_FILE


def list_results(ws: Workspace, dataset_id: str | None = None) -> list[dict[str, Any]]:
    """Stored rolling evaluations, newest first (optionally of one dataset)."""
    root = ws.root / "rolling"
    found = []
    for path in root.glob(f"*/{RESULTS_FILE}") if root.exists() else []:
        payload = json.loads(path.read_text())
        if dataset_id is None or payload["dataset"] == dataset_id:
            found.append(payload)
    return sorted(found, key=lambda p: -p["created_at"])


def results_frame(payload: dict[str, Any]) -> pd.DataFrame:
    """The rows of a stored evaluation as a frame (None CIs read back as NaN)."""
    return pd.DataFrame(payload["rows"]).astype({"window": int}).fillna(np.nan)


def rolling_task(ws: Workspace, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Background task ``"rolling"``: payload ``{"dataset", "spec": RollingSpec dict}``."""
    from recsys_core.data.store import get_dataset, load_dataset

    info = get_dataset(ws, str(payload["dataset"]))
    spec = config_from_dict(RollingSpec, payload.get("spec") or {})
    results = run_rolling(load_dataset(ws, info.id), spec, progress)
    name = str(payload.get("name") or f"{info.id}-{int(time.time())}")
    path = save_results(ws, name, info.id, spec, results)
    return {"name": name, "path": str(path), "rows": int(len(results))}


__all__ = [
    "RollingSpec",
    "STRATEGIES",
    "Window",
    "cut_points",
    "list_results",
    "make_windows",
    "ranking_flips",
    "results_frame",
    "rolling_task",
    "run_rolling",
    "save_results",
    "window_split",
]
